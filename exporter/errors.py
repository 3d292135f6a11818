"""Define the project's own exceptions; third-party errors are translated into these."""

from __future__ import annotations

# Longer strings are not echoed in messages: a secret pasted into the wrong key must not be
# printed back. Every value the exporter expects there (durations, region ids, modes) is short.
MAX_SHOWN_LENGTH = 20


def shown(value: object) -> str:
    """Quote a value for an error message, unless it is a string too long to be safe to echo."""
    if isinstance(value, str) and len(value) > MAX_SHOWN_LENGTH:
        return f"a {len(value)}-character string"
    return repr(value)


class ExporterError(Exception):
    """Base of every error this project raises on purpose."""


class ConfigError(ExporterError):
    """Report every problem found in a configuration file at once."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = list(problems)
        super().__init__("invalid configuration:\n" + "\n".join(f"  - {p}" for p in problems))


class ApiError(ExporterError):
    """Describe a failed BCC API request; `code` is a bounded label value for metrics."""

    def __init__(
        self,
        code: str,
        message: str,
        *,
        status: int | None = None,
        request_id: str | None = None,
        retryable: bool = False,
        retry_after: float | None = None,
    ) -> None:
        self.code = code
        self.message = message
        self.status = status
        self.request_id = request_id
        self.retryable = retryable
        self.retry_after = retry_after
        details = [f"code={code}"]
        if status is not None:
            details.append(f"status={status}")
        if request_id:
            details.append(f"request_id={request_id}")
        super().__init__(f"{message} ({', '.join(details)})")


class PaginationError(ApiError):
    """Signal a listing that cannot be completed without silently dropping images."""
