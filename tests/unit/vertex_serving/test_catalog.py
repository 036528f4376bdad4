"""The runtime catalog: image lookup by version, accelerator, runtime and date."""

import datetime as dt

import pytest

from vertex_serving.catalog import load_catalog
from vertex_serving.errors import UserError

JUNE_2025 = dt.date(2025, 6, 1)
TODAY = dt.date(2026, 11, 22)


@pytest.fixture(scope="module")
def catalog():
    return load_catalog()


def test_every_published_version_has_cpu_and_gpu_and_only_215_216_nightly_have_tpu(catalog):
    optimized = ["nightly", "2.16", "2.15", "2.14", "2.13", "2.12", "2.11", "2.10", "2.9", "2.8"]
    assert [i.version for i in catalog.select("cpu", "optimized")] == optimized
    assert catalog.versions() == optimized + ["2.7", "2.6", "2.5", "2.4", "2.3", "2.2", "2.1"]
    assert [i.version for i in catalog.select("tpu")] == ["nightly", "2.16", "2.15"]
    assert len(catalog.select("cpu", "optimized")) == 10
    assert len(catalog.select("gpu", "optimized")) == 10


def test_resolve_image_gives_the_documented_uris(catalog):
    assert (
        catalog.resolve_image("2.15", "tpu", as_of=JUNE_2025).image.uri
        == "us-docker.pkg.dev/vertex-ai-restricted/prediction/tf_opt-tpu.2-15:latest"
    )
    assert (
        catalog.resolve_image("2.8", "cpu", "standard", as_of=dt.date(2024, 1, 1)).image.uri
        == "us-docker.pkg.dev/vertex-ai/prediction/tf2-cpu.2-8:latest"
    )
    nightly = catalog.resolve_image("nightly", "cpu", as_of=TODAY).image
    assert nightly.uri == "us-docker.pkg.dev/vertex-ai-restricted/prediction/tf_opt-cpu.nightly:latest"


def test_gpu_images_carry_their_cuda_major_version(catalog):
    assert catalog.resolve_image("2.14", "gpu", as_of=JUNE_2025).image.cuda == 12
    assert catalog.resolve_image("2.13", "gpu", as_of=JUNE_2025).image.cuda == 11
    assert catalog.resolve_image("nightly", "gpu", as_of=TODAY).image.cuda == 12


def test_unknown_version_lists_the_known_ones(catalog):
    with pytest.raises(UserError) as e:
        catalog.resolve_image("2.0", "cpu", as_of=JUNE_2025)
    assert e.value.parameter == "container_version"
    assert "'2.0'" in str(e.value) and "nightly, 2.16, 2.15" in str(e.value) and "2.1" in str(e.value)


def test_accelerator_not_offered_names_the_versions_that_offer_it(catalog):
    with pytest.raises(UserError) as e:
        catalog.resolve_image("2.14", "tpu", as_of=JUNE_2025)
    assert str(e.value) == (
        "container_version='2.14' has no tpu image: use a version that offers tpu: nightly, 2.16, 2.15"
    )


def test_standard_runtime_has_no_nightly_or_tpu_image(catalog):
    with pytest.raises(UserError) as e:
        catalog.resolve_image("nightly", "cpu", "standard", as_of=TODAY)
    assert e.value.parameter == "runtime" and "runtime='optimized'" in str(e.value)
    with pytest.raises(UserError) as e:
        catalog.resolve_image("2.15", "tpu", "standard", as_of=JUNE_2025)
    assert e.value.parameter == "runtime"


def test_past_end_of_availability_is_refused_with_the_date_and_the_override(catalog):
    with pytest.raises(UserError) as e:
        catalog.resolve_image("2.16", "tpu", as_of=JUNE_2025)
    message = str(e.value)
    assert e.value.parameter == "container_version"
    assert "2025-04-26" in message and "allow_unavailable_image=true" in message and "--catalog" in message
    assert "use nightly, 2.15" in message


def test_end_of_availability_day_itself_is_still_usable(catalog):
    assert catalog.resolve_image("2.16", "tpu", as_of=dt.date(2025, 4, 26)).image.version == "2.16"


def test_explicit_override_deploys_an_unavailable_image_with_a_warning(catalog):
    resolved = catalog.resolve_image("2.16", "tpu", as_of=TODAY, allow_unavailable_image=True)
    assert resolved.image.version == "2.16"
    assert any("past end of availability" in w for w in resolved.warnings)


def test_nightly_warns_that_it_has_no_sla(catalog):
    resolved = catalog.resolve_image("nightly", "tpu", as_of=TODAY)
    assert len(resolved.warnings) == 1 and "no SLA" in resolved.warnings[0]


def test_past_end_of_patches_warns_before_availability_ends(catalog):
    resolved = catalog.resolve_image("2.15", "cpu", as_of=JUNE_2025)
    assert "no patches since 2024-08-15" in resolved.warnings[0]


def test_newest_usable_prefers_a_stable_version_and_falls_back_to_nightly(catalog):
    assert catalog.newest_usable("tpu", as_of=JUNE_2025) == "2.15"
    assert catalog.newest_usable("cpu", as_of=dt.date(2024, 1, 1)) == "2.16"
    assert catalog.newest_usable("tpu", as_of=TODAY) == "nightly"


def test_standard_images_have_the_prebuilt_containers_page_dates(catalog):
    image = catalog.resolve_image("2.15", "cpu", "standard", as_of=TODAY).image
    assert image.uri == "us-docker.pkg.dev/vertex-ai/prediction/tf2-cpu.2-15:latest"
    assert (image.end_of_patches, image.end_of_availability) == (dt.date(2026, 7, 14), dt.date(2027, 1, 14))
    assert catalog.resolve_image("2.13", "gpu", "standard", as_of=JUNE_2025).image.cuda == 12
    assert catalog.newest_usable("cpu", "standard", as_of=TODAY) == "2.15"


def test_newest_usable_without_any_image_says_how_to_extend(catalog):
    with pytest.raises(UserError) as e:
        catalog.newest_usable("cpu", "standard", as_of=dt.date(2027, 6, 1))
    assert e.value.parameter == "container_version" and "--catalog" in str(e.value)


def test_a_user_catalog_adds_versions_and_overrides_dates(tmp_path, catalog):
    extra = tmp_path / "newer.toml"
    extra.write_text(
        '[optimized."2.17"]\nend_of_patches = 2026-09-01\nend_of_availability = 2027-09-01\n'
        'tpu = "example.com/tf_opt-tpu.2-17:latest"\n'
        '[optimized."2.15"]\nend_of_availability = 2027-01-01\n'
    )
    extended = load_catalog(extra)
    assert extended.newest_usable("tpu", as_of=TODAY) == "2.17"
    assert extended.resolve_image("2.15", "tpu", as_of=TODAY).image.end_of_availability == dt.date(2027, 1, 1)
    assert (
        extended.resolve_image("2.15", "tpu", as_of=TODAY).image.uri
        == catalog.resolve_image("2.15", "tpu", as_of=JUNE_2025).image.uri
    )


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        ('[optimized."2.17"]\ncpus = "x"\n', "unknown keys ['cpus']"),
        ('[optimized.latest]\ncpu = "x"\n', "neither X.Y nor nightly"),
        ('[standard."2.17"]\nend_of_availability = "soon"\n', "not a date"),
        ('[versions."2.17".cpu]\noptimized = "x"\n', "unknown tables ['versions']"),
        ("[optimized\n", "not valid TOML"),
    ],
)
def test_a_broken_user_catalog_is_refused_with_its_path(tmp_path, text, needle):
    bad = tmp_path / "bad.toml"
    bad.write_text(text)
    with pytest.raises(UserError) as e:
        load_catalog(bad)
    assert e.value.parameter == "catalog" and str(bad) in str(e.value) and needle in str(e.value)


def test_find_maps_an_image_uri_back_to_its_entry(catalog):
    image = catalog.find("us-docker.pkg.dev/vertex-ai-restricted/prediction/tf_opt-gpu.2-13:latest")
    assert (image.version, image.accelerator, image.runtime) == ("2.13", "gpu", "optimized")
    assert catalog.find("example.com/custom:latest") is None


def test_catalog_knows_the_pytorch_tpu_image_and_v5e_machine_types(catalog):
    torch = catalog.prebuilt["pytorch-tpu"]
    assert torch["image"] == "us-docker.pkg.dev/vertex-ai/prediction/pytorch-tpu.2-1:latest"
    assert (torch["predict_route"], torch["health_route"], torch["port"]) == ("/predictions/model", "/ping", 8080)
    assert catalog.tpu_machine_types == {"ct5lp-hightpu-1t": 1, "ct5lp-hightpu-4t": 4, "ct5lp-hightpu-8t": 8}
    assert set(catalog.gpu_unsupported_by_optimized) == {"NVIDIA_TESLA_P4", "NVIDIA_TESLA_P100"}


def test_a_catalog_can_be_toml_text(catalog):
    extended = load_catalog('[optimized."2.17"]\ncpu = "example.com/tf_opt-cpu.2-17:latest"\n')
    assert extended.resolve_image("2.17", "cpu", as_of=TODAY).image.uri == "example.com/tf_opt-cpu.2-17:latest"
    with pytest.raises(UserError) as e:
        load_catalog("[optimized\n")
    assert e.value.value.startswith("TOML text")


def test_machine_facts_come_from_the_catalog(catalog):
    assert catalog.tpu_chips("ct5lp-hightpu-8t") == 8 and catalog.tpu_chips("n1-standard-4") is None
    assert catalog.is_cloud_tpu("ct5p-hightpu-4t") and not catalog.is_cloud_tpu("n1-standard-4")
    assert "TPU_V4_POD" in catalog.tpu_accelerators_not_served
    assert catalog.default_machine_types == {"cpu": "n1-standard-4", "gpu": "n1-standard-8", "tpu": "ct5lp-hightpu-1t"}


def test_machine_sizes_come_from_the_catalog(catalog):
    assert catalog.machine_resources("n1-standard-4") == (4, 15.0)
    assert catalog.machine_resources("a2-highgpu-2g") == (24, 170.0)
    assert catalog.machine_resources("ct5lp-hightpu-1t") is None  # a TPU's speed is not measured on its host
    every = [m for m in catalog.machine_types() if catalog.tpu_chips(m) is None]
    assert all(catalog.machine_resources(m) for m in every)
