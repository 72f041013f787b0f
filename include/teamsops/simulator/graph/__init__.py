"""Microsoft Graph v1.0 routes of the simulator, split by resource (users, groups, teams, directory, delta).

``GraphApi(directory).handle(req, ctx)`` is the single entry point (re-exported by ``teamsops.simulator.graph_api``).
"""

from __future__ import annotations

from teamsops.simulator.graph.api import GraphApi

__all__ = ["GraphApi"]
