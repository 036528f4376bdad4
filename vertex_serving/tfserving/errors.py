"""TF Serving's error model: a canonical status code, a message, and the HTTP code its REST API maps it to."""

from __future__ import annotations

# tensorflow_serving/model_servers/http_rest_api_handler: status -> HTTP.
HTTP_STATUS = {
    "INVALID_ARGUMENT": 400,
    "FAILED_PRECONDITION": 400,
    "OUT_OF_RANGE": 400,
    "NOT_FOUND": 404,
    "RESOURCE_EXHAUSTED": 429,
    "UNIMPLEMENTED": 501,
    "UNAVAILABLE": 503,
    "DEADLINE_EXCEEDED": 504,
}


class ServingError(Exception):
    """A request or model problem, answered as `{"error": message}` with TF Serving's HTTP code."""

    def __init__(self, code: str, message: str) -> None:
        self.code, self.message = code, message
        super().__init__(f"{code}: {message}")

    @property
    def http_status(self) -> int:
        return HTTP_STATUS.get(self.code, 500)
