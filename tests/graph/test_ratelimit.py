"""Client-side pacing against the simulator's documented throttling: a 16-thread fan-out runs at the ceiling with
zero 429s, and two shards with ``share=2`` together stay under the tenant's limit (the achieved rate against the
ceiling is a speed figure: bench/pacing.py measures it). Also checks that the client's
own limits table (it must not import the simulator) agrees with the simulator's."""

from __future__ import annotations

import itertools
import threading
import time

import pytest

from teamsops.graph import DEFAULT_LIMITS, RateLimiter
from teamsops.graph.ratelimit import DIRECTORY_RU_QUOTAS, classify
from teamsops.simulator import throttling as sim_throttling
from teamsops.simulator.generator import TenantSpec
from teamsops.simulator.testing import run_simulator

SCALE = 0.5  # GET /teams/{id}/members: 60 rps x 0.5 = 30 rps per app per tenant
MEMBERS_LIMIT = 60 * SCALE


def test_client_limits_agree_with_the_simulator_table():
    for name, limit in DEFAULT_LIMITS.items():
        if name in sim_throttling.TEAMS_LIMITS:
            assert limit.count == sim_throttling.TEAMS_LIMITS[name].per_app_tenant_rps, name
            assert limit.window_s == 1.0
    assert DEFAULT_LIMITS["teams.per_team"].count == sim_throttling.TEAM_RPS
    post = DEFAULT_LIMITS["teams.post_members.per_team"]
    assert (post.count, post.window_s) == sim_throttling.POST_MEMBERS_PER_TEAM
    assert DIRECTORY_RU_QUOTAS == sim_throttling.RESOURCE_UNIT_QUOTA
    assert DEFAULT_LIMITS["directory.ru"].window_s == sim_throttling.RU_WINDOW_S
    write = DEFAULT_LIMITS["directory.write"]
    assert (write.count, write.window_s) == (sim_throttling.WRITE_QUOTA, sim_throttling.WRITE_WINDOW_S)


@pytest.mark.parametrize(("method", "path", "query"), [
    ("GET", "/v1.0/teams/T/members", {}), ("GET", "/v1.0/teams/T/channels", {}), ("GET", "/v1.0/teams/T", {}),
    ("POST", "/v1.0/teams/T/members", {}), ("DELETE", "/v1.0/teams/T/members/M", {}),
    ("GET", "/v1.0/users/U/joinedTeams", {}), ("GET", "/v1.0/users/U/teamwork/installedApps", {}),
    ("GET", "/v1.0/teams/T/installedApps", {}), ("GET", "/v1.0/users", {"$select": "id", "$top": "999"}),
    ("GET", "/v1.0/subscribedSkus", {}), ("GET", "/v1.0/groups/G/members", {"$top": "5"}),
    ("GET", "/v1.0/users/U/memberOf", {"$expand": "x"}), ("PATCH", "/v1.0/users/U", {}),
    ("POST", "/v1.0/users/U/revokeSignInSessions", {}),
])
def test_classification_agrees_with_the_simulator(method, path, query):
    ours = classify(method, path, query)
    theirs = sim_throttling.classify(method, path, query)
    if theirs.limit_class == sim_throttling.IDENTITY:
        assert ours[0] == ("directory.ru", theirs.cost, None)
    else:
        assert ours[0][0] == theirs.limit_class
        assert any(team == theirs.team_id for _, _, team in ours[1:]) or theirs.team_id is None


@pytest.fixture(scope="module")
def throttled_sim():
    """40 teams, so the per-team limit (4 rps) never binds before the members class limit."""
    with run_simulator(spec=TenantSpec(users=150, teams=40, seed=23), throttle="documented",
                       throttle_scale=SCALE) as running:
        yield running


def _fan_out(clients, team_ids, per_thread: int, threads_per_client: int) -> None:
    cycle = itertools.cycle(team_ids)
    lock = threading.Lock()
    errors: list[BaseException] = []

    def work(client) -> None:
        try:
            for _ in range(per_thread):
                with lock:
                    team_id = next(cycle)
                client.get(f"/teams/{team_id}/members", params={"$select": "id"})
        except BaseException as err:  # surfaced below
            errors.append(err)

    workers = [threading.Thread(target=work, args=(client,)) for client in clients
               for _ in range(threads_per_client)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(60)
    assert not errors, errors[0]


def _members_rate(sim) -> tuple[float, int, int]:
    stats = sim.stats()
    graph = stats["routes"]["graph"]
    times = graph["timestamps"]
    return (len(times) - 1) / (times[-1] - times[0]), stats["throttled"], graph["max_in_1s"]


def test_sixteen_threads_run_at_the_ceiling_without_429(throttled_sim, make_client):
    team_ids = list(throttled_sim.tenant.teams)
    client = make_client(throttled_sim, rate_limiter=RateLimiter(scale=SCALE), max_attempts=1)
    client.token_roles()  # token first, so the measurement covers Graph calls only
    throttled_sim.reset_stats()
    _fan_out([client], team_ids, per_thread=5, threads_per_client=16)
    rate, throttled, peak = _members_rate(throttled_sim)
    assert throttled == 0
    assert peak <= MEMBERS_LIMIT
    assert rate <= MEMBERS_LIMIT  # how close it gets to the ceiling is measured by bench/pacing.py, not here


def test_two_shards_with_share_2_stay_under_the_limit(throttled_sim, make_client):
    team_ids = list(throttled_sim.tenant.teams)
    shards = [make_client(throttled_sim, rate_limiter=RateLimiter(scale=SCALE, share=2), max_attempts=1)
              for _ in range(2)]
    for shard in shards:
        shard.token_roles()
    time.sleep(1.1)  # let the previous test's window drain
    throttled_sim.reset_stats()
    _fan_out(shards, team_ids, per_thread=5, threads_per_client=8)
    rate, throttled, peak = _members_rate(throttled_sim)
    assert throttled == 0
    assert peak <= MEMBERS_LIMIT
    assert rate <= MEMBERS_LIMIT


class _StillClock:
    """A clock that does not move: each acquire's slot is ``now + the delay it was given``."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        pass


def test_shards_with_an_index_take_turns_on_one_grid():
    """Two shards at half the rate each: with their indexes, their slots interleave into ONE evenly spaced stream
    (independent shards may land in the same instant and bunch in Graph's 1-second window)."""
    clock = _StillClock()
    shards = [RateLimiter(scale=0.1, share=2, shard=k, headroom=1.0, clock=clock, sleep=clock.sleep) for k in (0, 1)]
    slots = sorted(clock.now + shard.acquire("t", "a", "GET", f"/teams/T{n}/members")
                   for n in range(5) for shard in shards)  # members at scale 0.1: 6 rps, 3 per shard
    gaps = [b - a for a, b in zip(slots, slots[1:])]
    assert gaps == pytest.approx([1 / 6] * 9)
    unindexed = [RateLimiter(scale=0.1, share=2, headroom=1.0, clock=clock, sleep=clock.sleep) for _ in (0, 1)]
    assert {clock.now + u.acquire("t", "a", "GET", "/teams/T1/members") for u in unindexed} == {clock.now}


def test_share_divides_tenant_limits_but_not_the_per_team_limit():
    limiter = RateLimiter(share=4, headroom=1.0)
    assert limiter.effective_rate("teams.get_installed_apps") == pytest.approx(30 / 4)
    assert limiter.effective_rate("teams.per_team") == pytest.approx(4.0)  # each team belongs to one shard
    with pytest.raises(ValueError, match="shard must be in 0..3"):
        RateLimiter(share=4, shard=4)
