"""Progress lines for task logs: per table, pages, rows, requests, 429s, request rate and an ETA.

A line is logged at INFO at most every ``interval`` seconds while a table is being read, and once at the end. The
ETA comes from the work done so far against the known total (parents of a fan-out) or an estimate (the row count
of the previous run for a delta round); without either, no ETA is shown.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Any

__all__ = ["Progress"]

log = logging.getLogger(__name__)


class Progress:
    """Thread-safe counters of one table (or shard) and their periodic log line.

    :param label: ``"users"`` or ``"team_members[2/4]"``.
    :param stats: the client's :class:`~teamsops.graph.client.RequestStats` (requests and 429s are measured as the
        difference from the moment the progress started).
    :param total: units of work expected (parents of a fan-out, or estimated rows); None when unknown.
    :param unit: what ``total`` counts (``"teams"``, ``"users"``, ``"rows"``).
    """

    def __init__(self, label: str, stats: Any, *, total: int | None = None, unit: str = "rows",
                 interval: float = 5.0) -> None:
        self.label, self.stats, self.total, self.unit, self.interval = label, stats, total, unit, interval
        self._lock = threading.Lock()
        self._base = stats.snapshot()
        self.started = time.monotonic()
        self._last_log = self.started
        self.pages = 0
        self.rows = 0
        self.done = 0

    def add(self, *, pages: int = 0, rows: int = 0, done: int = 0) -> None:
        with self._lock:
            self.pages += pages
            self.rows += rows
            self.done += done
            now = time.monotonic()
            due = now - self._last_log >= self.interval
            if due:
                self._last_log = now
        if due:
            log.info("%s", self.line())

    def counters(self) -> dict[str, int]:
        """Requests sent (retries included) and 429s received since the start."""
        now = self.stats.snapshot()
        return {"requests": now["sent"] - self._base["sent"], "throttled": now["throttled"] - self._base["throttled"]}

    def seconds(self) -> float:
        return time.monotonic() - self.started

    def line(self, final: bool = False) -> str:
        counts = self.counters()
        elapsed = max(self.seconds(), 1e-6)
        text = (f"{self.label}: {self.pages:,} pages, {self.rows:,} rows, {counts['requests']:,} requests "
                f"({counts['throttled']:,} answered 429), {counts['requests'] / elapsed:.1f} req/s, "
                f"{elapsed:.1f} s")
        progress = self.done if self.unit != "rows" else self.rows
        if final:
            return text + " - done"
        if self.total:
            share = min(progress / self.total, 1.0)
            text += f", {progress:,} of {'~' if self.unit == 'rows' else ''}{self.total:,} {self.unit}"
            if 0 < share < 1:
                text += f" ({share:.0%}), ETA {elapsed * (1 - share) / share:.0f} s"
        return text

    def finish(self) -> None:
        log.info("%s", self.line(final=True))
