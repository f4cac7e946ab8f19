"""Every default of the client in one place."""

from __future__ import annotations

import re

# The server release and API version this client was built and tested against.
API_VERSION = 62
SERVER_VERSION = "0.14.1"
# Oldest server API version we speak to (0.11.0, the server's own compatibility floor).
MIN_SERVER_API_VERSION = 24

DEFAULT_BASE_URL = "http://127.0.0.1:46580"

DEFAULT_TIMEOUT = 30.0  # seconds, for ordinary calls
DEFAULT_CONNECT_TIMEOUT = 5.0
DEFAULT_MAX_RETRIES = 3
DEFAULT_RETRY_DELAY = 1.0
DEFAULT_RETRY_MAX_DELAY = 60.0
# Longest Retry-After we honour before falling back to our own backoff cap.
MAX_RETRY_AFTER = 300.0
DEFAULT_MAX_CONNECTIONS = 100
DEFAULT_MAX_KEEPALIVE = 20

# Per-operation wait deadlines (how long result() waits for the server to finish).
DEFAULT_LAUNCH_TIMEOUT = 600.0
DEFAULT_TERMINATE_TIMEOUT = 300.0
DEFAULT_STATUS_TIMEOUT = 30.0
DEFAULT_WAIT_TIMEOUT = 300.0

# /api/get blocks until the request ends: the read timeout of one long-poll call. A wait
# longer than this re-polls; the overall deadline is the caller's wait timeout.
LONG_POLL_READ_TIMEOUT = 60.0
# Streams may stay silent between lines; the server sends a heartbeat after 30 s.
STREAM_READ_TIMEOUT = 120.0

HEADER_API_VERSION = "X-SkyPilot-API-Version"
HEADER_VERSION = "X-SkyPilot-Version"
HEADER_REQUEST_ID = "X-Skypilot-Request-ID"
HEADER_STREAM_REQUEST_ID = "X-SkyPilot-Stream-Request-ID"

# SkyPilot's own rule for cluster names (sky.skylet.constants.CLUSTER_NAME_VALID_REGEX).
CLUSTER_NAME_RE = re.compile(r"[a-zA-Z]([-_.a-zA-Z0-9]*[a-zA-Z0-9])?")

# A wait rides out a server outage polling at most this far apart (capped backoff).
OUTAGE_MAX_POLL_DELAY = 5.0
# Results kept by the optional read cache (read_cache_ttl), oldest dropped first.
READ_CACHE_MAX_ENTRIES = 256
