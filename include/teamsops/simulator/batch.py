"""JSON batching (``POST /v1.0/$batch``, graph-facts §4): parse and validate the envelope, order the inner requests by
``dependsOn``, build each inner :class:`SimRequest`, and render each inner response as a batch item.

Rules enforced for the whole batch (400 when broken): at most 20 requests; every request has a string ``id``
(unique, case-insensitively), a ``method`` and a *relative* ``url``; ``headers`` with a ``Content-Type`` whenever
a ``body`` is present; ``dependsOn`` names existing ids and forms no cycle. Executing the items, throttling them
one by one and answering 424 for dependents of a failed item is the simulator's job (``app.py``).
"""

from __future__ import annotations

import base64
import json
import random
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import unquote

from teamsops.simulator.http import Headers, SimRequest, SimResponse

MAX_BATCH_REQUESTS = 20
BATCH_PATH = "/v1.0/$batch"

# Inner response headers worth returning, in Graph's spelling (the server-level ones such as request-id stay on the
# outer response, as in real batch responses).
_ITEM_HEADERS = {
    "content-type": "Content-Type", "retry-after": "Retry-After", "odata-version": "OData-Version",
    "cache-control": "Cache-Control", "location": "Location", "x-ms-resource-unit": "x-ms-resource-unit",
    "x-ms-throttle-scope": "x-ms-throttle-scope", "x-ms-throttle-information": "x-ms-throttle-information",
    "x-ms-throttle-limit-percentage": "x-ms-throttle-limit-percentage", "etag": "ETag",
}  # fmt: skip


class BatchError(ValueError):
    """The batch envelope is malformed; the whole batch is refused with 400 and this message."""


@dataclass
class BatchItem:
    id: str
    method: str
    url: str
    headers: dict[str, str] = field(default_factory=dict)
    body: Any = None
    depends_on: list[str] = field(default_factory=list)


def is_batch(req: SimRequest) -> bool:
    return req.path.rstrip("/") == BATCH_PATH


def parse_batch(raw: bytes) -> list[BatchItem]:
    """The inner requests of a ``$batch`` body, validated (raises :class:`BatchError`)."""
    try:
        payload = json.loads(raw or b"null")
    except ValueError:
        raise BatchError("Invalid batch payload: the body is not valid JSON.") from None
    requests = payload.get("requests") if isinstance(payload, dict) else None
    if not isinstance(requests, list) or not requests:
        raise BatchError("Invalid batch payload: the body must be an object with a non-empty 'requests' array.")
    if len(requests) > MAX_BATCH_REQUESTS:
        raise BatchError(f"The number of batch requests ({len(requests)}) exceeds the maximum of {MAX_BATCH_REQUESTS}. "
                         "Split the requests into several batches.")  # fmt: skip
    items = [_parse_item(index, entry) for index, entry in enumerate(requests)]
    seen: set[str] = set()
    for item in items:
        if item.id.lower() in seen:
            raise BatchError(f"Batch request id '{item.id}' is used more than once; ids must be unique "
                             "(case-insensitive).")  # fmt: skip
        seen.add(item.id.lower())
    known = {item.id.lower() for item in items}
    for item in items:
        missing = [d for d in item.depends_on if d.lower() not in known]
        if missing:
            raise BatchError(f"Batch request '{item.id}' depends on unknown id(s): {', '.join(missing)}.")
    return items


def _parse_item(index: int, entry: Any) -> BatchItem:
    if not isinstance(entry, dict):
        raise BatchError(f"Batch request at index {index} must be a JSON object.")
    for name in ("id", "method", "url"):
        value = entry.get(name)
        if not isinstance(value, str) or not value.strip():
            raise BatchError(f"Batch request at index {index} is missing the required string property '{name}'.")
    url = entry["url"].strip()
    if "://" in url.split("?", 1)[0]:
        raise BatchError(f"Batch request '{entry['id']}' has an absolute url; use a url relative to the version, "
                         "e.g. '/users/{id}'.")  # fmt: skip
    headers = entry.get("headers") or {}
    if not isinstance(headers, dict) or not all(isinstance(v, str) for v in headers.values()):
        raise BatchError(f"Batch request '{entry['id']}' has invalid 'headers'; use an object of strings.")
    body = entry.get("body")
    if body is not None and not any(k.lower() == "content-type" for k in headers):
        raise BatchError(f"Batch request '{entry['id']}' has a body but no 'Content-Type' header; 'headers' with "
                         "'Content-Type' is required when 'body' is present.")  # fmt: skip
    depends = entry.get("dependsOn") or []
    if not isinstance(depends, list) or not all(isinstance(d, str) for d in depends):
        raise BatchError(f"Batch request '{entry['id']}' has an invalid 'dependsOn'; use an array of ids.")
    return BatchItem(entry["id"], entry["method"].upper(), url, dict(headers), body, list(depends))


def execution_order(items: list[BatchItem]) -> list[BatchItem]:
    """Items in an order where every item follows its dependencies (listed order otherwise); rejects cycles."""
    by_id = {item.id.lower(): item for item in items}
    ordered: list[BatchItem] = []
    state: dict[str, str] = {}

    def visit(item: BatchItem, trail: tuple[str, ...]) -> None:
        key = item.id.lower()
        if state.get(key) == "done":
            return
        if state.get(key) == "visiting":
            raise BatchError(f"Batch requests have a circular dependsOn: {' -> '.join(trail + (item.id,))}.")
        state[key] = "visiting"
        for dep in item.depends_on:
            visit(by_id[dep.lower()], trail + (item.id,))
        state[key] = "done"
        ordered.append(item)

    for item in items:
        visit(item, ())
    return ordered


def inner_request(item: BatchItem, outer: SimRequest) -> SimRequest:
    """The :class:`SimRequest` for one batch item (url made absolute under ``/v1.0``; only the item's headers)."""
    path, _, query = item.url.partition("?")
    headers = Headers(item.headers)
    return SimRequest(
        method=item.method,
        path="/v1.0/" + unquote(path).lstrip("/"),
        raw_query=query,
        headers=headers,
        body=_body_bytes(item.body, headers.get("content-type", "")),
        base_url=outer.base_url,
    )


def _body_bytes(body: Any, content_type: str) -> bytes:
    if body is None:
        return b""
    if isinstance(body, str) and "json" not in content_type.lower():
        try:  # non-JSON bodies travel base64-encoded in a batch
            return base64.b64decode(body, validate=True)
        except ValueError:
            return body.encode()
    return json.dumps(body).encode()


def item_response(item_id: str, resp: SimResponse) -> dict:
    """One entry of the batch ``responses`` array."""
    headers = {_ITEM_HEADERS[k]: v for k, v in resp.headers.items() if k in _ITEM_HEADERS}
    entry: dict[str, Any] = {"id": item_id, "status": resp.status, "headers": headers}
    if resp.body is None or resp.body == b"":
        return entry
    if isinstance(resp.body, (dict, list)):
        entry["body"] = resp.body
        return entry
    raw = resp.body_bytes()
    if "json" in headers.get("Content-Type", "").lower():
        try:
            entry["body"] = json.loads(raw)
            return entry
        except ValueError:
            pass
    entry["body"] = base64.b64encode(raw).decode()  # non-JSON inner bodies come back base64-encoded
    return entry


def shuffled(entries: list[dict], rng: random.Random) -> list[dict]:
    """Graph answers batch items in any order; clients must correlate by id."""
    out = list(entries)
    rng.shuffle(out)
    return out
