"""Typed errors of the Graph client, and the ONE function that maps an HTTP status onto them.

Hierarchy (every class is a :class:`GraphError`, so ``except GraphError`` catches all of them)::

    GraphError                      status, code, message, request_id, client_request_id, date, inner, attempts, advice
    ├── GraphConfigError            invalid connection settings (also a ValueError); names the field and the fix
    ├── GraphAuthError              token could not be acquired (AADSTS codes) or Graph said 401
    ├── GraphBadRequest             400
    ├── GraphForbidden              403; ``required_permissions`` and where to grant them
    ├── GraphNotFound               404
    ├── GraphConflict               409
    ├── GraphThrottled              429 after the retry budget; ``retry_after``
    ├── GraphServerError            5xx (503/504 after the retry budget)
    ├── GraphConnectionError        network failure; ``outcome_unknown`` for a non-idempotent write cut mid-flight
    ├── ReadOnlyError               a write attempted with ``access="read"`` (nothing was sent)
    ├── DeltaResyncRequired         the delta token is no longer valid: start a full round again
    ├── UnsafeNextLinkError         a link points away from the configured Graph host (CWE-918); nothing was sent
    └── BotError                    Bot Framework connector errors (ErrorResponse code + advice)

Messages never contain secrets or tokens: they are built from Graph's error body and our own advice only.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import httpx

__all__ = [
    "BotError",
    "DeltaResyncRequired",
    "GraphAuthError",
    "GraphBadRequest",
    "GraphConfigError",
    "GraphConflict",
    "GraphConnectionError",
    "GraphError",
    "GraphForbidden",
    "GraphNotFound",
    "GraphServerError",
    "GraphThrottled",
    "ReadOnlyError",
    "UnsafeNextLinkError",
    "error_class_for_status",
    "error_from_response",
    "parse_error_body",
]

_MAX_TEXT = 300  # how much of a non-JSON error body to keep


class GraphError(Exception):
    """An error from Microsoft Graph (or from the client on its behalf).

    :param status: HTTP status (None when no response was received).
    :param code: Graph's ``error.code`` (e.g. ``Authorization_RequestDenied``) or an AADSTS code.
    :param message: Graph's ``error.message`` or our description.
    :param request_id: the response ``request-id`` (quote it to Microsoft support).
    :param client_request_id: the ``client-request-id`` this client sent.
    :param date: ``innerError.date``.
    :param inner: the raw ``innerError`` object.
    :param attempts: how many times the request was sent.
    :param total_wait: seconds spent waiting between attempts.
    :param advice: what to do about it, in plain words.
    """

    def __init__(
        self,
        status: int | None = None,
        code: str | None = None,
        message: str = "",
        request_id: str | None = None,
        client_request_id: str | None = None,
        date: str | None = None,
        inner: dict[str, Any] | None = None,
        attempts: int = 1,
        *,
        total_wait: float = 0.0,
        advice: str | None = None,
        method: str | None = None,
        url: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        self.status = status
        self.code = code
        self.message = message
        self.request_id = request_id
        self.client_request_id = client_request_id
        self.date = date
        self.inner = inner or {}
        self.attempts = attempts
        self.total_wait = total_wait
        self.advice = advice
        self.method = method
        self.url = url
        self.headers = dict(headers or {})  # response headers (e.g. Location, x-ms-throttle-scope)
        super().__init__(str(self))

    def __str__(self) -> str:
        head = self._code_label()
        text = f"{head}: {self.message}" if head else self.message
        ids = self._ids()
        if ids:
            text += f" ({', '.join(ids)})"
        if self.attempts > 1:
            text += f" [after {self.attempts} attempts, {self.total_wait:.1f} s of waiting]"
        if self.advice:
            text += f" -- {self.advice}"
        return text

    def summary(self) -> str:
        """One sentence for an operator: what to fix first, then the code and ids to quote to support.

        ``str(error)`` keeps Graph's full message for logs; this is what a UI or a failed check shows.
        """
        if not self.advice:
            return str(self)
        advice = self.advice[0].upper() + self.advice[1:]
        ref = ", ".join(str(part) for part in (self._code_label(), *self._ids()) if part)
        return f"{advice.rstrip('.')}. [{ref}]" if ref else f"{advice.rstrip('.')}."

    def _code_label(self) -> str | None:
        return " ".join(str(part) for part in (self.status, self.code) if part not in (None, "")) or None

    def _ids(self) -> list[str]:
        return [f"{name} {value}" for name, value in self._id_pairs() if value]

    def _id_pairs(self) -> list[tuple[str, str | None]]:
        """Identifiers worth quoting to support, as (label, value)."""
        return [("request-id", self.request_id), ("client-request-id", self.client_request_id)]

    def __repr__(self) -> str:
        return (f"{type(self).__name__}(status={self.status!r}, code={self.code!r}, "
                f"request_id={self.request_id!r}, attempts={self.attempts})")


class GraphConfigError(GraphError, ValueError):
    """Invalid connection settings. The message names the field and says how to fix it."""

    def __init__(self, message: str, field: str | None = None) -> None:
        self.field = field
        super().__init__(message=message)


class GraphAuthError(GraphError):
    """No usable token: the identity platform refused (AADSTS codes), was unreachable, or Graph answered 401.

    :param aadsts_codes: the numeric AADSTS codes (``error_codes`` of the token response).
    :param error: the OAuth ``error`` (``invalid_client``, ``invalid_tenant`` ...).
    :param trace_id: / :param correlation_id: the identity platform's ids of the failed token request.
    """

    def __init__(self, *args: Any, aadsts_codes: list[int] | None = None, error: str | None = None,
                 trace_id: str | None = None, correlation_id: str | None = None, **kwargs: Any) -> None:
        self.aadsts_codes = list(aadsts_codes or [])
        self.error = error
        self.trace_id = trace_id
        self.correlation_id = correlation_id
        super().__init__(*args, **kwargs)

    def _id_pairs(self) -> list[tuple[str, str | None]]:
        return [*super()._id_pairs(), ("trace ID", self.trace_id), ("correlation ID", self.correlation_id)]


class GraphBadRequest(GraphError):
    """400: Graph rejected the request as malformed or unsupported."""


class GraphForbidden(GraphError):
    """403: the app lacks an application permission (or the target is protected).

    :param required_permissions: permissions any one of which the endpoint accepts (least privileged first).
    """

    def __init__(self, *args: Any, required_permissions: tuple[str, ...] = (), **kwargs: Any) -> None:
        self.required_permissions = tuple(required_permissions)
        super().__init__(*args, **kwargs)


class GraphNotFound(GraphError):
    """404: the object does not exist (or is not visible to the app)."""


class GraphConflict(GraphError):
    """409: the change conflicts with the current state (e.g. already installed)."""


class GraphThrottled(GraphError):
    """429 that outlived the retry budget.

    :param retry_after: the server's last ``Retry-After`` in seconds (None when absent).
    """

    def __init__(self, *args: Any, retry_after: float | None = None, **kwargs: Any) -> None:
        self.retry_after = retry_after
        super().__init__(*args, **kwargs)


class GraphServerError(GraphError):
    """5xx: a Graph-side failure (503/504 only after the retry budget)."""

    def __init__(self, *args: Any, retry_after: float | None = None, **kwargs: Any) -> None:
        self.retry_after = retry_after
        super().__init__(*args, **kwargs)


class GraphConnectionError(GraphError):
    """The request did not get a response (connect error, reset, timeout, protocol error).

    :param outcome_unknown: True when a non-idempotent write may or may not have been applied: verify before
        sending it again (it is never re-sent automatically).
    """

    def __init__(self, *args: Any, outcome_unknown: bool = False, **kwargs: Any) -> None:
        self.outcome_unknown = outcome_unknown
        super().__init__(*args, **kwargs)


class ReadOnlyError(GraphError):
    """A write was attempted through a connection with ``access="read"``; nothing was sent."""

    def __init__(self, message: str, *, method: str | None = None, url: str | None = None) -> None:
        super().__init__(message=message, method=method, url=url)


class DeltaResyncRequired(GraphError):
    """The delta (or skip) token is no longer valid: discard it and run a full (initial) delta round.

    :param reason: ``"reset"`` (410 Gone with a Location), ``"syncStateNotFound"`` or ``"resyncRequired"``.
    :param location: the ``Location`` header of a 410 (the request with an empty ``$deltatoken``), if any.
    """

    def __init__(self, *args: Any, reason: str = "", location: str | None = None, **kwargs: Any) -> None:
        self.reason = reason
        self.location = location
        super().__init__(*args, **kwargs)


class UnsafeNextLinkError(GraphError):
    """A link (nextLink, deltaLink, start URL, serviceUrl) points outside the configured host or is not https.

    The bearer token would leave for another host (CWE-918), so the link is refused and nothing is sent.
    """

    def __init__(self, message: str, *, url: str | None = None) -> None:
        super().__init__(message=message, url=url)


class BotError(GraphError):
    """A Bot Framework connector error (``ErrorResponse`` code such as ``BotNotInConversationRoster``).

    :param correlation_id: the ``X-Correlating-OperationId`` response header.
    """

    def __init__(self, *args: Any, correlation_id: str | None = None, **kwargs: Any) -> None:
        self.correlation_id = correlation_id
        super().__init__(*args, **kwargs)

    def __str__(self) -> str:
        text = super().__str__()
        if self.correlation_id:
            text += f" (X-Correlating-OperationId {self.correlation_id})"
        return text


_STATUS_CLASSES: dict[int, type[GraphError]] = {
    400: GraphBadRequest,
    401: GraphAuthError,
    403: GraphForbidden,
    404: GraphNotFound,
    409: GraphConflict,
    429: GraphThrottled,
}


def error_class_for_status(status: int) -> type[GraphError]:
    """The one place that maps an HTTP status onto an error class."""
    if status in _STATUS_CLASSES:
        return _STATUS_CLASSES[status]
    if status >= 500:
        return GraphServerError
    return GraphError


def parse_error_body(response: httpx.Response) -> tuple[str | None, str, dict[str, Any]]:
    """Return ``(code, message, innerError)`` from a Graph error response (JSON or not)."""
    try:
        body = response.json()
    except (json.JSONDecodeError, UnicodeDecodeError, ValueError):
        text = response.text.strip()[:_MAX_TEXT]
        return None, text or response.reason_phrase or "no error body", {}
    error = body.get("error") if isinstance(body, dict) else None
    if isinstance(error, dict):
        inner = error.get("innerError") or error.get("innererror") or {}
        return error.get("code"), str(error.get("message") or ""), inner if isinstance(inner, dict) else {}
    if isinstance(error, str):  # some services answer {"error": "text"}
        return None, error[:_MAX_TEXT], {}
    return None, json.dumps(body)[:_MAX_TEXT], {}


def error_from_response(
    response: httpx.Response,
    *,
    client_request_id: str | None = None,
    attempts: int = 1,
    total_wait: float = 0.0,
    advice: str | None = None,
    retry_after: float | None = None,
    **extra: Any,
) -> GraphError:
    """Build the typed error for a failed Graph response (status -> class via :func:`error_class_for_status`)."""
    code, message, inner = parse_error_body(response)
    cls = error_class_for_status(response.status_code)
    request = _request_of(response)
    kwargs: dict[str, Any] = dict(extra)
    if cls in (GraphThrottled, GraphServerError):
        kwargs["retry_after"] = retry_after
    return cls(
        response.status_code,
        code,
        message,
        response.headers.get("request-id") or inner.get("request-id"),
        client_request_id or response.headers.get("client-request-id") or inner.get("client-request-id"),
        inner.get("date"),
        inner,
        attempts,
        total_wait=total_wait,
        advice=advice,
        method=request.method if request is not None else None,
        url=str(request.url) if request is not None else None,
        headers=dict(response.headers),
        **kwargs,
    )


def _request_of(response: httpx.Response) -> httpx.Request | None:
    """The request of a response, or None for a response built without one (httpx raises instead)."""
    try:
        return response.request
    except RuntimeError:
        return None
