"""The action DAGs: one DAG per lifecycle operation on Entra ID users and Microsoft Teams (msteams_create_user,
msteams_disable_user, msteams_offboard_user, ...), each planned, approved by a second person, applied once, verified
and audited. See :mod:`teamsops_airflow.actions_dag` for the flow and its configuration.

Not possible with app-only access, so no DAG here offers it: changing a user's password (reset it in the Entra admin
center) and sending messages as a signed-in person (these DAGs send as the bot).
"""

from __future__ import annotations

from teamsops_airflow.actions_dag import build_action_dags

# Module-level names are how the DAG processor finds DAGs; a task process builds only its own DAG.
globals().update(build_action_dags())
