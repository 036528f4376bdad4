"""The pipeline runner reports a failed task with the task's own error line, and types run-time values."""

from localvertex.pipeline_runner import error_message, parameter_values


def test_the_error_is_the_last_exception_the_task_raised_without_its_module_path():
    lines = [
        "Traceback (most recent call last):",
        '  File "x.py", line 1, in <module>',
        "vertex_serving.errors.InvalidConfig: machine_type='ct5lp-hightpu-1t' needs a TPU image: use tpu",
        "accelerator_count=1 cannot be set: remove accelerator_count",
        "\x1b[91mTask 'validate-config' finished with status FAILURE\x1b[0m",
    ]
    assert error_message(lines) == (
        "InvalidConfig: machine_type='ct5lp-hightpu-1t' needs a TPU image: use tpu; "
        "accelerator_count=1 cannot be set: remove accelerator_count"
    )


def test_no_traceback_means_no_error_line():
    assert error_message(["ValueError: printed, not raised"]) == ""


def test_integer_parameters_arriving_as_doubles_are_read_back_as_ints():
    spec = {"root": {"inputDefinitions": {"parameters": {"n": {"parameterType": "NUMBER_INTEGER"}}}}}
    assert parameter_values(spec, {"n": 3.0, "x": 1.5}) == {"n": 3, "x": 1.5}
