"""Fixtures for the action tests: a fresh small simulated tenant per test (actions write to it), Graph and bot
clients built from its connection, the write journal as ground truth, and a picker that finds users and teams with
the properties a scenario needs (read from the simulator's state: that is arrangement, not assertion)."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from teamsops.actions import Settle
from teamsops.graph import BotClient, GraphClient, GraphSettings, RateLimiter
from teamsops.simulator.generator import ROLE_IDS, TenantSpec
from teamsops.simulator.testing import RunningSimulator, run_simulator

FAST = Settle(attempts=2, delay=0.0)
Scenario = tuple[dict[str, Any], list[tuple[str, str]], int]  # conf, expected Graph writes, expected bot messages


def settings_for(sim: RunningSimulator, **overrides: Any) -> GraphSettings:
    conn = sim.connection(**overrides)
    return GraphSettings.from_mapping({"client_id": conn["login"], "client_secret": conn["password"],
                                       **conn["extra"]})


@pytest.fixture
def sim() -> Iterator[RunningSimulator]:
    """A fresh tenant for each test (60 users, 8 teams)."""
    with run_simulator(spec=TenantSpec(users=60, teams=8, seed=5)) as running:
        yield running


@pytest.fixture
def client(sim: RunningSimulator) -> Iterator[GraphClient]:
    with GraphClient(settings_for(sim), rate_limiter=RateLimiter.unlimited(), jitter=lambda d: 0.0,
                     sleep=lambda s: None) as graph:
        yield graph


@pytest.fixture
def ro_client(sim: RunningSimulator) -> Iterator[GraphClient]:
    with GraphClient(settings_for(sim, access="read"), rate_limiter=RateLimiter.unlimited()) as graph:
        yield graph


@pytest.fixture
def bot(sim: RunningSimulator) -> Iterator[BotClient]:
    with BotClient(settings_for(sim), sleep=lambda s: None) as client:
        yield client


class Journal:
    """The simulator's write journal since a mark: Graph writes (``/v1.0/...``), connector posts (``/v3/...``) and
    the bot messages Teams delivered."""

    def __init__(self, sim: RunningSimulator) -> None:
        self.sim = sim
        self.mark()

    def mark(self) -> None:
        self.start = len(self.sim.journal())
        self.messages_start = len(self.sim.tenant.bot_messages)

    def entries(self) -> list[dict[str, Any]]:
        return self.sim.journal(self.start)

    def graph(self) -> list[tuple[str, str]]:
        return [(e["method"], e["path"]) for e in self.entries() if e["path"].startswith("/v1.0/")]

    def graph_request_ids(self) -> list[str]:
        return [e["request_id"] for e in self.entries() if e["path"].startswith("/v1.0/")]

    def graph_matches(self, expected: list[tuple[str, str]]) -> bool:
        """The Graph writes since the mark are exactly ``expected`` ((method, path regex)), once each, in order."""
        return match_writes(self.graph(), expected)

    def bot(self) -> list[tuple[str, str]]:
        return [(e["method"], e["path"]) for e in self.entries() if not e["path"].startswith("/v1.0/")]

    def messages(self) -> list[dict[str, Any]]:
        """Messages delivered by the connector since the mark."""
        return self.sim.tenant.bot_messages[self.messages_start:]


@pytest.fixture
def journal(sim: RunningSimulator) -> Journal:
    return Journal(sim)


@pytest.fixture
def settle() -> Settle:
    """Re-read once, without waiting (the simulator is consistent at once)."""
    return FAST


def match_writes(actual: list[tuple[str, str]], expected: list[tuple[str, str]]) -> bool:
    """Every expected (method, path regex) exactly once, in order, and nothing else."""
    return len(actual) == len(expected) and all(
        m == em and re.fullmatch(ep, p) for (m, p), (em, ep) in zip(actual, expected, strict=True))


class Picker:
    """Find users and teams in the simulated tenant by what a scenario needs."""

    def __init__(self, sim: RunningSimulator) -> None:
        self.sim = sim
        self.t = sim.tenant
        bot_app = self.t.apps[self.t.generated["bot_app_id"]]
        self.bot_teams_app = bot_app.teams_app_id

    def upn(self, user_id: str) -> str:
        return self.t.users[user_id]["userPrincipalName"]

    def has_bot(self, user_id: str) -> bool:
        return self.bot_teams_app in self.t.user_apps.get(user_id, {})

    def team_has_bot(self, team_id: str) -> bool:
        return self.bot_teams_app in self.t.team_apps.get(team_id, {})

    def is_admin(self, user_id: str) -> bool:
        return bool(self.t.role_ids_of(user_id))

    def owns_alone(self, user_id: str) -> list[str]:
        return [tid for tid in self.t.teams if list(self.t.group_owners.get(tid, {})) == [user_id]]

    def users(self, *, exclude: tuple[str, ...] = (), **want: Any) -> list[str]:
        """Enabled members without admin roles matching ``want`` (manager, bot, teams>=n, sole_owner, reports)."""
        found = []
        for uid, user in self.t.users.items():
            if uid in exclude or user.get("userType") != "Member" or not user.get("accountEnabled"):
                continue
            if self.is_admin(uid) or user["userPrincipalName"].startswith("breakglass"):
                continue
            if "manager" in want and (uid in self.t.manager_of) is not want["manager"]:
                continue
            if "manager_bot" in want and (uid not in self.t.manager_of or
                                          self.has_bot(self.t.manager_of[uid]) is not want["manager_bot"]):
                continue
            if "bot" in want and self.has_bot(uid) is not want["bot"]:
                continue
            if "teams" in want and len(self.t.joined_team_ids(uid)) < want["teams"]:
                continue
            if "sole_owner" in want and bool(self.owns_alone(uid)) is not want["sole_owner"]:
                continue
            if "owner" in want and any(uid in self.t.group_owners.get(tid, {}) for tid in self.t.teams) \
                    is not want["owner"]:
                continue
            found.append(uid)
        if not found:
            raise LookupError(f"no user matches {want}")
        return found

    def user(self, **want: Any) -> str:
        return self.users(**want)[0]

    def guest(self) -> str:
        return next(uid for uid, u in self.t.users.items() if u.get("userType") == "Guest" and not self.is_admin(uid))

    def admin(self, role: str) -> str:
        role_id = ROLE_IDS[role]
        return next(a["principalId"] for a in self.t.role_assignments.values()
                    if a["roleDefinitionId"] == role_id and a["principalId"] in self.t.users
                    and not self.t.users[a["principalId"]]["userPrincipalName"].startswith("breakglass"))

    def break_glass(self) -> str:
        return next(uid for uid, u in self.t.users.items() if u["userPrincipalName"].startswith("breakglass"))

    def team(self, *, bot: bool | None = None, member: str | None = None, not_member: str | None = None) -> str:
        for tid in self.t.teams:
            if bot is not None and self.team_has_bot(tid) is not bot:
                continue
            if member and member not in self.t.group_members.get(tid, {}):
                continue
            if not_member and not_member in self.t.group_members.get(tid, {}):
                continue
            if self.t.teams[tid].get("isArchived"):
                continue
            return tid
        raise LookupError("no team matches")

    def team_name(self, team_id: str) -> str:
        return self.t.teams[team_id]["displayName"]

    def deleted_user(self) -> str:
        return next(iter(self.t.deleted_users))


@pytest.fixture
def pick(sim: RunningSimulator) -> Picker:
    return Picker(sim)


# ------------------------------------------------------------------------------------------------ one scenario per DAG
GUID = "[0-9a-f-]{36}"
MEMBERSHIP = "[A-Za-z0-9+/=]+"
DESTRUCTIVE = {"reason": "left the company", "ticket": "HR-1042"}


def _create_user(pick: Picker) -> Scenario:
    manager = pick.user(bot=True)
    domain = pick.t.verified_domains[0]
    conf = {"user_principal_name": f"new.hire@{domain}", "display_name": "New Hire", "mail_nickname": "new.hire",
            "department": "Sales", "job_title": "Account Executive", "usage_location": "us",
            "manager": pick.upn(manager)}
    return conf, [("POST", "/v1.0/users"), ("PUT", f"/v1.0/users/new.hire@{domain}/manager/\\$ref")], 1


def _update_user(pick: Picker) -> Scenario:
    uid = pick.user()
    conf = {"user": pick.upn(uid), "properties": {"jobTitle": "Principal Engineer", "officeLocation": None,
                                                  "businessPhones": ["+1 425 555 0100"]}}
    return conf, [("PATCH", f"/v1.0/users/{uid}")], 0


def _delete_user(pick: Picker) -> Scenario:
    uid = pick.user(sole_owner=False)
    return {"user": uid, **DESTRUCTIVE}, [("DELETE", f"/v1.0/users/{uid}")], 0


def _enable_user(pick: Picker) -> Scenario:
    uid = next(u for u, user in pick.t.users.items() if user.get("userType") == "Member"
               and user.get("accountEnabled") is False and not pick.is_admin(u))
    return {"user": pick.upn(uid)}, [("PATCH", f"/v1.0/users/{uid}")], 0


def _disable_user(pick: Picker) -> Scenario:
    a, b = pick.users()[:2]
    return ({"users": [pick.upn(a), b], **DESTRUCTIVE},
            [("PATCH", f"/v1.0/users/{a}"), ("PATCH", f"/v1.0/users/{b}")], 0)


def _assign_manager(pick: Picker) -> Scenario:
    leaf = next(u for u in pick.users(manager=True) if not pick.t.reports_of.get(u))
    manager = next(u for u in pick.users() if u not in (leaf, pick.t.manager_of[leaf]))
    return {"user": pick.upn(leaf), "manager": pick.upn(manager)}, [("PUT", f"/v1.0/users/{leaf}/manager/\\$ref")], 0


def _remove_manager(pick: Picker) -> Scenario:
    uid = pick.user(manager=True)
    return {"user": pick.upn(uid), **DESTRUCTIVE}, [("DELETE", f"/v1.0/users/{uid}/manager/\\$ref")], 0


def _change_user_type(pick: Picker) -> Scenario:
    uid = pick.user(owner=False)
    return {"user": uid, "user_type": "Guest", **DESTRUCTIVE}, [("PATCH", f"/v1.0/users/{uid}")], 0


def _revoke_sessions(pick: Picker) -> Scenario:
    uid = pick.user()
    return {"user": pick.upn(uid), **DESTRUCTIVE}, [("POST", f"/v1.0/users/{uid}/revokeSignInSessions")], 0


def _add_to_team(pick: Picker) -> Scenario:
    uid = pick.user()
    team = pick.team(not_member=uid)
    return ({"user": pick.upn(uid), "team": pick.team_name(team), "role": "owner"},
            [("POST", f"/v1.0/teams/{team}/members")], 0)


def _remove_from_team(pick: Picker) -> Scenario:
    uid = pick.user(teams=1, owner=False)
    team = pick.t.joined_team_ids(uid)[0]
    return ({"user": pick.upn(uid), "team": team, **DESTRUCTIVE},
            [("DELETE", f"/v1.0/teams/{team}/members/{MEMBERSHIP}")], 0)


def _remove_from_all_teams(pick: Picker) -> Scenario:
    uid = pick.user(teams=2, sole_owner=False)
    teams = pick.t.joined_team_ids(uid)
    return ({"users": [pick.upn(uid)], **DESTRUCTIVE},
            [("DELETE", f"/v1.0/teams/{t}/members/{MEMBERSHIP}") for t in teams], 0)


def _bot_message_users(pick: Picker) -> Scenario:
    a, b = pick.users(bot=True)[:2]
    return {"users": [pick.upn(a), b], "message": "Maintenance on Saturday 22:00-23:00 | VPN down."}, [], 2


def _bot_message_channel(pick: Picker) -> Scenario:
    team = pick.team(bot=True)
    return {"team": pick.team_name(team), "channel": "General", "message": "Welcome to the team!"}, [], 1


def _offboard_user(pick: Picker) -> Scenario:
    uid = pick.user(manager_bot=True, teams=2, sole_owner=False)
    teams = pick.t.joined_team_ids(uid)
    expected = [("POST", f"/v1.0/users/{uid}/revokeSignInSessions"), ("PATCH", f"/v1.0/users/{uid}"),
                *[("DELETE", f"/v1.0/teams/{t}/members/{MEMBERSHIP}") for t in teams],
                ("DELETE", f"/v1.0/users/{uid}/manager/\\$ref")]
    return {"user": pick.upn(uid), **DESTRUCTIVE}, expected, 1


def _restore_user(pick: Picker) -> Scenario:
    uid = pick.deleted_user()
    return {"user": uid}, [("POST", f"/v1.0/directory/deletedItems/{uid}/restore")], 0


SCENARIOS: dict[str, Callable[[Picker], Scenario]] = {
    "msteams_create_user": _create_user,
    "msteams_update_user": _update_user,
    "msteams_delete_user": _delete_user,
    "msteams_enable_user": _enable_user,
    "msteams_disable_user": _disable_user,
    "msteams_assign_manager": _assign_manager,
    "msteams_remove_manager": _remove_manager,
    "msteams_change_user_type": _change_user_type,
    "msteams_revoke_sessions": _revoke_sessions,
    "msteams_add_to_team": _add_to_team,
    "msteams_remove_from_team": _remove_from_team,
    "msteams_remove_from_all_teams": _remove_from_all_teams,
    "msteams_bot_message_users": _bot_message_users,
    "msteams_bot_message_channel": _bot_message_channel,
    "msteams_offboard_user": _offboard_user,
    "msteams_restore_user": _restore_user,
}


@pytest.fixture
def scenarios() -> dict[str, Callable[[Picker], Scenario]]:
    """dag id -> function(picker) returning (conf, expected Graph writes as (method, path regex), bot messages)."""
    return SCENARIOS
