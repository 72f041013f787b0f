"""Pure helpers of the Graph client: Retry-After parsing, idempotency, permissions, link guard, pacing maths.

These need no server: they are the decision tables the client applies on the wire (the wire itself is tested
against the simulator in the other modules).
"""

from __future__ import annotations

from email.utils import format_datetime
from datetime import datetime, timedelta, timezone

import pytest

from teamsops.graph import UnsafeNextLinkError, check_link, missing_permissions, required_permissions
from teamsops.graph.permissions import ACTION_PERMISSIONS, PERMISSION_PURPOSES, SYNC_PERMISSIONS, parse_teams_required
from teamsops.graph.ratelimit import DEFAULT_LIMITS, RateLimiter, classify
from teamsops.graph.retry import RetryPolicy, is_idempotent, parse_retry_after


# ------------------------------------------------------------------ retry
@pytest.mark.parametrize(("value", "expected"), [("2.128", 2.128), ("0", 0.0), ("7", 7.0), (None, None),
                                                 ("soon", None), ("-3", 0.0)])
def test_parse_retry_after_seconds(value, expected):
    assert parse_retry_after(value) == expected


def test_parse_retry_after_http_date():
    now = datetime(2025, 1, 1, 12, 0, 0, tzinfo=timezone.utc)
    value = format_datetime(now + timedelta(seconds=30), usegmt=True)
    assert parse_retry_after(value, now=now.timestamp()) == pytest.approx(30)


@pytest.mark.parametrize(("method", "path", "expected"), [
    ("GET", "/users", True), ("PATCH", "/users/x", True), ("PUT", "/users/x/manager/$ref", True),
    ("DELETE", "/teams/t/members/m", True), ("POST", "/users/x/revokeSignInSessions", True),
    ("POST", "/users", False), ("POST", "/teams/t/members", False), ("POST", "/directory/deletedItems/x/restore", False),
])
def test_idempotency(method, path, expected):
    assert is_idempotent(method, path) is expected


def test_backoff_budget():
    state = RetryPolicy(max_attempts=4, max_retry_wait=10, base_delay=1, jitter=lambda d: d).new_state()
    delays = []
    for _ in range(4):
        state.attempts += 1
        delay = state.next_delay(None)
        if delay is None:
            break
        delays.append(delay)
        state.waited(delay)
    assert delays == [1, 2, 4]  # the 4th attempt was the last allowed
    state = RetryPolicy(max_attempts=8, max_retry_wait=5).new_state()
    state.attempts = 1
    assert state.next_delay(6.0) is None  # a Retry-After beyond the budget is not waited at all


# ------------------------------------------------------------------ permissions
def test_missing_permissions_counts_broader_grants():
    assert missing_permissions(set(SYNC_PERMISSIONS), "read") == []
    assert missing_permissions(set(SYNC_PERMISSIONS), "read_write") == list(ACTION_PERMISSIONS)
    broad = {"Directory.Read.All", "TeamMember.ReadWrite.All", "TeamsAppInstallation.ReadWriteForUser.All",
             "User.ReadWrite.All"}
    # Directory.Read.All covers users, groups, members, organization, roles, channels (legacy); User.ReadWrite.All
    # also covers revokeSignInSessions.
    assert missing_permissions(broad, "read_write") == []
    assert missing_permissions({"User.Read.All"}, "read")[0] == "Group.Read.All"
    assert set(PERMISSION_PURPOSES) >= set(SYNC_PERMISSIONS + ACTION_PERMISSIONS)


def test_required_permissions_per_endpoint():
    assert required_permissions("GET", "/teams/abc/members?$top=5")[0] == "TeamMember.Read.All"
    assert required_permissions("DELETE", "/teams/abc/members/xyz") == ("TeamMember.ReadWrite.All",)
    assert required_permissions("GET", "/users?$select=id")[0] == "User.Read.All"
    assert required_permissions("POST", "/users/u/revokeSignInSessions")[0] == "User.RevokeSessions.All"
    assert required_permissions("GET", "/subscribedSkus")[0] == "Organization.Read.All"
    assert required_permissions("GET", "/roleManagement/directory/roleAssignments")[0] == "RoleManagement.Read.Directory"
    assert required_permissions("GET", "/groups/g/members")[0] == "GroupMember.Read.All"
    assert required_permissions("GET", "/users/u/teamwork/installedApps")[0] == "TeamsAppInstallation.ReadForUser.All"
    assert required_permissions("GET", "/teams/t/channels")[0] == "Channel.ReadBasic.All"
    assert required_permissions("GET", "/nothing/known") == ()


def test_parse_teams_403_message():
    message = ("Missing role permissions on the request. API requires one of 'TeamMember.Read.All, "
               "TeamMember.ReadWrite.All'. Roles on the request 'User.Read.All'.")
    assert parse_teams_required(message) == ("TeamMember.Read.All", "TeamMember.ReadWrite.All")
    assert parse_teams_required("Insufficient privileges to complete the operation.") == ()


# ------------------------------------------------------------------ link guard (CWE-918)
BASE = "https://graph.example.com"


@pytest.mark.parametrize("link", [
    "https://evil.example.com/v1.0/users?$skiptoken=x",
    "http://graph.example.com/v1.0/users",  # not https
    "https://graph.example.com:8443/v1.0/users",  # other port
    "https://graph.example.com@evil.example.com/v1.0/users",  # userinfo trick: the host is evil.example.com
    "https://graph.example.com.evil.example.com/v1.0/users",
    "//evil.example.com/v1.0/users",
    "ftp://graph.example.com/v1.0/users",
])
def test_check_link_refuses_other_origins(link):
    with pytest.raises(UnsafeNextLinkError) as info:
        check_link(link, BASE)
    assert "refusing" in str(info.value)


def test_check_link_accepts_the_graph_origin_and_respects_a_path_prefix():
    assert check_link("https://GRAPH.example.com:443/v1.0/users?$skiptoken=a", BASE).host == "graph.example.com"
    check_link("https://graph.example.com/prefix/v1.0/users", BASE + "/prefix")
    with pytest.raises(UnsafeNextLinkError):
        check_link("https://graph.example.com/other/v1.0/users", BASE + "/prefix")


# ------------------------------------------------------------------ rate limiter maths (fake clock)
class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


def test_classification_of_teams_and_directory_requests():
    assert classify("GET", "/v1.0/teams/T1/members?$top=999") == [("teams.get_members", 1, None),
                                                                  ("teams.per_team", 1, "T1")]
    assert classify("POST", "/teams/T1/members")[2] == ("teams.post_members.per_team", 1, "T1")
    assert classify("GET", "/users/u/joinedTeams") == [("teams.get_joined_teams", 1, None)]
    assert classify("GET", "/users?$select=id&$top=999") == [("directory.ru", 1, None)]  # 2 - 1 for $select
    assert classify("GET", "/subscribedSkus") == [("directory.ru", 3, None)]
    assert classify("GET", "/groups/g/members?$expand=manager") == [("directory.ru", 4, None)]
    assert classify("PATCH", "/users/u") == [("directory.ru", 1, None), ("directory.write", 1, None)]
    assert classify("POST", "/directoryObjects/getByIds") == [("directory.ru", 3, None)]


def test_per_second_limits_are_paced_evenly():
    clock = FakeClock()
    limiter = RateLimiter(sleep=clock.sleep, clock=clock, headroom=1.0, scale=0.1)  # members: 6 per second
    waits = [limiter.acquire("t", "a", "GET", f"/teams/T{i}/members") for i in range(7)]
    assert waits == [0] + [pytest.approx(1 / 6)] * 6
    assert clock.now == pytest.approx(1001.0)


def test_headroom_keeps_a_margin():
    clock = FakeClock()
    limiter = RateLimiter(sleep=clock.sleep, clock=clock, scale=0.1)  # 6 rps x 0.9 => 5.4 rps
    for i in range(11):
        limiter.acquire("t", "a", "GET", f"/teams/T{i}/members")
    assert clock.now == pytest.approx(1000 + 10 / 5.4)


def test_long_windows_allow_their_burst():
    clock = FakeClock()
    limiter = RateLimiter(sleep=clock.sleep, clock=clock)  # 4 member additions per minute per team
    for _ in range(4):
        limiter.acquire("t", "a", "POST", "/teams/T1/members")
    assert clock.now == pytest.approx(1000 + 3 / (4 * 0.9))  # only the per-team spacing (4 rps) so far
    limiter.acquire("t", "a", "POST", "/teams/T1/members")
    assert clock.now == pytest.approx(1000 + 60 / 0.9)  # the 5th waits until the 1st left the (widened) minute


def test_share_divides_the_rate_between_shards():
    full = RateLimiter(headroom=1.0)
    half = RateLimiter(headroom=1.0, share=2)
    assert half.effective_rate("teams.get_members") == pytest.approx(full.effective_rate("teams.get_members") / 2)
    assert RateLimiter().effective_rate("teams.get_members") == pytest.approx(54.0)  # 60 rps x 0.9 headroom


def test_per_team_limit_applies_across_classes():
    clock = FakeClock()
    limiter = RateLimiter(sleep=clock.sleep, clock=clock, headroom=1.0)
    for _ in range(4):
        limiter.acquire("t", "a", "GET", "/teams/T1/members")
    limiter.acquire("t", "a", "GET", "/teams/T1/channels")  # 5th call on the same team within 1 s
    assert clock.now == pytest.approx(1001.0)
    before = clock.now
    limiter.acquire("t", "a", "GET", "/teams/T2/channels")  # another team is not held back by T1's limit
    assert clock.now - before == pytest.approx(1 / 60)  # only the channels class spacing (60 rps)


def test_directory_bucket_and_batch_costs():
    clock = FakeClock()
    limiter = RateLimiter(sleep=clock.sleep, clock=clock, headroom=1.0, scale=0.01)  # 35 RU per 10 s, 3.5 RU/s
    limiter.acquire_many("t", "a", [("GET", "/subscribedSkus", None)] * 10)  # 30 RU burst: fits
    assert clock.now == 1000.0
    limiter.acquire("t", "a", "GET", "/subscribedSkus")  # 3 more RU: only 5 left, fits
    limiter.acquire("t", "a", "GET", "/subscribedSkus")  # needs 1 RU more: waits 1/3.5 s
    assert clock.now == pytest.approx(1000 + 1 / 3.5)


def test_tenants_and_apps_have_separate_counters():
    clock = FakeClock()
    limiter = RateLimiter(sleep=clock.sleep, clock=clock, headroom=1.0, scale=1 / 60)  # members: 1 per second
    limiter.acquire("t1", "a", "GET", "/teams/x/members")
    limiter.acquire("t2", "a", "GET", "/teams/x/members")
    limiter.acquire("t1", "b", "GET", "/teams/x/members")
    assert clock.now == 1000.0
    limiter.acquire("t1", "a", "GET", "/teams/y/members")
    assert clock.now == pytest.approx(1001.0)


def test_limits_table_matches_the_documented_numbers():
    assert DEFAULT_LIMITS["teams.get_members"].count == 60
    assert DEFAULT_LIMITS["teams.get_channels"].count == 60
    assert DEFAULT_LIMITS["teams.get_installed_apps"].count == 30
    assert DEFAULT_LIMITS["teams.other_get"].count == 30
    assert DEFAULT_LIMITS["teams.other"].count == 30
    assert DEFAULT_LIMITS["teams.per_team"].count == 4
    assert (DEFAULT_LIMITS["directory.ru"].count, DEFAULT_LIMITS["directory.ru"].window_s) == (3500, 10)
    assert RateLimiter(directory_size="L").limits["directory.ru"].count == 8000
    with pytest.raises(ValueError, match="unknown rate limit"):
        RateLimiter({"no.such.class": 1})
