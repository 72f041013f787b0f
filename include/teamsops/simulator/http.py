"""Transport-neutral request/response types shared by the simulator's layers.

The simulator is split like moto: ``model`` (state and rules), the API modules (``identity``, ``graph_api``,
``bot_api``: parse a request, call the model, render a Graph-shaped response) and ``server`` (HTTPS, TLS,
latency, faults, throttling, request statistics). These two small classes are the only thing the layers share.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl


class Headers(dict):
    """A case-insensitive header mapping (keys stored lower-case)."""

    def __init__(self, items: Any = ()) -> None:
        super().__init__()
        for key, value in dict(items).items():
            self[key] = value

    def __setitem__(self, key: str, value: str) -> None:
        super().__setitem__(key.lower(), value)

    def __getitem__(self, key: str) -> str:
        return super().__getitem__(key.lower())

    def __contains__(self, key: object) -> bool:
        return isinstance(key, str) and super().__contains__(key.lower())

    def get(self, key: str, default: Any = None) -> Any:  # type: ignore[override]
        return super().get(key.lower(), default)


@dataclass
class SimRequest:
    """One HTTP request as the API modules see it.

    :param method: upper-case HTTP method.
    :param path: the URL path, percent-decoded, without the query string (e.g. ``/v1.0/users``).
    :param raw_query: the query string exactly as received (still percent-encoded).
    :param headers: request headers (case-insensitive).
    :param body: the raw request body.
    :param base_url: scheme + host + port the client used, e.g. ``https://127.0.0.1:8443``; used to build
        nextLinks, ``@odata.context`` and OpenID documents that point back at the simulator.
    """

    method: str
    path: str
    raw_query: str = ""
    headers: Headers = field(default_factory=Headers)
    body: bytes = b""
    base_url: str = "https://127.0.0.1"

    @property
    def query(self) -> dict[str, str]:
        """Decoded query parameters (last value wins), keys as sent (``$top``, ``$select``...)."""
        return dict(parse_qsl(self.raw_query, keep_blank_values=True))

    def json(self) -> Any:
        """The body parsed as JSON (``None`` for an empty body); raises ``ValueError`` on bad JSON."""
        if not self.body:
            return None
        return json.loads(self.body)


@dataclass
class SimResponse:
    """One HTTP response. ``body`` is bytes, ``str`` or a JSON-serialisable object (dict/list)."""

    status: int
    body: Any = None
    headers: Headers = field(default_factory=Headers)

    def body_bytes(self) -> bytes:
        if self.body is None:
            return b""
        if isinstance(self.body, bytes):
            return self.body
        if isinstance(self.body, str):
            return self.body.encode()
        return json.dumps(self.body, separators=(",", ":")).encode()


@dataclass
class CallContext:
    """Who is calling, established by the server from a validated access token before a Graph or Bot route runs.

    :param tenant_id: the tenant the token was issued for (``tid``).
    :param app_id: the calling application (``appid``).
    :param roles: the application permissions in the token (``roles`` claim).
    :param request_id: the ``request-id`` the server assigned to this request (echoed in error bodies).
    :param client_request_id: the caller's ``client-request-id`` header, or the request id when absent.
    """

    tenant_id: str
    app_id: str
    roles: frozenset[str]
    request_id: str
    client_request_id: str
