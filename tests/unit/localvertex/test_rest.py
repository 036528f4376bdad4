"""REST routes come from the SDK's own HTTP rules: every method localvertex serves is reachable where the SDK sends it."""

from localvertex import rest, rpc
from localvertex.api import Api
from localvertex.pipeline_jobs import PipelineJobs
from localvertex.schedules import Schedules

PARENT = "projects/p/locations/us-central1"


def served() -> list[rpc.Method]:
    jobs = PipelineJobs(None, None, "")
    return rpc.methods(Api(None, None), jobs, Schedules(None, jobs))


def route_of(verb: str, path: str) -> tuple[str, dict]:
    for route in rest.routes(served()):
        if route.verb == verb and (found := route.pattern.fullmatch(path)):
            return route.method.name, {route.fields[g]: v for g, v in found.groupdict().items()}
    raise AssertionError(f"no route for {verb} {path}")


def test_every_method_served_has_a_rest_route():
    routed = {route.method.name for route in rest.routes(served())}
    assert routed == {m.name for m in served()} and "Explain" in routed and "WaitOperation" in routed


def test_paths_the_sdk_sends_reach_their_methods():
    assert route_of("POST", f"/v1/{PARENT}/models:upload") == ("UploadModel", {"parent": PARENT})
    assert route_of("GET", f"/v1/{PARENT}/models/7@2") == ("GetModel", {"name": f"{PARENT}/models/7@2"})
    assert route_of("PATCH", f"/v1/{PARENT}/models/7") == ("UpdateModel", {"model.name": f"{PARENT}/models/7"})
    assert route_of("POST", f"/v1/{PARENT}/models/7@2:mergeVersionAliases")[0] == "MergeVersionAliases"
    assert route_of("DELETE", f"/v1/{PARENT}/models/7@2:deleteVersion")[0] == "DeleteModelVersion"
    assert route_of("POST", f"/v1/{PARENT}/endpoints/1:rawPredict")[0] == "RawPredict"
    assert route_of("POST", f"/v1/{PARENT}/endpoints/1:update")[0] == "UpdateEndpointLongRunning"
    operation = f"{PARENT}/endpoints/1/operations/5"
    assert route_of("GET", f"/ui/{operation}") == ("GetOperation", {"name": operation})
    assert route_of("POST", f"/v1/{operation}:wait")[0] == "WaitOperation"
    assert route_of("GET", f"/v1/{PARENT}/endpoints/1/operations") == (
        "ListOperations",
        {"name": f"{PARENT}/endpoints/1"},
    )


def test_collections_localvertex_does_not_keep_have_no_route():
    paths = [f"/v1/{PARENT}/models/7/evaluations", f"/v1/{PARENT}/publishers/google/models/x:rawPredict"]
    for path in paths:
        assert not any(r.pattern.fullmatch(path) for r in rest.routes(served()))
