"""One retry policy for every download (HTTP files, FTP, NVD pages): transient failures are tried again with
exponential backoff and jitter, honouring a server's `Retry-After`; permanent ones are raised at once.

Built on tenacity. A transfer that fails midway keeps its bytes (the callers resume from them), so a retry costs
only what was not yet received.
"""

from __future__ import annotations

import email.utils
import logging
import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

import tenacity

from etl.errors import FetchError

logger = logging.getLogger(__name__)

T = TypeVar("T")

# HTTP statuses worth another try: timeouts, throttling, server errors (NVD also throttles with 403: its client
# adds it).
RETRY_STATUS = frozenset({408, 425, 429, 500, 502, 503, 504})
MAX_RETRY_AFTER = 300.0  # a longer Retry-After is capped: the run would rather give up and be run again


class Transient(Exception):
    """A failure worth another try: throttling, a server error, a dropped, short or mis-ranged transfer."""

    def __init__(self, message: str, retry_after: str | None = None):
        super().__init__(message)
        self.retry_after = retry_after


def retry_after_seconds(value: str | None) -> float | None:
    """A `Retry-After` header in seconds (`120`) or as an HTTP date; None when absent or unreadable."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return min(float(value), MAX_RETRY_AFTER)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return min(max(0.0, when.timestamp() - time.time()), MAX_RETRY_AFTER)


def reason(e: BaseException) -> str:
    """One line saying what went wrong, the exception's type where its text alone would not say."""
    text = str(e).splitlines()[0] if str(e) else ""
    if isinstance(e, Transient):
        return text
    return f"{type(e).__name__}: {text}" if text else type(e).__name__


@dataclass(frozen=True)
class Policy:
    """How often and how long to try again: `tries` in all, waits doubling from `base` seconds up to `cap`."""

    tries: int = 5
    base: float = 1.0
    cap: float = 60.0

    def delay(self, attempt: int, retry_after: str | None = None) -> float:
        """Seconds to wait after the attempt-th failure (0-based); the server's Retry-After wins when given."""
        given = retry_after_seconds(retry_after)
        if given is not None:
            return given
        return min(self.cap, self.base * 2**attempt) * (0.5 + random.random() / 2)

    def call(
        self,
        op: Callable[[], T],
        *,
        what: str,
        file: str,
        hint: str,
        transient: tuple[type[BaseException], ...] = (),
        before: Callable[[], None] | None = None,
    ) -> T:
        """op() until it returns, raises a permanent error (at once), or has failed `tries` times with a transient
        one (Transient or one of `transient`), which becomes a FetchError naming `file` and the last reason.
        `what` names the operation in the log's retry lines; `before` runs before each attempt (a rate limiter)."""
        kinds = (Transient, *transient)

        def wait(state: tenacity.RetryCallState) -> float:
            e = state.outcome.exception()
            return self.delay(state.attempt_number - 1, getattr(e, "retry_after", None))

        def log(state: tenacity.RetryCallState) -> None:
            e = state.outcome.exception()
            logger.warning("%s: %s; retrying in %.1f s", what, reason(e), state.next_action.sleep)

        def attempt() -> T:
            if before:
                before()
            return op()

        try:
            return tenacity.Retrying(
                stop=tenacity.stop_after_attempt(self.tries),
                wait=wait,
                retry=tenacity.retry_if_exception_type(kinds),
                before_sleep=log,
                reraise=True,
            )(attempt)
        except kinds as e:
            raise FetchError(f"gave up after {self.tries} tries: {reason(e)}", file=file, hint=hint) from None
