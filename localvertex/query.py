"""List filters, `order_by` and pages as Vertex AI's list methods take them (https://google.aip.dev/160).

Each list method names the fields it filters on and the operators each takes; a filter is checked before anything is
read, so an unsupported one is refused even when nothing is stored. Field names are snake_case or camelCase.
"""

from __future__ import annotations

import datetime as dt
import fnmatch
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from localvertex.errors import VertexError

EQUAL = frozenset({"=", "!="})
COMPARE = frozenset({"=", "!=", "<", ">", "<=", ">="})
HAS = frozenset({":"})
MAP = frozenset({"=", "!=", ":"})


@dataclass(frozen=True)
class Schema:
    """What one list method supports: filter fields with their operators, order_by fields, and which are times."""

    method: str
    fields: Mapping[str, frozenset[str]]
    order_fields: tuple[str, ...]
    times: frozenset[str] = frozenset()
    default_order: str = ""


MODELS = Schema(
    "ListModels",
    {"model": EQUAL, "display_name": EQUAL, "labels": MAP, "base_model_name": frozenset({"="})},
    ("display_name", "create_time", "update_time"),
    frozenset({"create_time", "update_time"}),
)
MODEL_VERSIONS = Schema(
    "ListModelVersions", {"labels": MAP}, ("create_time", "update_time"), frozenset({"create_time", "update_time"})
)
ENDPOINTS = Schema(
    "ListEndpoints",
    {"endpoint": EQUAL, "display_name": EQUAL, "labels": MAP, "base_model_name": frozenset({"="})},
    ("display_name", "create_time", "update_time"),
    frozenset({"create_time", "update_time"}),
)
PIPELINE_JOBS = Schema(
    "ListPipelineJobs",
    {
        "pipeline_name": EQUAL,
        "display_name": EQUAL | HAS,
        "pipeline_job_user_id": EQUAL | HAS,
        "state": EQUAL,
        "create_time": COMPARE,
        "update_time": COMPARE,
        "end_time": COMPARE,
        "labels": MAP,
        "template_uri": EQUAL | HAS,
        "template_metadata.version": EQUAL | HAS,
        "schedule_name": EQUAL,  # what PipelineJobSchedule.list_jobs() sends
    },
    ("create_time", "update_time", "end_time", "start_time"),
    frozenset({"create_time", "update_time", "end_time", "start_time"}),
    default_order="create_time desc",
)
SCHEDULES = Schema(
    "ListSchedules",
    {
        "display_name": EQUAL | HAS,
        "state": EQUAL,
        "create_pipeline_job_request": HAS,
        "create_time": COMPARE,
        "start_time": COMPARE | HAS,
        "end_time": COMPARE | HAS,
        "next_run_time": COMPARE | HAS,
    },
    ("create_time", "start_time", "end_time", "next_run_time"),
    frozenset({"create_time", "start_time", "end_time", "next_run_time"}),
    default_order="create_time desc",
)

Predicate = Callable[[Mapping], bool]
_TOKEN = re.compile(r'\s*(?:(\()|(\))|("(?:[^"\\]|\\.)*")|(<=|>=|!=|=|<|>|:)|([^\s()"<>=!:]+))')


def compile_filter(text: str, schema: Schema) -> Predicate:
    """A predicate over a resource's view (snake_case keys); a filter the method does not support is refused."""
    tokens = _tokens(text)
    if not tokens:
        return lambda view: True
    parser = _Parser(tokens, text, schema)
    predicate = parser.expression()
    if parser.position != len(tokens):
        raise _unsupported(text, schema, f"unexpected {tokens[parser.position][1]!r}")
    return predicate


def order(items: list, order_by: str, schema: Schema, view: Callable) -> list:
    """Sorted by `order_by` (`create_time desc, display_name`), else by the method's default order."""
    clauses = [c.strip() for c in (order_by or schema.default_order).split(",") if c.strip()]
    parsed = []
    for clause in clauses:
        name, _, direction = clause.partition(" ")
        name, direction = _snake_path(name.strip()), direction.strip().lower()
        if name not in schema.order_fields or direction not in ("", "asc", "desc"):
            raise VertexError(
                "INVALID_ARGUMENT",
                f"Unsupported orderBy {order_by!r}: {schema.method} orders by {', '.join(schema.order_fields)}, "
                "each optionally followed by asc or desc",
            )
        parsed.append((name, direction == "desc"))
    ordered = list(items)
    for name, descending in reversed(parsed):
        ordered.sort(key=lambda item, n=name: _sort_key(view(item).get(n), n in schema.times), reverse=descending)
    return ordered


def listing(items, request, schema: Schema, view: Callable) -> tuple[list, str]:
    """A List method's answer: `request.filter` (checked first, so a bad one is refused on an empty store too),
    `request.order_by`, then one page and the next page's token."""
    matches = compile_filter(request.filter, schema)
    found = [item for item in items if matches(view(item))]
    return page(order(found, request.order_by, schema, view), request.page_size, request.page_token)


def page(items: list, page_size: int, page_token: str, default_size: int = 100) -> tuple[list, str]:
    """One page and the token of the next ('' on the last page)."""
    try:
        start = int(page_token or 0)
    except ValueError:
        raise VertexError("INVALID_ARGUMENT", f"pageToken {page_token!r} is not one this server gave") from None
    size = page_size if page_size > 0 else default_size
    return items[start : start + size], str(start + size) if start + size < len(items) else ""


def stamp(value) -> str:
    """A view's time: RFC 3339 in UTC, '' when unset (proto-plus gives datetimes, or None)."""
    return value.astimezone(dt.UTC).isoformat() if value else ""


# The parser: expression := term (AND term)*; term := factor (OR factor)*, OR binding tighter as AIP-160 says;
# factor := [NOT | -] ( '(' expression ')' | field operator value ).


class _Parser:
    def __init__(self, tokens: list[tuple[str, str]], text: str, schema: Schema) -> None:
        self.tokens, self.text, self.schema, self.position = tokens, text, schema, 0

    def peek(self) -> tuple[str, str] | None:
        return self.tokens[self.position] if self.position < len(self.tokens) else None

    def take(self) -> tuple[str, str]:
        token = self.peek()
        if token is None:
            raise _unsupported(self.text, self.schema, "it ends too early")
        self.position += 1
        return token

    def expression(self) -> Predicate:
        parts = [self.term()]
        while self.peek() == ("word", "AND"):
            self.take()
            parts.append(self.term())
        return parts[0] if len(parts) == 1 else lambda view: all(p(view) for p in parts)

    def term(self) -> Predicate:
        parts = [self.factor()]
        while self.peek() == ("word", "OR"):
            self.take()
            parts.append(self.factor())
        return parts[0] if len(parts) == 1 else lambda view: any(p(view) for p in parts)

    def factor(self) -> Predicate:
        kind, value = self.take()
        if (kind, value) == ("word", "NOT") or (kind == "word" and value == "-"):
            inner = self.factor()
            return lambda view: not inner(view)
        if kind == "word" and value.startswith("-") and len(value) > 1:
            self.tokens[self.position - 1] = ("word", value[1:])
            self.position -= 1
            inner = self.factor()
            return lambda view: not inner(view)
        if kind == "open":
            inner = self.expression()
            if self.take()[0] != "close":
                raise _unsupported(self.text, self.schema, "a parenthesis is not closed")
            return inner
        if kind not in ("word", "string"):
            raise _unsupported(self.text, self.schema, f"unexpected {value!r}")
        path = value
        while self.peek() and self.peek()[0] == "string" and path.endswith("."):  # labels."a key"
            path += self.take()[1]
        operator_kind, operator = self.take()
        if operator_kind != "operator":
            raise _unsupported(self.text, self.schema, f"{path} has no comparison")
        value_kind, operand = self.take()
        if value_kind not in ("word", "string"):
            raise _unsupported(self.text, self.schema, f"{path}{operator} has no value")
        return self.comparison(path, operator, _unquote(operand) if value_kind == "string" else operand)

    def comparison(self, path: str, operator: str, operand: str) -> Predicate:
        field, key = _split_path(path)
        allowed = self.schema.fields.get(field)
        if allowed is None:
            raise VertexError(
                "INVALID_ARGUMENT",
                f"Unsupported filter {self.text!r}: {self.schema.method} filters on "
                f"{', '.join(self.schema.fields)}, not {path!r}",
            )
        if operator not in allowed:
            raise VertexError(
                "INVALID_ARGUMENT",
                f"Unsupported filter {self.text!r}: {field} takes {' '.join(sorted(allowed))}, not {operator!r}",
            )
        if field == "labels":
            return _label_test(key, operator, operand)
        if key is not None:
            raise _unsupported(self.text, self.schema, f"{field} has no keys")
        if field in self.schema.times and operator != ":":
            moment = _time(operand, self.text)
            return lambda view: _compare(_time(view.get(field) or "", "", lenient=True), operator, moment)
        return lambda view: _compare_text(str(view.get(field) or ""), operator, operand)


def _label_test(key: str | None, operator: str, operand: str) -> Predicate:
    if key is None:  # labels:key
        if operator != ":":
            raise VertexError("INVALID_ARGUMENT", "labels takes labels.KEY=VALUE or labels:KEY")
        return lambda view: operand in view.get("labels", {})
    if operator == ":":  # labels.key:*
        return lambda view: key in view.get("labels", {}) and fnmatch.fnmatchcase(view["labels"][key], operand)
    return lambda view: _compare_text(view.get("labels", {}).get(key), operator, operand)


def _compare_text(actual: str | None, operator: str, operand: str) -> bool:
    if operator == ":":
        return bool(actual) and fnmatch.fnmatchcase(actual, operand if "*" in operand else f"*{operand}*")
    if operator == "=":
        return actual == operand
    return actual != operand


def _compare(actual, operator: str, operand) -> bool:
    if actual is None:
        return operator == "!="
    return {
        "=": actual == operand,
        "!=": actual != operand,
        "<": actual < operand,
        ">": actual > operand,
        "<=": actual <= operand,
        ">=": actual >= operand,
    }[operator]


def _time(text: str, filter_text: str, lenient: bool = False):
    try:
        return dt.datetime.fromisoformat(text.replace("Z", "+00:00")).astimezone(dt.UTC)
    except ValueError:
        if lenient:
            return None
        raise VertexError(
            "INVALID_ARGUMENT", f"Unsupported filter {filter_text!r}: {text!r} is not an RFC 3339 time"
        ) from None


def _sort_key(value, is_time: bool):
    if is_time:
        value = _time(value or "", "", lenient=True)
    return (value is not None and value != "", value if value is not None else "")


def _tokens(text: str) -> list[tuple[str, str]]:
    tokens, position = [], 0
    while position < len(text):
        if text[position:].strip() == "":
            break
        found = _TOKEN.match(text, position)
        if not found:
            raise VertexError("INVALID_ARGUMENT", f"Unsupported filter {text!r}: cannot read it at {text[position:]!r}")
        position = found.end()
        open_, close, string, operator, word = found.groups()
        if open_:
            tokens.append(("open", open_))
        elif close:
            tokens.append(("close", close))
        elif string:
            tokens.append(("string", string))
        elif operator:
            tokens.append(("operator", operator))
        else:
            tokens.append(("word", word))
    return tokens


def _split_path(path: str) -> tuple[str, str | None]:
    if path.startswith("labels."):
        return "labels", _unquote(path.removeprefix("labels."))
    return _snake_path(path), None


def _snake_path(path: str) -> str:
    return ".".join(re.sub(r"(?<!^)(?=[A-Z])", "_", part).lower() for part in path.split("."))


def _unquote(text: str) -> str:
    if len(text) >= 2 and text[0] == text[-1] == '"':
        return re.sub(r"\\(.)", r"\1", text[1:-1])
    return text


def _unsupported(text: str, schema: Schema, why: str) -> VertexError:
    return VertexError(
        "INVALID_ARGUMENT",
        f'Unsupported filter {text!r} ({why}): write field="value" comparisons on '
        f"{', '.join(schema.fields)}, joined by AND or OR",
    )
