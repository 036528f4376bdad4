"""List filters and order_by through the SDK against a real localvertex, written as the list APIs document them."""

from __future__ import annotations

import pytest
from google.api_core import exceptions
from google.cloud import aiplatform

from tests.integration.localvertex_fixtures import CPU_IMAGE
from tests.models import tagged_sum

pytestmark = pytest.mark.integration
EMPTY_LOCATION = "europe-west4"  # nothing is ever stored there


@pytest.fixture(scope="module")
def models(emulator, tmp_path_factory):
    """Three models uploaded one after the other: q-b, q-a (labelled team=x), q-c."""
    model_dir = tagged_sum(tmp_path_factory.mktemp("models") / "tagged")
    made = {}
    for name, labels in (("q-b", {}), ("q-a", {"team": "x"}), ("q-c", {"team": "y"})):
        made[name] = aiplatform.Model.upload(
            display_name=name, artifact_uri=str(model_dir), serving_container_image_uri=CPU_IMAGE, labels=labels
        )
    return made


def names(found) -> list[str]:
    return [m.display_name for m in found]


def test_filters_take_camel_case_not_equal_or_and_labels(models):
    assert names(aiplatform.Model.list(filter='displayName="q-a"')) == ["q-a"]
    assert names(aiplatform.Model.list(filter='labels.team="x"')) == ["q-a"]
    either = aiplatform.Model.list(filter='display_name="q-a" OR display_name="q-c"', order_by="display_name")
    assert names(either) == ["q-a", "q-c"]
    others = aiplatform.Model.list(filter='display_name!="q-a" AND labels:team', order_by="display_name")
    assert names(others) == ["q-c"]
    model_id = models["q-b"].resource_name.rsplit("/", 1)[-1]
    assert names(aiplatform.Model.list(filter=f"model={model_id}")) == ["q-b"]


def test_order_by_is_honoured_by_the_server(models):
    ours = 'display_name="q-a" OR display_name="q-b" OR display_name="q-c"'
    assert names(aiplatform.Model.list(filter=ours, order_by="create_time desc")) == ["q-c", "q-a", "q-b"]
    assert names(aiplatform.Model.list(filter=ours, order_by="create_time")) == ["q-b", "q-a", "q-c"]
    assert names(aiplatform.Model.list(filter=ours, order_by="display_name desc")) == ["q-c", "q-b", "q-a"]
    models["q-b"].update(description="touched last")
    assert names(aiplatform.Model.list(filter=ours, order_by="update_time desc"))[0] == "q-b"


def test_endpoints_filter_and_order_the_same_way(emulator):
    for name in ("e-b", "e-a"):
        aiplatform.Endpoint.create(display_name=name, labels={"kind": "query"})
    found = aiplatform.Endpoint.list(filter='labels.kind="query"', order_by="display_name")
    assert names(found) == ["e-a", "e-b"]
    assert names(aiplatform.Endpoint.list(filter='labels.kind="query"', order_by="create_time desc")) == ["e-a", "e-b"]
    assert names(aiplatform.Endpoint.list(filter='displayName!="e-a" AND labels.kind="query"')) == ["e-b"]


@pytest.mark.parametrize(
    "listing",
    [
        lambda: aiplatform.Model.list(filter='state="READY"', location=EMPTY_LOCATION),
        lambda: aiplatform.Model.list(filter='display_name~"x"', location=EMPTY_LOCATION),
        lambda: aiplatform.Model.list(order_by="version_id", location=EMPTY_LOCATION),
        lambda: aiplatform.Endpoint.list(filter='deployed_models="1"', location=EMPTY_LOCATION),
        lambda: aiplatform.PipelineJob.list(filter='model="1"', location=EMPTY_LOCATION),
        lambda: aiplatform.PipelineJobSchedule.list(filter='labels.team="x"', location=EMPTY_LOCATION),
    ],
    ids=["unknown-field", "unknown-operator", "unknown-order", "endpoint-field", "pipeline-field", "schedule-field"],
)
def test_an_unsupported_query_is_refused_even_when_nothing_is_stored(emulator, listing):
    with pytest.raises(exceptions.BadRequest, match="Unsupported"):
        listing()
