import pandas as pd
import pytest

from provlib.errors import ParameterError
from provlib.presets import load_preset
from provlib.zoo import Zoo


@pytest.fixture(scope="module")
def zoo(smoke_cache):
    return Zoo(load_preset("smoke"), cache_root=smoke_cache / "artifacts", show_progress=False)


def test_suspect_plan_covers_every_setting_with_shadow_and_test(zoo):
    plan = pd.DataFrame([vars(s) for s in zoo.suspect_specs()])
    p = zoo.p
    assert len(plan) == len(p.source_names) * (len(p.rho_values) + 1) * p.suspects_per_setting
    assert plan.model_id.is_unique and plan.seed.is_unique
    per_setting = plan.groupby(["source", "rho"]).split.agg(lambda s: set(s))
    assert all(s == {"shadow", "test"} for s in per_setting)
    # "other": suspects never fine-tune the base their source was built on
    assert all(not row.source.startswith(row.base) for row in plan.itertuples())


def test_suspect_training_set_has_rho_share_of_generated_images(zoo):
    spec = next(s for s in zoo.suspect_specs() if s.rho == 0.5 and "-" in s.source)
    train = zoo.suspect_training_set(spec)
    generated = [i for i in train.ids if i.startswith("gen/")]
    assert len(train) == zoo.p.suspect_samples
    assert len(generated) == round(0.5 * zoo.p.suspect_samples)
    real = zoo.dataset(spec.domain, "real")
    # the generated images answer captions from the suspect's own draw of the real pool
    assert set(train.captions) <= set(real.captions)


def test_innocent_suspects_contain_no_generated_image(zoo):
    spec = next(s for s in zoo.suspect_specs() if s.rho == 0)
    assert not any(i.startswith("gen/") for i in zoo.suspect_training_set(spec).ids)


def test_unknown_source_is_named(zoo):
    with pytest.raises(ParameterError, match="'source'"):
        zoo.source_location("v3-faces")
