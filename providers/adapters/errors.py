"""What a failed provider call raises: `ProviderError`, with a subclass per way of failing."""

from __future__ import annotations

from typing import Any


class ProviderError(Exception):
    """A provider call failed. `message` is for admins (the provider's own text, shortened); the
    HTTP `status` and the provider's `request_id`, when known, help them act on it. Members get a
    short reason chosen by the pipeline, never this text. `retryable` drives retries."""

    def __init__(
        self,
        message: str,
        *,
        retryable: bool,
        code: str | int | None = None,
        retry_after: float | None = None,
        status: int | None = None,
        request_id: str = "",
    ) -> None:
        super().__init__(message)
        self.message = message
        self.retryable = retryable
        self.code = None if code is None else str(code)
        self.retry_after = retry_after
        self.status = status
        self.request_id = request_id


class PermanentError(ProviderError):
    """Retrying the same call will not help (bad key, no credits, invalid request)."""

    def __init__(self, message: str, **details: Any) -> None:
        super().__init__(message, retryable=False, **details)


class RetryableError(ProviderError):
    """Transient: network trouble, timeouts, rate limits, provider overload."""

    def __init__(self, message: str, **details: Any) -> None:
        super().__init__(message, retryable=True, **details)


class GenerationFailed(ProviderError):
    """The provider accepted the job but could not produce a result (kie code 501, state fail)."""

    def __init__(self, message: str, **details: Any) -> None:
        super().__init__(message, retryable=False, **details)


class InvalidOutput(ProviderError):
    """The call succeeded but the answer is unusable (wrong count, bad JSON, blocked, truncated).

    Retryable because asking again, or asking another provider, often works.
    """

    def __init__(self, message: str, **details: Any) -> None:
        super().__init__(message, retryable=True, **details)
