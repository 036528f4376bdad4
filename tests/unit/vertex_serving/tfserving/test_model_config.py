"""--model_config_file is read and refused as TF Serving's ServerCore does; version policies pick the same folders."""

import logging

import pytest

from vertex_serving.errors import UserError
from vertex_serving.tfserving.errors import ServingError
from vertex_serving.tfserving.model_config import ModelConfig, aspired_versions, read_model_config

GOOD = """
model_config_list: {
  config: { name: "half_plus_two", base_path: "/models/two", model_platform: "tensorflow" },
  config: {
    name: "half_plus_three", base_path: "gs://bucket/three", model_platform: "tensorflow"
    model_version_policy: { specific: { versions: 1 versions: 3 } }
  }
}
"""


def write(tmp_path, text):
    path = tmp_path / "models.config"
    path.write_text(text)
    return path


def refusal(tmp_path, text, **kwargs) -> str:
    with pytest.raises(UserError) as e:
        read_model_config(write(tmp_path, text), **kwargs)
    return str(e.value)


def test_tf_serving_good_model_config_lists_both_models(tmp_path):
    """TensorflowModelServerTest.testGoodModelConfig: good_model_config.txt's two models."""
    two, three = read_model_config(write(tmp_path, GOOD))
    assert two == ModelConfig("half_plus_two", "/models/two")
    assert (three.name, three.base_path, three.policy, three.versions) == (
        "half_plus_three",
        "gs://bucket/three",
        "specific",
        (1, 3),
    )


def test_tf_serving_bad_model_config_names_the_text_format_error(tmp_path):
    """TensorflowModelServerTest.testBadModelConfig: bad_model_config.txt fails with this wording."""
    message = refusal(tmp_path, "improperly formatted file")
    assert "--model_config_file=" in message
    assert "Error parsing text-format tensorflow.serving.ModelServerConfig" in message


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        (
            'model_config_list { config { name: "a" base_path: "/m" model_platform: "tensorflow" } '
            'config { name: "a" base_path: "/n" model_platform: "tensorflow" } }',
            "Illegal to list model a multiple times in config list",
        ),
        (
            'model_config_list { config { name: "a" base_path: "models/a" model_platform: "tensorflow" } }',
            "Expected model a to have an absolute path or URI; got base_path()=models/a",
        ),
        (
            'model_config_list { config { name: "a" base_path: "/m" } }',
            "Illegal setting neither ModelServerConfig::model_type (deprecated) nor "
            "ModelServerConfig::model_platform, model name is a",
        ),
        (
            'model_config_list { config { name: "a" base_path: "/m" model_platform: "onnx" } }',
            "Model a requests unsupported platform onnx",
        ),
        (
            'custom_model_config { type_url: "x" }',
            "ModelServer does not yet support custom model config.",
        ),
        ("", "lists no models"),
    ],
)
def test_configs_tf_serving_refuses_are_refused_with_its_words(tmp_path, text, needle):
    assert needle in refusal(tmp_path, text)


def test_deprecated_model_type_tensorflow_still_means_the_tensorflow_platform(tmp_path):
    (config,) = read_model_config(
        write(tmp_path, 'model_config_list { config { name: "a" base_path: "/m" model_type: TENSORFLOW } }')
    )
    assert config.name == "a"


LABELLED = """
model_config_list { config {
  name: "m" base_path: "/m" model_platform: "tensorflow"
  model_version_policy { all {} }
  version_labels { key: "stable" value: 1 }
  version_labels { key: "canary" value: 2 }
} }
"""


def test_version_labels_at_startup_need_the_flag_as_in_tf_serving(tmp_path):
    """server_core.cc UpdateModelVersionLabelMap: a label may only point at an available version."""
    message = refusal(tmp_path, LABELLED)
    assert "Request to assign label to version 2 of model m, which is not currently available for inference" in message
    assert "--allow_version_labels_for_unavailable_models" in message
    (config,) = read_model_config(write(tmp_path, LABELLED), allow_labels_for_unavailable=True)
    assert (config.policy, config.labels) == ("all", {"stable": 1, "canary": 2})


@pytest.fixture
def base(tmp_path):
    for version in ("1", "2", "00010", "notes"):
        (tmp_path / "m" / version).mkdir(parents=True)
    return tmp_path / "m"


def versions(base, **policy):
    return [v for v, _ in aspired_versions("m", base, ModelConfig("m", str(base), **policy))]


def test_latest_is_the_default_policy_and_serves_the_newest_version(base):
    assert versions(base) == [10]
    assert versions(base, num_versions=2) == [10, 2]


def test_all_serves_every_numbered_folder(base):
    assert versions(base, policy="all") == [10, 2, 1]


def test_specific_serves_the_listed_versions_that_exist_and_warns_of_the_others(base, caplog):
    with caplog.at_level(logging.WARNING, logger="modelserver"):
        assert versions(base, policy="specific", versions=(1, 7)) == [1]
    assert "Version 7 of servable m, which was requested to be served as a 'specific' version" in caplog.text


def test_no_version_to_serve_fails_with_tf_serving_warning(base, tmp_path):
    with pytest.raises(ServingError) as e:
        versions(base, policy="specific", versions=(7,))
    assert "No versions of servable m found under base path" in e.value.message
    assert "Did you forget to name your leaf directory as a number (eg. '/1/')?" in e.value.message
    with pytest.raises(ServingError) as e:
        aspired_versions("m", tmp_path / "nowhere", ModelConfig("m", "/nowhere"))
    assert e.value.message.startswith("Could not find base path")


def test_a_folder_that_is_a_saved_model_is_version_1(tmp_path):
    (tmp_path / "saved_model.pb").write_bytes(b"")
    assert aspired_versions("m", tmp_path, ModelConfig("m", str(tmp_path))) == [(1, tmp_path)]
