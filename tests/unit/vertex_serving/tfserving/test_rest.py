"""TF Serving's REST routing, ported from http_rest_api_handler_test.cc (UnsupportedApiCalls, kPathRegex)."""

import pytest

from vertex_serving.tfserving.errors import ServingError
from vertex_serving.tfserving.rest import Call, check_preflight, parse_call

# HttpRestApiHandlerTest.UnsupportedApiCalls: paths TF Serving answers 400 (the integration test sends them too).
UNSUPPORTED_API_CALLS = [
    ("GET", "/v1/foo", "Malformed request"),
    ("POST", "/v1/foo", "Malformed request"),
    ("GET", "/v1/models", "Missing model name"),
    ("GET", "/v1/models/debug/model_name", "Malformed request"),
    ("POST", "/v1/models", "Malformed request"),
    ("GET", "/v1/models/foo:predict", "Malformed request"),
    ("GET", "/v1/models/foo/version/50:predict", "Malformed request"),
    ("POST", "/v1/models/foo/version/50:regress", "Malformed request"),
    ("POST", "/v1/models/foo/versions/HELLO:regress", "Malformed request"),
    ("POST", "/v1/models/foo/versions/18446744073709551615:regress", "Failed to convert version"),
    ("POST", "/v1/models/foo/metadata", "Malformed request"),
    ("POST", "/v1/models/foo/label/some_label:regress", "Malformed request"),
    ("POST", "/v1/models/foo/versions/50/labels/some_label:regress", "Malformed request"),
    ("POST", "/v1/models/foo/versions/some_label:regress", "Malformed request"),
]


def refusal(method: str, path: str) -> ServingError:
    with pytest.raises(ServingError) as e:
        parse_call(method, path)
    assert e.value.code == "INVALID_ARGUMENT" and e.value.http_status == 400
    return e.value


@pytest.mark.parametrize(("method", "path", "needle"), UNSUPPORTED_API_CALLS)
def test_unsupported_api_calls(method, path, needle):  # HttpRestApiHandlerTest.UnsupportedApiCalls
    assert needle in refusal(method, path).message


def test_malformed_requests_name_the_method_and_path():
    assert refusal("PUT", "/v1/models/m:predict").message == "Malformed request: PUT /v1/models/m:predict"
    assert refusal("POST", "/V1/Models/m:PREDICT").message == "Malformed request: POST /V1/Models/m:PREDICT"
    message = refusal("POST", "/v1/models/m/versions/99999999999999999999:predict").message
    assert message == "Failed to convert version: 99999999999999999999 to numeric."


def test_calls_are_read_as_tf_serving_reads_them():
    assert parse_call("POST", "/v1/models/half%20plus/labels/can%2Fary:classify") == Call(
        "POST", "/v1/models/half%20plus/labels/can%2Fary:classify", model="half plus", label="can/ary", verb="classify"
    )
    assert parse_call("POST", "/V1/MODELS/m/versions/0007:predict").version == 7
    assert parse_call("GET", "/v1/models/m/versions/123/metadata").metadata
    assert not parse_call("GET", "/v1/models/m/METADATA").metadata  # status: only "metadata" selects metadata
    assert parse_call("GET", "/v1/models/m/labels/stable") == Call(
        "GET", "/v1/models/m/labels/stable", "m", None, "stable"
    )


def test_cors_preflight_needs_an_http_origin():
    check_preflight("https://example.com")
    with pytest.raises(ServingError, match="Origin header is missing in CORS preflight"):
        check_preflight("")
