"""Every case of the TF Serving tests the model server answers to is ported, or set aside here with the reason.

The audit of tensorflow/serving at 9d981c5c2708d23c5407c7c1e30309e6f9798874: each test case of the four files
below, and each section of `g3doc/api_rest.md` that states a behaviour, maps to the tests that port it
(`path::function` under tests/) or to "not applicable: reason". A port must exist and name its case in its own
text (its comment or docstring), so removing or renaming a ported test fails this module; a test that names a
case this table does not list fails it too. Cases ported with a difference, and why, are listed in the porting
modules' docstrings (tests/integration/test_tfserving_rest_compat.py above all).
"""

from __future__ import annotations

import ast
import re
from functools import cache
from pathlib import Path

import pytest

TESTS = Path(__file__).resolve().parents[3]
GRPC = "integration/test_modelserver_grpc.py"
REST = "integration/test_tfserving_rest_compat.py"
CONFIG = "integration/test_model_config.py"
FLAGS = "integration/test_modelserver_flags.py"
TENSORS = "unit/vertex_serving/tfserving/test_tensors.py"
EXAMPLES = "unit/vertex_serving/tfserving/test_examples.py"
REGISTRY = "unit/vertex_serving/tfserving/test_registry.py"
NOT_APPLICABLE = "not applicable: "

AUDIT: dict[str, dict[str, tuple[str, ...] | str]] = {
    "tensorflow_serving/model_servers/tensorflow_model_server_test.py": {
        "TensorflowModelServerTest.testGetModelStatus": (f"{GRPC}::test_get_model_status",),
        "TensorflowModelServerTest.testGetModelMetadata": (f"{GRPC}::test_get_model_metadata",),
        "TensorflowModelServerTest.testClassify": (f"{GRPC}::test_classify",),
        "TensorflowModelServerTest.testClassifyTf2": (f"{GRPC}::test_classify",),
        "TensorflowModelServerTest.testRegress": (f"{GRPC}::test_regress",),
        "TensorflowModelServerTest.testRegressTf2": (f"{GRPC}::test_regress",),
        "TensorflowModelServerTest.testMultiInference": (f"{GRPC}::test_multi_inference",),
        "TensorflowModelServerTest.testMultiInferenceTf2": (f"{GRPC}::test_multi_inference",),
        "TensorflowModelServerTest.testPredictSavedModel": (f"{GRPC}::test_predict_saved_model",),
        "TensorflowModelServerTest.testGoodModelConfig": (
            f"{CONFIG}::test_good_model_config",
            "unit/vertex_serving/tfserving/test_model_config.py::test_tf_serving_good_model_config_lists_both_models",
        ),
        "TensorflowModelServerTest.testBadModelConfig": (
            f"{CONFIG}::test_bad_model_config",
            "unit/vertex_serving/tfserving/test_model_config.py::"
            "test_tf_serving_bad_model_config_names_the_text_format_error",
        ),
        "TensorflowModelServerTest.testModelConfigReload": NOT_APPLICABLE
        + "it rewrites the config file and waits for --model_config_file_poll_wait_seconds to load the new one; "
        "this server reads the file once at startup (README: the local TF model server)",
        "TensorflowModelServerTest.testModelConfigReloadWithZeroPollPeriod": (
            f"{CONFIG}::test_model_config_reload_with_zero_poll_period",
        ),
        "TensorflowModelServerTest.testGoodGrpcChannelArgs": (f"{GRPC}::test_good_grpc_channel_args",),
        "TensorflowModelServerTest.testClassifyREST": (f"{REST}::test_classify_rest",),
        "TensorflowModelServerTest.testRegressREST": (f"{REST}::test_regress_rest",),
        "TensorflowModelServerTest.testPredictREST": (f"{REST}::test_predict_rest",),
        "TensorflowModelServerTest.testPredictColumnarREST": (f"{REST}::test_predict_columnar_rest",),
        "TensorflowModelServerTest.testGetStatusREST": (f"{REST}::test_get_status_rest",),
        "TensorflowModelServerTest.testGetModelMetadataREST": (f"{REST}::test_get_model_metadata_rest",),
        "TensorflowModelServerTest.testPrometheusEndpoint": (
            f"{REST}::test_prometheus_endpoint",
            f"{FLAGS}::test_monitoring_config_file_names_the_prometheus_path",
        ),
        "TensorflowModelServerTest.testPredictUDS": (f"{GRPC}::test_predict_uds",),
        "TensorflowModelServerTest.testPredictOnTfLite": NOT_APPLICABLE
        + "serves a TF Lite model (--prefer_tflite_model); this server, like the optimized runtime's containers it "
        "stands in for, serves SavedModels only",
        "TensorflowModelServerTest.testPredictWithSignatureDefOnTfLite": NOT_APPLICABLE
        + "serves a TF Lite model with a signature def (--prefer_tflite_model); SavedModels only here",
        "TensorflowModelServerTest.test_tf_saved_model_save": (
            f"{GRPC}::test_tf_saved_model_save",
            f"{REST}::test_tf_saved_model_save",
        ),
        "TensorflowModelServerTest.test_tf_saved_model_save_multiple_signatures": (
            f"{GRPC}::test_tf_saved_model_save_multiple_signatures",
            f"{REST}::test_tf_saved_model_save_multiple_signatures",
        ),
        "TensorflowModelServerTest.test_sequential_keras_saved_model_save": (
            f"{GRPC}::test_sequential_keras_saved_model_save",
        ),
        "TensorflowModelServerTest.test_distrat_sequential_keras_saved_model_save": (
            f"{GRPC}::test_distrat_sequential_keras_saved_model_save",
        ),
        "TensorflowModelServerTest.test_profiler_service_with_valid_trace_request": NOT_APPLICABLE
        + "traces the server through TensorFlow's profiler gRPC service, which this server does not run; the "
        "upstream test checks no answer of the model server",
        "TensorflowModelServerTest.test_tf_text": NOT_APPLICABLE
        + "needs the tf_text_regression model, which is not among the shared test models, and TensorFlow Text's "
        "ops, which the TF Serving binary links in and this server does not load",
    },
    "tensorflow_serving/model_servers/http_rest_api_handler_test.cc": {
        "HttpRestApiHandlerTest.kPathRegex": (f"{REST}::test_path_regex",),
        "HttpRestApiHandlerTest.UnsupportedApiCalls": (
            f"{REST}::test_unsupported_api_calls",
            "unit/vertex_serving/tfserving/test_rest.py::test_unsupported_api_calls",
        ),
        "HttpRestApiHandlerTest.PredictModelNameVersionErrors": (f"{REST}::test_predict_model_name_version_errors",),
        "HttpRestApiHandlerTest.PredictRequestErrors": (f"{REST}::test_predict_request_errors",),
        "HttpRestApiHandlerTest.Predict": (f"{REST}::test_predict",),
        "HttpRestApiHandlerTest.Regress": (f"{REST}::test_regress",),
        "HttpRestApiHandlerTest.Classify": (f"{REST}::test_classify",),
        "HttpRestApiHandlerTest.GetStatus": (f"{REST}::test_get_status",),
        "HttpRestApiHandlerTest.GetModelMetadata": (f"{REST}::test_get_model_metadata",),
    },
    "tensorflow_serving/util/json_tensor_test.cc": {
        "JsontensorTest.SingleUnnamedTensor": (f"{TENSORS}::test_single_unnamed_tensor",),
        "JsontensorTest.DeeplyNestedWellFormed": (
            f"{TENSORS}::test_deeply_nested_well_formed",
            f"{REST}::test_json_nested_far_deeper_than_1024_levels_is_read",
        ),
        "JsontensorTest.DeeplyNestedMalformed": (f"{TENSORS}::test_deeply_nested_malformed",),
        "JsontensorTest.MixedInputForFloatTensor": (f"{TENSORS}::test_mixed_input_for_float_tensor",),
        "JsontensorTest.MixedInputForDoubleTensor": (f"{TENSORS}::test_mixed_input_for_double_tensor",),
        "JsontensorTest.FloatTensorWithPrecisionLoss": (f"{TENSORS}::test_float_tensor_with_precision_loss",),
        "JsontensorTest.FloatTensorThatExceedsMaxReturnsInf": (
            f"{TENSORS}::test_float_tensor_that_exceeds_max_returns_inf",
        ),
        "JsontensorTest.FloatTensorThatExceedsMinReturnsZero": (
            f"{TENSORS}::test_float_tensor_that_exceeds_min_returns_zero",
        ),
        "JsontensorTest.SingleUnnamedTensorWithSignature": (f"{TENSORS}::test_single_unnamed_tensor_with_signature",),
        "JsontensorTest.TensorFromNonNullTerminatedBuffer": (
            f"{TENSORS}::test_tensor_from_non_null_terminated_buffer",
        ),
        "JsontensorTest.SingleUnnamedTensorBase64Scalars": (f"{TENSORS}::test_single_unnamed_tensor_base64_scalars",),
        "JsontensorTest.SingleUnnamedTensorBase64Lists": (f"{TENSORS}::test_single_unnamed_tensor_base64_lists",),
        "JsontensorTest.SingleNamedTensorBase64": (f"{TENSORS}::test_single_named_tensor_base64",),
        "JsontensorTest.MultipleNamedTensor": (
            f"{TENSORS}::test_multiple_named_tensor",
            f"{REST}::test_tensors_echo_through_the_json_mapping",
        ),
        "JsontensorTest.SingleUnnamedTensorColumnarFormat": (f"{TENSORS}::test_single_unnamed_tensor_columnar_format",),
        "JsontensorTest.MultipleNamedTensorColumnarFormat": (f"{TENSORS}::test_multiple_named_tensor_columnar_format",),
        "JsontensorTest.SingleUnnamedTensorErrors": (
            f"{TENSORS}::test_single_unnamed_tensor_errors",
            f"{TENSORS}::test_single_unnamed_tensor_errors_empty_document",
        ),
        "JsontensorTest.MultipleNamedTensorErrors": (
            f"{TENSORS}::test_multiple_named_tensor_errors",
            f"{TENSORS}::test_multiple_named_tensor_errors_list_then_object",
        ),
        "JsontensorTest.FromJsonSingleTensor": (f"{TENSORS}::test_from_json_single_tensor",),
        "JsontensorTest.FromJsonSingleScalarTensor": (f"{TENSORS}::test_from_json_single_scalar_tensor",),
        "JsontensorTest.FromJsonSingleBytesTensor": (f"{TENSORS}::test_from_json_single_bytes_tensor",),
        "JsontensorTest.FromJsonSingleFloatTensorSixDigitPrecision": (
            f"{TENSORS}::test_from_json_single_float_tensor_six_digit_precision",
        ),
        "JsontensorTest.FromJsonSingleFloatTensorNonFinite": (
            f"{TENSORS}::test_from_json_single_float_tensor_non_finite",
        ),
        "JsontensorTest.FromJsonSingleTensorErrors": (f"{TENSORS}::test_from_json_single_tensor_errors",),
        "JsontensorTest.FromJsonMultipleNamedTensors": (f"{TENSORS}::test_from_json_multiple_named_tensors",),
        "JsontensorTest.FromJsonMultipleNamedTensorsErrors": (
            f"{TENSORS}::test_from_json_multiple_named_tensors_errors",
        ),
        "JsontensorTest.FromJsonSingleZeroBatchTensor": (f"{TENSORS}::test_from_json_single_zero_batch_tensor",),
        "JsontensorTest.FromJsonMultipleZeroBatchTensors": (f"{TENSORS}::test_from_json_multiple_zero_batch_tensors",),
        "JsontensorTest.FromJsonMultipleZeroBatchTensorsErrors": (
            f"{TENSORS}::test_from_json_multiple_zero_batch_tensors_errors",
        ),
        "ClassifyRegressRequestTest.RequestNoContext": (f"{EXAMPLES}::test_request_no_context",),
        "ClassifyRegressRequestTest.RequestWithContextAndSignature": (
            f"{EXAMPLES}::test_request_with_context_and_signature",
            f"{REST}::test_json_booleans_in_examples_are_int64_features",
        ),
        "ClassifyRegressRequestTest.JsonErrors": (f"{EXAMPLES}::test_json_errors",),
        "ClassifyRegressnResultTest.JsonFromClassificationResult": (
            f"{EXAMPLES}::test_json_from_classification_result",
        ),
        "ClassifyRegressnResultTest.JsonFromRegressionResult": (f"{EXAMPLES}::test_json_from_regression_result",),
        "ClassifyRegressnResultTest.JsonFromRegressionResultWithNonFinite": (
            f"{EXAMPLES}::test_json_from_regression_result_with_non_finite",
        ),
        "ClassifyRegressnResultTest.JsonFromResultErrors": (f"{EXAMPLES}::test_json_from_result_errors",),
        "MakeJsonFromTensors.StatusOK": (f"{REST}::test_predict",),
        "MakeJsonFromTensors.StatusError": ("unit/vertex_serving/tfserving/test_jsondoc.py::test_status_error",),
    },
    "tensorflow_serving/model_servers/get_model_status_impl_test.cc": {
        "GetModelStatusImplTest.MissingOrEmptyModelSpecFailure": (
            f"{REST}::test_missing_or_empty_model_spec_failure",
            f"{REGISTRY}::test_missing_or_empty_model_spec_is_invalid_argument",
        ),
        "GetModelStatusImplTest.InvalidModelNameFailure": (
            f"{REST}::test_invalid_model_name_failure",
            f"{REGISTRY}::test_unknown_model_is_not_found",
        ),
        "GetModelStatusImplTest.InvalidModelVersionFailure": (
            f"{REST}::test_invalid_model_version_failure",
            f"{REGISTRY}::test_unknown_version_is_not_found",
        ),
        "GetModelStatusImplTest.AllVersionsSuccess": (
            f"{REST}::test_all_versions_success",
            f"{REGISTRY}::test_all_versions_are_listed_ok",
        ),
        "GetModelStatusImplTest.SingleVersionSuccess": (
            f"{REST}::test_single_version_success",
            f"{REGISTRY}::test_single_version",
        ),
        "GetModelStatusImplTest.ModelSpecOverride": NOT_APPLICABLE
        + "calls GetModelStatusImpl::GetModelStatusWithModelSpec, a C++ entry point that no TF Serving API (REST or "
        "gRPC) exposes; its other half, a request for an existing model succeeding, is AllVersionsSuccess",
    },
    "tensorflow_serving/g3doc/api_rest.md": {
        'api_rest.md "RESTful API"': (f"{REST}::test_api_rest_example",),
        'api_rest.md "Model status API"': (f"{REST}::test_api_rest_model_status_api",),
        'api_rest.md "Model Metadata API"': (f"{REST}::test_api_rest_model_metadata_api",),
        'api_rest.md "Classify and Regress API"': (
            f"{REST}::test_regress",
            f"{REST}::test_classify",
            f"{EXAMPLES}::test_request_with_context_and_signature",
        ),
        'api_rest.md "Predict API"': (f"{REST}::test_predict", f"{TENSORS}::test_api_rest_row_and_columnar_formats"),
        'api_rest.md "Output of binary values"': (
            f"{TENSORS}::test_from_json_single_bytes_tensor",
            f"{REST}::test_tensors_echo_through_the_json_mapping",
        ),
        'api_rest.md "JSON mapping"': (
            f"{TENSORS}::test_json_mapping",
            f"{TENSORS}::test_json_mapping_non_finite_floats",
        ),
        'api_rest.md "Floating Point Precision"': (f"{TENSORS}::test_float_tensor_with_precision_loss",),
        'api_rest.md "Encoding binary values"': (f"{EXAMPLES}::test_encoding_binary_values",),
        'api_rest.md "JSON conformance"': (
            f"{REST}::test_nan_and_infinity_go_in_and_come_out_as_tokens",
            "unit/vertex_serving/tfserving/test_jsondoc.py::test_nan_and_infinity_tokens_are_numbers",
            "unit/vertex_serving/tfserving/test_jsondoc.py::test_non_finite_floats_are_written_as_tokens",
        ),
        'api_rest.md "Example"': (f"{REST}::test_api_rest_example",),
    },
}

CASES = {case: entry for cases in AUDIT.values() for case, entry in cases.items()}
PORTS = [(case, port) for case, entry in CASES.items() if isinstance(entry, tuple) for port in entry]
# How a test names an upstream case: `Suite.Case` for the C++ and Python tests, `api_rest.md "Section"` for the guide.
NAMED = re.compile(
    r"\b((?:TensorflowModelServerTest|HttpRestApiHandlerTest|JsontensorTest|ClassifyRegressRequestTest"
    r"|ClassifyRegressnResultTest|MakeJsonFromTensors|GetModelStatusImplTest)\.\w+"
    r'|api_rest\.md "[^"]+")'
)


@cache
def functions_of(path: str) -> dict[str, str]:
    """Each test function of a module, with its source text from its first decorator to its last line."""
    source = (TESTS / path).read_text()
    lines = source.splitlines()
    found = {}
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and node.name.startswith("test_"):
            first = min([node.lineno] + [d.lineno for d in node.decorator_list])
            found[node.name] = "\n".join(lines[first - 1 : node.end_lineno])
    return found


def test_the_audit_lists_each_upstream_case_once_in_the_form_tests_name_it():
    assert len(CASES) == sum(len(cases) for cases in AUDIT.values())
    assert [case for case in CASES if not NAMED.fullmatch(case)] == []


@pytest.mark.parametrize(("case", "port"), PORTS, ids=[f"{case}->{port.split('::')[1]}" for case, port in PORTS])
def test_each_port_exists_and_names_its_upstream_case(case, port):
    path, function = port.split("::")
    functions = functions_of(path)
    assert function in functions, f"{case}: {port} is gone; port it again or mark the case not applicable"
    names = {match.group(1) for match in NAMED.finditer(functions[function])}
    assert case in names, f"{port} does not name {case} in its comment or docstring"


@pytest.mark.parametrize("case", [c for c, e in CASES.items() if isinstance(e, str)])
def test_each_case_left_out_says_why(case):
    assert CASES[case].startswith(NOT_APPLICABLE) and len(CASES[case]) > len(NOT_APPLICABLE) + 20


def test_every_case_a_test_names_is_audited_with_that_test_as_a_port():
    listed = set(PORTS)
    unlisted = []
    for module in sorted(TESTS.rglob("test_*.py")):
        path = module.relative_to(TESTS).as_posix()
        for function, text in functions_of(path).items():
            for match in NAMED.finditer(text):
                if module != Path(__file__).resolve() and (match.group(1), f"{path}::{function}") not in listed:
                    unlisted.append(f"{path}::{function} names {match.group(1)}")
    assert not unlisted, "add these to AUDIT (or fix the name):\n" + "\n".join(unlisted)
