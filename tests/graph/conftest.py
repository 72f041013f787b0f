"""Fixtures for the Graph client tests: settings built from the simulator's connection contract, clients that
sleep for real but record their waits, and an httpx transport that records what was actually sent."""

from __future__ import annotations

import ssl
import time
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest

from teamsops.graph import GraphClient, GraphSettings, RateLimiter


def settings_from(conn: dict[str, Any], **overrides: Any) -> GraphSettings:
    """GraphSettings from an Airflow-style connection dict (login/password/extra), like the hook does."""
    values = {"client_id": conn["login"], "client_secret": conn["password"], **conn["extra"]}
    for key, value in overrides.items():
        if value is None:
            values.pop(key, None)
        else:
            values[key] = value
    return GraphSettings.from_mapping(values)


class RecordingTransport(httpx.HTTPTransport):
    """A real HTTPS transport that remembers every request it sent (method, url, headers)."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.sent: list[httpx.Request] = []

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        self.sent.append(request)
        return super().handle_request(request)


class SleepRecorder:
    """Records each wait; sleeps for real only when ``real`` (Retry-After from the simulator's throttling windows
    must really pass, scripted faults need no waiting)."""

    def __init__(self, real: bool = True) -> None:
        self.real = real
        self.waits: list[float] = []

    def __call__(self, seconds: float) -> None:
        self.waits.append(seconds)
        if self.real:
            time.sleep(seconds)


@pytest.fixture
def recording_transport() -> Callable[[Any], RecordingTransport]:
    """A factory: ``recording_transport(sim)`` -> a RecordingTransport trusting the simulator's CA."""
    return lambda sim: RecordingTransport(verify=ssl.create_default_context(cafile=sim.ca_path))


@pytest.fixture
def sleeper() -> SleepRecorder:
    return SleepRecorder()


@pytest.fixture
def no_sleep() -> SleepRecorder:
    """Records waits without waiting (for scripted faults and unreachable hosts)."""
    return SleepRecorder(real=False)


@pytest.fixture
def make_client() -> Iterator[Callable[..., GraphClient]]:
    """Build GraphClients for a simulator (closed at teardown). Keyword ``settings`` overrides go to the settings,
    the rest to GraphClient. Rate limiting is off unless a limiter is passed (pacing has its own tests)."""
    clients: list[GraphClient] = []

    def build(sim: Any, *, settings: dict[str, Any] | None = None, tenant: Any = None, **kwargs: Any) -> GraphClient:
        kwargs.setdefault("rate_limiter", RateLimiter.unlimited())
        kwargs.setdefault("jitter", lambda delay: delay)
        client = GraphClient(settings_from(sim.connection(tenant), **(settings or {})), **kwargs)
        clients.append(client)
        return client

    yield build
    for client in clients:
        client.close()
