"""`vsp run` turns a config into the pipeline's parameters with one codec, pointed at where the run goes."""

from pathlib import Path

from pipelines.run import catalog_file, pipeline_arguments
from vertex_serving.config import DeployConfig


def test_config_becomes_pipeline_arguments_with_the_local_defaults():
    values = pipeline_arguments(
        DeployConfig(use_tfrt=True, allowed_batch_sizes=(4, 8)), "http://127.0.0.1:1", "gs://stage"
    )
    assert values["use_tfrt"] == "true" and values["allowed_batch_sizes"] == [4, 8]
    assert (values["project"], values["staging_bucket"], values["api_endpoint"]) == (
        "local-project",
        "gs://stage",
        "http://127.0.0.1:1",
    )
    assert DeployConfig.from_parameters(values) == DeployConfig(
        use_tfrt=True,
        allowed_batch_sizes=(4, 8),
        project="local-project",
        staging_bucket="gs://stage",
        api_endpoint="http://127.0.0.1:1",
    )


def test_a_catalog_file_travels_as_its_text(tmp_path):
    (tmp_path / "c.toml").write_text('[optimized."2.17"]\ncpu = "x/y:1"\n')
    values = pipeline_arguments(DeployConfig(catalog=str(tmp_path / "c.toml")), "", "")
    assert values["catalog"] == '[optimized."2.17"]\ncpu = "x/y:1"\n'


def test_catalog_text_is_kept_as_a_file_localvertex_can_load(tmp_path):
    text = '[optimized."2.17"]\ncpu = "x/y:1"\n'
    path = catalog_file(text, tmp_path)
    assert Path(path).read_text() == text and path.startswith(str(tmp_path))
    assert catalog_file(str(tmp_path / "own.toml"), tmp_path) == str(tmp_path / "own.toml")
    assert catalog_file("", tmp_path) is None
