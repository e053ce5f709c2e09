"""TrainProVe's published decision: Grubbs' critical values, its direction per variant, and who supplies each score."""
import numpy as np
import pytest

from provlib.core.errors import ParameterError
from provlib.trainprove.grubbs import (
    batch_scores,
    batches,
    critical_value,
    grubbs_test,
    p_value,
    within_class_similarity,
)
from provlib.trainprove.study import GrubbsSetup, summary_by_family, summary_by_rule, verdict_table
from provlib.trainprove.zoo import ClassifierSpec


def test_critical_values_match_the_published_and_the_textbook_quantile():
    assert critical_value(10, 0.05, "published") == pytest.approx(2.290, abs=5e-4)
    assert critical_value(10, 0.05, "textbook") == pytest.approx(2.176, abs=5e-4)
    # the largest G that n values allow bounds every critical value
    assert critical_value(3, 0.05) < 2 / np.sqrt(3)


def test_p_value_crosses_alpha_exactly_at_the_critical_value():
    for quantile in ("published", "textbook"):
        c = critical_value(12, 0.05, quantile)
        assert p_value(c * 0.999, 12, quantile) > 0.05 > p_value(c * 1.001, 12, quantile)
    assert p_value(-1.0, 12) == 1.0


def test_p_value_at_the_largest_possible_statistic_is_zero_not_an_error():
    # a suspect far below a shadow whose batches hold two values: G reaches (n-1)/sqrt(n) up to rounding
    for n in (3, 5, 15):
        bound = (n - 1) / np.sqrt(n)
        for g in (float(bound), float(np.nextafter(bound, 0)), float(bound) + 1.0):
            assert 0.0 <= p_value(g, n) < 1e-12  # far below any level; never a division by zero


shadow = np.array([0.90, 0.93, 0.87, 0.91, 0.89, 0.92, 0.88, 0.90, 0.94, 0.86])


def test_a_shadow_like_suspect_is_accepted_and_a_far_one_rejected():
    like = grubbs_test(shadow, shadow - 0.01, "lower")
    far = grubbs_test(shadow, shadow - 0.30, "lower")
    assert like.verified and not far.verified
    assert far.statistic > far.critical and far.p_value < 0.05 < like.p_value
    # a suspect more accurate than the shadow is never an outlier on the accuracy rule
    assert grubbs_test(shadow, np.ones(10), "lower").verified


@pytest.mark.parametrize("worse, bad_shift", [("lower", -0.3), ("higher", +0.3)])
def test_each_direction_rejects_only_its_own_side(worse, bad_shift):
    assert not grubbs_test(shadow, shadow + bad_shift, worse).verified
    assert grubbs_test(shadow, shadow - bad_shift, worse).verified  # the flipped comparison must not reject


def test_a_constant_shadow_rejects_any_step_to_the_worse_side():
    flat = np.full(5, 1.0)
    assert not grubbs_test(flat, flat - 0.01, "lower").verified
    assert grubbs_test(flat, flat, "lower").verified


def test_bad_inputs_name_the_parameter():
    with pytest.raises(ParameterError, match="tp_grubbs_batches"):
        critical_value(2)
    with pytest.raises(ParameterError, match="tp_grubbs_quantile"):
        critical_value(10, 0.05, "two-sided")
    with pytest.raises(ParameterError, match="tp_grubbs_batches"):
        batches(5, 10, seed=0)
    with pytest.raises(ParameterError, match="suspect_batches"):
        grubbs_test(shadow, shadow[:5], "lower")
    with pytest.raises(ParameterError, match="label-only"):
        batch_scores("grubbs-ent", np.zeros(6, int), np.zeros(6, int), batches(6, 3, seed=0))


def test_batches_split_every_image_once_and_are_seeded():
    split = batches(33, 10, seed=4)
    assert sorted(np.concatenate(split)) == list(range(33)) and {len(b) for b in split} == {3, 4}
    assert all((a == b).all() for a, b in zip(split, batches(33, 10, seed=4)))


def test_scores_read_the_outputs_they_are_given():
    labels = np.repeat([0, 1, 2], 4)
    confident = np.eye(3)[labels] * 8.0
    split = batches(12, 3, seed=0)
    assert batch_scores("grubbs", confident, labels, split).tolist() == [1.0, 1.0, 1.0]
    assert batch_scores("grubbs", labels, labels, split).tolist() == [1.0, 1.0, 1.0]  # labels only
    uniform = np.zeros((12, 3))
    assert batch_scores("grubbs-ent", uniform, labels, split) == pytest.approx(np.log(3))
    assert (batch_scores("grubbs-ent", confident, labels, split) < 0.01).all()
    assert within_class_similarity(confident, labels) == pytest.approx(1.0)
    rng = np.random.default_rng(0)
    assert within_class_similarity(rng.normal(size=(12, 3)), labels) < 0.5


def _logits(labels, accuracy, rng, scale=4.0):
    """Logits whose argmax is right for the first ``accuracy`` share of images."""
    wrong = (labels + 1) % 3
    predicted = np.where(np.arange(len(labels)) < accuracy * len(labels), labels, wrong)
    return np.eye(3)[predicted] * scale + rng.normal(scale=0.3, size=(len(labels), 3))


def test_verdicts_score_the_suspect_on_its_own_answers_and_the_shadow_only_as_reference():
    rng = np.random.default_rng(1)
    labels = {g: rng.permutation(np.repeat([0, 1, 2], 20)) for g in ("a", "b", "c")}
    shadow_answers = {g: _logits(y, 0.95, rng) for g, y in labels.items()}
    answers = {"shadow_a": shadow_answers,
               "on_a": {g: _logits(y, 0.95 if g == "a" else 0.6, rng) for g, y in labels.items()},
               "on_b": {g: _logits(y, 0.95 if g == "b" else 0.5, rng) for g, y in labels.items()}}
    specs = [ClassifierSpec("on_a", "a", 0, "suspect"), ClassifierSpec("on_b", "b", 1, "suspect")]
    verdicts = verdict_table(specs, answers, labels, ["a"], 0.05, shadows={"a": "shadow_a"},
                             grubbs=GrubbsSetup(n_batches=6, seed=0))
    published = verdicts[verdicts.rule == "grubbs"].set_index("model_id")
    # each suspect's score is its own accuracy on the defender's images, not the shadow's
    assert published.suspect_score["on_a"] == pytest.approx((answers["on_a"]["a"].argmax(1) == labels["a"]).mean())
    assert published.suspect_score["on_b"] == pytest.approx((answers["on_b"]["a"].argmax(1) == labels["a"]).mean())
    assert published.suspect_score["on_b"] != published.shadow_mean["on_b"]
    assert published.verified["on_a"] and not published.verified["on_b"]
    assert set(verdicts.rule) == {"grubbs", "grubbs-ent", "grubbs-sim", "fisher"}
    table = summary_by_rule(verdicts).set_index("rule")
    assert table.loc["grubbs", "accuracy"] == 1.0 and table.loc["grubbs", "pairs"] == 2
    families = summary_by_family(verdicts).set_index(["rule", "architecture"])
    assert families.loc[("grubbs", "cnn"), "pairs"] == 2 and families.loc[("grubbs", "cnn"), "tpr"] == 1.0
    assert families.loc[("grubbs", "cnn"), "fpr"] == 0.0


def test_grubbs_rules_need_the_shadows():
    labels = {g: np.repeat([0, 1, 2], 2) for g in ("a", "b", "c")}
    answers = {"s": {g: np.eye(3)[y] for g, y in labels.items()}}
    with pytest.raises(ParameterError, match="shadows"):
        verdict_table([ClassifierSpec("s", "a", 0, "suspect")], answers, labels, ["a"], 0.05)
    with pytest.raises(ParameterError, match="rules"):
        verdict_table([ClassifierSpec("s", "a", 0, "suspect")], answers, labels, ["a"], 0.05, rules=["bayes"])


# ---- the generators' house styles and the owner-side checks ---------------------------------------------
def test_house_styles_differ_keep_the_shape_and_vanish_at_strength_zero():
    from provlib.trainprove.styles import STYLES, apply_style
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (3, 16, 16, 3), dtype=np.uint8)
    assert apply_style(images, STYLES["sd14"], 0.0, seed=0) is images
    styled = {g: apply_style(images, s, 1.0, seed=0) for g, s in STYLES.items()}
    means = {g: im.reshape(-1, 3).mean(0) for g, im in styled.items()}
    assert means["sd14"][0] > means["sd14"][2] and means["pixart"][2] > means["pixart"][0]  # warm vs cool
    assert all(np.abs(styled[a].astype(int) - styled[b].astype(int)).mean() > 5 for a in STYLES for b in STYLES if a < b)
    assert all(im.shape == images.shape and im.dtype == np.uint8 for im in styled.values())
    with pytest.raises(ParameterError, match="tp_style_strength"):
        apply_style(images, STYLES["lcm"], -1.0, seed=0)


def test_a_generator_draw_is_keyed_by_its_look(tmp_path, monkeypatch):
    from dataclasses import replace

    from provlib.presets import load_preset
    from provlib.trainprove import generators, styles
    from provlib.trainprove.zoo import TrainProVeZoo
    zoo = TrainProVeZoo(load_preset("smoke", tp_style_strength=1.0), cache_root=tmp_path)
    before = {d: zoo.draw_config(d, 4, "generator-training") for d in ("sd14", "cascade", "real")}
    monkeypatch.setitem(styles.STYLES, "cascade", styles.Style(grain=3.0))
    after = {d: zoo.draw_config(d, 4, "generator-training") for d in ("sd14", "cascade", "real")}
    assert after["cascade"] != before["cascade"] and after["sd14"] == before["sd14"] and after["real"] == before["real"]
    unstyled = TrainProVeZoo(load_preset("smoke", tp_style_strength=0.0), cache_root=tmp_path)
    assert zoo.vae_config("cascade") == unstyled.vae_config("cascade")  # the shared autoencoder sees the uniform world
    monkeypatch.setitem(generators.CPU_GENERATORS, "cascade", replace(generators.CPU_GENERATORS["cascade"], vae="own"))
    assert zoo.vae_config("cascade") != unstyled.vae_config("cascade")  # its own is trained on its styled draw


def test_owner_checks_name_a_separable_generator_and_mark_fidelity():
    from provlib.trainprove.owner_checks import generator_attribution, transfer_matrix
    from provlib.trainprove.test import LabelledImages
    rng = np.random.default_rng(0)

    def drawn(level):
        return LabelledImages((level + rng.integers(0, 20, (40, 16, 16, 3))).astype(np.uint8), np.repeat([0, 1], 20))
    train, test = {"dark": drawn(20), "bright": drawn(200)}, {"dark": drawn(20), "bright": drawn(200)}
    accuracy, confusion = generator_attribution(train, test, epochs=30, seed=0)
    assert accuracy == 1.0 and confusion.set_index("generator").loc["dark", "named_dark"] == 1.0
    labels = {g: s.labels for g, s in test.items()}
    answers = {"shadow_dark": {"dark": labels["dark"], "bright": 1 - labels["bright"]}}
    transfer = transfer_matrix(answers, labels, {"dark": "shadow_dark"}).set_index("tested_on")
    assert transfer.accuracy.to_dict() == {"dark": 1.0, "bright": 0.0} and transfer.own.to_dict() == {"dark": True, "bright": False}


def test_generator_attribution_tells_apart_generators_that_differ_only_by_the_side_of_their_light():
    """Two house styles lit from opposite sides: a mirrored image of one is the other's, so flips must stay off."""
    from provlib.trainprove.classifier import predict, train_classifier
    from provlib.trainprove.owner_checks import generator_attribution
    from provlib.trainprove.test import LabelledImages
    rng = np.random.default_rng(0)
    ramp = np.linspace(60, 200, 16)[None, None, :, None]

    def lit(from_left: bool, n=60):
        light = ramp[..., ::-1, :] if from_left else ramp
        return LabelledImages((light + rng.integers(0, 30, (n, 16, 16, 3))).clip(0, 255).astype(np.uint8), np.zeros(n, int))
    train, test = {"left": lit(True), "right": lit(False)}, {"left": lit(True), "right": lit(False)}
    accuracy, _ = generator_attribution(train, test, epochs=15, seed=0)
    assert accuracy >= 0.95
    # the same classifier trained with flips cannot tell them apart: the test would fail if attribution flipped
    images = np.concatenate([train["left"].images, train["right"].images])
    model, _ = train_classifier(images, np.repeat([0, 1], 60), 2, epochs=15, seed=0)
    flipped_accuracy = (predict(model, np.concatenate([test["left"].images, test["right"].images])) == np.repeat([0, 1], 60)).mean()
    assert flipped_accuracy < 0.8


def test_attribution_sets_hold_each_generators_shadow_set_and_pool_never_its_test_images():
    from provlib.trainprove.owner_checks import attribution_sets
    from provlib.trainprove.test import LabelledImages

    class Zoo:
        generators = ["a", "b"]

        def images(self, generator, purpose):
            level = {"shadow": 1, "pool": 2, "test": 3}[purpose] + 10 * self.generators.index(generator)
            return LabelledImages(np.full((3, 2, 2, 3), level, np.uint8), np.arange(3))
    sets = attribution_sets(Zoo())
    assert list(sets) == ["a", "b"]
    assert sorted(set(sets["a"].images.ravel())) == [1, 2] and sorted(set(sets["b"].images.ravel())) == [11, 12]
    assert len(sets["a"]) == 6


def test_within_class_similarity_is_the_mean_pairwise_cosine_per_class():
    rng = np.random.default_rng(3)
    logits, labels = rng.normal(size=(25, 4)), rng.integers(0, 5, 25)
    labels[0] = 7  # a class with one image is left out
    unit = logits / np.linalg.norm(logits, axis=1, keepdims=True)
    expected = np.mean([np.mean([unit[i] @ unit[j] for i in np.flatnonzero(labels == c) for j in np.flatnonzero(labels == c)
                                 if i < j]) for c in np.unique(labels) if (labels == c).sum() >= 2])
    assert within_class_similarity(logits, labels) == pytest.approx(expected, abs=1e-12)
    assert np.isnan(within_class_similarity(logits[:3], np.arange(3)))  # no class with two images
