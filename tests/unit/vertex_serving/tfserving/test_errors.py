"""TF Serving's status codes as HTTP statuses, from tensorflow_serving/model_servers/http_server.cc."""

import pytest

from vertex_serving.tfserving.errors import ServingError


@pytest.mark.parametrize(
    ("code", "http"),
    [
        ("CANCELLED", 499),
        ("UNKNOWN", 500),
        ("INVALID_ARGUMENT", 400),
        ("DEADLINE_EXCEEDED", 504),
        ("NOT_FOUND", 404),
        ("ALREADY_EXISTS", 409),
        ("PERMISSION_DENIED", 403),
        ("RESOURCE_EXHAUSTED", 429),
        ("FAILED_PRECONDITION", 400),
        ("ABORTED", 409),
        ("OUT_OF_RANGE", 400),
        ("UNIMPLEMENTED", 501),
        ("INTERNAL", 500),
        ("UNAVAILABLE", 503),
        ("DATA_LOSS", 500),
        ("UNAUTHENTICATED", 401),
    ],
)
def test_status_codes_map_to_http_as_tf_serving_maps_them(code, http):
    assert ServingError(code, "m").http_status == http
