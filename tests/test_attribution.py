"""Distances, key selection, conf and threshold selection on constructed cases."""
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
import torch

from provlib.attribution import instance as attribution
from provlib.attribution import keys
from provlib.attribution.calibration import calibrate, conf_by_rho, model_confs
from provlib.attribution.descriptor import CopyDescriptor, augment, embed, nt_xent
from provlib.attribution.distance import EmbeddingSpace, PixelSpace, pairwise_distance
from provlib.attribution.keys import CandidateProbe, KeySet
from provlib.core.errors import ParameterError
from provlib.core.suspects import SuspectSpec


def random_images(n, seed, side=32):
    return np.random.default_rng(seed).integers(0, 256, size=(n, side, side, 3), dtype=np.uint8)


@pytest.fixture(scope="module")
def spaces():
    torch.manual_seed(0)
    return [PixelSpace(), EmbeddingSpace(CopyDescriptor().eval())]


def test_distance_zero_for_identical_symmetric_and_bounded(spaces):
    a, b = random_images(5, 1), random_images(4, 2)
    for space in spaces:
        same = pairwise_distance(a, a, space)
        assert np.allclose(np.diag(same), 0.0, atol=1e-5), space.name
        ab, ba = pairwise_distance(a, b, space), pairwise_distance(b, a, space)
        assert np.allclose(ab, ba.T, atol=1e-6), space.name
        assert ab.min() >= 0.0 and ab.max() <= 1.0, space.name
        assert (ab > 1e-3).all(), f"{space.name}: different random images should not be at distance 0"


def test_pixel_distance_is_one_for_black_vs_white_and_resolution_independent():
    black, white = np.zeros((1, 64, 64, 3), np.uint8), np.full((1, 64, 64, 3), 255, np.uint8)
    assert pairwise_distance(black, white)[0, 0] == pytest.approx(1.0)
    blocks = random_images(2, 3, side=4)  # a smooth picture (8 px blocks), not pixel noise that resizing blurs
    small = np.repeat(np.repeat(blocks, 8, axis=1), 8, axis=2)
    big = np.repeat(np.repeat(small, 2, axis=1), 2, axis=2)  # the same picture at 64 px
    assert pairwise_distance(small, big)[0, 0] < 0.05


def test_descriptor_training_pieces_behave():
    gen = torch.Generator().manual_seed(0)
    x = torch.rand(6, 3, 32, 32) * 2 - 1
    views = augment(x, gen)
    assert views.shape == x.shape and views.min() >= -1 and views.max() <= 1
    z = torch.nn.functional.normalize(torch.randn(6, 8), dim=1)
    assert nt_xent(z, z, 0.1) < nt_xent(z, z[torch.randperm(6, generator=gen)], 0.1) + 1e-6
    assert embed(CopyDescriptor(), random_images(3, 4)).shape == (3, 128)


def test_best_key_distance_takes_the_closest_of_k_answers():
    key_images = random_images(3, 5)
    answers = np.stack([random_images(4, 10 + i) for i in range(3)])  # [3 keys, 4 answers, ...]
    answers[1, 2] = key_images[1]                                       # one exact copy for key 1
    d = attribution.best_key_distances(answers, key_images)
    assert d[1] == pytest.approx(0.0, abs=1e-6) and d[0] > 0.2 and d[2] > 0.2
    with pytest.raises(ParameterError, match="answers"):
        attribution.best_key_distances(answers[:2], key_images)


def test_conf_on_a_constructed_case():
    key_images = random_images(5, 6)
    answers = np.stack([random_images(2, 20 + i) for i in range(5)])
    answers[:3, 0] = key_images[:3]  # the suspect reproduces 3 of the 5 keys
    keyset = KeySet("src", "strategy12", [f"p{i}" for i in range(5)], key_images, np.arange(5.0),
                    pd.DataFrame({"candidate": np.arange(5)}))
    verdict = attribution.verdict_from_answers(answers, keyset, delta0=0.05, conf_threshold=0.5)
    assert verdict.conf == pytest.approx(0.6)
    assert verdict.attributed.tolist() == [True, True, True, False, False]
    assert verdict.infringing is True and verdict.queries == 10
    assert attribution.conf_from_distances([0.01, 0.2, 0.3, 0.04], 0.05) == pytest.approx(0.5)
    assert attribution.population_conf([0.2, 0.4, 0.9]) == pytest.approx(0.5)
    for bad in (0.0, 1.5, "0.1"):
        with pytest.raises(ParameterError, match="delta0"):
            attribution.conf_from_distances([0.1], bad)


def test_delta0_rules_and_conf_threshold():
    infringing = np.array([0.05, 0.06, 0.08, 0.09, 0.18, 0.2])
    innocent = np.array([0.16, 0.17, 0.19, 0.21, 0.22, 0.25])
    delta0 = attribution.select_delta0(infringing, innocent, rule="max_gap")
    assert 0.09 < delta0 <= 0.16  # every infringing key below 0.1 attributed, no innocent one
    strict = attribution.select_delta0(infringing, innocent, rule="innocent_rate", innocent_key_rate=0.0)
    assert strict == pytest.approx(0.16)  # largest δ0 with no innocent key below it
    assert attribution.select_conf_threshold([0.0, 0.1, 0.1, 0.2, 0.5], 0.2) == pytest.approx(0.2)
    with pytest.raises(ParameterError, match="delta0_rule"):
        attribution.select_delta0(infringing, innocent, rule="median")
    with pytest.raises(ParameterError, match="level_rule"):
        attribution.select_conf_threshold([0.1, 0.2], 0.05, level_rule="quantile")
    with pytest.raises(ParameterError, match="shadow models"):
        attribution.select_delta0([], innocent)


def test_conformal_conf_level_bounds_a_new_innocents_rate():
    shadows = np.arange(1, 25) / 100  # n = 24 shadow innocents' confs, all distinct
    # empirical: floor(0.05 * 24) = 1 shadow may lie above, so the second largest
    assert attribution.select_conf_threshold(shadows, 0.05) == pytest.approx(0.23)
    # conformal: rank ceil(25 * 0.95) = 24, the largest; a new innocent exceeds it with probability <= 1/25
    assert attribution.select_conf_threshold(shadows, 0.05, level_rule="conformal") == pytest.approx(0.24)
    # n = 99, alpha = 0.1: rank ceil(100 * 0.9) = 90, so 9 of 99 shadows lie above (the empirical level lets 9 too)
    many = np.arange(1, 100) / 100
    assert attribution.select_conf_threshold(many, 0.1, level_rule="conformal") == pytest.approx(0.90)
    # the guarantee, checked by simulation: exchangeable innocents exceed the conformal level at most alpha of the time
    rng = np.random.default_rng(0)
    draws = rng.random((4000, 25))
    exceed = [new > attribution.select_conf_threshold(old, 0.05, level_rule="conformal")
              for *old, new in draws]
    exceed_empirical = [new > attribution.select_conf_threshold(old, 0.05) for *old, new in draws]
    assert np.mean(exceed) <= 0.05 + 0.01
    assert np.mean(exceed_empirical) > 0.06  # (floor(alpha n) + 1) / (n + 1) = 0.08


def test_tail_level_guards_the_conformal_level_against_a_tight_calibration_sample():
    # 24 shadow innocents, 16 keys each, all with 3 or 4 attributed keys: the conformal level is their largest conf,
    # 4 / 16, while an innocent that attributes each key with their rate, 3.5 / 16, exceeds 4 keys 26% of the time and
    # 6 keys 4% of the time
    shadows = np.array([3] * 12 + [4] * 12) / 16
    conformal = attribution.select_conf_threshold(shadows, 0.05, level_rule="conformal")
    assert conformal == pytest.approx(0.25)
    guarded = attribution.select_conf_threshold(shadows, 0.05, level_rule="conformal_tail", n_keys=16)
    assert guarded == pytest.approx(attribution.tail_conf_level(shadows, 16, 0.05)) == pytest.approx(6 / 16)
    with pytest.raises(ParameterError, match="n_keys"):
        attribution.select_conf_threshold(shadows, 0.05, level_rule="conformal_tail")
    # over-dispersed innocents (some keys are drawn by every model of the domain) get a wider tail than a binomial
    spread = np.array([0, 0, 0, 1, 1, 1, 2, 2, 6, 8]) / 16
    assert attribution.tail_conf_level(spread, 16, 0.05) > attribution.tail_conf_level(np.full(10, spread.mean()), 16, 0.05)
    assert attribution.tail_conf_level(np.zeros(5), 16, 0.05) == 0.0  # no innocent attributes a key: any key counts
    # by simulation: beta-binomial innocents exceed the guarded level at most alpha of the time (the conformal
    # bound), and its level varies less across calibration samples than the conformal one
    rng = np.random.default_rng(0)
    draws = rng.binomial(16, rng.beta(2, 8, size=(3000, 25))) / 16
    conformal_levels = np.array([attribution.select_conf_threshold(d[:-1], 0.05, "conformal") for d in draws])
    guarded_levels = np.array([attribution.select_conf_threshold(d[:-1], 0.05, "conformal_tail", 16) for d in draws])
    assert np.mean(draws[:, -1] > guarded_levels) <= 0.05
    assert np.all(guarded_levels >= conformal_levels)
    assert guarded_levels.std() < conformal_levels.std()


def make_probe(n_prompts=6, seeds=3):
    """Prompts 0 and 1: the source copies its training image; prompts 2 and 3: the source has a
    consistent attractor the reference lacks; the rest: the source is as random as the reference."""
    train = random_images(n_prompts, 30)
    source = np.stack([random_images(seeds, 40 + i) for i in range(n_prompts)])
    reference = np.stack([random_images(seeds, 60 + i) for i in range(n_prompts)])
    source[0, :], source[1, 1] = train[0], train[1]
    attractor = random_images(2, 80)
    source[2, :], source[3, :] = attractor[0], attractor[1]
    return CandidateProbe([f"prompt {i}" for i in range(n_prompts)], source, reference, train)


def test_strategies_rank_the_constructed_key_samples_first():
    probe = make_probe()
    s1 = keys.strategy1_detection(probe, 2)
    assert set(s1.prompts) == {"prompt 0", "prompt 1"}
    assert np.array_equal(s1.images[0], probe.training_images[s1.candidate_index[0]])
    s2 = keys.strategy2_generation(probe, 3)
    assert {"prompt 0", "prompt 2", "prompt 3"} == set(s2.prompts)  # prompt 0 is consistent too
    both = keys.select_keys(probe, "strategy12", 4)
    assert len(set(both.prompts)) == len(both) == 4
    assert {"prompt 0", "prompt 1", "prompt 2", "prompt 3"} == set(both.prompts)
    rand_a, rand_b = keys.select_keys(probe, "random", 3, seed=1), keys.select_keys(probe, "random", 3, seed=1)
    assert rand_a.prompts == rand_b.prompts
    for keyset in (s1, s2, both, rand_a):  # one structure for every selector
        assert len(keyset.prompts) == len(keyset.images) == len(keyset.scores) == len(keyset.details)
        assert {"rank", "prompt", "candidate", "score"} <= set(keyset.details.columns)
    assert both.top(2).prompts == both.prompts[:2]


def test_strategy12_key_image_is_the_sources_generation_unless_asked_otherwise():
    probe = make_probe()
    s2 = keys.strategy2_generation(probe, len(probe.prompts))
    medoid_of = {int(c): image for c, image in zip(s2.candidate_index, s2.images)}
    both = keys.select_keys(probe, "strategy12", 4)
    for candidate, image in zip(both.candidate_index, both.images):
        assert np.array_equal(image, medoid_of[int(candidate)])
    strongest = keys.select_keys(probe, "strategy12", 4, combined_key_image="strongest")
    assert strongest.prompts == both.prompts  # the ranking is the same; only the key images differ
    by_detection = strongest.details.picked_by == "strategy1"
    assert by_detection.any()
    for candidate, image in zip(strongest.candidate_index[by_detection], strongest.images[by_detection.to_numpy()]):
        assert np.array_equal(image, probe.training_images[candidate])
    with pytest.raises(ParameterError, match="combined_key_image"):
        keys.select_keys(probe, "strategy12", 4, combined_key_image="training")


def test_key_selection_errors_name_the_parameter():
    probe = make_probe()
    no_training = CandidateProbe(probe.prompts, probe.source_images, probe.reference_images, None)
    with pytest.raises(ParameterError, match="strategy"):
        keys.strategy1_detection(no_training, 2)
    assert len(keys.select_keys(no_training, "strategy12", 2)) == 2  # falls back to generation-based
    with pytest.raises(ParameterError, match="strategy"):
        keys.select_keys(probe, "strategy3", 2)
    with pytest.raises(ParameterError, match="n_keys"):
        keys.select_keys(probe, "strategy2", 0)
    with pytest.raises(ParameterError, match="source_images"):
        CandidateProbe(probe.prompts, probe.source_images[:2], probe.reference_images, None)


class ShadowOnlyZoo:
    """A zoo whose test models cannot be read: any access raises."""

    def __init__(self, probe):
        self.p = SimpleNamespace(key_count=3, seed=0)
        self.show_progress = False
        self.probe = probe

    def suspect_answers(self, spec):
        if spec.split != "shadow":
            raise AssertionError(f"test model {spec.model_id} was read")
        answers = np.stack([random_images(2, 100 + i + int(spec.seed)) for i in range(len(self.probe.prompts))])
        if spec.rho > 0:  # infringing shadow models reproduce the source's images
            answers[:, 0] = self.probe.source_images[:, 0]
        return answers


def test_calibration_reads_shadow_models_only():
    probe = make_probe()
    zoo = ShadowOnlyZoo(probe)
    specs = [SuspectSpec(f"m{i}", "src", rho, i, split, "v2", "faces")
             for i, (rho, split) in enumerate([(0.0, "shadow"), (1.0, "shadow"), (0.0, "test"), (1.0, "test"),
                                               (0.0, "shadow"), (1.0, "shadow")])]
    keyset = keys.select_keys(probe, "strategy12", 4)
    result = calibrate(zoo, specs, {"src": {"strategy12": keyset}}, PixelSpace())
    assert set(result["shadow_models"]) == {"m0", "m1", "m4", "m5"}
    assert result["shadow_conf_gap"] > 0.5 and 0 < result["delta0"] < 0.3
    with pytest.raises(ParameterError, match="shadow"):
        calibrate(zoo, [s for s in specs if s.split == "test"], {"src": {"strategy12": keyset}}, PixelSpace())


def test_model_confs_and_query_cost_table():
    distances = pd.DataFrame({
        "model_id": ["a"] * 4 + ["b"] * 4, "source": "s", "rho": [1.0] * 4 + [0.0] * 4, "split": "test",
        "strategy": "strategy12", "key_rank": [1, 2, 3, 4] * 2, "prompt": "p",
        "distance": [0.05, 0.06, 0.3, 0.3, 0.3, 0.3, 0.05, 0.3]})
    confs = model_confs(distances, delta0=0.1)
    assert confs.set_index("model_id").conf.to_dict() == {"a": 0.5, "b": 0.25}
    assert model_confs(distances, 0.1, n_keys=2).set_index("model_id").conf.to_dict() == {"a": 1.0, "b": 0.0}
    table = conf_by_rho(confs, queries_per_key=4)
    assert table.set_index("rho").queries.to_dict() == {0.0: 16, 1.0: 16}


def test_delta0_for_the_decision_calls_the_most_low_rho_shadows_at_the_innocent_level():
    import pandas as pd

    from provlib.attribution.calibration import select_delta0_for_decision
    rows = []
    # innocents: every key at 0.30; ρ = 0.3 shadows: half their keys at 0.18, half at 0.32; ρ = 1 would sit at 0.05
    for m in range(4):
        rows += [{"model_id": f"i{m}", "rho": 0.0, "distance": 0.30} for _ in range(10)]
        rows += [{"model_id": f"s{m}", "rho": 0.3, "distance": d} for d in [0.18] * 5 + [0.32] * 5]
    delta0 = select_delta0_for_decision(pd.DataFrame(rows), 0.3, false_positive_rate=0.05)
    assert 0.18 < delta0 <= 0.30  # attributes the copied half, never an innocent key
    with pytest.raises(ParameterError, match="shadow models"):
        select_delta0_for_decision(pd.DataFrame(rows), 0.7, false_positive_rate=0.05)


class SecondAnswerZoo(ShadowOnlyZoo):
    """Infringing models draw the source's image only as their second answer per key; test models are readable."""

    def __init__(self, probe):
        super().__init__(probe)
        self.p = SimpleNamespace(seed=0, attribution=SimpleNamespace(query_images=2))

    def suspect_answers(self, spec):
        answers = np.stack([random_images(2, 100 + i + int(spec.seed)) for i in range(len(self.probe.prompts))])
        if spec.rho > 0:
            answers[:, 1] = self.probe.source_images[:, 0]
        return answers


def test_the_query_budget_table_re_chooses_delta0_on_shadows_for_every_k():
    from provlib.attribution.calibration import conf_by_queries
    probe = make_probe()
    specs = [SuspectSpec(f"m{i}", "src", rho, i, split, "v2", "faces")
             for i, (rho, split) in enumerate([(0.0, "shadow"), (1.0, "shadow"), (0.0, "test"), (1.0, "test"),
                                               (0.0, "shadow"), (1.0, "shadow")])]
    keyset = keys.select_keys(probe, "strategy12", 4)
    budget = conf_by_queries(SecondAnswerZoo(probe), specs, {"src": {"strategy12": keyset}}, PixelSpace(),
                             rule="low_rho_tpr", false_positive_rate=0.05)
    test = budget[budget.split == "test"].set_index(["queries_per_key", "rho"])
    assert sorted(budget.queries_per_key.unique()) == [1, 2] and set(budget.split) == {"shadow", "test"}
    # one answer never shows the copy; two answers do, and the innocent stays below the level
    assert test.loc[(2, 1.0), "mean_conf"] > test.loc[(1, 1.0), "mean_conf"] + 0.5
    assert test.loc[(2, 1.0), "called_infringing"] == 1.0 and test.loc[(2, 0.0), "called_infringing"] == 0.0
    assert (budget.queries == budget.queries_per_key * 4).all()


def test_a_candidate_prompt_names_the_training_image_its_source_draws():
    from provlib.attribution.keys import nearest_training_images
    from provlib.core.data import CaptionedImageSet
    pool = random_images(5, 7)
    training = CaptionedImageSet(pool, ["a", "a", "a", "b", "b"], [f"i{i}" for i in range(5)])
    # the source draws the third "a" image (slightly off) and the second "b" image
    generations = np.stack([np.stack([random_images(1, 8)[0], np.clip(pool[2].astype(int) + 3, 0, 255).astype(np.uint8)]),
                            np.stack([pool[4], random_images(1, 9)[0]])])
    matched = nearest_training_images(generations, ["a", "b"], training)
    assert (matched[0] == pool[2]).all() and (matched[1] == pool[4]).all()
    with pytest.raises(ParameterError, match="prompts"):
        nearest_training_images(generations, ["a", "c"], training)


def test_the_calibration_with_the_largest_shadow_gap_is_selected_and_ties_go_to_the_preferred_reference():
    from provlib.attribution.calibration import select_calibration
    table = pd.DataFrame({"feature_space": ["pixel", "embedding", "pixel", "embedding"],
                          "reference_bases": ["suspect", "suspect", "every", "every"],
                          "shadow_conf_gap": [0.51, 0.30, 0.45, 0.51]})
    assert select_calibration(table).tolist() == [True, False, False, False]  # first of the tied rows
    assert select_calibration(table, "every").tolist() == [False, False, False, True]
    assert select_calibration(table, "suspect").tolist() == [True, False, False, False]
    clear = table.assign(shadow_conf_gap=[0.2, 0.3, 0.6, 0.1])
    assert select_calibration(clear, "suspect").tolist() == [False, False, True, False]  # the gap first, then the tie rule


def test_later_notebooks_key_on_the_reference_notebook_03_selected():
    from provlib.attribution.calibration import shadow_selection
    from provlib.core.results import write_table
    from provlib.presets import load_preset
    preset = load_preset("smoke")
    table = pd.DataFrame({"feature_space": ["pixel", "pixel"], "reference_bases": ["suspect", "every"],
                          "delta0": [0.1, 0.2], "selected": [False, True]})
    write_table(table, "delta0", preset, "03_delta0_threshold")
    chosen_preset, chosen = shadow_selection(preset)
    assert chosen.delta0 == 0.2 and chosen_preset.attribution.reference_bases == "every"
    assert preset.attribution.reference_bases == "suspect"  # the preset itself is left alone
    with pytest.raises(ParameterError, match="03_delta0_threshold"):
        shadow_selection(load_preset("smoke", key_count=7))  # 03 ran with another N


def test_detection_statistic_prefers_a_copy_drawn_at_every_seed():
    probe = make_probe()  # prompt 0: the source draws its training image at every seed; prompt 1: at one seed of 3
    by_min = keys.strategy1_detection(probe, 6, detection_statistic="min")
    by_mean = keys.strategy1_detection(probe, 6, detection_statistic="mean")
    np.testing.assert_allclose(by_min.details.set_index("prompt").source_distance[["prompt 0", "prompt 1"]], 0, atol=1e-6)
    distance = by_mean.details.set_index("prompt").source_distance
    assert distance["prompt 0"] < 1e-6 < distance["prompt 1"] < distance.drop(["prompt 0", "prompt 1"]).min()
    assert by_mean.prompts[0] == "prompt 0"
    assert keys.select_keys(probe, "strategy12", 4).prompts == keys.select_keys(probe, "strategy12", 4, detection_statistic="mean").prompts
    with pytest.raises(ParameterError, match="detection_statistic"):
        keys.select_keys(probe, "strategy1", 2, detection_statistic="median")
