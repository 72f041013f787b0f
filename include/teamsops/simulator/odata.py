"""OData query options as Microsoft Graph v1.0 applies them: ``$select``, ``$top``, ``$filter`` (the subset Graph
supports for directory and Teams resources), ``$orderby``, ``$expand``, ``$count`` and opaque paging tokens.

Pure functions and a small ``$filter`` parser/evaluator; no HTTP and no tenant state. Errors are raised as
:class:`QueryError` carrying the status, code and message Graph uses (graph-facts §2.2).
"""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Callable, Collection, Iterable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl

# ------------------------------------------------------------------------------------------------ errors


class QueryError(Exception):
    """A query option Graph would refuse: rendered as ``{"error": {"code", "message"}}`` with ``status``."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message


# ------------------------------------------------------------------------------------------------ $select / $top / ...


def parse_select(
    raw: str | None, schema: Collection[str], type_name: str, code: str = "Request_BadRequest"
) -> list[str] | None:
    """The ``$select`` list (None when absent). Unknown properties give Graph's OData error."""
    if raw is None or not raw.strip():
        return None
    selected: list[str] = []
    lower = {name.lower(): name for name in schema}
    for part in raw.split(","):
        name = part.strip()
        canonical = lower.get(name.lower())
        if canonical is None:
            raise QueryError(400, code, f"Could not find a property named '{name}' on type '{type_name}'.")
        if canonical not in selected:
            selected.append(canonical)
    return selected


def parse_top(raw: str | None, maximum: int, strict: bool = True) -> int | None:
    """``$top``. Directory collections refuse values outside 1..maximum; others (``strict=False``) clamp."""
    if raw is None or raw == "":
        return None
    try:
        value = int(raw)
    except ValueError:
        raise QueryError(
            400,
            "BadRequest",
            f"Invalid value '{raw}' for $top query option found. "
            "The $top query option requires a non-negative integer value.",
        ) from None
    if strict and not 1 <= value <= maximum:
        raise QueryError(
            400,
            "Request_BadRequest",
            f"Invalid page size specified: '{value}'. Must be between 1 and {maximum} inclusive.",
        )
    return max(1, min(value, maximum))


def parse_expand(raw: str | None) -> list[str]:
    """``$expand`` names (nested options like ``manager($select=id)`` are reduced to the name)."""
    if not raw:
        return []
    names, depth, current = [], 0, ""
    for char in raw:
        if char == "(":
            depth += 1
        elif char == ")":
            depth -= 1
        elif char == "," and depth == 0:
            names.append(current.strip())
            current = ""
            continue
        if depth == 0 and char not in "()":
            current += char
    if current.strip():
        names.append(current.strip())
    return names


def parse_orderby(raw: str | None, schema: Collection[str], type_name: str) -> list[tuple[str, bool]]:
    """``$orderby`` as ``[(property, descending)]``."""
    if not raw:
        return []
    lower = {name.lower(): name for name in schema}
    keys = []
    for part in raw.split(","):
        words = part.split()
        if not words or len(words) > 2 or (len(words) == 2 and words[1].lower() not in ("asc", "desc")):
            raise QueryError(400, "BadRequest", f"Syntax error in $orderby clause '{raw}'.")
        name = lower.get(words[0].lower())
        if name is None:
            raise QueryError(
                400, "Request_BadRequest", f"Could not find a property named '{words[0]}' on type '{type_name}'."
            )
        keys.append((name, len(words) == 2 and words[1].lower() == "desc"))
    return keys


def wants_count(query: dict[str, str], headers: Any) -> bool:
    """``$count=true`` only counts with ``ConsistencyLevel: eventual``; without the header it is silently ignored."""
    return query.get("$count", "").lower() == "true" and is_eventual(headers)


_SEARCH_CLAUSE = re.compile(r'^"([A-Za-z]+):([^"]*)"$')
_WORD = re.compile(r"[A-Z]?[a-z0-9]+|[A-Z]+(?![a-z])")


def parse_search(raw: str, searchable: Collection[str], headers: Any) -> Callable[[dict[str, Any]], bool]:
    """``$search="displayName:room" OR "mail:room"`` (aad-advanced-queries.md): clauses joined by AND / OR (AND binds
    tighter); each matches when a word of the property starts with the term (words split on spaces, symbols and
    camelCase), ignoring case. Needs ``ConsistencyLevel: eventual``."""
    if not is_eventual(headers):
        raise QueryError(
            400,
            "Request_UnsupportedQuery",
            "Request with $search query parameter only works through "
            "MSGraph with a special request header: 'ConsistencyLevel: eventual'",
        )
    allowed = {name.lower(): name for name in searchable}
    groups = []
    for alternative in re.split(r"\s+OR\s+", raw.strip()):
        clauses = []
        for clause in re.split(r"\s+AND\s+", alternative.strip()):
            match = _SEARCH_CLAUSE.match(clause.strip())
            if not match or match.group(1).lower() not in allowed:
                raise QueryError(
                    400,
                    "Request_UnsupportedQuery",
                    f"Unsupported or invalid $search clause '{clause}': "
                    f'use "property:term" with one of {", ".join(sorted(allowed.values()))}.',
                )
            clauses.append((allowed[match.group(1).lower()], match.group(2).lower()))
        groups.append(clauses)
    return lambda item: any(all(_search_hit(item.get(p), term) for p, term in clauses) for clauses in groups)


def _search_hit(value: Any, term: str) -> bool:
    if not isinstance(value, str):
        return False
    words = [w.lower() for w in _WORD.findall(value)]
    return value.lower().startswith(term) or any(word.startswith(term) for word in words)


def is_eventual(headers: Any) -> bool:
    return (headers.get("ConsistencyLevel") or "").strip().lower() == "eventual"


def project(item: dict[str, Any], properties: Iterable[str]) -> dict[str, Any]:
    """A ``$select`` projection; properties Graph returns as null are stored absent, so ``get`` gives None."""
    return {name: item.get(name) for name in properties}


# ------------------------------------------------------------------------------------------------ paging tokens


def encode_token(payload: dict[str, Any]) -> str:
    """An opaque paging/delta token (base64url JSON). Clients must treat it as opaque, as with Graph's."""
    raw = json.dumps(payload, separators=(",", ":"), sort_keys=True).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_token(token: str) -> dict[str, Any] | None:
    try:
        padded = token + "=" * (-len(token) % 4)
        value = json.loads(base64.urlsafe_b64decode(padded.encode()))
    except (ValueError, UnicodeDecodeError):
        return None
    return value if isinstance(value, dict) else None


def query_without(raw_query: str, *names: str) -> str:
    """The raw query string minus some parameters, keeping every other parameter exactly as the client sent it
    (so a nextLink embeds the original query, as Graph's do)."""
    drop = {n.lower() for n in names}
    kept = []
    for piece in raw_query.split("&") if raw_query else []:
        pairs = parse_qsl(piece, keep_blank_values=True)
        key = pairs[0][0] if pairs else piece.split("=", 1)[0]
        if key.lower() not in drop:
            kept.append(piece)
    return "&".join(kept)


# ------------------------------------------------------------------------------------------------ $filter

_TOKEN_RE = re.compile(
    r"""\s*(?:
        (?P<string>'(?:[^']|'')*')
      | (?P<guid>[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}(?![\w-]))
      | (?P<datetime>\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(?::\d{2}(?:\.\d+)?)?(?:Z|[+-]\d{2}:\d{2})?)
      | (?P<number>-?\d+(?:\.\d+)?(?![\w.]))
      | (?P<name>[A-Za-z_][A-Za-z0-9_.]*)
      | (?P<punct>[()/,:])
    )""",
    re.VERBOSE,
)
_COMPARISONS = {"eq", "ne", "gt", "ge", "lt", "le"}
_FUNCTIONS = {"startswith", "endswith", "contains"}
# Operators that make a directory query an "advanced query" (ConsistencyLevel: eventual + $count=true).
ADVANCED_OPERATORS = frozenset({"ne", "not", "endswith", "contains"})


@dataclass
class _Tok:
    kind: str
    value: str
    pos: int


def _tokenize(text: str) -> list[_Tok]:
    tokens, pos = [], 0
    while pos < len(text):
        if text[pos:].strip() == "":
            break
        match = _TOKEN_RE.match(text, pos)
        if not match or match.end() == pos:
            raise _syntax_error(text, pos)
        kind = match.lastgroup or "punct"
        tokens.append(_Tok(kind, match.group(kind), match.start(kind)))
        pos = match.end()
    return tokens


def _syntax_error(text: str, pos: int) -> QueryError:
    return QueryError(400, "BadRequest", f"Invalid filter clause: Syntax error at position {pos} in '{text}'.")


Node = Callable[[Any, dict[str, Any]], Any]


@dataclass
class Filter:
    """A parsed ``$filter``: ``matches(item)`` evaluates it against a dict (Graph property names).

    :ivar properties: top-level property paths the filter reads (e.g. ``assignedLicenses``, ``teamsApp/externalId``).
    :ivar operators: operator and function names used (lower-case), to detect advanced queries.
    """

    text: str
    root: Node
    properties: list[str] = field(default_factory=list)
    operators: set[str] = field(default_factory=set)

    def matches(self, item: dict[str, Any]) -> bool:
        return self.root(item, {}) is True

    def id_equalities(self) -> list[str] | None:
        """For ``id eq 'a' or id eq 'b'`` (the only delta filter Graph allows): the ids, else None."""
        parts = [p.strip() for p in re.split(r"\s+or\s+", self.text.strip(), flags=re.IGNORECASE)]
        ids = []
        for part in parts:
            match = re.fullmatch(r"\(?\s*id\s+eq\s+'([^']*)'\s*\)?", part, flags=re.IGNORECASE)
            if not match:
                return None
            ids.append(match.group(1))
        return ids


def parse_filter(text: str) -> Filter:
    parser = _Parser(text, _tokenize(text))
    root = parser.expression()
    if parser.peek() is not None:
        raise _syntax_error(text, parser.peek().pos)
    return Filter(text, root, parser.properties, parser.operators)


class _Parser:
    """Recursive descent over or / and / not / comparison / value, with any/all lambdas and string functions."""

    def __init__(self, text: str, tokens: list[_Tok]) -> None:
        self.text, self.tokens, self.index = text, tokens, 0
        self.properties: list[str] = []
        self.operators: set[str] = set()
        self.lambda_vars: list[str] = []

    def peek(self) -> _Tok | None:
        return self.tokens[self.index] if self.index < len(self.tokens) else None

    def next(self) -> _Tok:
        token = self.peek()
        if token is None:
            raise _syntax_error(self.text, len(self.text))
        self.index += 1
        return token

    def expect(self, value: str) -> None:
        token = self.next()
        if token.value != value:
            raise _syntax_error(self.text, token.pos)

    def keyword(self, *words: str) -> str | None:
        token = self.peek()
        if token is not None and token.kind == "name" and token.value.lower() in words:
            self.index += 1
            return token.value.lower()
        return None

    def expression(self) -> Node:
        return self._chain("or", self.conjunction, any)

    def conjunction(self) -> Node:
        return self._chain("and", self.negation, all)

    def _chain(self, word: str, operand: Callable[[], Node], combine: Callable[[Iterable[bool]], bool]) -> Node:
        """``operand (word operand)*``: ``or`` / ``and`` over operands that are exactly True, left to right and
        short-circuiting; a single operand is returned as it is (it may be a value, not a condition)."""
        operands = [operand()]
        while self.keyword(word):
            operands.append(operand())
        if len(operands) == 1:
            return operands[0]
        return lambda item, env: combine(node(item, env) is True for node in operands)

    def negation(self) -> Node:
        if self.keyword("not"):
            self.operators.add("not")
            inner = self.negation()
            return lambda item, env: inner(item, env) is not True
        return self.comparison()

    def comparison(self) -> Node:
        left = self.value()
        op = self.keyword(*_COMPARISONS)
        if op:
            self.operators.add(op)
            right = self.value()
            return lambda item, env: _compare(op, left(item, env), right(item, env))
        if self.keyword("in"):
            self.operators.add("in")
            self.expect("(")
            options = [self.value()]
            while self.peek() is not None and self.peek().value == ",":
                self.next()
                options.append(self.value())
            self.expect(")")
            return lambda item, env: any(_compare("eq", left(item, env), o(item, env)) for o in options)
        return left

    def value(self) -> Node:
        token = self.next()
        if token.value == "(":
            inner = self.expression()
            self.expect(")")
            return inner
        if token.kind == "string":
            literal = token.value[1:-1].replace("''", "'")
            return lambda item, env: literal
        if token.kind in ("guid", "datetime"):
            literal = token.value
            return lambda item, env: literal
        if token.kind == "number":
            number = float(token.value) if "." in token.value else int(token.value)
            return lambda item, env: number
        if token.kind != "name":
            raise _syntax_error(self.text, token.pos)
        lowered = token.value.lower()
        if lowered in ("true", "false", "null"):
            constant = {"true": True, "false": False, "null": None}[lowered]
            return lambda item, env: constant
        if lowered in _FUNCTIONS and self.peek() is not None and self.peek().value == "(":
            return self.function(lowered)
        return self.path(token)

    def function(self, name: str) -> Node:
        self.operators.add(name)
        self.expect("(")
        subject = self.value()
        self.expect(",")
        argument = self.value()
        self.expect(")")
        check = {"startswith": str.startswith, "endswith": str.endswith, "contains": str.__contains__}[name]

        def evaluate(item: Any, env: dict[str, Any]) -> bool:
            a, b = subject(item, env), argument(item, env)
            return isinstance(a, str) and isinstance(b, str) and check(a.lower(), b.lower())

        return evaluate

    def path(self, first: _Tok) -> Node:
        segments = [first.value]
        while self.peek() is not None and self.peek().value == "/":
            self.next()
            segment = self.next()
            if segment.kind != "name":
                raise _syntax_error(self.text, segment.pos)
            if segment.value.lower() in ("any", "all") and self.peek() is not None and self.peek().value == "(":
                return self.lambda_(segments, segment.value.lower())
            segments.append(segment.value)
        self._note_property(segments)
        return lambda item, env: _resolve(item, env, segments)

    def lambda_(self, segments: list[str], kind: str) -> Node:
        self._note_property(segments)
        self.operators.add(kind)
        self.expect("(")
        if self.peek() is not None and self.peek().value == ")":  # any() = "collection is not empty"
            self.next()
            return lambda item, env: bool(_resolve(item, env, segments))
        var = self.next()
        self.expect(":")
        self.lambda_vars.append(var.value)
        body = self.expression()
        self.lambda_vars.pop()
        self.expect(")")
        combine = any if kind == "any" else all

        def evaluate(item: Any, env: dict[str, Any]) -> bool:
            values = _resolve(item, env, segments) or []
            return combine(body(item, {**env, var.value: v}) is True for v in values)

        return evaluate

    def _note_property(self, segments: list[str]) -> None:
        if segments[0] in self.lambda_vars:
            return
        names = [s for s in segments if not s.lower().startswith("microsoft.graph.")]
        if names:
            self.properties.append("/".join(names))


def _resolve(item: Any, env: dict[str, Any], segments: list[str]) -> Any:
    current: Any = env.get(segments[0], item)
    for index, segment in enumerate(segments):
        if index == 0 and segments[0] in env:
            continue
        if segment.lower().startswith("microsoft.graph."):
            continue  # an OData type cast: (microsoft.graph.aadUserConversationMember/userId eq '...')
        if not isinstance(current, dict):
            return None
        if segment in current:
            current = current[segment]
        else:
            lowered = segment.lower()
            current = next((v for k, v in current.items() if k.lower() == lowered), None)
    return current


def _compare(op: str, left: Any, right: Any) -> bool:
    if isinstance(left, str) and isinstance(right, str):
        left, right = left.lower(), right.lower()  # directory string comparisons ignore case
    if op == "eq":
        return left == right
    if op == "ne":
        return left != right
    if (
        left is None
        or right is None
        or type(left) is not type(right)
        and not (isinstance(left, (int, float)) and isinstance(right, (int, float)))
    ):
        return False
    return {"gt": left > right, "ge": left >= right, "lt": left < right, "le": left <= right}[op]
