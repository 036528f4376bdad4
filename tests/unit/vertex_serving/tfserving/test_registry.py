"""Model status and version lookup, ported from TF Serving's get_model_status_impl_test.cc and server_core.cc."""

import pytest
from tensorflow_serving.apis import get_model_status_pb2, model_pb2

from vertex_serving.tfserving.errors import ServingError
from vertex_serving.tfserving.registry import ModelRegistry

NAME = "saved_model_half_plus_two_2_versions"
State = get_model_status_pb2.ModelVersionStatus.State


@pytest.fixture
def registry():
    """Two available versions of one model, as get_model_status_impl_test.cc's ServerCore holds them."""
    models = ModelRegistry({NAME: {"stable": 123, "canary": 124}})
    models.set_state(NAME, 123, "AVAILABLE", "servable-123")
    models.set_state(NAME, 124, "AVAILABLE", "servable-124")
    return models


def status_error(registry, request) -> ServingError:
    with pytest.raises(ServingError) as e:
        registry.spec_status(request)
    return e.value


def test_missing_or_empty_model_spec_is_invalid_argument(registry):
    """GetModelStatusImplTest.MissingOrEmptyModelSpecFailure."""
    assert status_error(registry, get_model_status_pb2.GetModelStatusRequest()).code == "INVALID_ARGUMENT"


def test_unknown_model_is_not_found(registry):
    """GetModelStatusImplTest.InvalidModelNameFailure."""
    request = get_model_status_pb2.GetModelStatusRequest(model_spec=model_pb2.ModelSpec(name="nonexistent_model"))
    error = status_error(registry, request)
    assert (error.code, error.message) == ("NOT_FOUND", "Could not find any versions of model nonexistent_model")


def test_unknown_version_is_not_found(registry):
    """GetModelStatusImplTest.InvalidModelVersionFailure."""
    request = get_model_status_pb2.GetModelStatusRequest(model_spec=model_pb2.ModelSpec(name=NAME))
    request.model_spec.version.value = 125
    error = status_error(registry, request)
    assert (error.code, error.message) == ("NOT_FOUND", f"Could not find version 125 of model {NAME}")


def test_all_versions_are_listed_ok(registry):
    """GetModelStatusImplTest.AllVersionsSuccess (TF Serving's state monitor lists the newest first)."""
    request = get_model_status_pb2.GetModelStatusRequest(model_spec=model_pb2.ModelSpec(name=NAME))
    response = registry.spec_status(request)
    assert [s.version for s in response.model_version_status] == [124, 123]
    for status in response.model_version_status:
        assert status.state == State.AVAILABLE
        assert (status.status.error_code, status.status.error_message) == (0, "")
        assert status.HasField("status")


def test_single_version(registry):
    """GetModelStatusImplTest.SingleVersionSuccess."""
    request = get_model_status_pb2.GetModelStatusRequest(model_spec=model_pb2.ModelSpec(name=NAME))
    request.model_spec.version.value = 123
    (status,) = registry.spec_status(request).model_version_status
    assert (status.version, status.state, status.status.error_code) == (123, State.AVAILABLE, 0)


def test_a_version_label_in_a_status_request_lists_every_version(registry):
    """get_model_status_impl.cc only narrows to a version number, never to a label."""
    request = get_model_status_pb2.GetModelStatusRequest(model_spec=model_pb2.ModelSpec(name=NAME))
    request.model_spec.version_label = "stable"
    assert len(registry.spec_status(request).model_version_status) == 2


def test_loading_and_failed_versions_show_their_state_and_error(registry):
    registry.set_state(NAME, 125, "LOADING")
    registry.set_state(NAME, 126, "END", error=ServingError("NOT_FOUND", "no MetaGraph"))
    statuses = registry.status(NAME).model_version_status
    assert [(s.version, s.state) for s in statuses][:2] == [(126, State.END), (125, State.LOADING)]
    assert (statuses[0].status.error_code, statuses[0].status.error_message) == (5, "no MetaGraph")


def test_no_version_means_the_latest_available_one(registry):
    registry.set_state(NAME, 125, "LOADING")
    assert registry.lookup(NAME) == (124, "servable-124")
    assert registry.lookup(NAME, version=123) == (123, "servable-123")


def test_labels_name_versions(registry):
    spec = model_pb2.ModelSpec(name=NAME, version_label="stable")
    assert registry.lookup_spec(spec) == (123, "servable-123")
    assert registry.lookup(NAME, label="canary") == (124, "servable-124")


@pytest.mark.parametrize(
    ("name", "version", "label", "code", "message"),
    [
        ("", None, None, "INVALID_ARGUMENT", "ModelSpec has no name specified."),
        ("test", None, None, "NOT_FOUND", "Servable not found for request: Latest(test)"),
        (NAME, 7, None, "NOT_FOUND", f"Servable not found for request: Specific({NAME}, 7)"),
        (NAME, None, "beta", "INVALID_ARGUMENT", "Unrecognized servable version label: beta"),
    ],
)
def test_lookups_tf_serving_refuses(registry, name, version, label, code, message):
    """PredictImplTest.MissingOrEmptyModelSpec and server_core.cc's ServableRequestFromModelSpec."""
    with pytest.raises(ServingError) as e:
        registry.lookup(name, version, label)
    assert (e.value.code, e.value.message) == (code, message)
