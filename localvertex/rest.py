"""Vertex AI's REST transport over the shared handlers.

Routes, bodies and query parameters follow the HTTP rules of the SDK's own REST transports
(`google.cloud.aiplatform_v1.services.*.transports.rest_base`), so a path the SDK sends reaches the method it means:
path variables and the body bind to request fields, other fields come from the query, `google.api.HttpBody` binds
the raw body (rawPredict), and errors answer `{"error": {"code", "message", "status"}}`.
"""

from __future__ import annotations

import base64
import importlib
import json
import logging
import re
from dataclasses import dataclass

import orjson
from aiohttp import web
from google.api import httpbody_pb2
from google.protobuf import descriptor as pb_descriptor
from google.protobuf import json_format

from localvertex.errors import VertexError
from localvertex.rpc import Call, Method, descriptor, from_dict, invoke, snake, to_dict

log = logging.getLogger("localvertex")
MAX_REQUEST_BYTES = 16 * 1024 * 1024  # the control plane's; predictions are held to the serving limit downstream
_SERVED = {"endpoints", "models", "pipelineJobs", "schedules", "operations"}  # collections localvertex keeps
_LOCAL_HOSTS = ("127.0.0.1", "localhost", "::1")
_HTTP_BODY = "google.api.HttpBody"


@dataclass(frozen=True)
class Route:
    verb: str
    pattern: re.Pattern
    fields: dict[str, str]  # regex group -> request field path (`endpoint.name`)
    body: str  # "*", a field name, or "" (no body)
    method: Method


def routes(methods: list[Method]) -> list[Route]:
    """Every HTTP rule of the given methods whose path lies in a collection localvertex keeps."""
    found = []
    for method in methods:
        for rule in http_rules(method):
            compiled = _compile(rule["uri"])
            if compiled:
                found.append(Route(rule["method"].upper(), *compiled, rule.get("body", ""), method))
    return found


def http_rules(method: Method) -> list[dict]:
    """The method's HTTP rules as the SDK's REST transport sends them (operations: the ModelService mixin's)."""
    service = "ModelService" if method.service == "Operations" else method.service
    module = importlib.import_module(f"google.cloud.aiplatform_v1.services.{snake(service)}.transports.rest_base")
    base = getattr(module, f"_Base{service}RestTransport")
    return getattr(base, f"_Base{method.name}")._get_http_options()


class Rest:
    """An aiohttp application serving `methods`; `dedicated` marks a dedicated endpoint's listener."""

    def __init__(self, methods: list[Method], dedicated: bool = False) -> None:
        self.routes, self.dedicated = routes(methods), dedicated

    def app(self, on_startup=(), on_cleanup=(), extra=()) -> web.Application:
        """`extra` (method, path, handler) are served first: another Google API's routes beside Vertex AI's."""
        app = web.Application(client_max_size=MAX_REQUEST_BYTES)
        for verb, path, handler in extra:
            app.router.add_route(verb, path, handler)
        app.router.add_route("*", "/{path:.*}", self.dispatch)
        app.on_startup.extend(on_startup)
        app.on_cleanup.extend(on_cleanup)
        return app

    async def dispatch(self, request: web.Request) -> web.Response:
        enum_ints = "enum-encoding=int" in request.query.get("$alt", "")
        try:
            route, found = self._route(request)
            check_local(request, raw_body=route.body == "*" and _http_body_field(route.method.request) is not None)
            raw = await request.read() if request.can_read_body else b""
            message = from_dict(route.method.request, _request_dict(route, found, request, raw))
            call = Call("rest", raw=raw, dedicated=self.dedicated)
            result = await invoke(route.method, message, call)
            if isinstance(result, httpbody_pb2.HttpBody):
                headers = call.headers | {"Content-Type": result.content_type or "application/octet-stream"}
                return web.Response(body=result.data, headers=headers)
            return json_response(to_dict(result, enum_ints), headers=call.headers)
        except web.HTTPRequestEntityTooLarge:
            message = f"Request payload size exceeds the limit: {MAX_REQUEST_BYTES} bytes"
            return error_response(VertexError("INVALID_ARGUMENT", message))
        except RecursionError:  # JSON nested deeper than Python's parser goes: still the caller's error
            return error_response(VertexError("INVALID_ARGUMENT", "Invalid JSON payload: nested too deeply"))
        except VertexError as e:
            return error_response(e)
        except json.JSONDecodeError as e:
            return error_response(VertexError("INVALID_ARGUMENT", f"Invalid JSON payload: {e}"))
        except (json_format.ParseError, ValueError, TypeError) as e:  # strict parsing by the SDK's types
            return error_response(VertexError("INVALID_ARGUMENT", f"Invalid JSON payload received. {e}"))
        except Exception as e:
            log.exception("%s %s failed", request.method, request.path)
            return error_response(VertexError("INTERNAL", f"{type(e).__name__}: {e}"))

    def _route(self, request: web.Request) -> tuple[Route, re.Match]:
        for route in self.routes:
            if route.verb == request.method and (found := route.pattern.fullmatch(request.path)):
                return route, found
        raise VertexError("NOT_FOUND", f"Method not found: {request.method} {request.path}")


def check_local(request: web.Request, raw_body: bool = False) -> None:
    """Only this machine's own clients may call: a web page (another Origin), a rebound DNS name (another Host) or a
    form post (not JSON) must not create or delete resources through the user's browser. A raw body (rawPredict)
    may have any type: it changes nothing."""
    host = request.headers.get("Host", "").rsplit(":", 1)[0].strip("[]")
    if host not in _LOCAL_HOSTS:
        raise VertexError("PERMISSION_DENIED", f"Host {host!r} is not this machine: call localvertex on 127.0.0.1")
    origin = request.headers.get("Origin")
    if origin is not None and origin.split("://", 1)[-1].rsplit(":", 1)[0].strip("[]") not in _LOCAL_HOSTS:
        raise VertexError("PERMISSION_DENIED", f"Origin {origin!r} may not call localvertex")
    mutating = request.method in ("POST", "PATCH", "PUT", "DELETE") and request.can_read_body
    if mutating and not raw_body and request.content_type != "application/json":
        raise VertexError("INVALID_ARGUMENT", f"Content-Type {request.content_type!r} is not application/json")


def _request_dict(route: Route, found: re.Match, request: web.Request, raw: bytes) -> dict:
    """The request message's JSON form: the body where the rule binds it, then the query, then the path."""
    kind = route.method.request
    data: dict = {}
    if route.body == "*":
        field = _http_body_field(kind)
        if field is not None:
            content = {"contentType": request.headers.get("Content-Type", ""), "data": base64.b64encode(raw).decode()}
            data = {field.json_name: content}
        elif raw:
            data = _object(raw)
    elif route.body and raw:
        data = {route.body: _object(raw)}
    for key in request.query:
        if not key.startswith("$"):  # system parameters such as $alt
            _bind_query(data, descriptor(kind), key, request.query.getall(key))
    for group, path in route.fields.items():
        target = data
        *heads, last = path.split(".")
        for head in heads:
            target = target.setdefault(head, {})
        target[last] = found[group]
    return data


def _bind_query(data: dict, message: pb_descriptor.Descriptor, key: str, values: list[str]) -> None:
    target, parts = data, key.split(".")
    for index, part in enumerate(parts):
        field = message.fields_by_camelcase_name.get(part) or message.fields_by_name.get(part)
        if field is None:
            raise VertexError(
                "INVALID_ARGUMENT",
                f'Invalid JSON payload received. Unknown name "{key}": Cannot bind query parameter. Field '
                f"'{part}' could not be found in request message.",
            )
        if index < len(parts) - 1:
            if field.message_type is None:
                raise VertexError("INVALID_ARGUMENT", f"Query parameter {key!r}: {part} has no fields")
            target, message = target.setdefault(field.json_name, {}), field.message_type
            continue
        converted = [_query_value(field, v) for v in values]
        target[field.json_name] = converted if field.label == field.LABEL_REPEATED else converted[-1]


def _query_value(field: pb_descriptor.FieldDescriptor, value: str):
    if field.type == field.TYPE_BOOL:
        return value.lower() == "true"
    return value  # numbers, enums, FieldMask, Duration and Timestamp take their string forms


def _http_body_field(kind: type) -> pb_descriptor.FieldDescriptor | None:
    return next((f for f in descriptor(kind).fields if f.message_type and f.message_type.full_name == _HTTP_BODY), None)


def _object(raw: bytes) -> dict:
    body = json.loads(raw)
    if not isinstance(body, dict):
        raise VertexError("INVALID_ARGUMENT", "Invalid JSON payload: the body must be a JSON object")
    return body


def _compile(uri: str) -> tuple[re.Pattern, dict[str, str]] | None:
    """`/v1/{endpoint.name=projects/*/locations/*/endpoints/*}:update` as a regular expression; None for a path in a
    collection localvertex does not keep."""
    pattern, fields = "", {}
    for part in re.split(r"(\{[^}]*\})", uri):
        if not part.startswith("{"):
            pattern += re.escape(part)
            continue
        field, _, template = part[1:-1].partition("=")
        segments = (template or "*").split("/")
        if template and (segments[:1] != ["projects"] or not set(segments[4::2]) <= _SERVED):
            return None
        group = f"f{len(fields)}"
        fields[group] = field
        body = "/".join("[^/:]+" if s == "*" else "[^:]+" if s == "**" else re.escape(s) for s in segments)
        pattern += f"(?P<{group}>{body})"
    return re.compile(pattern), fields


def json_response(body: dict, status: int = 200, headers: dict | None = None) -> web.Response:
    return web.Response(body=orjson.dumps(body), status=status, content_type="application/json", headers=headers)


def error_response(error: VertexError) -> web.Response:
    return json_response(error.body(), error.http_status)
