import numpy as np
import pandas as pd
import pytest

from provlib.attribution.queries import AttributionZoo as Zoo
from provlib.core.errors import ParameterError
from provlib.core.source import Source
from provlib.core.store import derive_seed
from provlib.presets import load_preset


@pytest.fixture(scope="module")
def zoo(smoke_cache):
    return Zoo(load_preset("smoke"), cache_root=smoke_cache / "artifacts", show_progress=False)


def test_suspect_plan_covers_every_setting_with_shadow_and_test(zoo):
    plan = pd.DataFrame([vars(s) for s in zoo.suspect_specs()])
    p = zoo.p
    innocents = p.suspects.innocents or p.suspects.per_setting
    assert len(plan) == len(p.source_names) * (len(p.suspects.rho_values) * p.suspects.per_setting + innocents)
    assert plan.model_id.is_unique and plan[plan.rho > 0].seed.is_unique
    per_setting = plan.groupby(["source", "rho"]).split.agg(lambda s: set(s))
    assert all(s == {"shadow", "test"} for s in per_setting)
    # "other": suspects never fine-tune the base their source was built on
    assert all(not row.source.startswith(row.base) for row in plan.itertuples())


def test_innocent_models_are_shared_per_suspect_base_and_domain(smoke_cache):
    """An innocent model does not depend on the source: sources whose suspects share a base and a domain share it."""
    same_base = Zoo(load_preset("smoke", suspect_base="v1", suspect_innocents=3), cache_root=smoke_cache / "artifacts",
                    show_progress=False)
    specs = same_base.suspect_specs()
    innocent = {s.source: [same_base.suspect_config(x) for x in specs if x.source == s.source and x.rho == 0]
                for s in specs}
    assert len(innocent["v1-faces"]) == 3
    assert innocent["v1-faces"] == innocent["v2-faces"]          # same (base v1, faces): one set of models
    assert innocent["v1-faces"] != innocent["v1-scenes"]         # another domain: other models
    infringing = [same_base.suspect_config(x) for x in specs if x.rho > 0 and x.source in ("v1-faces", "v2-faces")]
    assert len({str(c) for c in infringing}) == len(infringing)  # infringing models always belong to one source


def test_innocents_on_every_base_list_each_domain_model_under_each_source_once_per_model(smoke_cache):
    """With innocents_on_every_base a source lists its domain's innocents on both bases: the suspect base's keep
    their names and models, the other base's are the models another source lists as its own; naming counts each
    trained model once."""
    plain = Zoo(load_preset("smoke", suspect_innocents=3), cache_root=smoke_cache / "artifacts", show_progress=False)
    every = Zoo(load_preset("smoke", suspect_innocents=3, innocents_on_every_base=True),
                cache_root=smoke_cache / "artifacts", show_progress=False)
    plain_specs, every_specs = plain.suspect_specs(), every.suspect_specs()
    innocents = [s for s in every_specs if s.source == "v1-faces" and s.rho == 0]
    assert sorted({s.base for s in innocents}) == ["v1", "v2"] and len(innocents) == 6
    assert {s.model_id for s in innocents if s.base == "v2"} == \
        {s.model_id for s in plain_specs if s.source == "v1-faces" and s.rho == 0}      # names unchanged
    theirs = {str(plain.suspect_config(s)) for s in plain_specs if s.source == "v2-faces" and s.rho == 0}
    assert {str(every.suspect_config(s)) for s in innocents if s.base == "v1"} == theirs  # v2-faces' own models
    assert [s for s in every_specs if s.rho > 0] == [s for s in plain_specs if s.rho > 0]
    distinct = every.distinct_models(every_specs)
    hashes = {str(every.suspect_config(s)) for s in distinct}
    assert len(distinct) == len(hashes) == len(plain_specs)
    assert hashes == {str(plain.suspect_config(s)) for s in plain_specs}  # the same trained models, each once
    assert len(every_specs) > len(distinct)


def test_suspect_training_set_has_rho_share_of_generated_images(zoo):
    spec = next(s for s in zoo.suspect_specs() if s.rho == 0.5 and Source.parse(s.source).is_fine_tuned)
    train = zoo.suspect_training_set(spec)
    generated = [i for i in train.ids if i.startswith("gen/")]
    assert len(train) == zoo.p.suspects.samples
    assert len(generated) == round(0.5 * zoo.p.suspects.samples)
    real = zoo.dataset(spec.domain, "real")
    # the generated images answer captions from the suspect's own draw of the real pool
    assert set(train.captions) <= set(real.captions)


def test_innocent_suspects_contain_no_generated_image(zoo):
    spec = next(s for s in zoo.suspect_specs() if s.rho == 0)
    assert not any(i.startswith("gen/") for i in zoo.suspect_training_set(spec).ids)


def test_unknown_source_is_named(zoo):
    with pytest.raises(ParameterError, match="'source'"):
        zoo.source_location("v3-faces")


def test_verify_queries_a_black_box_suspect_with_the_key_prompts(zoo):
    from provlib.attribution.calibration import key_sets
    from provlib.attribution.instance import verify

    spec = next(s for s in zoo.suspect_specs() if s.source == "v1-faces" and s.rho == 1.0)
    keys = key_sets(zoo, spec.source, zoo.feature_space("pixel"), strategies=("strategy12",))["strategy12"]
    verdict = verify(zoo.load_suspect(spec), keys, delta0=0.3, conf_threshold=0.5, images_per_prompt=2, seed=1,
                     num_inference_steps=zoo.p.sampling.inference_steps, resolution=zoo.p.world.resolution, show_progress=False)
    assert len(verdict.distances) == len(keys) == zoo.p.attribution.key_count
    assert verdict.queries == 2 * len(keys)
    assert verdict.conf == pytest.approx(float((verdict.distances < 0.3).mean()))
    assert verdict.infringing == (verdict.conf > 0.5)
    assert len(verdict.table(keys)) == len(keys)


def test_fine_tuning_the_text_encoder_is_a_lever_that_leaves_other_keys_alone(smoke_cache):
    import torch

    from provlib.core.store import config_hash
    plain = Zoo(load_preset("smoke", suspect_train_text_encoder=False, source_train_text_encoder=False),
                cache_root=smoke_cache / "artifacts", show_progress=False)
    lever = Zoo(load_preset("smoke"), cache_root=smoke_cache / "artifacts", show_progress=False)  # both on
    assert "train_text_encoder" not in plain.fine_tune_recipe() and "train_text_encoder" not in plain.source_config("v1-faces")
    assert plain.base_config("v1") == lever.base_config("v1")
    spec = next(s for s in plain.suspect_specs() if s.rho == 0.0)
    assert config_hash(plain.suspect_config(spec)) != config_hash(lever.suspect_config(spec))
    suspect = lever.load_suspect(spec)  # builds it: UNet and text encoder fine-tuned together
    base = lever.load(lever.base_location(spec.base))
    changed = [not torch.equal(a, b) for a, b in zip(suspect.text_encoder.parameters(), base.text_encoder.parameters())]
    assert any(changed)


def test_duplicated_private_images_enter_the_source_and_its_key(smoke_cache):
    p = load_preset("smoke", private_duplicates=3, duplicate_copies=4)
    zoo = Zoo(p, cache_root=smoke_cache / "artifacts", show_progress=False)
    private, train = zoo.dataset("faces", "private"), zoo.training_set("v1-faces")
    assert len(train) == len(private) + 3 * 3
    assert (train.images[len(private):] == np.concatenate([private.images[:3]] * 3)).all()
    assert len(zoo.training_set("v1")) == p.world.n_pretrain  # a base's pre-training set has no duplicates added
    assert zoo.key_candidates("v1-faces").captions == Zoo(p.replace(private_duplicates=0), cache_root=smoke_cache /
                                                              "artifacts").key_candidates("v1-faces").captions
    plain = Zoo(p.replace(private_duplicates=0), cache_root=smoke_cache / "artifacts")
    assert "duplicates" in zoo.source_config("v1-faces") and "duplicates" not in plain.source_config("v1-faces")


def test_copy_curve_is_recorded_while_a_source_trains(smoke_cache):
    zoo = Zoo(load_preset("smoke"), cache_root=smoke_cache / "artifacts", show_progress=False)
    steps, captions, images = zoo.copy_curve("v1-faces")
    assert steps == [2, 5, 8, 10] and len(captions) == zoo.p.attribution.memorization_prompts
    assert images.shape[:3] == (4, len(captions), 2) and images.dtype == np.uint8
    assert zoo.copy_curve("v1") is None  # a base alone has no fine-tuning to follow
    # the curve's last point is the finished source itself, generating with the recorder's seed
    final = zoo.generate(zoo.load(zoo.source_location("v1-faces")), captions, images_per_prompt=2, show_progress=False,
                         seed=derive_seed(zoo.p.seed, "copy-curve-generate", "v1-faces")).images
    assert (final.reshape(images.shape[1:]) == images[-1]).all()


def test_duplicated_pre_training_images_enter_the_bases_and_only_their_keys(tmp_path):
    p = load_preset("smoke", pretrain_duplicates=5, pretrain_duplicate_copies=3)
    zoo, plain = Zoo(p, cache_root=tmp_path), Zoo(p.replace(pretrain_duplicates=0), cache_root=tmp_path)
    generic, pretraining = zoo.dataset("generic", "private"), zoo.pretraining_set()
    assert len(pretraining) == len(generic) + 5 * 2 and len(plain.pretraining_set()) == len(generic)
    repeated = pretraining.images[len(generic):]
    assert len({img.tobytes() for img in repeated}) == 5  # five distinct images, each twice more
    assert all((generic.images == img).all(axis=(1, 2, 3)).any() for img in repeated)
    assert len(zoo.training_set("v1")) == len(pretraining)  # a base source was trained on the duplicates
    assert zoo.training_set("v1-faces").images.shape == plain.training_set("v1-faces").images.shape
    assert "duplicates" in zoo.base_config("v1") and "duplicates" not in plain.base_config("v1")
    assert zoo.vae_config() == plain.vae_config()  # the autoencoder sees each image once either way


def test_every_public_base_is_a_reference_when_asked_and_the_suspect_base_stays_first(smoke_cache):
    plain = Zoo(load_preset("smoke"), cache_root=smoke_cache / "artifacts", show_progress=False)
    every = Zoo(load_preset("smoke", reference_bases="every"), cache_root=smoke_cache / "artifacts", show_progress=False)
    source = "v1-faces"
    assert plain.reference_bases(source) == ["v2"] and every.reference_bases(source) == ["v2", "v1"]
    one, both = plain.candidate_probe(source), every.candidate_probe(source)
    seeds = plain.p.attribution.probe_seeds
    assert both.reference_images.shape[1] == 2 * seeds
    # the suspect base's generations are those of the one-reference probe; the source's own base follows them
    assert (both.reference_images[:, :seeds] == one.reference_images).all()
    assert (both.source_images == one.source_images).all()
    assert not (both.reference_images[:, seeds:] == one.reference_images).all()


def test_reference_choices_are_validated_and_deduplicated(smoke_cache):
    from provlib.attribution.calibration import distinct_references
    zoo = Zoo(load_preset("smoke"), cache_root=smoke_cache / "artifacts", show_progress=False)
    assert distinct_references(zoo, ["suspect", "every", "suspect"]) == ["suspect", "every"]
    with pytest.raises(ParameterError, match="reference_bases"):
        distinct_references(zoo, ["suspect", "all"])
    with pytest.raises(ParameterError, match="reference_choices"):
        distinct_references(zoo, "every")  # a list is expected, not one name


def test_innocents_are_grouped_by_the_base_they_fine_tune(smoke_cache):
    from provlib.attribution.calibration import innocents_by_lineage
    zoo = Zoo(load_preset("smoke", innocents_on_every_base=True), cache_root=smoke_cache / "artifacts", show_progress=False)
    innocents = [s for s in zoo.suspect_specs() if s.rho == 0]
    confs = pd.DataFrame({"model_id": [s.model_id for s in innocents], "source": [s.source for s in innocents],
                          "rho": 0.0, "conf": [1.0 if s.base == zoo.source(s.source).base else 0.0 for s in innocents]})
    table = innocents_by_lineage(zoo, confs, conf_threshold=0.5).set_index("innocent_base")
    assert table.loc["the source's own base", "called_infringing"] == 1.0
    assert table.loc["suspect base", "called_infringing"] == 0.0
    assert table.models.sum() == len(innocents)


def test_sources_of_one_training_set_share_their_key_candidates(smoke_cache):
    p = load_preset("smoke")
    shared = Zoo(p, cache_root=smoke_cache / "artifacts", show_progress=False)
    apart = Zoo(p.replace(key_candidate_draw="source"), cache_root=smoke_cache / "artifacts", show_progress=False)
    assert shared.key_candidates("v2-faces").captions == shared.key_candidates("v1-faces").captions
    assert shared.key_candidates("v1-scenes").captions != shared.key_candidates("v1-faces").captions
    assert shared.candidates_config("v2-faces") == shared.candidates_config("v1-faces")
    # the first source of a training set keeps its own draw; the second drew its own before
    assert shared.key_candidates("v1-faces").captions == apart.key_candidates("v1-faces").captions
    assert apart.key_candidates("v2-faces").captions != apart.key_candidates("v1-faces").captions
    # a suspect of v2-faces asked v1-faces's prompts is its own answer set, not a second one
    spec = next(s for s in shared.suspect_specs() if s.source == "v2-faces")
    assert shared.answers_config(spec, "v1-faces") == shared.answers_config(spec)
    with pytest.raises(ParameterError, match="key_candidate_draw"):
        load_preset("smoke", key_candidate_draw="domain")
