"""Errors raised by the SkyPilot client: match them by type.

Every error carries a clean message (no ANSI codes, no secrets), the server request id when
there is one, and chains the original exception as ``__cause__``. Sync and async clients raise
the same classes.

::

    SkyPilotError
    ├── ConfigurationError, InvalidInputError          (bad settings / arguments; ValueError)
    ├── APIConnectionError -> APITimeoutError          (transport failures)
    ├── APIStatusError                                 (HTTP status from the server)
    │   ├── BadRequestError 400, AuthenticationError 401, PermissionDeniedError 403,
    │   ├── NotFoundError 404 -> RequestLostError, ConflictError 409,
    │   ├── UnprocessableEntityError 422,
    │   ├── RateLimitError 429, InternalServerError 5xx -> ServiceUnavailableError 503
    ├── MalformedResponseError                         (an answer we cannot read)
    ├── VersionMismatchError                           (client/server API versions)
    ├── RequestFailedError                             (work that failed on the server)
    │   ├── ClusterNotFoundError (also a NotFoundError), ClusterNotUpError, ...
    ├── RequestCancelledError
    └── WaitTimeoutError                               (a local wait deadline passed)
"""

from __future__ import annotations

from typing import Any

__all__ = [
    "APIConnectionError",
    "APIStatusError",
    "APITimeoutError",
    "AccessDeniedError",
    "AuthenticationError",
    "BadRequestError",
    "CloudProviderError",
    "ClusterNotFoundError",
    "ClusterNotUpError",
    "ClusterSetUpError",
    "CommandError",
    "ConfigurationError",
    "ConflictError",
    "InternalServerError",
    "InvalidCloudCredentialsError",
    "InvalidClusterNameError",
    "InvalidInputError",
    "MalformedResponseError",
    "NoCloudAccessError",
    "NotFoundError",
    "NotSupportedError",
    "PermissionDeniedError",
    "PolicyRejectedError",
    "ProvisioningFailedError",
    "RateLimitError",
    "RequestCancelledError",
    "RequestFailedError",
    "RequestInterruptedError",
    "RequestLostError",
    "ResourcesMismatchError",
    "ResourcesUnavailableError",
    "ServiceUnavailableError",
    "SkyPilotError",
    "UnprocessableEntityError",
    "VersionMismatchError",
    "WaitTimeoutError",
    "WorkspaceAccessError",
    "error_for_request_failure",
    "error_for_status",
]


class SkyPilotError(Exception):
    """Base class of every error raised by ``skypilot_client``.

    Attributes:
        message: Human-readable message, ANSI codes stripped, secrets redacted.
        request_id: The server's request id (``X-Skypilot-Request-ID``), when known.
        status_code: HTTP status that carried the error, when there was one.
        body: The parsed error body (secrets removed), when there was one.
        retry_after: Seconds the server asked us to wait, when it said.
        error_type: The server-side exception class name (``RequestFailedError``).
        request_name: The server's request name, e.g. ``sky.launch``.
        cluster_name: The cluster the failed request was about, when known.
        maybe_submitted: True when a work submission may have reached the server although
            the client saw an error: check ``get_request``/``list_clusters`` before retrying.
    """

    #: Whether the same call may succeed when retried later.
    retryable: bool = False

    def __init__(
        self,
        message: str,
        *,
        request_id: str | None = None,
        status_code: int | None = None,
        body: Any = None,
        retry_after: float | None = None,
        error_type: str | None = None,
        request_name: str | None = None,
        cluster_name: str | None = None,
        maybe_submitted: bool = False,
        server_api_version: int | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.request_id = request_id
        self.status_code = status_code
        self.body = body
        self.retry_after = retry_after
        self.error_type = error_type
        self.request_name = request_name
        self.cluster_name = cluster_name
        self.maybe_submitted = maybe_submitted
        self.server_api_version = server_api_version

    def __str__(self) -> str:
        if self.request_id:
            return f"{self.message} (request id: {self.request_id})"
        return self.message

    def __repr__(self) -> str:
        parts = [repr(self.message)]
        for name in ("status_code", "error_type", "request_id"):
            value = getattr(self, name)
            if value is not None:
                parts.append(f"{name}={value!r}")
        return f"{type(self).__name__}({', '.join(parts)})"

    @property
    def is_retryable(self) -> bool:
        """True when retrying the same call later may succeed."""
        return self.retryable and not self.maybe_submitted

    @property
    def is_not_found(self) -> bool:
        """True for a 404 or a missing cluster."""
        return isinstance(self, NotFoundError)

    @property
    def is_unauthorized(self) -> bool:
        """True for a 401 (missing, invalid, expired or revoked credentials)."""
        return isinstance(self, AuthenticationError)

    @property
    def is_rate_limited(self) -> bool:
        """True for a 429."""
        return isinstance(self, RateLimitError)


class ConfigurationError(SkyPilotError, ValueError):
    """An argument, environment variable or config file value is invalid."""


class InvalidInputError(SkyPilotError, ValueError):
    """A call's input was rejected by the client before anything was sent."""


class APIConnectionError(SkyPilotError):
    """The server could not be reached, or the connection broke."""

    retryable = True


class APITimeoutError(APIConnectionError, TimeoutError):
    """An HTTP call took longer than its timeout."""


class APIStatusError(SkyPilotError):
    """The server answered with an error HTTP status."""


class BadRequestError(APIStatusError):
    """HTTP 400."""


class AuthenticationError(APIStatusError):
    """HTTP 401: missing, invalid, expired or revoked credentials."""


class PermissionDeniedError(APIStatusError):
    """HTTP 403, or an operation the server's RBAC or workspace rules refused."""


class NotFoundError(APIStatusError):
    """HTTP 404, or a resource (cluster, request) that does not exist."""

    # A request id the async client still has to look up in its AsyncLedger (internal).
    _unnamed_request_id: str | None = None


class RequestLostError(NotFoundError):
    """The server no longer knows a request *this client submitted*: it restarted (a
    restart clears its request database) or dropped the request.

    An id the client never submitted stays a plain ``NotFoundError``. For work (launch,
    exec, start, stop, down, autostop) ``maybe_submitted`` is True: the work may have run,
    in part or in full, before the server forgot it; check the cluster before submitting
    again (``RequestHandle.result(reconcile=True)`` does it for a launch).

    Attributes:
        operation: The client operation that submitted the request (``launch``, ``status``).
        reconciled: True once the cluster's status was read after the loss.
        cluster_status: What that read found (``ClusterStatus``), or None when the server
            has no cluster of that name; meaningful only when ``reconciled``.
    """

    def __init__(self, message: str, *, operation: str | None = None, **kwargs: Any) -> None:
        super().__init__(message, **kwargs)
        self.operation = operation
        self.reconciled = False
        self.cluster_status: Any = None


class ConflictError(APIStatusError):
    """HTTP 409."""


class UnprocessableEntityError(APIStatusError):
    """HTTP 422: the server rejected the request body (``errors`` lists why)."""

    @property
    def errors(self) -> list[dict[str, Any]]:
        """FastAPI validation errors (``loc``, ``msg``, ``type``), echoed inputs removed."""
        if isinstance(self.body, dict) and isinstance(self.body.get("detail"), list):
            return [e for e in self.body["detail"] if isinstance(e, dict)]
        return []


class RateLimitError(APIStatusError):
    """HTTP 429; ``retry_after`` says how long to wait when the server said."""

    retryable = True


class InternalServerError(APIStatusError):
    """HTTP 5xx."""

    @property
    def is_retryable(self) -> bool:
        """502 and 504 are transient proxy errors; a 500 is a server bug."""
        return self.status_code in (502, 503, 504) and not self.maybe_submitted


class ServiceUnavailableError(InternalServerError):
    """HTTP 503: the server is shutting down or out of workers; retry later."""

    retryable = True


class MalformedResponseError(SkyPilotError):
    """The server's answer could not be read (malformed JSON, missing request id, a field
    of the wrong shape); ``field`` names what could not be read, when known."""

    def __init__(self, message: str, *, field: str | None = None, **kwargs: Any) -> None:
        super().__init__(message, **kwargs)
        self.field = field


class VersionMismatchError(SkyPilotError):
    """The server's API version is outside what this client (or this method) supports."""


class RequestFailedError(SkyPilotError):
    """Work submitted to the server failed there; ``error_type`` names the server exception."""


class ClusterNotFoundError(RequestFailedError, NotFoundError):
    """The cluster does not exist (server ``ClusterDoesNotExist``)."""


class ClusterNotUpError(RequestFailedError):
    """The cluster exists but is not UP (INIT or STOPPED)."""


class ClusterSetUpError(RequestFailedError):
    """Setting up the cluster failed."""


class NoCloudAccessError(RequestFailedError):
    """No cloud is enabled on the server (run ``sky check`` there)."""


class ResourcesUnavailableError(RequestFailedError):
    """No cloud/region had the requested resources."""


class ResourcesMismatchError(RequestFailedError):
    """Requested resources do not match the existing cluster."""


class ProvisioningFailedError(RequestFailedError):
    """Provisioning failed and the server stopped failing over (``StopFailoverError``)."""


class CloudProviderError(RequestFailedError):
    """A cloud provider's API failed (``CloudError`` or a provider error such as
    ``HyperbolicError``)."""


class NotSupportedError(RequestFailedError):
    """The operation is not supported for this cluster or cloud."""


class CommandError(RequestFailedError):
    """A command run on the cluster failed."""


class InvalidClusterNameError(RequestFailedError):
    """The server rejected the cluster name."""


class InvalidCloudCredentialsError(RequestFailedError):
    """The cloud credentials the server used are invalid."""


class AccessDeniedError(RequestFailedError, PermissionDeniedError):
    """The server refused the operation for this user (server ``PermissionDeniedError``)."""


class WorkspaceAccessError(AccessDeniedError):
    """The user has no access to the workspace (server ``NoWorkspaceAccessError``)."""


class PolicyRejectedError(RequestFailedError):
    """An admin policy on the server rejected the request."""


class RequestInterruptedError(RequestFailedError):
    """The server restarted while running the request; submitting again is safe."""

    retryable = True


class RequestCancelledError(SkyPilotError):
    """The request was cancelled (by ``cancel_request`` or someone else)."""


class WaitTimeoutError(SkyPilotError, TimeoutError):
    """A local wait deadline passed; the request may still be running on the server."""


_STATUS_CLASSES: dict[int, type[APIStatusError]] = {
    400: BadRequestError,
    401: AuthenticationError,
    403: PermissionDeniedError,
    404: NotFoundError,
    409: ConflictError,
    422: UnprocessableEntityError,
    429: RateLimitError,
    503: ServiceUnavailableError,
}

# Server exception class names (``error.type`` in a failed request record) -> our classes.
_REQUEST_FAILURE_CLASSES: dict[str, type[RequestFailedError]] = {
    "ClusterDoesNotExist": ClusterNotFoundError,
    "ClusterNotUpError": ClusterNotUpError,
    "ClusterSetUpError": ClusterSetUpError,
    "NoCloudAccessError": NoCloudAccessError,
    "ResourcesUnavailableError": ResourcesUnavailableError,
    "KubeAPIUnreachableError": ResourcesUnavailableError,
    "ResourcesMismatchError": ResourcesMismatchError,
    "NotSupportedError": NotSupportedError,
    "CommandError": CommandError,
    "InvalidClusterNameError": InvalidClusterNameError,
    "InvalidCloudCredentials": InvalidCloudCredentialsError,
    "PermissionDeniedError": AccessDeniedError,
    "ClusterOwnerIdentityMismatchError": AccessDeniedError,
    "NoWorkspaceAccessError": WorkspaceAccessError,
    "UserRequestRejectedByPolicy": PolicyRejectedError,
    "RequestInterruptedError": RequestInterruptedError,
    "StopFailoverError": ProvisioningFailedError,
    "ProvisionPrechecksError": ProvisioningFailedError,
    "CloudError": CloudProviderError,
}


# Clouds whose provider exceptions keep the cloud's name (``<Cloud>Error``).
_CLOUD_NAMES = frozenset(
    {
        "aws",
        "gcp",
        "azure",
        "lambda",
        "runpod",
        "hyperbolic",
        "kubernetes",
        "nebius",
        "oci",
        "paperspace",
        "vast",
        "cudo",
        "fluidstack",
        "do",
        "scp",
        "ibm",
        "vsphere",
        "seeweb",
        "shadeform",
        "primeintellect",
    }
)


def error_for_status(status_code: int, message: str, **kwargs: Any) -> APIStatusError:
    """Build the error class for an HTTP status (``**kwargs`` go to ``SkyPilotError``)."""
    cls = _STATUS_CLASSES.get(status_code)
    if cls is None:
        cls = InternalServerError if status_code >= 500 else APIStatusError
    return cls(message, status_code=status_code, **kwargs)


def error_for_request_failure(error_type: str, message: str, **kwargs: Any) -> RequestFailedError:
    """Build the error class for a server exception type; unknown types keep their name."""
    cls = _REQUEST_FAILURE_CLASSES.get(error_type)
    if cls is None:
        # Provider exceptions are named after the cloud (HyperbolicError, ...).
        cloud_error = error_type.endswith("Error") and error_type[:-5].isalpha()
        is_cloud = cloud_error and error_type[:-5].lower() in _CLOUD_NAMES
        cls = CloudProviderError if is_cloud else RequestFailedError
    return cls(message, error_type=error_type, **kwargs)
