"""Fault injection: latency, random transient failures, and a deterministic fault script for tests.

* **Latency**: every non-admin request takes ``latency_ms`` ± ``jitter_ms`` (uniform, from a seeded RNG) longer,
  half of it before it is handled (when it is counted and throttled) and half before its answer is sent, so client
  concurrency and timeouts can be exercised realistically.
* **Random faults**: with probability ``fault_rate`` a request fails with 503 or 504 (half each) *before* it is
  handled, so nothing is applied.
* **Script**: ``inject(kind, times, path, method, retry_after)`` queues a rule; the next ``times`` requests whose
  path matches the regex (``re.search`` on the decoded path, e.g. ``/v1.0/users/...``) and method get the fault.
  Rules are consumed in the order they were added. Kinds:

  - ``"429"``: a throttling response with ``Retry-After`` (nothing applied).
  - ``"503"`` / ``"504"``: ``serviceNotAvailable`` / ``UnknownError`` with ``Retry-After`` (nothing applied).
  - ``"reset_before"``: the connection is reset (TCP RST) before the request is handled: nothing applied.
  - ``"reset_after"``: the request is applied, then the connection is reset instead of answering: the write
    happened exactly once and a retrying client must see the real state.

This module only decides *which* fault applies; the simulator renders the response and the server performs resets.
"""

from __future__ import annotations

import random
import re
import threading
from dataclasses import dataclass, field

FAULT_KINDS = ("429", "503", "504", "reset_before", "reset_after")
RESPONSE_KINDS = frozenset({"429", "503", "504"})


class ConnectionReset(Exception):  # noqa: N818 - it is a signal to the server, not an error
    """Raised by the simulator to make the server reset the connection (TCP RST) instead of answering."""


@dataclass
class FaultRule:
    """One scripted fault; ``remaining`` counts down as matching requests consume it."""

    kind: str
    remaining: int
    path: str = ".*"
    method: str | None = None
    retry_after: float = 1.0
    _pattern: re.Pattern[str] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        if self.kind not in FAULT_KINDS:
            raise ValueError(f"unknown fault kind {self.kind!r}; use one of {', '.join(FAULT_KINDS)}")
        if self.remaining < 1:
            raise ValueError("times must be at least 1")
        if self.retry_after < 0:
            raise ValueError("retry_after must not be negative")
        self.method = self.method.upper() if self.method else None
        self._pattern = re.compile(self.path)

    def matches(self, method: str, path: str) -> bool:
        return (self.method is None or self.method == method.upper()) and bool(self._pattern.search(path))

    def describe(self) -> dict:
        return {"kind": self.kind, "remaining": self.remaining, "path": self.path, "method": self.method,
                "retry_after": self.retry_after}  # fmt: skip


class FaultInjector:
    """Thread-safe holder of the latency settings, the random fault rate and the fault script."""

    def __init__(self, *, latency_ms: float = 0, jitter_ms: float = 0, fault_rate: float = 0.0, seed: int = 0) -> None:
        self._lock = threading.Lock()
        self._rng = random.Random(seed)
        self._rules: list[FaultRule] = []
        self.latency_ms = 0.0
        self.jitter_ms = 0.0
        self.fault_rate = 0.0
        self.configure(latency_ms=latency_ms, jitter_ms=jitter_ms, fault_rate=fault_rate)

    def configure(
        self, *, latency_ms: float | None = None, jitter_ms: float | None = None, fault_rate: float | None = None
    ) -> None:
        """Change latency / jitter (milliseconds) and the random fault rate (0..1); ``None`` keeps a value."""
        with self._lock:
            if latency_ms is not None:
                self.latency_ms = _non_negative("latency_ms", latency_ms)
            if jitter_ms is not None:
                self.jitter_ms = _non_negative("jitter_ms", jitter_ms)
            if fault_rate is not None:
                rate = float(fault_rate)
                if not 0.0 <= rate <= 1.0:
                    raise ValueError("fault_rate must be between 0 and 1")
                self.fault_rate = rate

    def inject(
        self, kind: str, times: int = 1, path: str = ".*", method: str | None = None, retry_after: float = 1.0
    ) -> FaultRule:
        """Queue a scripted fault (see the module docstring)."""
        rule = FaultRule(str(kind), int(times), path, method, float(retry_after))
        with self._lock:
            self._rules.append(rule)
        return rule

    def clear(self) -> None:
        with self._lock:
            self._rules.clear()

    def pending(self) -> list[dict]:
        with self._lock:
            return [rule.describe() for rule in self._rules]

    def take(self, method: str, path: str, kinds: frozenset[str] | None = None) -> FaultRule | None:
        """Consume one use of the first rule matching this request (optionally only rules of ``kinds``)."""
        with self._lock:
            for rule in self._rules:
                if (kinds is None or rule.kind in kinds) and rule.matches(method, path):
                    rule.remaining -= 1
                    if rule.remaining == 0:
                        self._rules.remove(rule)
                    return rule
        return None

    def random_fault(self) -> str | None:
        """``"503"`` or ``"504"`` with probability ``fault_rate``, else None."""
        with self._lock:
            if self.fault_rate <= 0 or self._rng.random() >= self.fault_rate:
                return None
            return "503" if self._rng.random() < 0.5 else "504"

    def delay_seconds(self) -> float:
        """This request's injected latency in seconds (never negative)."""
        with self._lock:
            if self.latency_ms <= 0 and self.jitter_ms <= 0:
                return 0.0
            jitter = self._rng.uniform(-self.jitter_ms, self.jitter_ms) if self.jitter_ms else 0.0
            return max(0.0, self.latency_ms + jitter) / 1000.0


def _non_negative(name: str, value: float) -> float:
    number = float(value)
    if number < 0:
        raise ValueError(f"{name} must not be negative")
    return number
