import pytest

from provlib.errors import ParameterError
from provlib.presets import PRESETS, load_preset


def test_default_presets_exist_and_validate():
    assert {"smoke", "cpu", "sd"} <= set(PRESETS)
    cpu = load_preset("cpu")
    assert cpu.source_names == ["v1", "v1-faces", "v1-scenes", "v2", "v2-faces", "v2-scenes"]
    assert cpu.suspects_per_setting >= 6


def test_unknown_preset_names_the_parameter():
    with pytest.raises(ParameterError, match="'preset'.*one of"):
        load_preset("gpu-please")


@pytest.mark.parametrize("bad", [(1.5,), (-0.1,), (0.0,), ()])
def test_rho_outside_unit_interval_is_rejected(bad):
    with pytest.raises(ParameterError, match="rho_values"):
        load_preset("cpu", rho_values=bad)


def test_list_overrides_from_papermill_become_tuples():
    assert load_preset("cpu", rho_values=[0.5, 1.0]).rho_values == (0.5, 1.0)


def test_unknown_override_lists_valid_fields():
    with pytest.raises(ParameterError, match="'rho'.*preset field"):
        load_preset("cpu", rho=0.3)


@pytest.mark.parametrize("field,value", [("suspects_per_setting", 1), ("n_jobs", 0), ("resolution", 30),
                                         ("suspect_base", "v3"), ("dtype", "float16"), ("shadow_fraction", 1.0),
                                         ("key_count", 65), ("probe_seeds", 1), ("query_images", 0)])
def test_out_of_range_values_name_the_field(field, value):
    with pytest.raises(ParameterError, match=field):
        load_preset("cpu", **{field: value})


def test_sd_preset_requires_data_and_checkpoints():
    with pytest.raises(ParameterError, match=r"dataset_dirs\['faces'\]"):
        load_preset("sd")
    with pytest.raises(ParameterError, match=r"base_checkpoints\['v1'\]"):
        load_preset("sd", dataset_dirs={"faces": "/x", "scenes": "/y"})
    sd = load_preset("sd", dataset_dirs={"faces": "/x", "scenes": "/y"}, base_checkpoints={"v1": "/a", "v2": "/b"})
    # the paper's fine-tuning hyper-parameters
    assert (sd.suspect_steps, sd.suspect_lr, sd.suspect_batch_size, sd.suspect_samples) == (3000, 2e-6, 2, 500)
    assert sd.dtype == "float16" and sd.resolution == 512


def test_sd_preset_lists_the_four_trainprove_generators_and_checks_their_checkpoints():
    assert PRESETS["sd"].tp_generators == ("sd14", "lcm", "pixart", "cascade")
    with pytest.raises(ParameterError, match=r"tp_checkpoints\['sd14'\]"):
        load_preset("sd", inputs_for="trainprove")
    four = {name: f"/models/{name}" for name in PRESETS["sd"].tp_generators}
    with pytest.raises(ParameterError, match="tp_real_dir"):
        load_preset("sd", inputs_for="trainprove", tp_checkpoints=four)
    sd = load_preset("sd", inputs_for="trainprove", tp_checkpoints=four, tp_real_dir="/data/cifar10")
    assert sd.tp_checkpoints["cascade"] == "/models/cascade" and len(sd.tp_classes) == 10
    with pytest.raises(ParameterError, match="inputs_for"):
        load_preset("sd", inputs_for="everything")
