"""Errors raised by provider clients: the same classes for every provider, sync or async.

::

    ProviderError
    ├── AuthenticationError -> MissingCredentialsError
    ├── RateLimitError                 (retry_after)
    ├── InstanceNotFoundError          (only on the vendor's own proof that it is gone)
    ├── InstanceNotReadyError          (wait_until_ready: the instance ended instead)
    ├── CapacityError                  (no capacity for that GPU/region now)
    ├── QuotaExceededError -> BillingError
    ├── InvalidRequestError            (also a ValueError)
    ├── ProviderServerError            (5xx)
    ├── ProviderConnectionError -> ProviderTimeoutError
    ├── WaitTimeoutError               (your own wait deadline passed; also a TimeoutError)
    ├── UnexpectedResponseError        (an answer that breaks the documented schema)
    ├── CircuitOpenError               (failing fast after repeated failures)
    ├── UnsupportedProviderError       (also a ValueError)
    ├── UnsupportedFeatureError        (also a NotImplementedError)
    └── MissingDependencyError         (also an ImportError: pip install 'skypilot-sdk[<extra>]')
"""

from __future__ import annotations

from typing import Any

__all__ = [
    "AuthenticationError",
    "BillingError",
    "CapacityError",
    "CircuitOpenError",
    "InstanceNotFoundError",
    "InstanceNotReadyError",
    "InvalidRequestError",
    "MissingCredentialsError",
    "MissingDependencyError",
    "ProviderConnectionError",
    "ProviderError",
    "ProviderServerError",
    "ProviderTimeoutError",
    "QuotaExceededError",
    "RateLimitError",
    "UnexpectedResponseError",
    "UnsupportedFeatureError",
    "UnsupportedProviderError",
    "WaitTimeoutError",
    "error_for_status",
]


class ProviderError(Exception):
    """Base class of every ``gpu_providers`` error.

    Attributes:
        message: What happened (never contains an API key).
        provider: Provider name (``lambda``, ``paperspace``, ``runpod``).
        status_code: HTTP status, when there was one.
        code: The provider's documented error code (Lambda ``code``, Paperspace ``code``,
            RunPod GraphQL ``extensions.code``), when it sent one.
        retry_after: Seconds the provider asked us to wait.
        maybe_submitted: A launch may have reached the provider although we saw an error:
            list instances by name before launching again. Never retryable.
        instance_id: The instance this error is about, when known (for a launch that failed
            after the instance was created: the instance that now runs and bills).
    """

    retryable: bool = False

    def __init__(
        self,
        message: str,
        *,
        provider: str | None = None,
        status_code: int | None = None,
        code: str | None = None,
        retry_after: float | None = None,
        maybe_submitted: bool = False,
        body: Any = None,
        instance_id: str | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.provider = provider
        self.status_code = status_code
        self.code = code
        self.retry_after = retry_after
        self.maybe_submitted = maybe_submitted
        self.body = body
        self.instance_id = instance_id

    def __str__(self) -> str:
        prefix = f"[{self.provider}] " if self.provider else ""
        code = f" ({self.code})" if self.code else ""
        return f"{prefix}{self.message}{code}"

    def __repr__(self) -> str:
        parts = [repr(self.message)]
        for name in ("provider", "status_code", "code", "instance_id"):
            value = getattr(self, name)
            if value is not None:
                parts.append(f"{name}={value!r}")
        return f"{type(self).__name__}({', '.join(parts)})"

    @property
    def is_retryable(self) -> bool:
        """True when the same call may succeed later (never for a maybe-submitted launch)."""
        return self.retryable and not self.maybe_submitted


class AuthenticationError(ProviderError):
    """The API key is missing, invalid, expired, or the account is inactive."""


class MissingCredentialsError(AuthenticationError):
    """No API key was found in the argument, the environment, or the vendor's config file."""


class RateLimitError(ProviderError):
    """The provider rate-limited us (HTTP 429)."""

    retryable = True


class InstanceNotFoundError(ProviderError):
    """The instance does not exist (or no longer exists), on the provider's own proof.

    A bare 404 without the provider's documented not-found answer (a wrong ``base_url``, a
    proxy's page) is an ``UnexpectedResponseError`` instead: it proves nothing about the
    instance.
    """


class InstanceNotReadyError(ProviderError):
    """``wait_until_ready``: the instance reached a state it will not leave by itself
    (terminated, failed, preempted, stopped); ``status`` is its last status."""

    def __init__(self, message: str, *, status: Any = None, **kwargs: Any) -> None:
        super().__init__(message, **kwargs)
        self.status = status


class CapacityError(ProviderError):
    """No capacity for the requested GPU type/count/region right now; try elsewhere or later."""


class QuotaExceededError(ProviderError):
    """An account quota or limit was reached."""


class BillingError(QuotaExceededError):
    """Billing problem (invalid billing address, no funds)."""


class InvalidRequestError(ProviderError, ValueError):
    """The request was invalid (rejected locally before sending, or by the provider)."""


class ProviderServerError(ProviderError):
    """The provider failed (HTTP 5xx)."""

    retryable = True


class ProviderConnectionError(ProviderError):
    """The provider could not be reached, or the connection broke."""

    retryable = True


class ProviderTimeoutError(ProviderConnectionError, TimeoutError):
    """The provider took longer than the timeout."""


class WaitTimeoutError(ProviderError, TimeoutError):
    """Your wait's deadline passed; the instance still exists. ``status`` is the last one seen."""

    def __init__(self, message: str, *, status: Any = None, **kwargs: Any) -> None:
        super().__init__(message, **kwargs)
        self.status = status


class UnexpectedResponseError(ProviderError):
    """The provider's answer does not match its documented schema (truncated, malformed)."""


class CircuitOpenError(ProviderError):
    """Calls fail fast: the provider failed repeatedly; ``retry_after`` says when we try again."""


class UnsupportedProviderError(ProviderError, ValueError):
    """No provider of that name is registered."""


class UnsupportedFeatureError(ProviderError, NotImplementedError):
    """The provider cannot do that (see ``supports_feature``)."""


class MissingDependencyError(ProviderError, ImportError):
    """The provider needs an optional dependency that is not installed.

    Attributes:
        extra: The ``skypilot-sdk`` extra that installs it (``runpod`` for
            ``pip install 'skypilot-sdk[runpod]'``), or ``None`` when no extra does.
        name: The module that is missing (as on ``ImportError``).
    """

    def __init__(
        self,
        message: str,
        *,
        extra: str | None = None,
        module: str | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(message, **kwargs)
        self.extra = extra
        self.name = module


def error_for_status(
    status_code: int, message: str, *, code: str | None = None, **kwargs: Any
) -> ProviderError:
    """The error class for an HTTP status when the provider gave no more specific code."""
    cls: type[ProviderError]
    if status_code == 401 or status_code == 403:
        cls = AuthenticationError
    elif status_code == 404:
        # Only a provider's documented not-found answer proves an instance is gone; a bare
        # 404 may be a wrong base URL or a proxy, and must never read as "already gone".
        return UnexpectedResponseError(
            f"{message} (no documented not-found answer: check base_url and proxies)",
            status_code=status_code,
            code=code,
            **kwargs,
        )
    elif status_code == 429:
        cls = RateLimitError
    elif status_code >= 500:
        cls = ProviderServerError
    elif 400 <= status_code < 500:
        cls = InvalidRequestError
    else:
        cls = ProviderError
    return cls(message, status_code=status_code, code=code, **kwargs)
