"""The simulator's Microsoft Graph v1.0 API (routes live in the ``teamsops.simulator.graph`` sub-package)."""

from __future__ import annotations

from teamsops.simulator.graph import GraphApi

__all__ = ["GraphApi"]
