"""The retry policy of the Graph client: which failures are retried, how long to wait, when to give up.

One policy covers 429 / 503 / 504 and connection errors (graph-facts §5.2; kiota's ``DEFAULT_RETRY_STATUS_CODES``):

* the server's ``Retry-After`` wins (seconds, possibly fractional like ``2.128``, or an HTTP-date);
* otherwise exponential backoff ``base * 2**(n-1)`` capped at ``max_delay``, with jitter so that many workers
  throttled together do not retry in lockstep (the jitter function is injectable to make tests deterministic);
* the budget is both a number of attempts and a total waiting time: a wait that would exceed the remaining time is
  not started, the typed error is raised at once (the caller - e.g. Airflow task retries - takes over).

Which requests may be re-sent after a connection failure is decided by :func:`is_idempotent`: a write is only re-sent
when it is idempotent by construction. A 429/503/504 response proves Graph did not apply the request, so those are
retried for every method.
"""

from __future__ import annotations

import random
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from email.utils import parsedate_to_datetime

__all__ = [
    "RETRY_STATUSES",
    "RetryPolicy",
    "RetryState",
    "default_jitter",
    "is_idempotent",
    "parse_retry_after",
]

RETRY_STATUSES = frozenset({429, 503, 504})

# POST actions that are idempotent by construction: applying them twice leaves the same state.
_IDEMPOTENT_POSTS = (
    re.compile(r"/users/[^/]+/revokeSignInSessions$", re.IGNORECASE),
    # read-only actions that happen to use POST
    re.compile(r"/(directoryObjects/)?getByIds$", re.IGNORECASE),
    re.compile(r"/(getMemberGroups|getMemberObjects|checkMemberGroups|checkMemberObjects)$", re.IGNORECASE),
)


def is_idempotent(method: str, path: str) -> bool:
    """True when the request may be re-sent after a connection failure without risking a double apply.

    GET/HEAD/PUT/PATCH/DELETE are idempotent in Graph; POST only for the actions listed in ``_IDEMPOTENT_POSTS``
    (``revokeSignInSessions`` just moves ``signInSessionsValidFromDateTime`` to "now"). A POST that creates something
    (a user, a team membership) is NOT: cut mid-flight, its outcome is unknown and must be verified first.
    """
    method = method.upper()
    if method in ("GET", "HEAD", "OPTIONS", "PUT", "PATCH", "DELETE"):
        return True
    bare = path.split("?", 1)[0].rstrip("/")
    return method == "POST" and any(pattern.search(bare) for pattern in _IDEMPOTENT_POSTS)


def parse_retry_after(value: str | None, *, now: float | None = None) -> float | None:
    """``Retry-After`` in seconds: float seconds (``"2.128"``) or an HTTP-date; None when absent or unreadable."""
    if value is None:
        return None
    text = value.strip()
    try:
        return max(0.0, float(text))
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError):
        return None
    if when is None:
        return None
    return max(0.0, when.timestamp() - (time.time() if now is None else now))


def default_jitter(delay: float) -> float:
    """Equal jitter: a random delay in ``[delay/2, delay]`` (never below half the backoff)."""
    return random.uniform(delay / 2, delay)  # noqa: S311 - not for security


@dataclass(frozen=True)
class RetryPolicy:
    """How many times and how long to retry.

    :param max_attempts: total sends allowed for one request (first attempt included).
    :param max_retry_wait: total seconds of waiting allowed between attempts.
    :param base_delay: first backoff step when the server gives no ``Retry-After``.
    :param max_delay: cap of one backoff step.
    :param jitter: maps a computed backoff onto the delay actually used (injectable for tests).
    """

    max_attempts: int = 8
    max_retry_wait: float = 300.0
    base_delay: float = 1.0
    max_delay: float = 60.0
    jitter: Callable[[float], float] = field(default=default_jitter, compare=False)

    def new_state(self) -> RetryState:
        """A fresh attempt counter for one request."""
        return RetryState(self)


@dataclass
class RetryState:
    """Attempts and waiting time spent on one request."""

    policy: RetryPolicy
    attempts: int = 0
    total_wait: float = 0.0
    backoffs: int = 0

    def next_delay(self, retry_after: float | None) -> float | None:
        """The wait before the next attempt, or None when the budget does not allow one more attempt."""
        if self.attempts >= self.policy.max_attempts:
            return None
        if retry_after is not None:
            delay = retry_after
        else:
            self.backoffs += 1
            step = min(self.policy.max_delay, self.policy.base_delay * 2 ** (self.backoffs - 1))
            delay = max(0.0, self.policy.jitter(step))
        if self.total_wait + delay > self.policy.max_retry_wait:
            return None
        return delay

    def waited(self, delay: float) -> None:
        """Record a wait that was actually slept."""
        self.total_wait += delay
