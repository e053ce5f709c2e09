import pytest

from provlib.core.errors import ParameterError
from provlib.presets import PRESETS, load_preset


def test_default_presets_exist_and_validate():
    assert {"smoke", "cpu", "sd"} <= set(PRESETS)
    cpu = load_preset("cpu")  # the issue-17 world: four fine-tuned sources, innocents shared per (base, domain)
    assert cpu.source_names == ["v1-faces", "v1-scenes", "v2-faces", "v2-scenes"] and cpu.world.identity_grid > 0
    assert cpu.suspects.innocents >= 6 and cpu.suspects.train_text_encoder
    with_bases = load_preset("cpu", base_sources=True)
    assert with_bases.source_names == ["v1", "v1-faces", "v1-scenes", "v2", "v2-faces", "v2-scenes"]
    quick = load_preset("quick")  # one fine-tuned source per domain, the issue-17 world
    assert quick.source_names == ["v2-faces", "v2-scenes"] and quick.world.identity_grid > 0
    assert quick.suspects.train_text_encoder and quick.models.source_train_text_encoder


def test_fine_tuned_bases_must_be_bases():
    with pytest.raises(ParameterError, match="fine_tuned_bases"):
        load_preset("cpu", fine_tuned_bases=("v3",))
    assert load_preset("cpu", base_sources=False, fine_tuned_bases=("v2",)).source_names == ["v2-faces", "v2-scenes"]


def test_unknown_preset_names_the_parameter():
    with pytest.raises(ParameterError, match="'preset'.*one of"):
        load_preset("gpu-please")


@pytest.mark.parametrize("bad", [(1.5,), (-0.1,), (0.0,), ()])
def test_rho_outside_unit_interval_is_rejected(bad):
    with pytest.raises(ParameterError, match="rho_values"):
        load_preset("cpu", rho_values=bad)


def test_list_overrides_from_papermill_become_tuples():
    assert load_preset("cpu", rho_values=[0.5, 1.0]).suspects.rho_values == (0.5, 1.0)


def test_unknown_override_lists_valid_fields():
    with pytest.raises(ParameterError, match="'rho'.*preset field"):
        load_preset("cpu", rho=0.3)


@pytest.mark.parametrize("field,value", [("suspects_per_setting", 1), ("n_jobs", 0), ("resolution", 30),
                                         ("suspect_base", "v3"), ("dtype", "float16"), ("shadow_fraction", 1.0),
                                         ("key_count", 65), ("probe_seeds", 1), ("query_images", 0),
                                         ("training_match", "closest"), ("pretrain_duplicate_copies", 1)])
def test_out_of_range_values_name_the_field(field, value):
    with pytest.raises(ParameterError, match=field):
        load_preset("cpu", **{field: value})


def test_sd_preset_requires_data_and_checkpoints(tmp_path):
    faces, scenes = tmp_path / "faces", tmp_path / "scenes"
    faces.mkdir()
    scenes.mkdir()
    with pytest.raises(ParameterError, match=r"dataset_dirs\['faces'\]"):
        load_preset("sd")
    with pytest.raises(ParameterError, match=r"dataset_dirs\['scenes'\].*existing folder"):
        load_preset("sd", dataset_dirs={"faces": str(faces), "scenes": str(tmp_path / "missing")})
    with pytest.raises(ParameterError, match=r"base_checkpoints\['v1'\]"):
        load_preset("sd", dataset_dirs={"faces": str(faces), "scenes": str(scenes)})
    pipelines = {}
    for base in ("v1", "v2"):
        (tmp_path / base).mkdir()
        (tmp_path / base / "model_index.json").write_text("{}")
        pipelines[base] = str(tmp_path / base)
    with pytest.raises(ParameterError, match=r"base_checkpoints\['v2'\]"):  # a hub id needs allow_download
        load_preset("sd", dataset_dirs={"faces": str(faces), "scenes": str(scenes)}, base_checkpoints={**pipelines, "v2": "org/sd"})
    sd = load_preset("sd", dataset_dirs={"faces": str(faces), "scenes": str(scenes)}, base_checkpoints=pipelines)
    # the paper's fine-tuning hyper-parameters
    assert (sd.suspects.recipe.steps, sd.suspects.recipe.lr, sd.suspects.recipe.batch_size, sd.suspects.samples) == (3000, 2e-6, 2, 500)
    assert sd.runtime.dtype == "float16" and sd.world.resolution == 512
    assert load_preset("sd", dataset_dirs={"faces": str(faces), "scenes": str(scenes)}, allow_download=True,
                       base_checkpoints={**pipelines, "v2": "org/sd"}).models.base_checkpoints["v2"] == "org/sd"


def test_sd_preset_lists_the_four_trainprove_generators_and_checks_their_checkpoints(tmp_path):
    assert PRESETS["sd"].trainprove.generators == ("sd14", "lcm", "pixart", "cascade")
    with pytest.raises(ParameterError, match=r"tp_checkpoints\['sd14'\]"):
        load_preset("sd", inputs_for="trainprove")
    four = {}
    for name in PRESETS["sd"].trainprove.generators:
        (tmp_path / name).mkdir()
        (tmp_path / name / "model_index.json").write_text("{}")
        four[name] = str(tmp_path / name)
    with pytest.raises(ParameterError, match="tp_real_dir"):
        load_preset("sd", inputs_for="trainprove", tp_checkpoints=four)
    with pytest.raises(ParameterError, match="tp_real_dir"):
        load_preset("sd", inputs_for="trainprove", tp_checkpoints=four, tp_real_dir=str(tmp_path / "missing"))
    sd = load_preset("sd", inputs_for="trainprove", tp_checkpoints=four, tp_real_dir=str(tmp_path))
    assert sd.trainprove.checkpoints["cascade"] == four["cascade"] and len(sd.trainprove.classes) == 10
    with pytest.raises(ParameterError, match="inputs_for"):
        load_preset("sd", inputs_for="everything")


@pytest.mark.parametrize("name,value,named", [
    ("suspect_lr", "1e-4", "suspect_lr"), ("suspect_lr", -1e-4, "suspect_lr"), ("seed", "7", "seed"),
    ("rho_values", [True, 0.5], "rho_values"), ("rho_values", [0.5, 0.5], "rho_values"),
    ("dataset_dirs", "/data/faces", "dataset_dirs"), ("base_checkpoints", ["/a"], "base_checkpoints"),
    ("pretrain_steps", 2.5, "pretrain_steps"), ("wm_licensees", True, "wm_licensees"), ("tp_alpha", "0.05", "tp_alpha"),
    ("suspects.recipe.steps", 0, "suspects.recipe.steps"), ("watermark.bits", "32", "watermark.bits"),
    ("suspects", "fast", "suspects"), ("wm_fractions", [0.02, 1.5], "wm_fractions"), ("allow_download", "yes", "allow_download"),
    ("tp_generator_steps", 0, "tp_generator_steps"),
])
def test_each_section_checks_type_and_range_and_names_the_field(name, value, named):
    with pytest.raises(ParameterError) as error:
        load_preset("cpu", **{name: value})
    assert error.value.parameter == named


def test_flat_and_dotted_overrides_reach_the_same_field():
    flat = load_preset("cpu", suspect_steps=123, key_count=7, wm_bits=16, tp_alpha=0.01)
    dotted = load_preset("cpu", **{"suspects.recipe.steps": 123, "attribution.key_count": 7, "watermark.bits": 16,
                                   "trainprove.alpha": 0.01})
    assert flat == dotted
    assert (flat.suspects.recipe.steps, flat.attribution.key_count, flat.watermark.bits, flat.trainprove.alpha) == (123, 7, 16, 0.01)
    assert load_preset("cpu", suspects={"samples": 64}).suspects.samples == 64


def test_overrides_are_validated_together_not_one_at_a_time():
    # a smaller real pool is only valid with a smaller suspect set: one call accepts both
    preset = load_preset("cpu", n_real=64, suspect_samples=32, wm_dataset_size=32, wm_query_prompts=16)
    assert (preset.world.n_real, preset.suspects.samples) == (64, 32)
    with pytest.raises(ParameterError, match="suspect_samples"):
        load_preset("cpu", n_real=64)


def test_a_cross_field_conflict_is_named_by_its_flat_name():
    with pytest.raises(ParameterError) as error:
        load_preset("cpu", key_candidates=10)  # key_count=30 no longer fits
    assert error.value.parameter == "key_count"
    with pytest.raises(ParameterError) as error:
        load_preset("cpu", wm_dataset_size=16)  # wm_query_prompts=32 no longer fits
    assert error.value.parameter == "wm_query_prompts"


def test_every_flat_name_resolves_and_no_section_is_too_big():
    import dataclasses

    from provlib.presets import FLAT_NAMES, SECTIONS, Preset, resolve_name
    assert len(dataclasses.fields(Preset)) <= 30
    for section in SECTIONS.values():
        assert len(dataclasses.fields(section)) <= 30, section.__name__
    cpu = load_preset("cpu")
    for flat, path in FLAT_NAMES.items():
        assert resolve_name(flat) == path == resolve_name(".".join(path))
        value = cpu
        for part in path:
            value = getattr(value, part)  # every path exists


def test_sources_are_values_not_parsed_strings():
    from provlib.core.source import Source
    cpu = load_preset("cpu", base_sources=True)
    assert cpu.sources[1] == Source("v1", "faces") and cpu.sources[1].name == "v1-faces"
    assert Source.parse("v2") == Source("v2") and not Source("v2").is_fine_tuned
    assert cpu.fine_tuned_source_names == ["v1-faces", "v1-scenes", "v2-faces", "v2-scenes"]
    with pytest.raises(ParameterError, match="source"):
        Source.parse("")
