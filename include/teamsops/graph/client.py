"""``GraphClient``: Microsoft Graph v1.0 over one long-lived ``httpx.Client`` with msal app-only tokens.

Everything that can go wrong on the wire is handled in ONE place, :meth:`GraphClient.request`:

* pacing at the published limits (:mod:`teamsops.graph.ratelimit`), before every attempt;
* a bearer token per attempt (msal's cache; one forced refresh after a 401, then :class:`GraphAuthError`);
* a ``client-request-id`` (uuid4) per call, logged with Graph's ``request-id`` at DEBUG;
* retries of 429 / 503 / 504 and connection failures (:mod:`teamsops.graph.retry`), re-sending a write after a
  connection failure only when it is idempotent by construction;
* typed errors with advice (:mod:`teamsops.graph.errors`), 403s naming the permission to grant;
* read-only mode: with ``access="read"`` every write is refused before anything is sent;
* links (nextLink, deltaLink, full URLs given by callers) must be https on the configured Graph host, or they are
  refused before the bearer token is attached (CWE-918).

On top of it: :meth:`~GraphClient.paginate` / :meth:`~GraphClient.pages` (follow ``@odata.nextLink`` verbatim),
:meth:`~GraphClient.delta` / :meth:`~GraphClient.iter_delta`, and :meth:`~GraphClient.batch` (JSON batching in
chunks of 20 with per-item retries).
"""

from __future__ import annotations

import logging
import ssl
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Mapping
from typing import Any, NamedTuple
from urllib.parse import quote

import httpx

from teamsops.graph.auth import TokenProvider, decode_jwt_claims, graph_token_provider
from teamsops.graph.errors import (
    DeltaResyncRequired,
    GraphBadRequest,
    GraphConnectionError,
    GraphError,
    ReadOnlyError,
    UnsafeNextLinkError,
    error_from_response,
)
from teamsops.graph.permissions import GRANT_HINT, parse_teams_required, required_permissions
from teamsops.graph.ratelimit import Limit, RateLimiter
from teamsops.graph.retry import RETRY_STATUSES, RetryPolicy, RetryState, default_jitter, is_idempotent, \
    parse_retry_after
from teamsops.graph.settings import GraphSettings

__all__ = ["DEFAULT_TIMEOUT", "DeltaResult", "DeltaStream", "GraphClient", "RequestStats", "check_link"]

log = logging.getLogger(__name__)

DEFAULT_TIMEOUT = httpx.Timeout(60.0, connect=10.0)
BATCH_MAX = 20  # Graph's limit of requests per $batch
_READ_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
_RESYNC_CODES = {"syncstatenotfound": "syncStateNotFound", "resyncrequired": "resyncRequired",
                 "syncstateinvalid": "syncStateNotFound"}  # fmt: skip
_QUERY_SAFE = "$,'()/:*@!;"


class DeltaResult(NamedTuple):
    """All items of one delta round and the deltaLink to store for the next round."""

    items: list[dict[str, Any]]
    delta_link: str


class RequestStats:
    """What one client sent: HTTP attempts (retries included), responses by status, connection failures.

    Thread-safe; callers that want per-job figures take a :meth:`snapshot` before and after and subtract.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.sent = 0
        self.failed = 0  # attempts that got no response (connection failures)
        self.by_status: dict[int, int] = {}

    def record(self, status: int | None) -> None:
        with self._lock:
            self.sent += 1
            if status is None:
                self.failed += 1
            else:
                self.by_status[status] = self.by_status.get(status, 0) + 1

    def snapshot(self) -> dict[str, int]:
        """``{"sent", "failed", "throttled" (429s), "unavailable" (503/504)}`` so far."""
        with self._lock:
            return {"sent": self.sent, "failed": self.failed, "throttled": self.by_status.get(429, 0),
                    "unavailable": self.by_status.get(503, 0) + self.by_status.get(504, 0)}


def check_link(url: str, graph_url: str) -> httpx.URL:
    """Refuse a link the bearer token must not follow: not https, or not on the configured Graph origin.

    Parsed with httpx's own URL parser (the one that will send the request), so tricks such as
    ``https://graph.microsoft.com@evil.example/`` are judged exactly as they would be sent.

    :raises UnsafeNextLinkError: nothing has been sent.
    """
    try:
        link = httpx.URL(url)
    except httpx.InvalidURL:
        raise UnsafeNextLinkError(f"refusing to follow an unparseable link {url[:200]!r}", url=url) from None
    base = httpx.URL(graph_url)
    same_origin = (link.scheme == "https" and link.host.lower() == base.host.lower()
                   and (link.port or 443) == (base.port or 443))
    prefix = base.path.rstrip("/")
    if not same_origin or not (link.path == prefix or link.path.startswith(prefix + "/")):
        raise UnsafeNextLinkError(
            f"refusing to send the access token to {link.scheme}://{link.host}{':' + str(link.port) if link.port else ''}"
            f": links must be https on the configured Graph host {base.scheme}://{base.netloc.decode()}{prefix} "
            "(a tampered or misrouted nextLink/deltaLink would leak the token, CWE-918)", url=url)
    return link


def encode_query(params: Mapping[str, Any]) -> str:
    """Encode OData query parameters, keeping ``$`` and OData punctuation readable; spaces become ``%20``."""
    parts = []
    for key, value in params.items():
        if value is None:
            continue
        text = ("true" if value else "false") if isinstance(value, bool) else str(value)
        parts.append(f"{quote(str(key), safe='$')}={quote(text, safe=_QUERY_SAFE)}")
    return "&".join(parts)


class DeltaStream:
    """Iterate the items of one delta round; ``delta_link`` is set once the round is exhausted.

    Groups with many members come back as the SAME group object repeated on consecutive pages, each carrying
    another chunk of ``members@delta`` (and users' ``manager@delta``); items may also repeat (replays). Merging them
    by ``id`` is the caller's job - this stream yields the objects exactly as Graph sent them.
    """

    def __init__(self, client: GraphClient, start: str, params: Mapping[str, Any] | None,
                 headers: Mapping[str, str] | None) -> None:
        self._client, self._start, self._params, self._headers = client, start, params, headers
        self.delta_link: str | None = None
        self.pages = 0

    def __iter__(self) -> Iterator[dict[str, Any]]:
        for page in self._client._delta_pages(self._start, self._params, self._headers):
            self.pages += 1
            yield from page.get("value", [])
            if page.get("@odata.deltaLink"):
                self.delta_link = page["@odata.deltaLink"]


class GraphClient:
    """Microsoft Graph v1.0 client for one app in one tenant (thread-safe; use one per connection).

    :param settings: validated connection settings.
    :param transport: an httpx transport (tests may pass one; default: real HTTPS with ``settings.verify``).
    :param sleep: how to wait between retries (injectable to keep tests fast).
    :param rate_limits: overrides of the limits table by name (see :data:`teamsops.graph.ratelimit.DEFAULT_LIMITS`).
    :param rate_limiter: a :class:`RateLimiter` to share with other clients/threads (wins over ``rate_limits``).
    :param max_retry_wait: total seconds one call may spend waiting between attempts.
    :param max_attempts: total attempts of one call.
    :param timeout: httpx timeout of one attempt.
    :param jitter: backoff jitter function (seconds -> seconds).
    :param on_token: called with every new access token (e.g. Airflow's ``mask_secret``).
    :param max_connections: size of the keep-alive connection pool (enough for the widest fan-out).
    """

    def __init__(
        self,
        settings: GraphSettings,
        *,
        transport: httpx.BaseTransport | None = None,
        sleep: Callable[[float], None] = time.sleep,
        rate_limits: Mapping[str, Limit | float] | None = None,
        rate_limiter: RateLimiter | None = None,
        max_retry_wait: float = 300,
        max_attempts: int = 8,
        timeout: httpx.Timeout | float = DEFAULT_TIMEOUT,
        jitter: Callable[[float], float] = default_jitter,
        on_token: Callable[[str], None] | None = None,
        max_connections: int = 100,
    ) -> None:
        self.settings = settings
        self._sleep = sleep
        self._retry = RetryPolicy(max_attempts=max_attempts, max_retry_wait=max_retry_wait, jitter=jitter)
        self.rate_limiter = rate_limiter or RateLimiter(rate_limits, sleep=sleep)
        self.stats = RequestStats()
        read_timeout = timeout.read if isinstance(timeout, httpx.Timeout) else timeout
        self._tokens: TokenProvider = graph_token_provider(settings, timeout=read_timeout or 60.0, on_token=on_token)
        self._http = httpx.Client(
            transport=transport,
            verify=_ssl_verify(settings.verify),
            timeout=timeout,
            limits=httpx.Limits(max_connections=max_connections, max_keepalive_connections=max_connections),
            headers={"User-Agent": "teamsops-graph/0.1 httpx", "Accept": "application/json"},
            follow_redirects=False,
        )

    # ------------------------------------------------------------------------------------------ lifecycle
    def close(self) -> None:
        """Close the connection pools (Graph/connector and identity platform)."""
        self._http.close()
        self._tokens.close()

    def __enter__(self) -> GraphClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"GraphClient(tenant_id={self.settings.tenant_id!r}, graph_url={self.settings.graph_url!r})"

    # ------------------------------------------------------------------------------------------ verbs
    def get(self, path: str, params: Mapping[str, Any] | None = None,
            headers: Mapping[str, str] | None = None) -> dict[str, Any]:
        """GET a path (relative to ``/v1.0``) or a full Graph URL and return the JSON body."""
        return _json(self.request("GET", path, params=params, headers=headers)) or {}

    def post(self, path: str, json: Any = None, headers: Mapping[str, str] | None = None) -> dict[str, Any] | None:
        """POST (refused in read-only mode); returns the JSON body, or None for an empty body (204)."""
        return _json(self.request("POST", path, json=json, headers=headers))

    def patch(self, path: str, json: Any = None, headers: Mapping[str, str] | None = None) -> dict[str, Any] | None:
        """PATCH (refused in read-only mode); Graph usually answers 204 (None)."""
        return _json(self.request("PATCH", path, json=json, headers=headers))

    def put(self, path: str, json: Any = None, headers: Mapping[str, str] | None = None) -> dict[str, Any] | None:
        """PUT (refused in read-only mode)."""
        return _json(self.request("PUT", path, json=json, headers=headers))

    def delete(self, path: str, json: Any = None, headers: Mapping[str, str] | None = None) -> dict[str, Any] | None:
        """DELETE (refused in read-only mode)."""
        return _json(self.request("DELETE", path, json=json, headers=headers))

    def token_roles(self) -> set[str]:
        """Application permissions in the current app-only token (its ``roles`` claim; read, not verified)."""
        return set(self.token_claims().get("roles") or [])

    def token_claims(self) -> dict[str, Any]:
        """Claims of the current app-only token (read, not verified): ``tid`` is the tenant GUID even when the
        connection names the tenant by domain, ``roles`` the granted application permissions."""
        return decode_jwt_claims(self._tokens.token())

    # ------------------------------------------------------------------------------------------ the one send path
    def request(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, Any] | None = None,
        json: Any = None,
        headers: Mapping[str, str] | None = None,
        idempotent: bool | None = None,
        paced: bool = True,
    ) -> httpx.Response:
        """Send one Graph request with pacing, auth, retries and typed errors; return the successful response.

        :param path: a path relative to ``/v1.0`` (``"/users"``) or a full URL on the configured Graph host.
        :param idempotent: override whether the request may be re-sent after a connection failure.
        :param paced: False when the caller already reserved rate-limit capacity (``$batch``).
        :raises GraphError: (a subclass) when the request failed for good.
        """
        method = method.upper()
        url = self._resolve(path, params)
        rel = self._relative(url)
        self._refuse_write(method, rel, url, json)
        safe = is_idempotent(method, rel) if idempotent is None else idempotent
        crid = str(uuid.uuid4())
        state = self._retry.new_state()
        refreshed = False
        fresh: str | None = None  # the token obtained by a 401 refresh, used as is by the next attempt
        while True:
            state.attempts += 1
            if paced:
                self.rate_limiter.acquire(self.settings.tenant_id, self.settings.client_id, method, rel)
            token, fresh = fresh or self._tokens.token(), None
            response = self._attempt(method, url, rel, json, headers, token, crid, state, safe)
            if response is None:
                continue  # a connection failure that may be retried; the wait already happened
            if response.is_success:
                return response
            if response.status_code == 401 and not refreshed:
                refreshed = True
                response.close()
                fresh = self._tokens.refresh(token)
                continue
            retry_after = parse_retry_after(response.headers.get("Retry-After"))
            if response.status_code in RETRY_STATUSES:
                delay = state.next_delay(retry_after)
                if delay is not None:
                    self._wait_retry(method, rel, response, delay, state)
                    continue
            raise self._error(response, crid, state, retry_after, method, rel, token, refreshed)

    def _attempt(self, method: str, url: str, rel: str, json: Any, headers: Mapping[str, str] | None, token: str,
                 crid: str, state: RetryState, safe: bool) -> httpx.Response | None:
        """One send. Returns the response, or None after waiting for a retry of a connection failure."""
        sent = dict(headers or {})
        sent.update({"Authorization": f"Bearer {token}", "client-request-id": crid})
        if state.attempts > 1:
            sent["Retry-Attempt"] = str(state.attempts - 1)
        started = time.monotonic()
        try:
            response = self._http.request(method, url, json=json, headers=sent)
        except httpx.TransportError as err:
            self.stats.record(None)
            self._connection_failure(err, method, rel, crid, state, safe)
            return None
        self.stats.record(response.status_code)
        log.debug("%s %s -> %s in %.0f ms (request-id %s, client-request-id %s)", method, rel, response.status_code,
                  (time.monotonic() - started) * 1000, response.headers.get("request-id"), crid)
        return response

    def _connection_failure(self, err: httpx.TransportError, method: str, rel: str, crid: str, state: RetryState,
                            safe: bool) -> None:
        """Wait for a retry of a connection failure, or raise GraphConnectionError."""
        kind = type(err).__name__
        host = self.settings.graph_url
        if _is_tls_failure(err):
            raise GraphConnectionError(
                message=f"TLS verification failed for {host} ({kind})", client_request_id=crid,
                attempts=state.attempts, total_wait=state.total_wait, method=method, url=rel,
                advice="set the connection's verify to the CA bundle that signs this host") from err
        never_sent = isinstance(err, (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout))
        if isinstance(err, (httpx.UnsupportedProtocol, httpx.LocalProtocolError)):
            raise GraphConnectionError(message=f"{method} {rel}: cannot send ({kind}: {err})", client_request_id=crid,
                                       method=method, url=rel) from err
        if not (safe or never_sent):
            raise GraphConnectionError(
                message=(f"{method} {rel}: the connection failed after the request was sent ({kind}); "
                         "the outcome is unknown"),
                client_request_id=crid, attempts=state.attempts, total_wait=state.total_wait, method=method, url=rel,
                advice=("verify whether the change was applied (read the object back) before sending it again; "
                        "it was not re-sent automatically because it is not idempotent"),
                outcome_unknown=True) from err
        delay = state.next_delay(None)
        if delay is None:
            raise GraphConnectionError(
                message=f"{method} {rel}: no response from {host} ({kind})", client_request_id=crid,
                attempts=state.attempts, total_wait=state.total_wait, method=method, url=rel,
                advice="check network access from the workers to the Graph host; the retry budget is exhausted"
            ) from err
        log.warning("%s %s: %s (client-request-id %s); retrying in %.2f s (attempt %d of %d)", method, rel, kind, crid,
                    delay, state.attempts + 1, self._retry.max_attempts)
        self._sleep(delay)
        state.waited(delay)

    def _wait_retry(self, method: str, rel: str, response: httpx.Response, delay: float, state: RetryState) -> None:
        log.warning("%s %s -> %s (request-id %s); retrying in %.2f s (attempt %d of %d, %.1f s waited so far)",
                    method, rel, response.status_code, response.headers.get("request-id"), delay,
                    state.attempts + 1, self._retry.max_attempts, state.total_wait)
        response.close()
        self._sleep(delay)
        state.waited(delay)

    def _error(self, response: httpx.Response, crid: str, state: RetryState, retry_after: float | None, method: str,
               rel: str, token: str, refreshed: bool) -> GraphError:
        response.read()
        status = response.status_code
        advice: str | None = None
        extra: dict[str, Any] = {}
        if status == 403:
            extra["required_permissions"], advice = self._forbidden_advice(response, method, rel, token)
        elif status == 401:
            advice = ("Graph rejected a freshly issued token: check that graph_url belongs to the same cloud as "
                      "authority_host (tokens are not interchangeable across clouds) and the workers' clock"
                      if refreshed else "Graph rejected the token")
        elif status == 429:
            advice = ("Graph kept throttling beyond the retry budget: lower the concurrency (or the rate limiter's "
                      "share) and let the task retry later")
        elif status in (503, 504):
            advice = "Graph is temporarily unavailable: let the task retry later"
        return error_from_response(response, client_request_id=crid, attempts=state.attempts,
                                   total_wait=state.total_wait, advice=advice, retry_after=retry_after, **extra)

    def _forbidden_advice(self, response: httpx.Response, method: str, rel: str,
                          token: str) -> tuple[tuple[str, ...], str]:
        try:
            message = str(response.json().get("error", {}).get("message", ""))
        except ValueError:
            message = ""
        perms = parse_teams_required(message) or required_permissions(method, rel)
        held = set(decode_jwt_claims(token).get("roles") or [])
        if perms and not held & set(perms):
            names = perms[0] if len(perms) == 1 else f"{perms[0]} (or one of: {', '.join(perms[1:])})"
            return perms, (f"the app needs the application permission {names}: grant it in {GRANT_HINT}; tokens "
                           "issued before the consent keep their old roles for up to an hour")
        if perms:
            return perms, (f"the app holds {', '.join(sorted(held & set(perms)))} yet Graph refused: the target may be "
                           "protected (e.g. app-only User.ReadWrite.All cannot change or delete privileged "
                           "administrators), or the operation needs a further permission")
        return perms, f"check the app's application permissions in {GRANT_HINT}"

    # ------------------------------------------------------------------------------------------ URLs and guards
    def _resolve(self, path: str, params: Mapping[str, Any] | None) -> str:
        if "://" in path:
            if params:
                raise ValueError("params cannot be combined with a full URL: links are followed verbatim")
            check_link(path, self.settings.graph_url)
            return path
        rel = path.lstrip("/")
        if rel.lower().startswith("v1.0/"):
            rel = rel[5:]
        url = f"{self.settings.graph_base}/{rel}"
        if params:
            url += ("&" if "?" in url else "?") + encode_query(params)
        return url

    def _relative(self, url: str) -> str:
        """The path (and query) of ``url`` relative to ``/v1.0``, for classification and messages."""
        link = httpx.URL(url)
        prefix = httpx.URL(self.settings.graph_base).path.rstrip("/")
        path = link.path[len(prefix):] if link.path.startswith(prefix) else link.path
        query = link.query.decode()
        return (path or "/") + (f"?{query}" if query else "")

    def _refuse_write(self, method: str, rel: str, url: str, json: Any) -> None:
        if not self.settings.read_only:
            return
        if method in _READ_METHODS or (method == "POST" and _read_like_post(rel)):
            return
        if method == "POST" and rel.split("?", 1)[0].rstrip("/").lower() == "/$batch":
            writes = [item for item in (json or {}).get("requests", []) if str(item.get("method", "GET")).upper()
                      not in _READ_METHODS and not _read_like_post(str(item.get("url", "")))]
            if not writes:
                return
            method, rel = str(writes[0].get("method")).upper(), f"$batch item {writes[0].get('url')}"
        raise ReadOnlyError(
            f"refusing {method} {rel}: the connection has access='read' (sync only). To allow actions, set the "
            "connection's extra access to 'read_write' and grant the write permissions (User.ReadWrite.All, "
            "TeamMember.ReadWrite.All, User.RevokeSessions.All) with admin consent.", method=method, url=url)

    # ------------------------------------------------------------------------------------------ paging
    def pages(self, path: str, params: Mapping[str, Any] | None = None,
              headers: Mapping[str, str] | None = None) -> Iterator[dict[str, Any]]:
        """Yield raw pages, following ``@odata.nextLink`` verbatim (``headers`` are re-sent on every page).

        ``params`` apply to the first request only: Graph embeds them in the nextLink.
        """
        url: str | None = path
        page_params = params
        seen: set[str] = set()
        while url:
            page = self.get(url, params=page_params, headers=headers)
            yield page
            next_link = page.get("@odata.nextLink")
            if next_link in seen:
                raise GraphError(message=f"Graph returned the same nextLink twice ({next_link[:120]}...); stopping "
                                         "to avoid an endless loop")
            if next_link:
                check_link(next_link, self.settings.graph_url)
                seen.add(next_link)
            url, page_params = next_link, None

    def paginate(self, path: str, params: Mapping[str, Any] | None = None,
                 headers: Mapping[str, str] | None = None) -> Iterator[dict[str, Any]]:
        """Yield the items (``value``) of every page of a collection."""
        for page in self.pages(path, params=params, headers=headers):
            yield from page.get("value", [])

    # ------------------------------------------------------------------------------------------ delta
    def iter_delta(self, path_or_delta_link: str, params: Mapping[str, Any] | None = None,
                   headers: Mapping[str, str] | None = None) -> DeltaStream:
        """Stream one delta round (initial: ``"/users/delta"`` + params; incremental: a stored deltaLink).

        After the stream is exhausted, ``stream.delta_link`` holds the link for the next round.

        :raises DeltaResyncRequired: the token expired or Graph asks for a full resync: start again from the
            initial path (``err.location`` carries Graph's suggested restart URL on a 410).
        """
        return DeltaStream(self, path_or_delta_link, params, headers)

    def delta(self, path_or_delta_link: str, params: Mapping[str, Any] | None = None,
              headers: Mapping[str, str] | None = None) -> DeltaResult:
        """Run one delta round to its deltaLink and return all items (see :meth:`iter_delta`)."""
        stream = self.iter_delta(path_or_delta_link, params, headers)
        items = list(stream)
        if not stream.delta_link:
            raise GraphError(message=f"the delta round of {path_or_delta_link[:120]} ended without @odata.deltaLink")
        return DeltaResult(items, stream.delta_link)

    def _delta_pages(self, start: str, params: Mapping[str, Any] | None,
                     headers: Mapping[str, str] | None) -> Iterator[dict[str, Any]]:
        try:
            yield from self.pages(start, params=params, headers=headers)
        except GraphError as err:
            resync = _resync_reason(err)
            if resync is None:
                raise
            raise DeltaResyncRequired(
                err.status, err.code, err.message or "the delta token is no longer valid", err.request_id,
                err.client_request_id, err.date, err.inner, err.attempts, headers=err.headers, reason=resync,
                location=err.headers.get("location"),
                advice="discard the stored deltaLink and run a full delta round from the initial path") from err

    # ------------------------------------------------------------------------------------------ $batch
    def batch(self, requests: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
        """Run any number of requests through ``POST /$batch`` (chunks of 20) and return ``{id: response}``.

        Each request is ``{"id", "method", "url" (relative to /v1.0), "body"?, "headers"?, "dependsOn"?}``; ids are
        generated ("1", "2", ...) when absent. Requests linked by ``dependsOn`` stay in one chunk. Items answered
        429/503/504 are re-sent in a new batch after the longest ``Retry-After`` (dependents that failed with 424
        because of them go along) until they succeed or the retry budget is spent; then their last response is
        returned as it is. Responses: ``{"status": int, "headers": dict, "body": Any}``, correlated by id.

        :raises ReadOnlyError: a write item with ``access="read"`` (nothing is sent).
        """
        items = _normalize_batch(requests, self.settings.graph_base)
        for item in items:
            self._refuse_write(item["method"], item["url"], item["url"], None)
        results: dict[str, dict[str, Any]] = {}
        for chunk in _chunk_batch(items):
            results.update(self._run_batch_chunk(chunk))
        return {item["id"]: results[item["id"].lower()] for item in items}

    def _run_batch_chunk(self, chunk: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
        results: dict[str, dict[str, Any]] = {}
        pending = chunk
        state = self._retry.new_state()
        while pending:
            state.attempts += 1
            self.rate_limiter.acquire_many(self.settings.tenant_id, self.settings.client_id,
                                           [(item["method"], item["url"], None) for item in pending])
            envelope = {"requests": [_wire_item(item, {i["id"].lower() for i in pending}) for item in pending]}
            response = self.request("POST", "/$batch", json=envelope, paced=False,
                                    idempotent=all(is_idempotent(i["method"], i["url"]) for i in pending))
            answers = {str(r.get("id", "")).lower(): r for r in (_json(response) or {}).get("responses", [])}
            retry_ids, longest = _collect_batch_round(pending, answers, results)
            if not retry_ids:
                break
            delay = state.next_delay(longest)
            if delay is None:
                log.warning("$batch: %d item(s) still throttled/unavailable after %d rounds; returning their last "
                            "responses", len(retry_ids), state.attempts)
                break
            log.warning("$batch: %d item(s) got 429/503/504; re-sending them in %.2f s", len(retry_ids), delay)
            self._sleep(delay)
            state.waited(delay)
            for key in retry_ids:
                results.pop(key, None)
            pending = [item for item in pending if item["id"].lower() in retry_ids]
        return results


# ---------------------------------------------------------------------------------------------- helpers
def _ssl_verify(verify: bool | str) -> bool | ssl.SSLContext:
    """httpx 0.28 wants an SSLContext for a custom CA bundle."""
    if isinstance(verify, str):
        return ssl.create_default_context(cafile=verify)
    return verify


def _json(response: httpx.Response) -> dict[str, Any] | None:
    if not response.content:
        return None
    try:
        return response.json()
    except ValueError:
        raise GraphError(response.status_code, "NonJsonResponse",
                         f"expected JSON but got {response.headers.get('content-type', 'no content type')}; "
                         "use GraphClient.request() for non-JSON endpoints",
                         response.headers.get("request-id")) from None


def _read_like_post(rel: str) -> bool:
    """POST actions that only read (allowed in read-only mode)."""
    last = rel.split("?", 1)[0].rstrip("/").rsplit("/", 1)[-1].lower()
    return last in {"getbyids", "getmembergroups", "getmemberobjects", "checkmembergroups", "checkmemberobjects"}


def _is_tls_failure(err: Exception) -> bool:
    seen: BaseException | None = err
    while seen is not None:
        if isinstance(seen, ssl.SSLCertVerificationError) or "CERTIFICATE_VERIFY_FAILED" in str(seen):
            return True
        seen = seen.__cause__ or seen.__context__
    return False


def _resync_reason(err: GraphError) -> str | None:
    code = (err.code or "").lower()
    if code in _RESYNC_CODES:
        return _RESYNC_CODES[code]
    if err.status == 410:
        return "reset"
    return None


def _normalize_batch(requests: list[dict[str, Any]], graph_base: str) -> list[dict[str, Any]]:
    """Validate and copy batch items: ids, methods, relative urls, Content-Type for bodies, known dependsOn."""
    items, seen = [], set()
    for index, raw in enumerate(requests, start=1):
        item = dict(raw)
        item["id"] = str(item.get("id") or index)
        item["method"] = str(item.get("method", "GET")).upper()
        url = str(item.get("url") or "")
        if "://" in url:
            check_link(url, graph_base)
            url = url[len(graph_base):] if url.startswith(graph_base) else httpx.URL(url).raw_path.decode()
        if not url:
            raise GraphBadRequest(message=f"batch item {item['id']!r} has no url")
        item["url"] = "/" + url.lstrip("/")
        if item["id"].lower() in seen:
            raise GraphBadRequest(message=f"batch item id {item['id']!r} is used twice (ids are case-insensitive)")
        seen.add(item["id"].lower())
        if "body" in item:
            headers = {str(k): str(v) for k, v in (item.get("headers") or {}).items()}
            if not any(k.lower() == "content-type" for k in headers):
                headers["Content-Type"] = "application/json"
            item["headers"] = headers
        items.append(item)
    for item in items:
        unknown = [d for d in item.get("dependsOn") or [] if str(d).lower() not in seen]
        if unknown:
            raise GraphBadRequest(message=f"batch item {item['id']!r} dependsOn unknown id(s) {unknown}")
    return items


def _chunk_batch(items: list[dict[str, Any]]) -> list[list[dict[str, Any]]]:
    """Pack items into chunks of at most 20, keeping every dependsOn group in one chunk (in request order)."""
    parent = {item["id"].lower(): item["id"].lower() for item in items}

    def root(key: str) -> str:
        while parent[key] != key:
            parent[key] = parent[parent[key]]
            key = parent[key]
        return key

    for item in items:
        for dep in item.get("dependsOn") or []:
            parent[root(str(dep).lower())] = root(item["id"].lower())
    groups: dict[str, list[dict[str, Any]]] = {}
    for item in items:
        groups.setdefault(root(item["id"].lower()), []).append(item)
    chunks: list[list[dict[str, Any]]] = [[]]
    for group in groups.values():
        if len(group) > BATCH_MAX:
            raise GraphBadRequest(message=f"{len(group)} requests are linked by dependsOn; one batch holds at most "
                                          f"{BATCH_MAX}")
        if len(chunks[-1]) + len(group) > BATCH_MAX:
            chunks.append([])
        chunks[-1].extend(group)
    return [chunk for chunk in chunks if chunk]


def _wire_item(item: dict[str, Any], sent_ids: set[str]) -> dict[str, Any]:
    """The item as sent; dependencies already completed in an earlier round are dropped from ``dependsOn``."""
    wire = {key: item[key] for key in ("id", "method", "url", "body", "headers") if key in item}
    deps = [d for d in item.get("dependsOn") or [] if str(d).lower() in sent_ids]
    if deps:
        wire["dependsOn"] = deps
    return wire


def _collect_batch_round(pending: list[dict[str, Any]], answers: dict[str, dict[str, Any]],
                         results: dict[str, dict[str, Any]]) -> tuple[set[str], float | None]:
    """Store this round's answers; return the ids to re-send and the longest Retry-After among them."""
    retry_ids: set[str] = set()
    longest: float | None = None
    for item in pending:
        key = item["id"].lower()
        answer = answers.get(key)
        if answer is None:
            answer = {"status": 503, "headers": {}, "body": {"error": {"code": "MissingBatchResponse",
                                                                       "message": "no response for this id"}}}
        headers = {str(k): str(v) for k, v in (answer.get("headers") or {}).items()}
        results[key] = {"status": int(answer.get("status", 0)), "headers": headers, "body": answer.get("body")}
        if results[key]["status"] in RETRY_STATUSES:
            retry_ids.add(key)
            after = parse_retry_after(next((v for k, v in headers.items() if k.lower() == "retry-after"), None))
            if after is not None:
                longest = after if longest is None else max(longest, after)
    changed = True
    while changed:  # dependents that failed only because a retried item failed go along with it
        changed = False
        for item in pending:
            key = item["id"].lower()
            deps = {str(d).lower() for d in item.get("dependsOn") or []}
            if key not in retry_ids and results[key]["status"] == 424 and deps & retry_ids:
                retry_ids.add(key)
                changed = True
    return retry_ids, longest
