"""Config files use the pipeline's parameter names; unknown keys and wrong types are refused up front."""

import pytest

from vertex_serving.config import DeployConfig, load_config
from vertex_serving.errors import InvalidConfig, UserError


def test_yaml_and_toml_configs_read_the_same(tmp_path):
    (tmp_path / "c.yaml").write_text(
        'container_version: "2.15"\naccelerator: tpu\nmachine_type: ct5lp-hightpu-4t\nuse_tfrt: null\n'
        "allowed_batch_sizes: [1, 8]\nas_of: 2025-06-01\nsmoke_atol: 0\n"
    )
    (tmp_path / "c.toml").write_text(
        'container_version = "2.15"\naccelerator = "tpu"\nmachine_type = "ct5lp-hightpu-4t"\n'
        "allowed_batch_sizes = [1, 8]\nas_of = 2025-06-01\nsmoke_atol = 0\n"
    )
    yaml_config, toml_config = load_config(tmp_path / "c.yaml"), load_config(tmp_path / "c.toml")
    assert yaml_config == toml_config
    assert yaml_config.allowed_batch_sizes == (1, 8) and yaml_config.as_of == "2025-06-01"
    assert yaml_config.smoke_atol == 0.0 and isinstance(yaml_config.smoke_atol, float)


def test_unknown_key_suggests_the_parameter_meant():
    with pytest.raises(InvalidConfig) as e:
        DeployConfig.from_mapping({"machine_typ": "n1-standard-4"})
    assert (
        str(e.value)
        == "machine_typ='n1-standard-4' is not a parameter of the deploy pipeline: did you mean machine_type?"
    )


def test_a_numeric_version_is_refused_because_210_would_read_as_21():
    with pytest.raises(InvalidConfig) as e:
        DeployConfig.from_mapping({"container_version": 2.10})
    assert e.value.errors[0].parameter == "container_version" and 'quote it: container_version: "2.1"' in str(e.value)


def test_wrong_types_are_all_reported():
    with pytest.raises(InvalidConfig) as e:
        DeployConfig.from_mapping({"allow_precompilation": "yes", "accelerator_count": 1.5, "allowed_batch_sizes": 8})
    assert [p.parameter for p in e.value.errors] == ["allow_precompilation", "accelerator_count", "allowed_batch_sizes"]
    assert "not a bool" in str(e.value.errors[0])


def test_use_tfrt_is_unset_true_or_false():
    assert DeployConfig.from_mapping({"use_tfrt": None}).use_tfrt is None
    assert DeployConfig.from_mapping({"use_tfrt": False}).use_tfrt is False


@pytest.mark.parametrize(
    ("name", "text", "needle"),
    [
        ("c.json", "{}", "unknown file type"),
        ("c.yaml", "a: [", "not valid YAML"),
        ("c.yaml", "- a\n- b\n", "not a mapping"),
    ],
)
def test_unreadable_configs_say_why(tmp_path, name, text, needle):
    (tmp_path / name).write_text(text)
    with pytest.raises(UserError) as e:
        load_config(tmp_path / name)
    assert e.value.parameter == "config" and needle in str(e.value) and "\n" not in str(e.value)


def test_a_missing_config_file_is_a_user_error(tmp_path):
    with pytest.raises(UserError) as e:
        load_config(tmp_path / "none.yaml")
    assert e.value.parameter == "config" and "cannot be read" in str(e.value)


def test_a_key_given_twice_in_yaml_is_refused_with_its_line(tmp_path):
    (tmp_path / "c.yaml").write_text("accelerator: cpu\nmachine_type: a\naccelerator: tpu\n")
    with pytest.raises(UserError) as e:
        load_config(tmp_path / "c.yaml")
    assert str(e.value) == "config='accelerator' is given twice (line 3): keep one of them"


def test_a_yaml_exponent_without_a_dot_is_explained():
    with pytest.raises(InvalidConfig) as e:
        DeployConfig.from_mapping({"smoke_atol": "1e-4"})
    assert "YAML reads a number such as 1e-4 as text" in str(e.value) and "smoke_atol: 1.0e-4" in str(e.value)


def test_a_float_version_suggests_both_spellings_and_articles_read_right():
    with pytest.raises(InvalidConfig) as e:
        DeployConfig.from_mapping({"container_version": 2.10, "smoke_requests": "ten"})
    assert 'quote it: container_version: "2.1" (or "2.10" if you wrote 2.10)' in str(e.value)
    assert "smoke_requests='ten' is a str, not an int: write smoke_requests as an int" in str(e.value)


@pytest.mark.parametrize(
    ("key", "value", "fix"),
    [
        ("smoke_atol", "2e-3", "write smoke_atol: 2.0e-3"),  # the user's own value, with the dot YAML needs
        ("smoke_rtol", "1.5e-4", "write smoke_rtol: 1.5e-4"),
        ("smoke_requests", 20.0, "write smoke_requests: 20"),
        ("min_replica_count", "2", "write min_replica_count: 2 (without quotes)"),
    ],
)
def test_a_number_of_the_wrong_kind_gets_a_fix_with_the_users_own_value(key, value, fix):
    with pytest.raises(InvalidConfig) as e:
        DeployConfig.from_mapping({key: value})
    assert str(e.value).endswith(fix)
