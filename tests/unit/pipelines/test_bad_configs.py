"""A hundred distinct bad configurations, each answered by `vsp validate` with one line and exit code 2.

The line names the parameter, repeats the bad value and says how to fix it, so a user never needs a second try
to find out what was wrong. Each case holds one mistake; the base configuration alone is valid.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import yaml

from pipelines import cli
from tests.models import TESTDATA

MODEL = TESTDATA / "saved_model_half_plus_two_cpu" / "00000123"
# The fix starts with what to do.
FIX = re.compile(
    r": (use|set|give|write|raise|lower|add|append|remove|list|allow|shorten|fix|quote|did you mean|name|see)\b", re.I
)

# (overrides, parameter named in the answer); each override is one mistake a user makes.
CASES = [
    # identity and where
    ({"project": "my_project"}, "project"),
    ({"project": "My Project"}, "project"),
    ({"location": "us-central"}, "location"),
    ({"location": "mars-west1"}, "location"),
    ({"location": ""}, "location"),
    ({"api_endpoint": "localhost:8080"}, "api_endpoint"),
    ({"api_endpoint": "ftp://127.0.0.1:1"}, "api_endpoint"),
    ({"staging_bucket": "my-bucket"}, "staging_bucket"),
    ({"staging_bucket": "gs://"}, "staging_bucket"),
    ({"staging_bucket": "s3://bucket"}, "staging_bucket"),
    # the model
    ({"model_dir": ""}, "model_dir"),
    ({"model_dir": "/nonexistent/model"}, "model_dir"),
    ({"model_dir": "gs://"}, "model_dir"),
    ({"model_dir": "gs:/bucket/model"}, "model_dir"),
    ({"model_dir": "../../etc"}, "model_dir"),
    ({"model_dir": str(TESTDATA)}, "model_dir"),
    ({"model_dir": 42}, "model_dir"),
    ({"model_display_name": ""}, "model_display_name"),
    ({"model_display_name": "m" * 129}, "model_display_name"),
    ({"model_display_name": ["a"]}, "model_display_name"),
    ({"version_description": 3}, "version_description"),
    ({"catalog": '[versions]\n"2.99" = {}'}, "catalog"),
    ({"catalog": "/nonexistent/catalog.toml"}, "catalog"),
    ({"catalog": "this is = not toml ["}, "catalog"),
    # the runtime
    ({"container_version": "2.10"}, "container_version"),
    ({"container_version": "3.0"}, "container_version"),
    ({"container_version": "latest"}, "container_version"),
    ({"container_version": 2.16}, "container_version"),
    ({"accelerator": "tpu-v4"}, "accelerator"),
    ({"accelerator": ""}, "accelerator"),
    ({"accelerator": "CPU "}, "accelerator"),
    ({"runtime": "fast"}, "runtime"),
    ({"runtime": ""}, "runtime"),
    ({"allow_precompilation": "yes"}, "allow_precompilation"),
    ({"allow_precompilation": 2}, "allow_precompilation"),
    ({"allow_compression": "maybe"}, "allow_compression"),
    ({"use_tfrt": "sometimes"}, "use_tfrt"),
    ({"disable_optimizer": [True]}, "disable_optimizer"),
    ({"tpu_mode": "fast"}, "tpu_mode"),
    ({"tpu_mode": "tpu"}, "tpu_mode"),
    ({"tpu_function_alias": "serve"}, "tpu_function_alias"),
    ({"allowed_batch_sizes": [8, 4]}, "allowed_batch_sizes"),
    ({"allowed_batch_sizes": [0, 4]}, "allowed_batch_sizes"),
    ({"allowed_batch_sizes": [-1]}, "allowed_batch_sizes"),
    ({"allowed_batch_sizes": "1,2"}, "allowed_batch_sizes"),
    ({"allowed_batch_sizes": [1.5]}, "allowed_batch_sizes"),
    ({"allowed_batch_sizes": [4, 4]}, "allowed_batch_sizes"),
    ({"allowed_batch_sizes": list(range(1, 401))}, "allowed_batch_sizes"),
    ({"allowed_batch_sizes": [1, 8], "max_batch_size": 4}, "allowed_batch_sizes"),
    ({"max_batch_size": -1}, "max_batch_size"),
    ({"max_batch_size": "big"}, "max_batch_size"),
    ({"max_batch_size": 1.5}, "max_batch_size"),
    ({"batch_timeout_micros": -5}, "batch_timeout_micros"),
    ({"batch_timeout_micros": 500}, "batch_timeout_micros"),
    ({"batch_timeout_micros": "1ms"}, "batch_timeout_micros"),
    ({"explanation_method": "integrated-gradients"}, "explanation_method"),
    ({"explanation_method": "shapley"}, "explanation_method"),
    ({"allow_unavailable_image": "sure"}, "allow_unavailable_image"),
    ({"as_of": "June"}, "as_of"),
    ({"as_of": "2025-13-01"}, "as_of"),
    ({"as_of": 20250601}, "as_of"),
    # where it is deployed
    ({"machine_type": "n1-standrd-4"}, "machine_type"),
    ({"machine_type": "n1-bogus-7"}, "machine_type"),
    ({"machine_type": "ct5lp-hightpu-3t"}, "machine_type"),
    ({"machine_type": "ct4p-hightpu-4t"}, "machine_type"),
    ({"machine_type": "N1-STANDARD-4"}, "machine_type"),
    ({"machine_type": 4}, "machine_type"),
    ({"accelerator_type": "NVIDIA_TESLA_T4"}, "accelerator_type"),
    ({"accelerator_type": "NVIDIA_FAKE"}, "accelerator_type"),
    ({"accelerator_count": 2}, "accelerator_count"),
    ({"accelerator_count": "two"}, "accelerator_count"),
    ({"min_replica_count": 0}, "min_replica_count"),
    ({"min_replica_count": "one"}, "min_replica_count"),
    ({"max_replica_count": 0, "min_replica_count": 1}, "max_replica_count"),
    ({"max_replica_count": 1.5}, "max_replica_count"),
    ({"endpoint_display_name": ""}, "endpoint_display_name"),
    ({"endpoint_display_name": "e" * 129}, "endpoint_display_name"),
    ({"endpoint_display_name": None}, "endpoint_display_name"),
    ({"endpoint_network": "default"}, "endpoint_network"),
    ({"endpoint_network": "projects/p/networks/n"}, "endpoint_network"),
    ({"traffic_percentage": 120}, "traffic_percentage"),
    ({"traffic_percentage": -1}, "traffic_percentage"),
    ({"traffic_percentage": "all"}, "traffic_percentage"),
    ({"traffic_percentage": 50.5}, "traffic_percentage"),
    ({"canary_percentage": 101}, "canary_percentage"),
    ({"canary_percentage": 40, "traffic_percentage": 20}, "canary_percentage"),
    ({"deploy_timeout_seconds": 0}, "deploy_timeout_seconds"),
    ({"deploy_timeout_seconds": "1h"}, "deploy_timeout_seconds"),
    ({"undeploy_zero_traffic": "no"}, "undeploy_zero_traffic"),
    # the smoke test
    ({"sample_instances_uri": "gs:/bucket/samples.jsonl"}, "sample_instances_uri"),
    ({"sample_instances_uri": "/nonexistent/samples.jsonl"}, "sample_instances_uri"),
    ({"smoke_atol": -1.0}, "smoke_atol"),
    ({"smoke_atol": "1e-4"}, "smoke_atol"),
    ({"smoke_rtol": -0.1}, "smoke_rtol"),
    ({"smoke_min_top1_agreement": 1.5}, "smoke_min_top1_agreement"),
    ({"smoke_requests": 0}, "smoke_requests"),
    ({"smoke_requests": "many"}, "smoke_requests"),
    ({"smoke_p99_latency_ms": -1}, "smoke_p99_latency_ms"),
    # keys that are not parameters
    ({"traffic_percent": 50}, "traffic_percent"),
    ({"machinetype": "n1-standard-4"}, "machinetype"),
]


@pytest.fixture(scope="module")
def base(tmp_path_factory) -> dict:
    folder = tmp_path_factory.mktemp("config")
    samples = folder / "samples.jsonl"
    samples.write_text(json.dumps([1.0]) + "\n")
    return {
        "project": "my-project",
        "model_dir": str(MODEL),
        "model_display_name": "half-plus-two",
        "endpoint_display_name": "half-plus-two",
        "staging_bucket": "gs://my-bucket",
        "sample_instances_uri": str(samples),
        "machine_type": "n1-standard-4",
    }


def answer(config: dict, tmp_path: Path, capsys) -> tuple[int, list[str]]:
    path = tmp_path / "deploy.yaml"
    path.write_text(yaml.safe_dump(config))
    code = cli.main(["validate", str(path)])
    captured = capsys.readouterr()
    return code, [line for line in (captured.out + captured.err).splitlines() if line.strip()]


def test_there_are_a_hundred_distinct_cases():
    keys = [json.dumps(overrides, sort_keys=True) for overrides, _ in CASES]
    assert len(CASES) == 100 and len(set(keys)) == 100


def test_the_base_configuration_is_valid(base, tmp_path, capsys):
    code, lines = answer(base, tmp_path, capsys)
    assert code == 0, lines


@pytest.mark.parametrize(("overrides", "parameter"), CASES, ids=[f"{i:03}-{p}" for i, (_, p) in enumerate(CASES)])
def test_a_bad_configuration_gets_one_line_naming_parameter_value_and_fix(base, tmp_path, capsys, overrides, parameter):
    code, lines = answer({**base, **overrides}, tmp_path, capsys)
    assert code == 2 and len(lines) == 1, lines
    line = lines[0]
    value = overrides.get(parameter, base.get(parameter))
    shown = repr(value) if isinstance(value, str) else str(value)
    if parameter == "catalog" and "\n" in str(value) or "=" in str(value):  # TOML text: named by its first line
        shown = str(value).splitlines()[0][:20]
    assert f"{parameter}=" in line, line
    assert shown[:40] in line or json.dumps(value)[:40] in line, line
    assert FIX.search(line), line
