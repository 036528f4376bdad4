"""The validate step: the pipeline's parameters in, DeployConfig's rules applied, the resolved plan out."""

import dataclasses
import inspect

import pytest

from components.validate import resolve, validate_config
from tests.models import SAMPLES, TESTDATA
from vertex_serving.config import DeployConfig
from vertex_serving.errors import InvalidConfig

USER_CATALOG = """
[optimized."2.17"]
end_of_patches = 2099-01-01
end_of_availability = 2099-12-31
cpu = "us-docker.pkg.dev/vertex-ai-restricted/prediction/tf_opt-cpu.2-17:latest"
"""


def parameters(**changes) -> dict:
    """Every pipeline parameter, as a run passes them to the step."""
    base = DeployConfig(
        project="my-project",
        model_dir=str(TESTDATA / "saved_model_half_plus_two_cpu" / "00000123"),
        sample_instances_uri=str(SAMPLES),
        model_display_name="m",
        endpoint_display_name="e",
        container_version="nightly",
    )
    return dataclasses.replace(base, **changes).to_parameters()


def test_the_step_takes_exactly_the_config_fields_in_their_pipeline_types():
    declared = {n: p.annotation for n, p in inspect.signature(validate_config.python_func).parameters.items()}
    assert declared == {name: kind for name, kind, _, _ in DeployConfig.parameters()}


def test_the_shell_returns_what_the_later_steps_need():
    resolved = validate_config.python_func(**parameters(allowed_batch_sizes=(1, 8), use_tfrt=False))
    assert resolved.warmup_batch_sizes == [1, 8] and resolved.container_args == ["--use_tfrt=false"]
    assert resolved.machine_type == "n1-standard-4" and "tf_opt-cpu.nightly" in resolved.image_uri


def test_pipeline_list_parameters_arrive_as_doubles_and_are_read_back_as_ints():
    values = parameters(allowed_batch_sizes=(1, 8)) | {"allowed_batch_sizes": [1.0, 8.0]}
    resolved = resolve(values)
    assert resolved.warmup_batch_sizes == [1, 8] and "allowed_batch_sizes: 8" in resolved.batching_config


def test_a_bad_endpoint_display_name_fails_the_step():
    with pytest.raises(InvalidConfig) as e:
        validate_config.python_func(**parameters(endpoint_display_name="e" * 129))
    assert [p.parameter for p in e.value.errors] == ["endpoint_display_name"]


def test_deploy_timeout_is_checked_in_the_step():
    with pytest.raises(InvalidConfig) as e:
        validate_config.python_func(**parameters(deploy_timeout_seconds=0.0))
    assert [p.parameter for p in e.value.errors] == ["deploy_timeout_seconds"]


def test_a_user_catalog_passed_as_the_catalog_parameter_is_honoured():
    resolved = resolve(parameters(container_version="2.17", catalog=USER_CATALOG))
    assert resolved.image_uri.endswith("tf_opt-cpu.2-17:latest")


def test_without_the_catalog_the_step_advises_the_catalog_parameter_not_a_cli_flag():
    with pytest.raises(InvalidConfig) as e:
        resolve(parameters(container_version="2.17"))
    message = str(e.value)
    assert "pipeline parameter catalog" in message and "--catalog" not in message
