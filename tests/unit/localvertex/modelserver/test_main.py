"""The model server's command line: TF Serving's flags read as TF Serving reads them."""

import pytest

from localvertex.modelserver.__main__ import parse_settings


def test_grpc_channel_arguments_pass_int32_values_as_ints_and_the_rest_as_text():
    """server.cc: each key=value of --grpc_channel_arguments, an int when it reads as an int32."""
    settings = parse_settings(
        ["--model_base_path=/m", "--grpc_channel_arguments=grpc.max_connection_age_ms=2000,grpc.lb_policy_name=grpclb"],
        {},
    )
    assert settings.grpc_channel_arguments == (("grpc.max_connection_age_ms", 2000), ("grpc.lb_policy_name", "grpclb"))
    big = parse_settings(["--model_base_path=/m", "--grpc_channel_arguments=a=2147483648,b=-7"], {})
    assert big.grpc_channel_arguments == (("a", "2147483648"), ("b", -7))
    assert parse_settings(["--model_base_path=/m"], {}).grpc_channel_arguments == ()


def test_a_grpc_channel_argument_without_a_value_is_refused(capsys):
    with pytest.raises(SystemExit) as e:
        parse_settings(["--model_base_path=/m", "--grpc_channel_arguments=grpc.max_connection_age_ms"], {})
    assert e.value.code == 2
    assert "'grpc.max_connection_age_ms' is not key=value" in capsys.readouterr().err
