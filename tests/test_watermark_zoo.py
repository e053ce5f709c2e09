"""The watermark zoo's data contracts: stamped suspects, licensed copies, triggers, prompt sets."""
import numpy as np
import pandas as pd
import pytest

from provlib.core.errors import ParameterError
from provlib.core.source import Source
from provlib.core.store import config_hash
from provlib.presets import load_preset
from provlib.watermark.triggers import trigger_word_shifts, unused_words
from provlib.watermark.zoo import CLEAN, PLAIN, MarkedSuspectSpec, WatermarkZoo


@pytest.fixture(scope="module")
def zoo(smoke_cache):
    return WatermarkZoo(load_preset("smoke"), cache_root=smoke_cache / "artifacts", show_progress=False)


def test_stamped_suspect_differs_from_its_twin_only_by_the_mark(zoo):
    twin = next(s for s in zoo.suspect_specs() if s.rho == 1.0 and s.split == "test" and Source.parse(s.source).is_fine_tuned)
    stamped = next(s for s in zoo.baseline_specs() if s.model_id == f"{twin.model_id}_wm-{zoo.p.watermark.baseline_scheme}")
    assert isinstance(stamped, MarkedSuspectSpec) and (stamped.seed, stamped.base) == (twin.seed, twin.base)
    plain, marked = zoo.suspect_training_set(twin), zoo.suspect_training_set(stamped)
    assert plain.captions == marked.captions and plain.ids == marked.ids
    scheme, message = zoo.scheme(stamped.scheme), zoo.message(twin.source)
    assert (marked.images != plain.images).any()
    assert scheme.bit_accuracy(marked.images, message).mean() > 0.9 > scheme.bit_accuracy(plain.images, message).mean()
    assert config_hash(zoo.suspect_config(stamped)) != config_hash(zoo.suspect_config(twin))
    # only infringing models are re-trained: innocent ones never saw generated images
    assert all(s.rho > 0 and s.split == "test" for s in zoo.baseline_specs())


def test_licensed_copies_mark_the_requested_share_and_prefix_triggers(zoo):
    p = zoo.p
    triggers = zoo.triggers()
    assert len(set(triggers)) == p.watermark.licensees
    used = {w for split in ("real", "licensed") for c in zoo.dataset(p.watermark.domain, split).captions for w in c.split()}
    assert not set(triggers) & used  # triggers never occur in the domain's own captions
    clean = zoo.licensed_dataset()
    for strategy in ("image", "trigger"):
        copy = zoo.licensed_copy("pattern", strategy, 0.25, licensee=1)
        marked = [i for i, name in enumerate(copy.ids) if name.endswith("#marked")]
        assert len(marked) == round(0.25 * p.watermark.dataset_size)
        changed = np.flatnonzero((copy.images != clean.images).any(axis=(1, 2, 3)))
        assert set(changed) <= set(marked)
        prefixed = [i for i, c in enumerate(copy.captions) if c.startswith(triggers[1] + " ")]
        assert prefixed == (marked if strategy == "trigger" else [])
    with pytest.raises(ParameterError, match="strategy"):
        zoo.licensed_copy("pattern", "visible", 0.25, licensee=0)


def test_licensees_are_crossed_with_bases(tmp_path):
    """cpu's plan: 10 fine-tunes at r = 2%, 4 licensees, 2 bases; plain alternation would put licensees 0 and 2 on v1
    only. Every licensee with at least two fine-tunes meets both bases, and the bases stay balanced."""
    plan = pd.DataFrame([vars(s) for s in WatermarkZoo(load_preset("cpu"), cache_root=tmp_path).licensee_specs()])
    at_focus = plan[(plan.licensee != CLEAN) & (plan.laundering == "none") & (plan.fraction == 0.02)]
    assert len(at_focus) == 20
    for _, cell in at_focus.groupby("strategy"):
        assert cell.groupby("licensee").base.nunique().eq(2).all()
        assert set(cell.base.value_counts()) == {5}
    clean = plan[plan.licensee == CLEAN]
    assert set(clean.base.value_counts()) == {len(clean) // 2}


def test_licensees_train_their_own_step_count(tmp_path):
    """licensee_steps sets the licensees' fine-tune length (in their cache key too) and leaves the suspects' alone;
    0 falls back to the suspects' recipe."""
    cpu = WatermarkZoo(load_preset("cpu", suspect_steps=1500, licensee_steps=750), cache_root=tmp_path)
    assert cpu.recipe_of("wm_model").steps == 750 and cpu.fine_tune_recipe("wm_model")["steps"] == 750
    assert cpu.recipe_of("suspect").steps == 1500 and cpu.fine_tune_recipe()["steps"] == 1500
    spec = cpu.licensee_specs()[0]
    longer = WatermarkZoo(load_preset("cpu", suspect_steps=1500, licensee_steps=1000), cache_root=tmp_path)
    assert cpu.licensee_config(spec)["steps"] == 750 and longer.licensee_config(spec)["steps"] == 1000
    same = WatermarkZoo(load_preset("cpu", suspect_steps=1500, licensee_steps=0), cache_root=tmp_path)
    assert same.recipe_of("wm_model") == same.recipe_of("suspect")


def test_licensee_plan_covers_every_setting_and_licensee(zoo):
    p = zoo.p
    specs = zoo.licensee_specs()
    plan = pd.DataFrame([vars(s) for s in specs])
    assert plan.model_id.is_unique and plan.seed.is_unique
    main = plan[(plan.licensee != CLEAN) & (plan.laundering == "none")]
    per_fraction = [p.watermark.focus_models if r == p.watermark.focus_fraction else p.watermark.models_per_setting
                    for r in p.watermark.fractions]
    assert len(main) == len(zoo.mark_schemes) * len(p.watermark.strategies) * sum(per_fraction)
    at_focus = main[main.fraction == p.watermark.focus_fraction]
    assert len(at_focus) == len(p.watermark.strategies) * p.watermark.focus_models
    assert set(main.licensee) == set(range(p.watermark.licensees)) and set(plan.base) == set(p.models.base_names)
    assert (plan.licensee == CLEAN).sum() == p.watermark.clean_models
    assert set(plan.laundering) == {"none", *p.watermark.robustness, *(f"regen:{a}" for a in p.watermark.removal)}
    clean = next(s for s in specs if s.is_clean)
    r = p.watermark.focus_fraction
    assert zoo.prompt_sets(clean) == [zoo.licensee_prompt_set(strategy, i, r) for strategy in p.watermark.strategies
                                      for i in range(p.watermark.licensees)]
    assert zoo.licensee_training_set(clean).ids == zoo.licensed_dataset().ids
    trigger_model = next(s for s in specs if s.strategy == "trigger")
    licensee, fraction = trigger_model.licensee, trigger_model.fraction
    prompts = zoo.prompts(zoo.licensee_prompt_set("trigger", licensee, fraction))
    assert len(prompts) == p.watermark.query_prompts
    assert all(pr.split()[0] == zoo.triggers()[licensee] for pr in prompts)
    # the defender asks the captions of exactly the images it marked in that licensee's copy
    copy = zoo.licensed_copy(trigger_model.scheme, "trigger", fraction, licensee)
    marked_captions = {c.split(" ", 1)[1] for c, i in zip(copy.captions, copy.ids) if i.endswith("#marked")}
    asked = [pr.split(" ", 1)[1] for pr in prompts]
    assert set(asked) <= marked_captions
    assert asked == zoo.prompts(zoo.licensee_prompt_set("image", licensee, fraction))
    with pytest.raises(ParameterError, match="prompt_set"):
        zoo.prompts(f"trigger-{p.watermark.licensees}")
    with pytest.raises(ParameterError, match="prompt_set"):
        zoo.prompts("marked-0-r33")


def test_bad_watermark_parameters_name_the_field():
    with pytest.raises(ParameterError, match="wm_fractions"):
        load_preset("smoke", wm_fractions=[0.0])
    with pytest.raises(ParameterError, match="wm_licensees"):
        load_preset("smoke", wm_licensees=1)
    with pytest.raises(ParameterError, match="wm_schemes"):
        load_preset("smoke", wm_schemes=["stegastamp"])
    with pytest.raises(ParameterError, match="wm_triggers"):
        load_preset("smoke", wm_triggers=["sks"])  # fewer than the licensees
    with pytest.raises(ParameterError, match="wm_robustness"):
        load_preset("smoke", wm_robustness=["blur:2"])
    # a procedural licensed dataset is its own draw of any size; a folder's comes from its real pool
    assert load_preset("smoke", wm_dataset_size=10_000).watermark.dataset_size == 10_000
    with pytest.raises(ParameterError, match="wm_dataset_size"):
        load_preset("smoke", wm_dataset_size=10_000, data_source="folder")


def test_removal_attacks_regenerate_every_image_and_bad_ones_name_the_field(zoo):
    data = zoo.licensed_dataset().subset(np.arange(4))
    base = zoo.p.models.base_names[0]
    for attack in ("vae", "diffusion:0.5"):
        out = zoo.removal_attack(data, attack, base, seed=3)
        assert out.shape == data.images.shape and out.dtype == np.uint8
        assert (out != data.images).any(axis=(1, 2, 3)).all()  # every image is changed
    again = zoo.removal_attack(data, "diffusion:0.5", base, seed=3)
    assert (again == zoo.removal_attack(data, "diffusion:0.5", base, seed=3)).all()  # seeded
    for bad in ("diffusion:0", "diffusion:x", "blur:2", "vae:1"):
        with pytest.raises(ParameterError, match="wm_removal"):
            load_preset("smoke", wm_removal=[bad])


def test_triggers_are_the_unused_words_the_bases_draw_least_and_the_paired_test_asks_them_without(zoo):
    shifts = trigger_word_shifts(zoo)
    triggers = zoo.triggers()
    assert set(shifts) == set(unused_words(zoo)) and set(triggers) <= set(shifts)
    assert max(shifts[t] for t in triggers) <= min(v for w, v in shifts.items() if w not in triggers)
    p = zoo.p
    r = p.watermark.focus_fraction
    name = zoo.licensee_prompt_set("trigger", 1, r)
    reference = zoo.reference_prompt_set(name)
    assert reference == zoo.licensee_prompt_set("image", 1, r)
    assert [f"{triggers[1]} {c}" for c in zoo.prompts(reference)] == zoo.prompts(name)
    assert zoo.reference_prompt_set(reference) is None
    trigger_model = next(s for s in zoo.licensee_specs() if s.strategy == "trigger")
    assert reference in zoo.prompt_sets(next(s for s in zoo.licensee_specs() if s.strategy == "trigger" and s.licensee == 1))
    assert all(zoo.reference_prompt_set(ps) in zoo.prompt_sets(trigger_model) for ps in zoo.prompt_sets(trigger_model)
               if ps.startswith("trigger"))
    assert zoo.reference_prompt_set(zoo.licensee_prompt_set("image", 1, r)) is None  # image-only: the base, below


def test_the_image_only_test_is_paired_on_the_models_base_asked_the_same_captions_and_seeds(zoo):
    r = zoo.p.watermark.focus_fraction
    clean = next(s for s in zoo.licensee_specs() if s.is_clean)
    marked_set = zoo.licensee_prompt_set("image", 0, r)
    reference = zoo.reference_answers(clean, marked_set)
    base = zoo.load(zoo.base_location(clean.base))
    again = zoo.generate(base, zoo.prompts(marked_set), seed=zoo.answers_key(clean, marked_set)["seed"],
                         images_per_prompt=zoo.p.watermark.query_images).images
    assert np.array_equal(reference, again)  # the base, the same captions, the model's own query seeds
    assert reference.shape == zoo.licensee_answers(clean, marked_set).shape
    assert zoo.base_answers_key(clean, marked_set)["base"] != zoo.answers_key(clean, marked_set)["model"]
    trigger_set = zoo.licensee_prompt_set("trigger", 0, r)  # the trigger test keeps the same model without its trigger
    assert np.array_equal(zoo.reference_answers(clean, trigger_set), zoo.licensee_answers(clean, marked_set))
    assert zoo.reference_answers(clean, PLAIN) is None


def test_a_redraw_changes_every_watermark_secret_and_seed_but_not_the_world(zoo):
    other = WatermarkZoo(load_preset("smoke", wm_draw=1), cache_root=zoo.cache_root, show_progress=False)
    assert other.wm_seed != zoo.wm_seed == zoo.p.seed
    assert other.licensed_dataset().ids == zoo.licensed_dataset().ids  # the same owner's dataset
    assert not np.array_equal(other.licensee_message(0), zoo.licensee_message(0))
    assert other.mark_scheme("pattern").key != zoo.mark_scheme("pattern").key
    assert {s.seed for s in other.licensee_specs()}.isdisjoint({s.seed for s in zoo.licensee_specs()})
    assert np.array_equal(other.message("source"), zoo.message("source"))  # Baseline 1 keeps the preset's seed
    with pytest.raises(ParameterError, match="wm_draw"):
        load_preset("smoke", wm_draw=-1)
