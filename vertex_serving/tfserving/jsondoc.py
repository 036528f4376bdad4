"""TF Serving's JSON dialect: `NaN`, `Infinity` and `-Infinity` in and out, any nesting depth, its parse errors.

TF Serving parses request bodies with rapidjson (iterative parsing, NaN/Inf tokens, stop after the root value:
`tensorflow_serving/util/json_tensor.cc`) and writes non-finite floats as those tokens (`api_rest.md`, "JSON
conformance"). Strict JSON goes through orjson; only a body orjson refuses takes the slower reader below, which
accepts what rapidjson accepts and words its refusals as rapidjson does.
"""

from __future__ import annotations

import contextlib
import gc
import json
import math
import re
from decimal import Decimal
from typing import NamedTuple

import numpy as np
import orjson

from vertex_serving.tfserving.errors import ServingError

_OPTIONS = orjson.OPT_SERIALIZE_NUMPY
_NON_FINITE = {
    "nan": orjson.Fragment(b"NaN"),
    "inf": orjson.Fragment(b"Infinity"),
    "-inf": orjson.Fragment(b"-Infinity"),
}
DEBUG_STRING_BYTES = 256  # json_tensor.cc kMaxJsonDebugStringBytes
_SMALL = 4096  # below this many bytes a plain substring search is the quicker scan


class Body(NamedTuple):
    value: object
    raw: bytes  # what was sent: cheap scans of it spare the tensor conversion per-value checks


def parse_body(raw: bytes) -> Body:
    """The request body as TF Serving's parser reads it; a refusal is INVALID_ARGUMENT in rapidjson's words."""
    return fast_body(raw) or Body(_lenient(raw), raw)


def fast_body(raw: bytes) -> Body | None:
    """The body when it is strict JSON (orjson's C parser); None when only the slower readers can tell."""
    try:
        value = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return None
    return Body(value, raw)


def may_hold_literals(raw: bytes) -> bool:
    """Whether `true`, `false` or `null` occurs (in a string too)."""
    if b"u" not in raw and b"l" not in raw:  # true and null hold a u, false and null an l: a memchr each
        return False
    if len(raw) < _SMALL:
        return b"true" in raw or b"false" in raw or b"null" in raw
    return _occurs(raw, b"true", 2) or _occurs(raw, b"false", 0) or _occurs(raw, b"null", 2)


def count_quotes(raw: bytes, limit: int) -> int:
    """How many `"` the body holds, counting no further than `limit`: at memchr speed when there are few."""
    count, start = 0, raw.find(b'"')
    while start >= 0 and count < limit:
        count, start = count + 1, raw.find(b'"', start + 1)
    return count


def _occurs(raw: bytes, word: bytes, at: int) -> bool:
    """`word in raw` for a large body, found by a letter rare in numeric JSON, at memchr speed."""
    letter, start = word[at : at + 1], raw.find(word[at : at + 1])
    for _ in range(16):
        if start < 0:
            return False
        if start >= at and raw.startswith(word, start - at):
            return True
        start = raw.find(letter, start + 1)
    return word in raw  # the letter is common here: one full search instead


def _lenient(raw: bytes) -> object:
    """NaN/Infinity through the standard library's C parser where it reads as rapidjson would; else the reader."""
    if not raw:
        raise ServingError("INVALID_ARGUMENT", "JSON Parse error: The document is empty")
    if not _SURROGATE_ESCAPE.search(raw):  # the standard library takes lone surrogates, rapidjson does not
        # Not UTF-8, content after the value, too deep, too big, `Inf` or `-NaN`: the reader decides.
        with contextlib.suppress(ValueError, RecursionError):
            return json.loads(raw.decode("utf-8"), parse_int=_integer, parse_float=_double_value)
    collecting = gc.isenabled()
    gc.disable()  # the reader makes one container per nesting level: collections would only rescan them
    try:
        return _Reader(raw).parse()
    finally:
        if collecting:
            gc.enable()


def _integer(text: str) -> int | float:
    whole = int(text)
    return whole if -(2**63) <= whole < 2**64 else _double_value(text)  # rapidjson reads larger ones as doubles


def _double_value(text: str) -> float:
    value = float(text)
    if math.isinf(value):
        raise ValueError(text)  # rapidjson refuses it: the reader words the error
    return value


def error_body(message: str) -> bytes:
    """`{"error": message}`; bytes that were not UTF-8 in the request show as U+FFFD."""
    return orjson.dumps({"error": message.encode("utf-8", "surrogateescape").decode("utf-8", "replace")})


def dumps(response: object) -> bytes:
    """JSON for a response; non-finite floats become `NaN`/`Infinity`/`-Infinity` tokens, as TF Serving writes them."""
    body = orjson.dumps(response, option=_OPTIONS)
    # orjson writes non-finite floats as null: no null, none to rewrite.
    if not (b"null" in body if len(body) < _SMALL else _occurs(body, b"null", 1)):
        return body
    return orjson.dumps(_with_tokens(response), option=_OPTIONS)


def _with_tokens(value: object) -> object:
    if isinstance(value, dict):
        return {k: _with_tokens(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_with_tokens(v) for v in value]
    if isinstance(value, np.ndarray):
        if value.dtype.kind != "f" or np.isfinite(value).all():
            return value
        if value.ndim == 0:
            return _token(value[()])
        return _nested([_token(v) for v in value.reshape(-1)], value.shape)
    if isinstance(value, float | np.floating) and not math.isfinite(value):
        return _token(value)
    return value


def _token(value):
    return value if math.isfinite(value) else _NON_FINITE[str(float(value))]


def _nested(flat: list, shape: tuple) -> list:
    """`flat` (not empty) as nested lists of `shape`."""
    for size in reversed(shape[1:]):
        flat = [flat[i : i + size] for i in range(0, len(flat), size)]
    return flat


# Debug strings: how rapidjson's PrettyWriter prints a value in an error message ---------------------------------


def type_name(value: object) -> str:
    """rapidjson's name for a JSON value's type, as json_tensor.cc's JsonTypeString gives it."""
    if value is None:
        return "Null"
    if value is True:
        return "True"
    if value is False:
        return "False"
    if isinstance(value, dict):
        return "Object"
    if isinstance(value, list):
        return "Array"
    if isinstance(value, str):
        return "String"
    return "Number"


def debug_string(value: object) -> str:
    """A value as TF Serving quotes it in errors: pretty-printed, arrays on one line, cut after 256 bytes."""
    out: list[bytes] = []

    def put(text: str) -> None:
        out.append(text.encode("utf-8", "surrogateescape"))

    with contextlib.suppress(_Full):
        _write(value, "", put, out, 0)
    return b"".join(out).decode("utf-8", "replace")


class _Full(Exception):
    """The writer stops, as rapidjson's does past the byte limit or on a non-finite number."""


def _write(value: object, prefix: str, put, out: list, depth: int) -> None:
    """One rapidjson writer event per call; each checks the limit first, as JsonWriterWithLimit does."""
    _check(out)
    if isinstance(value, dict):
        put(prefix + "{")
        for position, (key, item) in enumerate(value.items()):
            _check(out)
            put(("," if position else "") + "\n" + "    " * (depth + 1) + _quote(key))
            _write(item, ": ", put, out, depth + 1)
        _check(out)
        put(("\n" + "    " * depth if value else "") + "}")
    elif isinstance(value, list):
        put(prefix + "[")
        for position, item in enumerate(value):
            _write(item, ", " if position else "", put, out, depth + 1)
        _check(out)
        put("]")
    else:
        put(prefix)
        put(_scalar(value))


def _check(out: list) -> None:
    if sum(map(len, out)) >= DEBUG_STRING_BYTES:
        raise _Full


def _scalar(value: object) -> str:
    if value is None:
        return "null"
    if value is True:
        return "true"
    if value is False:
        return "false"
    if isinstance(value, str):
        return _quote(value)
    if isinstance(value, float):
        return _double(value)
    return str(value)


def _quote(text: str) -> str:
    escaped = {'"': '\\"', "\\": "\\\\", "\b": "\\b", "\f": "\\f", "\n": "\\n", "\r": "\\r", "\t": "\\t"}
    return '"' + "".join(escaped.get(c) or (f"\\u{ord(c):04X}" if c < " " else c) for c in text) + '"'


def _double(value: float) -> str:
    """rapidjson's dtoa: shortest digits, `.0` on whole numbers, exponents as `1e30` and `1.5e-7`."""
    if not math.isfinite(value):
        raise _Full  # rapidjson's writer refuses non-finite numbers unless told otherwise
    if value == 0:
        return "-0.0" if math.copysign(1, value) < 0 else "0.0"
    _, digits, exponent = Decimal(repr(abs(value))).normalize().as_tuple()
    text, length = "".join(map(str, digits)), len(digits)
    kk = length + exponent
    minus = "-" if value < 0 else ""
    if exponent >= 0 and kk <= 21:
        return f"{minus}{text}{'0' * exponent}.0"
    if 0 < kk <= 21:
        return f"{minus}{text[:kk]}.{text[kk:]}"
    if -6 < kk <= 0:
        return f"{minus}0.{'0' * -kk}{text}"
    mantissa = text if length == 1 else f"{text[0]}.{text[1:]}"
    return f"{minus}{mantissa}e{kk - 1}"


# The fallback reader: rapidjson's grammar with kParseIterativeFlag | kParseNanAndInfFlag | kParseStopWhenDoneFlag --

_MESSAGES = {  # rapidjson's GetParseError_En
    "empty": "The document is empty.",
    "value": "Invalid value.",
    "name": "Missing a name for object member.",
    "colon": "Missing a colon after a name of object member.",
    "object": "Missing a comma or '}' after an object member.",
    "array": "Missing a comma or ']' after an array element.",
    "hex": "Incorrect hex digit after \\u escape in string.",
    "surrogate": "The surrogate pair in string is invalid.",
    "escape": "Invalid escape character in string.",
    "quote": "Missing a closing quotation mark in string.",
    "encoding": "Invalid encoding in string.",
    "big": "Number too big to be stored in double.",
    "fraction": "Miss fraction part in number.",
    "exponent": "Miss exponent part in number.",
}
# Parser states, named after rapidjson's IterativeParsingState; the error each one reports on an unexpected token.
_START, _OBJECT_INITIAL, _MEMBER_KEY, _KEY_VALUE_DELIMITER, _MEMBER_VALUE, _MEMBER_DELIMITER = range(6)
_ARRAY_INITIAL, _ELEMENT, _ELEMENT_DELIMITER, _FINISH = range(6, 10)
_STATE_ERROR = {
    _START: "empty",
    _OBJECT_INITIAL: "name",
    _MEMBER_DELIMITER: "name",
    _MEMBER_KEY: "colon",
    _MEMBER_VALUE: "object",
    _KEY_VALUE_DELIMITER: "value",
    _ARRAY_INITIAL: "value",
    _ELEMENT_DELIMITER: "value",
    _ELEMENT: "array",
}
_EXPECTS_VALUE = (_START, _KEY_VALUE_DELIMITER, _ARRAY_INITIAL, _ELEMENT_DELIMITER)
_AFTER_VALUE = {
    _START: _FINISH,
    _KEY_VALUE_DELIMITER: _MEMBER_VALUE,
    _ARRAY_INITIAL: _ELEMENT,
    _ELEMENT_DELIMITER: _ELEMENT,
}
_SPACE = re.compile(rb"[ \t\n\r]*")
_SURROGATE_ESCAPE = re.compile(rb"\\u[dD][89abcdefABCDEF]")
_NUMBER = re.compile(rb"-?(?:0|[1-9][0-9]*)(\.[0-9]+)?([eE][-+]?[0-9]+)?")
_PLAIN = re.compile(rb'[^"\\\x00-\x1f]*')
_HEX = re.compile(rb"[0-9a-fA-F]{4}")
_ESCAPES = {ord('"'): b'"', ord("\\"): b"\\", ord("/"): b"/", ord("b"): b"\b", ord("f"): b"\f", ord("n"): b"\n"}
_ESCAPES |= {ord("r"): b"\r", ord("t"): b"\t"}
_STRUCTURAL = {ord(c) for c in ",:]}"}
_LBRACKET, _RBRACKET, _LBRACE, _RBRACE, _QUOTE, _COLON, _COMMA = b'[]{}":,'
_BRACKETS = re.compile(rb"\[+")


def _attach(container: object, state: int, key: str | None, value: object) -> None:
    if state == _KEY_VALUE_DELIMITER:
        container[key] = value
    else:
        container.append(value)


class _Reader:
    """An explicit stack instead of recursion, so nesting depth is bounded by the body size only."""

    def __init__(self, raw: bytes) -> None:
        self.raw, self.end = raw, len(raw)
        self.root: object = None

    def peek(self, pos: int) -> int:
        return self.raw[pos] if pos < self.end else 0  # rapidjson's stream reads NUL past the end

    def fail(self, kind: str, offset: int):
        raise ServingError("INVALID_ARGUMENT", f"JSON Parse error: {_MESSAGES[kind]} at offset: {offset}")

    def parse(self) -> object:
        raw, pos = self.raw, 0
        for byte in b"\xef\xbb\xbf":  # rapidjson's UTF-8 input stream skips a byte-order mark
            pos += self.peek(pos) == byte
        state, pos = _START, _SPACE.match(raw, pos).end()
        stack: list[tuple[object, int, str | None]] = []  # (container, state to resume, its member name)
        key: str | None = None
        while (c := self.peek(pos)) != 0:
            if state in _EXPECTS_VALUE:
                if c == _LBRACKET:  # a run of `[` opens its arrays in one step: deep nesting stays cheap
                    run = _BRACKETS.match(raw, pos).end() - pos
                    stack.append(([], state, key))
                    stack.extend(([], _ARRAY_INITIAL, key) for _ in range(run - 1))
                    state, pos = _ARRAY_INITIAL, pos + run
                elif c == _LBRACE:
                    stack.append(({}, state, key))
                    state, pos = _OBJECT_INITIAL, pos + 1
                elif c == _RBRACKET and state == _ARRAY_INITIAL:
                    state, pos = self.close(stack, pos)
                elif c in _STRUCTURAL:
                    self.fail(_STATE_ERROR[state], pos)
                else:
                    value, pos = self.scalar(pos)
                    if not stack:
                        return value  # kParseStopWhenDoneFlag: what follows the root value is not read
                    _attach(stack[-1][0], state, key, value)
                    state = _AFTER_VALUE[state]
            elif state in (_OBJECT_INITIAL, _MEMBER_DELIMITER):
                if c == _QUOTE:
                    key, pos = self.string(pos)
                    state = _MEMBER_KEY
                elif c == _RBRACE and state == _OBJECT_INITIAL:
                    state, pos = self.close(stack, pos)
                else:
                    self.fail(_STATE_ERROR[state], pos)
            elif state == _MEMBER_KEY and c == _COLON:
                state, pos = _KEY_VALUE_DELIMITER, pos + 1
            elif c == _COMMA and (state in (_MEMBER_VALUE, _ELEMENT)):
                state, pos = (_MEMBER_DELIMITER if state == _MEMBER_VALUE else _ELEMENT_DELIMITER), pos + 1
            elif (c == _RBRACE and state == _MEMBER_VALUE) or (c == _RBRACKET and state == _ELEMENT):
                state, pos = self.close(stack, pos)
            else:
                self.fail(_STATE_ERROR[state], pos)
            if state == _FINISH:
                return self.root
            pos = _SPACE.match(raw, pos).end()
        self.fail(_STATE_ERROR[state], pos)

    def close(self, stack: list, pos: int) -> tuple[int, int]:
        """Closes the innermost container, and at once every array that a run of `]` closes after it."""
        while True:
            container, resume, key = stack.pop()
            pos += 1
            if not stack:
                self.root = container
                return _FINISH, pos
            _attach(stack[-1][0], resume, key, container)
            state = _AFTER_VALUE[resume]
            if state != _ELEMENT or self.peek(pos) != _RBRACKET:
                return state, pos

    def scalar(self, pos: int) -> tuple[object, int]:
        c = self.raw[pos]
        if c == ord('"'):
            return self.string(pos)
        for word, value in ((b"true", True), (b"false", False), (b"null", None)):
            if c == word[0]:
                for i, expected in enumerate(word[1:], start=1):
                    if self.peek(pos + i) != expected:
                        self.fail("value", pos + i)
                return value, pos + len(word)
        return self.number(pos)

    def number(self, start: int) -> tuple[object, int]:
        match = _NUMBER.match(self.raw, start)
        if not match:
            return self.nan_or_infinity(start)
        pos = match.end()
        fraction, exponent = match.group(1), match.group(2)
        if not exponent and not fraction and self.peek(pos) == ord("."):
            self.fail("fraction", pos + 1)
        if not exponent and self.peek(pos) in (ord("e"), ord("E")):
            sign = 1 if self.peek(pos + 1) in (ord("+"), ord("-")) else 0
            self.fail("exponent", pos + 1 + sign)
        text = self.raw[start:pos]
        if not fraction and not exponent:
            whole = int(text)
            if -(2**63) <= whole < 2**64:  # rapidjson keeps these as integers, larger ones as doubles
                return whole, pos
        value = float(text)
        if math.isinf(value):
            self.fail("big", start)
        return value, pos

    def nan_or_infinity(self, start: int) -> tuple[float, int]:
        pos, minus = start, self.peek(start) == ord("-")
        pos += minus
        if self.peek(pos) == ord("N"):
            if self.raw[pos : pos + 3] == b"NaN":
                return math.nan, pos + 3
            self.fail("value", pos + 1 + (self.peek(pos + 1) == ord("a")))
        if self.peek(pos) == ord("I"):
            if self.raw[pos : pos + 3] != b"Inf":
                self.fail("value", pos + 1 + (self.peek(pos + 1) == ord("n")))
            pos += 3
            if self.peek(pos) == ord("i"):
                for i, expected in enumerate(b"inity"):
                    if self.peek(pos + i) != expected:
                        self.fail("value", pos + i)
                pos += 5
            return (-math.inf if minus else math.inf), pos
        self.fail("value", pos)

    def string(self, start: int) -> tuple[str, int]:
        raw, pos, parts = self.raw, start + 1, []
        while True:
            plain = _PLAIN.match(raw, pos)
            parts.append(plain.group())
            pos = plain.end()
            c = self.peek(pos)
            if c == ord('"'):
                return b"".join(parts).decode("utf-8", "surrogateescape"), pos + 1
            if c != ord("\\"):
                self.fail("quote" if c == 0 else "encoding", pos)
            escape = self.peek(pos + 1)
            if escape in _ESCAPES:
                parts.append(_ESCAPES[escape])
                pos += 2
            elif escape == ord("u"):
                code, after = self.hex4(pos + 2, pos)
                if 0xD800 <= code <= 0xDBFF:
                    if raw[after : after + 2] != b"\\u":
                        self.fail("surrogate", pos)
                    low, after = self.hex4(after + 2, pos)
                    if not 0xDC00 <= low <= 0xDFFF:
                        self.fail("surrogate", pos)
                    code = 0x10000 + ((code - 0xD800) << 10) + (low - 0xDC00)
                elif 0xDC00 <= code <= 0xDFFF:
                    self.fail("surrogate", pos)
                parts.append(chr(code).encode())
                pos = after
            else:
                self.fail("escape", pos)

    def hex4(self, pos: int, escape: int) -> tuple[int, int]:
        if not _HEX.match(self.raw, pos):
            self.fail("hex", escape)
        return int(self.raw[pos : pos + 4], 16), pos + 4
