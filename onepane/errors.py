"""The one exception root of Onepane.

Every error a user can cause carries a message that says what was wrong and what to do.
The CLI turns these into a one-line message and an exit code; the HTTP edges turn them
into status codes. Nothing in between catches them.
"""

from __future__ import annotations


class OnepaneError(Exception):
    """Root of every error Onepane raises on purpose."""

    exit_code = 1


class ConfigError(OnepaneError):
    """A setting, flag or file given to Onepane cannot be used."""

    exit_code = 2


class BadRequest(OnepaneError):
    """A client sent data that cannot be read at all (HTTP 400 / gRPC INVALID_ARGUMENT)."""


class PayloadTooLarge(OnepaneError):
    """A request body is over the size limit, before or after decompression (HTTP 413)."""


class UnsupportedMediaType(OnepaneError):
    """A request used a content type or encoding Onepane does not accept (HTTP 415)."""


class Overloaded(OnepaneError):
    """The write queue is full; the client should retry after `retry_after` seconds (HTTP 429)."""

    def __init__(self, message: str, retry_after: float = 1.0) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class Unavailable(OnepaneError):
    """The store cannot take writes right now, e.g. while shutting down (HTTP 503)."""


class NotFound(OnepaneError):
    """The thing asked for does not exist (HTTP 404)."""


class Ambiguous(OnepaneError):
    """A short id matches more than one thing; ``matches`` lists them (HTTP 409)."""

    def __init__(self, message: str, matches: list[dict[str, object]]) -> None:
        super().__init__(message)
        self.matches = matches


class ServerUnreachable(OnepaneError):
    """The Onepane server did not answer; a command that needs it cannot decide."""

    exit_code = 2


class StoreError(OnepaneError):
    """The DuckDB store could not be opened or written."""
