"""Every rule of a deploy configuration fails with a line that names the parameter, the value and the fix."""

import pytest

from tests.models import TESTDATA
from vertex_serving.catalog import load_catalog
from vertex_serving.config import DeployConfig
from vertex_serving.errors import InvalidConfig
from vertex_serving.rules import validate

CATALOG = load_catalog()
TPU = {"accelerator": "tpu", "container_version": "nightly", "machine_type": "ct5lp-hightpu-1t"}
GPU = {
    "accelerator": "gpu",
    "container_version": "2.15",
    "as_of": "2025-06-01",
    "machine_type": "n1-standard-8",
    "accelerator_type": "NVIDIA_TESLA_T4",
    "accelerator_count": 1,
}
CPU = {"accelerator": "cpu", "container_version": "nightly"}
MODEL_DIR = str(TESTDATA / "saved_model_half_plus_two_cpu" / "00000123")
SAMPLES = str(TESTDATA.parent / "samples" / "half_plus_two.jsonl")  # tests.models.SAMPLES


def named(**values) -> DeployConfig:
    """A configuration with what every run needs (a model, samples, display names), plus `values`."""
    needed = {"model_dir": MODEL_DIR, "sample_instances_uri": SAMPLES, "model_display_name": "m"}
    return DeployConfig(**{**needed, "endpoint_display_name": "e", **values})


def problems(**values) -> list:
    with pytest.raises(InvalidConfig) as e:
        validate(named(**values), CATALOG)
    return e.value.errors


def only(**values):
    """The single problem of a configuration, as (parameter, message)."""
    found = problems(**values)
    assert len(found) == 1, [str(p) for p in found]
    return found[0].parameter, str(found[0])


def test_a_valid_tpu_configuration_resolves_image_args_and_machine():
    plan = validate(
        named(**TPU, tpu_mode="manual_partition", tpu_function_alias="tpu_func", allow_precompilation=True),
        CATALOG,
    )
    assert plan.image.uri == "us-docker.pkg.dev/vertex-ai-restricted/prediction/tf_opt-tpu.nightly:latest"
    assert plan.container_args == (
        "--allow_precompilation=true",
        "--converter_options_string='tpu_functions { function_alias: \"tpu_func\" }'",
    )
    assert plan.machine_spec == {"machine_type": "ct5lp-hightpu-1t"} and plan.tpu_chips == 1
    assert any("no SLA" in w for w in plan.warnings)


def test_container_version_defaults_to_the_newest_usable_one():
    plan = validate(named(accelerator="tpu", as_of="2025-06-01"), CATALOG)
    assert plan.image.version == "2.15" and plan.machine_spec == {"machine_type": "ct5lp-hightpu-1t"}


def test_tpu_machine_type_refuses_a_cpu_or_gpu_image():
    parameter, message = only(**{**CPU, "machine_type": "ct5lp-hightpu-4t"})
    assert parameter == "machine_type" and "needs a TPU image" in message and "accelerator='tpu'" in message


def test_tpu_image_refuses_a_non_tpu_machine_type():
    parameter, message = only(**{**TPU, "machine_type": "n1-standard-4"})
    assert parameter == "machine_type" and "ct5lp-hightpu-1t, ct5lp-hightpu-4t, ct5lp-hightpu-8t" in message


def test_tpu_machine_type_refuses_accelerator_count_and_type():
    found = problems(**TPU, accelerator_type="NVIDIA_TESLA_T4", accelerator_count=1)
    assert [p.parameter for p in found] == ["accelerator_type", "accelerator_count"]
    assert all("TPU is built in" in str(p) for p in found)


@pytest.mark.parametrize("machine_type", ["ct4p-hightpu-4t", "ct6e-standard-1t", "cloud-tpu"])
def test_only_tpu_v5e_machine_types(machine_type):
    parameter, message = only(**{**TPU, "machine_type": machine_type})
    assert parameter == "machine_type" and "v5e" in message and repr(machine_type) in message


def test_other_tpu_accelerator_types_are_refused():
    parameter, message = only(
        **{**CPU, "machine_type": "n1-standard-4", "accelerator_type": "TPU_V4_POD", "accelerator_count": 4}
    )
    assert parameter == "accelerator_type" and "TPU_V4_POD" in message and "v5e" in message


def test_tpu_mode_needs_the_tpu_accelerator():
    parameter, message = only(**CPU, tpu_mode="preconverted")
    assert parameter == "tpu_mode" and "accelerator='tpu'" in message


def test_tpu_function_alias_needs_manual_partition():
    parameter, message = only(**TPU, tpu_mode="auto_partition", tpu_function_alias="f")
    assert parameter == "tpu_function_alias" and "manual_partition" in message


def test_tfrt_on_gpu_needs_precompilation():
    parameter, message = only(**GPU, use_tfrt=True)
    assert parameter == "use_tfrt" and "allow_precompilation=true" in message
    assert validate(named(**GPU, use_tfrt=True, allow_precompilation=True), CATALOG).container_args == (
        "--allow_precompilation=true",
        "--use_tfrt=true",
    )


def test_tfrt_on_gpu_needs_213_or_newer():
    parameter, message = only(
        **{**GPU, "container_version": "2.12", "as_of": "2025-01-01"}, use_tfrt=True, allow_precompilation=True
    )
    assert parameter == "use_tfrt" and "'2.12'" in message and "2.13" in message


def test_tfrt_is_not_in_the_28_cpu_image():
    parameter, message = only(accelerator="cpu", container_version="2.8", as_of="2024-01-01", use_tfrt=True)
    assert parameter == "use_tfrt" and "2.8 CPU image" in message
    assert validate(
        named(accelerator="cpu", container_version="2.8", as_of="2024-01-01", use_tfrt=False), CATALOG
    ).container_args == ("--use_tfrt=false",)


@pytest.mark.parametrize("flag", ["allow_precompilation", "allow_compression", "disable_optimizer", "use_tfrt"])
def test_optimized_runtime_flags_are_refused_on_the_standard_runtime(flag):
    parameter, message = only(
        accelerator="cpu", container_version="2.15", as_of="2025-06-01", runtime="standard", **{flag: True}
    )
    assert parameter == flag and "runtime='optimized'" in message


@pytest.mark.parametrize("gpu", ["NVIDIA_TESLA_P4", "NVIDIA_TESLA_P100"])
def test_old_gpus_are_refused_by_the_optimized_runtime(gpu):
    parameter, message = only(**{**GPU, "accelerator_type": gpu})
    assert parameter == "accelerator_type" and gpu in message and "optimized TensorFlow runtime" in message
    validate(named(**{**GPU, "accelerator_type": gpu}, runtime="standard"), CATALOG)


def test_gpu_must_fit_the_machine_family():
    parameter, message = only(**{**GPU, "accelerator_type": "NVIDIA_L4"})
    assert parameter == "accelerator_type" and "'n1-standard-8'" in message and "NVIDIA_TESLA_T4" in message
    parameter, message = only(**{**GPU, "machine_type": "e2-standard-4"})
    assert parameter == "machine_type" and "carries no GPU" in message


def test_gpu_needs_a_type_and_a_count():
    parameter, message = only(**{**GPU, "accelerator_type": ""})
    assert parameter == "accelerator_type" and "is required" in message
    parameter, message = only(**{**GPU, "accelerator_count": 0})
    assert parameter == "accelerator_count"
    parameter, message = only(**{**GPU, "accelerator_type": "NVIDIA_TESLA_K9000"})
    assert parameter == "accelerator_type" and "NVIDIA_L4" in message


def test_cpu_refuses_a_gpu_accelerator_type():
    parameter, message = only(**CPU, accelerator_type="NVIDIA_TESLA_T4", accelerator_count=1)
    assert parameter == "accelerator_type" and "accelerator='gpu'" in message


@pytest.mark.parametrize("method", ["integrated_gradients", "xrai"])
def test_only_sampled_shapley_explanations_on_the_optimized_runtime(method):
    parameter, message = only(**CPU, explanation_method=method)
    assert parameter == "explanation_method" and "Sampled Shapley" in message
    validate(named(**CPU, explanation_method="sampled_shapley"), CATALOG)


def test_unknown_explanation_method():
    parameter, message = only(**CPU, explanation_method="lime")
    assert parameter == "explanation_method" and "sampled_shapley" in message


def test_image_past_end_of_availability_needs_the_explicit_override():
    parameter, message = only(accelerator="tpu", container_version="2.15", as_of="2026-11-22")
    assert parameter == "container_version" and "2025-08-15" in message and "allow_unavailable_image" in message
    plan = validate(
        named(accelerator="tpu", container_version="2.15", as_of="2026-11-22", allow_unavailable_image=True),
        CATALOG,
    )
    assert plan.image.version == "2.15" and plan.warnings


def test_style_example_tpu_machine_with_a_version_lacking_tpu():
    parameter, message = only(**{**TPU, "container_version": "2.14"})
    assert message == "container_version='2.14' has no tpu image: use a version that offers tpu: nightly, 2.16, 2.15"


def test_preconverted_refuses_precompilation_since_it_disables_the_optimizer():
    parameter, message = only(**TPU, tpu_mode="preconverted", allow_precompilation=True)
    assert parameter == "allow_precompilation" and "tpu_mode='preconverted'" in message


def test_batching_is_checked_with_tf_serving_rules():
    parameter, message = only(**CPU, max_batch_size=32, allowed_batch_sizes=(8, 16))
    assert parameter == "allowed_batch_sizes" and "max_batch_size=32" in message
    parameter, _ = only(**CPU, batch_timeout_micros=500)
    assert parameter == "batch_timeout_micros"
    plan = validate(named(**CPU, allowed_batch_sizes=(1, 8, 32), batch_timeout_micros=500), CATALOG)
    assert plan.batching.max_batch_size == 32 and plan.batching.batch_sizes() == (1, 8, 32)


@pytest.mark.parametrize(
    ("values", "parameter"),
    [
        ({"min_replica_count": 0}, "min_replica_count"),
        ({"min_replica_count": 2, "max_replica_count": 1}, "max_replica_count"),
        ({"traffic_percentage": 120}, "traffic_percentage"),
        ({"canary_percentage": -1}, "canary_percentage"),
        ({"traffic_percentage": 5}, "canary_percentage"),  # the default canary step (10%) would overshoot it
        ({"traffic_percentage": 30, "canary_percentage": 30}, "canary_percentage"),
        ({"endpoint_network": "default"}, "endpoint_network"),
        ({"staging_bucket": "my-bucket"}, "staging_bucket"),
        ({"smoke_min_top1_agreement": 1.5}, "smoke_min_top1_agreement"),
        ({"smoke_requests": 0}, "smoke_requests"),
        ({"smoke_atol": -1.0}, "smoke_atol"),
        ({"as_of": "June"}, "as_of"),
    ],
)
def test_deploy_and_smoke_test_parameters_are_checked(values, parameter):
    found_parameter, message = only(**CPU, **values)
    assert found_parameter == parameter and message.startswith(f"{parameter}=")


def test_all_problems_of_a_configuration_are_reported_at_once():
    found = problems(
        accelerator="gpu",
        container_version="2.12",
        as_of="2025-01-01",
        machine_type="ct5lp-hightpu-1t",
        accelerator_count=2,
        use_tfrt=True,
        explanation_method="xrai",
        traffic_percentage=-5,
    )
    assert [p.parameter for p in found] == [
        "machine_type",
        "accelerator_count",
        "use_tfrt",
        "use_tfrt",
        "explanation_method",
        "traffic_percentage",
    ]


@pytest.mark.parametrize("name", ["model_display_name", "endpoint_display_name"])
def test_an_empty_display_name_is_refused(name):
    parameter, message = only(**CPU, **{name: " "})
    assert parameter == name and "next run would make another one" in message


def test_a_bogus_location_and_an_endpoint_without_a_scheme_are_refused():
    assert only(**CPU, location="moon-base")[0] == "location"
    parameter, message = only(**CPU, api_endpoint="127.0.0.1:8080")
    assert parameter == "api_endpoint" and "write https://127.0.0.1:8080" in message
    validate(named(**CPU, location="northamerica-northeast1", api_endpoint="http://127.0.0.1:1"), CATALOG)


@pytest.mark.parametrize(
    ("model_dir", "needle"),
    [
        ("", "is empty"),
        ("gs://", "is not a gs://BUCKET/PATH URI"),
        ("gs:/bucket/model", "is not a gs://BUCKET/PATH URI"),
        ("s3://bucket/model", "is not a gs://BUCKET/PATH URI"),
        ("/nonexistent/model", "is not a folder on this machine"),
        ("../../etc", "climbs out of the folder it names"),
        (str(TESTDATA), "holds no saved_model.pb"),
    ],
)
def test_model_dir_must_name_a_savedmodel(model_dir, needle):
    parameter, message = only(**CPU, model_dir=model_dir)
    assert parameter == "model_dir" and needle in message


def test_a_gs_model_dir_is_left_to_convert_and_a_local_savedmodel_passes():
    validate(named(**CPU, model_dir="gs://my-bucket/models/digits"), CATALOG)
    validate(named(**CPU), CATALOG)


@pytest.mark.parametrize(("machine_type", "fix"), [("n1-standrd-4", "did you mean n1-standard-4?"), ("n1-bogus-7", "")])
def test_an_unknown_machine_type_is_refused_with_the_one_meant(machine_type, fix):
    parameter, message = only(**CPU, machine_type=machine_type)
    assert parameter == "machine_type" and "is not a machine type Vertex AI serves predictions on" in message
    assert fix in message


def test_known_families_and_sizes_pass():
    for machine_type in ("n1-highmem-16", "e2-standard-8", "c3-standard-22"):
        validate(named(**CPU, machine_type=machine_type), CATALOG)


def test_a_canary_step_below_the_target_or_none_at_all_is_accepted():
    for values in (
        {"traffic_percentage": 30, "canary_percentage": 29},
        {"traffic_percentage": 5, "canary_percentage": 0},
    ):
        assert validate(named(**CPU, **values), CATALOG).config.canary_percentage == values["canary_percentage"]
    assert validate(named(**CPU, traffic_percentage=0), CATALOG)  # at 0% there is nothing to step through


def test_an_unknown_optimization_mode_is_refused():
    parameter, message = only(**CPU, optimization="fastest")
    assert parameter == "optimization" and "use one of as_configured, measure" in message


def test_a_min_speedup_below_one_is_refused():
    parameter, message = only(**CPU, min_speedup=0.9)
    assert parameter == "min_speedup" and "would keep a flag that makes the model slower" in message


def test_measuring_the_standard_runtime_is_refused():
    parameter, message = only(accelerator="cpu", runtime="standard", container_version="2.15", optimization="measure")
    assert parameter == "optimization" and "runtime='standard'" in message
