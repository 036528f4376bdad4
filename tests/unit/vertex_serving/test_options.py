"""Typed runtime options rendered as the exact container args Vertex AI documents, and read back."""

import pytest

from vertex_serving.errors import UserError
from vertex_serving.options import (
    RuntimeOptions,
    options_for_tpu_mode,
    parse_container_args,
    parse_converter_options,
)


def test_preconverted_tpu_mode_renders_the_manual_optimization_example():
    assert options_for_tpu_mode("preconverted").container_args() == [
        "--saved_model_tags='serve,tpu'",
        "--disable_optimizer=true",
    ]


def test_auto_partition_tpu_mode_renders_no_args():
    assert options_for_tpu_mode("auto_partition").container_args() == []


def test_manual_partition_tpu_mode_renders_the_converter_options_string():
    args = options_for_tpu_mode("manual_partition", "tpu_func").container_args()
    assert args == ["--converter_options_string='tpu_functions { function_alias: \"tpu_func\" }'"]


def test_optimized_runtime_example_of_the_runtime_guide():
    options = RuntimeOptions(allow_precompilation=True, allow_compression=True)
    assert options.container_args() == ["--allow_precompilation=true", "--allow_compression=true"]


def test_use_tfrt_is_rendered_only_when_set():
    assert RuntimeOptions().container_args() == []
    assert RuntimeOptions(use_tfrt=False).container_args() == ["--use_tfrt=false"]
    assert RuntimeOptions(use_tfrt=True, allow_precompilation=True).container_args() == [
        "--allow_precompilation=true",
        "--use_tfrt=true",
    ]


def test_unknown_tpu_mode_names_the_three_modes():
    with pytest.raises(UserError) as e:
        options_for_tpu_mode("manual")
    assert e.value.parameter == "tpu_mode" and "auto_partition, manual_partition, preconverted" in str(e.value)


def test_manual_partition_needs_an_alias():
    with pytest.raises(UserError) as e:
        options_for_tpu_mode("manual_partition", "")
    assert e.value.parameter == "tpu_function_alias" and "function_aliases" in str(e.value)


def test_an_alias_cannot_smuggle_other_converter_options():
    with pytest.raises(UserError) as e:
        options_for_tpu_mode("manual_partition", 'f" } batch_options { x: "1')
    assert e.value.parameter == "tpu_function_alias"


def test_converter_options_accept_only_tpu_functions():
    assert parse_converter_options('tpu_functions { function_alias: "a" } tpu_functions { function_alias: "b" }') == (
        "a",
        "b",
    )
    with pytest.raises(UserError) as e:
        parse_converter_options("batch_options { num_batch_threads: 2 }")
    assert e.value.parameter == "converter_options_string" and "batch_options" in str(e.value)
    assert "only tpu_functions" in str(e.value)


@pytest.mark.parametrize(
    "options",
    [
        options_for_tpu_mode("preconverted"),
        options_for_tpu_mode("manual_partition", "serving_tpu"),
        RuntimeOptions(allow_precompilation=True, allow_compression=True, use_tfrt=False),
    ],
)
def test_container_args_read_back_to_the_same_options(options):
    parsed, rest = parse_container_args(options.container_args())
    assert parsed == options and rest == []


def test_reading_args_keeps_flags_it_does_not_own_and_refuses_bad_booleans():
    parsed, rest = parse_container_args(["--allow_precompilation=true", "--rest_api_port=8501", "positional"])
    assert parsed.allow_precompilation and rest == ["--rest_api_port=8501", "positional"]
    with pytest.raises(UserError) as e:
        parse_container_args(["--allow_compression=yes"])
    assert e.value.parameter == "allow_compression"
