"""Metric helpers and the discriminator: hand-computed ROC points, separable cases, no test-model leakage."""
import numpy as np
import pandas as pd
import pytest

from provlib.attribution import statistical as discriminator_study
from provlib.attribution.discriminator import (
    Discriminator,
    DiscriminatorConfig,
    cross_validate,
    feature_vector,
    per_key_distances,
    shadow_folds,
)
from provlib.attribution.distance import PixelSpace
from provlib.attribution.metrics import bootstrap_report, detection_report, tpr_at_fpr
from provlib.attribution.keys import CandidateProbe
from provlib.attribution.naming import (CLOSENESS, NamingRule, best_rule, choose_naming_rule, closeness_statistics,
                                       key_closeness, name_source, named_sources, naming_accuracy, relative_closeness,
                                       source_confusion)
from provlib.core.errors import ParameterError
from provlib.core.suspects import SuspectSpec


def test_tpr_at_fpr_reads_and_interpolates_the_roc_curve():
    # 5 innocent, 2 infringing. Descending scores: 0.9 (+), 0.8 (-), 0.7 (+), 0.6, 0.5, 0.4, 0.3 (-)
    # ROC points (FPR, TPR): (0, 0), (0, .5), (.2, .5), (.2, 1), (.4, 1), ... (1, 1)
    labels = [1, 0, 1, 0, 0, 0, 0]
    scores = [0.9, 0.8, 0.7, 0.6, 0.5, 0.4, 0.3]
    assert tpr_at_fpr(labels, scores, 0.0) == 0.5
    assert tpr_at_fpr(labels, scores, 0.2) == 1.0      # vertical segment: the highest TPR at that FPR
    assert tpr_at_fpr(labels, scores, 0.1) == 0.5      # between (0, .5) and (.2, .5)
    # one innocent above both infringing: (0, 0), (.2, 0), (.2, .5), (.2, 1)... -> at 10% FPR halfway from (0,0) to (.2,0)
    assert tpr_at_fpr([0, 1, 1, 0, 0, 0, 0], [0.9, 0.8, 0.7, 0.6, 0.5, 0.4, 0.3], 0.1) == 0.0
    # a tie between an innocent and an infringing model makes a diagonal segment (0, .5) -> (.5, 1): a randomized
    # threshold there reaches FPR .25 at TPR .75
    assert tpr_at_fpr([1, 0, 1, 0], [0.9, 0.5, 0.5, 0.1], 0.25) == pytest.approx(0.75)
    assert tpr_at_fpr([1, 0, 1, 0], [0.9, 0.5, 0.5, 0.1], 0.5) == pytest.approx(1.0)


def test_auc_and_rates_on_a_separable_case_and_bad_input():
    labels = np.array([0, 0, 0, 1, 1, 1])
    scores = np.array([0.1, 0.2, 0.3, 0.7, 0.8, 0.9])
    report = detection_report(labels, scores)
    assert report["auc"] == 1.0 and report["accuracy"] == 1.0 and report["tpr_at_10fpr"] == 1.0
    assert detection_report(labels, -scores)["auc"] == 0.0
    ci = bootstrap_report(labels, scores, n_resamples=20)
    assert ci["auc_lo"] == ci["auc_hi"] == 1.0
    with pytest.raises(ParameterError, match="labels"):
        detection_report([1, 1], [0.2, 0.3])
    with pytest.raises(ParameterError, match="fpr"):
        tpr_at_fpr(labels, scores, 1.5)


def test_per_key_features_are_zero_for_copies_and_ignore_key_order():
    rng = np.random.default_rng(0)
    keys = rng.integers(0, 256, (3, 8, 8, 3), dtype=np.uint8)
    answers = np.stack([np.stack([k, 255 - k]) for k in keys])          # [3 keys, 2 answers]
    others = rng.integers(0, 256, (3, 2, 8, 8, 3), dtype=np.uint8)
    table = per_key_distances(answers, keys, answers, others, PixelSpace())
    assert np.allclose(table.d_key, 0, atol=1e-6) and np.allclose(table.d_source, 0, atol=1e-6) and (table.d_reference > 0).all()
    shuffled = table.iloc[[2, 0, 1]]
    for feature_set in ("key_distances", "calibrated", "both"):
        assert np.array_equal(feature_vector(table, feature_set), feature_vector(shuffled, feature_set))
    with pytest.raises(ParameterError, match="feature_set"):
        feature_vector(table, "histogram-of-everything")
    with pytest.raises(ParameterError, match="answers"):
        per_key_distances(answers[:2], keys, answers, others, PixelSpace())


def synthetic_models(n_per_class=6, sources=("a", "b"), shift=2.0, seed=0):
    """Feature rows for shadow and test models: infringing ones have smaller distances."""
    rng = np.random.default_rng(seed)
    rows, features = [], []
    for source in sources:
        for split in ("shadow", "test"):
            for i in range(2 * n_per_class):
                rho = 1.0 if i % 2 else 0.0
                rows.append({"model_id": f"{source}-{split}-{i}", "source": source, "rho": rho, "split": split,
                             "target": source})
                features.append(np.sort(rng.normal(-shift * rho, 1.0, 5)))
    return np.array(features), pd.DataFrame(rows)


def test_discriminator_separates_a_separable_population_and_cv_ranks_configurations():
    features, meta = synthetic_models()
    labels, sources = discriminator_study.labels_of(meta), meta.target.to_numpy()
    shadow, test = (meta.split == "shadow").to_numpy(), (meta.split == "test").to_numpy()
    for scope in ("per_source", "pooled"):
        model = Discriminator(DiscriminatorConfig("pixel", "key_distances", "logreg", scope)).fit(
            features[shadow], labels[shadow], sources[shadow])
        assert detection_report(labels[test], model.score(features[test], sources[test]))["auc"] > 0.9
    cv = cross_validate({("pixel", "key_distances"): features[shadow]}, labels[shadow], sources[shadow], n_repeats=2)
    assert len(cv) == 6 and cv.cv_auc.is_monotonic_decreasing and cv.cv_auc.iloc[0] > 0.9
    with pytest.raises(ParameterError, match="sources"):
        Discriminator(DiscriminatorConfig("pixel", "key_distances", "logreg", "per_source")).fit(
            features[shadow], labels[shadow], sources[shadow]).score(features[:1], np.array(["unknown"]))
    with pytest.raises(ParameterError, match="classifier"):
        DiscriminatorConfig("pixel", "key_distances", "svm", "pooled")


def test_no_test_model_reaches_a_fit(monkeypatch):
    """Cross-validation and the learning curve only ever fit on shadow models."""
    features, meta = synthetic_models()
    features[(meta.split == "test").to_numpy()] += 1000.0  # test rows are recognisable by their values
    fitted = []
    original = Discriminator.fit

    def spy(self, x, y, s):
        fitted.append(np.asarray(x))
        return original(self, x, y, s)

    monkeypatch.setattr(Discriminator, "fit", spy)
    shadow = (meta.split == "shadow").to_numpy()
    labels = discriminator_study.labels_of(meta)
    cross_validate({("pixel", "key_distances"): features[shadow]}, labels[shadow], meta.target.to_numpy()[shadow],
                   n_repeats=1)
    curve = discriminator_study.shadow_count_curve(DiscriminatorConfig("pixel", "key_distances", "logreg", "pooled"),
                                                   features, meta, counts=[4, 12], repeats=2)
    assert set(curve.shadow_models_per_source) == {4, 12}
    assert fitted and all((x < 500).all() for x in fitted)


def test_naming_the_source_and_the_confusion_matrix():
    assert name_source(pd.Series({"a": 0.2, "b": 0.9})) == "b"
    assert name_source(pd.Series({"a": 0.2, "b": 0.4})) == "innocent"
    meta = pd.DataFrame([{"model_id": m, "source": src, "rho": rho, "split": "test", "target": t}
                         for m, src, rho in (("x", "a", 1.0), ("y", "b", 0.0)) for t in ("a", "b")])
    scores = np.array([0.9, 0.1, 0.3, 0.2])  # x -> a (right), y -> innocent (right)
    confusion = source_confusion(meta, scores)
    assert confusion.loc["a", "a"] == 1 and confusion.loc["innocent", "innocent"] == 1 and confusion.to_numpy().sum() == 2
    with pytest.raises(ParameterError, match="threshold"):
        NamingRule(threshold=1.5)


def test_saturated_scores_are_told_apart_by_key_closeness():
    """Two sources of one private set both score P = 1: the name follows the keys reproduced more closely, not the
    order of the sources' names; a tolerance widens what counts as tied, and the level still says "none"."""
    scores = pd.Series({"v1-faces": 1.0, "v2-faces": 1.0, "v1-scenes": 0.1})
    closeness = pd.Series({"v1-faces": 0.5, "v2-faces": 3.0, "v1-scenes": 0.0})
    assert name_source(scores) == "v1-faces"  # without closeness: the first of the tied names
    assert name_source(scores, NamingRule(0.5), closeness) == "v2-faces"
    near = pd.Series({"v1-faces": 1.0, "v2-faces": 0.97, "v1-scenes": 0.1})
    assert name_source(near, NamingRule(0.5, 0.0), closeness) == "v1-faces"
    assert name_source(near, NamingRule(0.5, 0.05), closeness) == "v2-faces"
    # a source whose own P is below the level is never named, however wide the tolerance
    assert name_source(near, NamingRule(0.99, 0.05), closeness) == "v1-faces"
    assert name_source(near, NamingRule(0.95, 1.0), closeness) == "v2-faces"
    assert name_source(pd.Series({"v1-faces": 1.0, "v2-faces": 0.2, "v1-scenes": 0.1}), NamingRule(0.5, 1.0),
                       pd.Series({"v1-faces": 0.5, "v2-faces": 3.0, "v1-scenes": 9.0})) == "v1-faces"
    assert name_source(near * 0.5, NamingRule(0.6, 0.05), closeness) == "innocent"
    with pytest.raises(ParameterError, match="closeness"):
        NamingRule(closeness="d_reference")
    meta = pd.DataFrame([{"model_id": "x", "source": "v2-faces", "rho": 1.0, "split": "test", "target": t}
                         for t in sorted(scores.index)])
    by_row = {"d_source": closeness[sorted(scores.index)].to_numpy()}
    rule = NamingRule(0.5, 0.0, "d_source")
    assert named_sources(meta, scores[sorted(scores.index)].to_numpy(), rule, by_row)["x"] == "v2-faces"
    assert named_sources(meta, scores[sorted(scores.index)].to_numpy())["x"] == "v1-faces"
    with pytest.raises(ParameterError, match="closeness"):
        named_sources(meta, scores[sorted(scores.index)].to_numpy(), NamingRule(0.5, 0.0, "d_key"), by_row)


def test_key_closeness_is_scaled_by_the_targets_shadow_innocents():
    rows, distances = [], {"i1": 0.4, "i2": 0.6, "s": 0.1, "t": 0.5}
    for model, rho, split in (("i1", 0.0, "shadow"), ("i2", 0.0, "shadow"), ("s", 1.0, "shadow"), ("t", 0.0, "test")):
        for key in range(3):
            rows.append({"model_id": model, "source": "a", "rho": rho, "split": split, "target": "a",
                         "d_key": distances[model] + (key - 1) * 0.01})
    table = pd.DataFrame(rows)
    meta = table.drop_duplicates("model_id")[["model_id", "source", "rho", "split", "target"]].sort_values(
        "model_id").reset_index(drop=True)
    closeness = dict(zip(meta.model_id, key_closeness(table, meta, "d_key")))
    spread = np.std([0.4, 0.6], ddof=1)
    assert closeness["s"] == pytest.approx((0.5 - 0.1) / spread) and closeness["t"] == pytest.approx(0.0)
    with pytest.raises(ParameterError, match="shadow innocent"):
        key_closeness(table[table.rho > 0], meta[meta.rho > 0])
    with pytest.raises(ParameterError, match="distance"):
        key_closeness(table, meta, "d_reference")


class TwoSiblingsZoo:
    """Two sources rendering one shared list of candidate prompts differently, and suspects that copy one of them."""
    show_progress = False

    def __init__(self, n_prompts=6, seeds=2, k=2, size=4):
        rng = np.random.default_rng(0)
        self.renderings = {name: rng.integers(0, 256, (n_prompts, seeds, size, size, 3), dtype=np.uint8)
                           for name in ("v1-faces", "v2-faces")}
        self.reference = rng.integers(0, 256, (n_prompts, seeds, size, size, 3), dtype=np.uint8)
        self.answers = {"copies v2": np.repeat(self.renderings["v2-faces"][:, :1], k, axis=1),
                        "innocent": rng.integers(0, 256, (n_prompts, k, size, size, 3), dtype=np.uint8)}
        self.probed = []

    def candidate_probe(self, source):
        self.probed.append(source)
        return CandidateProbe([f"prompt {i}" for i in range(len(self.reference))], self.renderings[source], self.reference)

    def suspect_answers(self, spec, prompts_of):
        return self.answers[spec.model_id]


def test_candidate_table_compares_a_suspect_with_each_sources_rendering_of_every_prompt():
    zoo = TwoSiblingsZoo()
    specs = [SuspectSpec("copies v2", "v2-faces", 1.0, 0, "shadow", "v1", "faces"),
             SuspectSpec("innocent", "v2-faces", 0.0, 0, "shadow", "v1", "faces")]
    table = discriminator_study.candidate_table(zoo, specs, PixelSpace(), targets=["v1-faces", "v2-faces"])
    assert len(table) == 2 * 2 * 6 and sorted(table.candidate.unique()) == list(range(6))
    assert zoo.probed == ["v1-faces", "v2-faces"]  # each source's probe read once, not once per suspect
    medians = table.groupby(["model_id", "target"]).d_source.median()
    assert medians["copies v2", "v2-faces"] == pytest.approx(0.0, abs=1e-6)
    assert medians["copies v2", "v1-faces"] > 0.1
    assert table.d_reference.gt(0).all()
    # the closeness statistics: the key ones from a per-key table, d_source_all from the candidate table
    meta = table.drop_duplicates(["model_id", "target"])[["model_id", "source", "rho", "split", "target"]].sort_values(
        ["model_id", "target"]).reset_index(drop=True)
    per_key = table.assign(d_key=table.d_source)[table.candidate < 2]
    statistics = closeness_statistics(per_key, table, meta)
    assert sorted(statistics) == sorted(CLOSENESS)
    assert np.array_equal(statistics["d_source_all"], relative_closeness(table, meta, "d_source"))
    assert np.array_equal(statistics["d_key"], key_closeness(per_key, meta, "d_key"))
    with pytest.raises(ParameterError, match="column"):
        relative_closeness(table, meta, "d_key")
    with pytest.raises(ParameterError, match="distance"):
        key_closeness(per_key, meta, "d_source_all")


def scored_rows_seen_in_training(monkeypatch) -> list[bool]:
    """Spy on every Discriminator: for each row it scores, whether the same row was among those it was fitted on."""
    leaks: list[bool] = []
    fit, score = Discriminator.fit, Discriminator.score

    def spy_fit(self, x, y, s):
        self.seen_rows = {tuple(r) for r in np.asarray(x)}
        return fit(self, x, y, s)

    def spy_score(self, x, s):
        leaks.extend(tuple(r) in self.seen_rows for r in np.asarray(x))
        return score(self, x, s)

    monkeypatch.setattr(Discriminator, "fit", spy_fit)
    monkeypatch.setattr(Discriminator, "score", spy_score)
    return leaks


def test_naming_threshold_is_chosen_on_out_of_fold_shadow_scores(monkeypatch):
    """"None of them" is decided at a level chosen on shadow suspects, each scored by a model that never saw it."""
    features, meta = synthetic_models()
    shadow = (meta.split == "shadow").to_numpy()
    own, own_meta = features[shadow], meta[shadow].reset_index(drop=True)
    # every shadow suspect against every source: its own features for its own source, innocent-like ones elsewhere
    innocent_like = features[shadow & (meta.rho == 0).to_numpy()].mean(0)
    targets = sorted(meta.target.unique())
    cross_meta = pd.DataFrame([{**row, "target": t} for row in own_meta.to_dict("records") for t in targets])
    cross = np.stack([own[i] if t == own_meta.target[i] else innocent_like for i in range(len(own_meta)) for t in targets])
    leaks = scored_rows_seen_in_training(monkeypatch)
    config = DiscriminatorConfig("pixel", "key_distances", "logreg", "pooled")
    scores = discriminator_study.out_of_fold_cross_scores(config, own, own_meta, cross, cross_meta, n_folds=3)
    assert not np.isnan(scores).any() and len(leaks) == len(cross_meta) and not any(leaks)
    rule, curve = choose_naming_rule(cross_meta, scores, tie_tolerances=(0.0, 0.1))  # no closeness: no tolerance
    assert 0 < rule.threshold < 1 and rule == NamingRule(rule.threshold) and curve.shadow_naming_accuracy.max() > 0.8
    assert set(curve.tie_tolerance) == {0.0} and set(curve.closeness) == {""}
    # with closeness statistics every (statistic, tolerance, level) is on the grid; the simplest best rule is kept
    closeness = {"d_key": np.zeros(len(cross_meta)), "d_source": np.zeros(len(cross_meta))}
    rule, curve = choose_naming_rule(cross_meta, scores, closeness, tie_tolerances=(0.0, 0.1))
    assert rule.closeness == "d_source" and rule.tie_tolerance == 0.0 and len(curve) == 2 * 2 * 38
    assert naming_accuracy(cross_meta, scores, rule, closeness) == curve.shadow_naming_accuracy.max()
    assert naming_accuracy(cross_meta, scores, NamingRule(0.999)) < curve.shadow_naming_accuracy.max()
    # one statistic's best rule, read off the whole grid, is the rule chosen with that statistic alone
    for distance in closeness:
        alone = choose_naming_rule(cross_meta, scores, {distance: closeness[distance]}, tie_tolerances=(0.0, 0.1))[0]
        assert best_rule(curve[curve.closeness == distance]) == alone
    with pytest.raises(ParameterError, match="table"):
        best_rule(curve[curve.closeness == "nothing"])


def test_the_one_standard_error_choice_keeps_the_simplest_rule_within_one_error_of_the_best():
    def grid(plain, tied):  # shadow accuracies of two levels at tolerance 0 and at 0.25, over 20 shadow suspects
        return pd.DataFrame([{"closeness": "d_key", "tie_tolerance": tolerance, "threshold": level,
                              "shadow_naming_accuracy": accuracy - (0.05 if level == 0.8 else 0.0), "n_shadow_suspects": 20}
                             for tolerance, accuracy in ((0.0, plain), (0.25, tied)) for level in (0.5, 0.8)])
    # 18 of 20 against 17 of 20: one binomial standard error of 0.9 over 20 is 1.3 suspects, so the plain rule is kept
    assert best_rule(grid(0.85, 0.90)) == NamingRule(0.5, 0.25, "d_key")
    assert best_rule(grid(0.85, 0.90), "one_standard_error") == NamingRule(0.5, 0.0, "d_key")
    # a win of three suspects, or a perfect one (no error at all), is evidence: the tolerance is taken
    assert best_rule(grid(0.75, 0.90), "one_standard_error") == NamingRule(0.5, 0.25, "d_key")
    assert best_rule(grid(0.95, 1.00), "one_standard_error") == NamingRule(0.5, 0.25, "d_key")
    with pytest.raises(ParameterError, match="naming_rule_choice"):
        best_rule(grid(0.85, 0.9), "simplest")


def test_an_innocent_listed_under_two_sources_is_held_out_whole(monkeypatch):
    """A shared innocent's listing under one source is the same model answering that source's prompts: while its other
    listing is held out, out-of-fold scoring must not train on it (it would score a model the discriminator saw)."""
    rng = np.random.default_rng(0)
    rows = [{"model_id": f"{s}{k}", "source": s, "rho": 1.0, "split": "shadow", "target": s} for s in "ab" for k in range(2)]
    rows += [{"model_id": f"{m}@{s}", "source": s, "rho": 0.0, "split": "shadow", "target": s} for m in "uvwxyz" for s in "ab"]
    own_meta = pd.DataFrame(rows)
    own = rng.normal(size=(len(own_meta), 4)) + own_meta.rho.to_numpy()[:, None]
    trained_model = {m: m.split("@")[0] for m in own_meta.model_id}
    index = {(r.model_id, r.target): i for i, r in enumerate(own_meta.itertuples())}
    cross_meta = pd.DataFrame([{**r, "target": t} for r in rows for t in "ab"])
    # a listing's row for the other source is its twin listing's own row: one model, that source's prompts
    cross = np.stack([own[index[(r.model_id, r.target)]] if (r.model_id, r.target) in index else
                      own[index[(r.model_id.replace(r.source, r.target), r.target)]] if "@" in r.model_id else
                      rng.normal(size=4) for r in cross_meta.itertuples()])
    leaks = scored_rows_seen_in_training(monkeypatch)
    config = DiscriminatorConfig("pixel", "key_distances", "logreg", "pooled")
    discriminator_study.out_of_fold_cross_scores(config, own, own_meta, cross, cross_meta, n_folds=3)
    assert any(leaks)  # listing by listing, a twin trains the model that scores it
    leaks.clear()
    scores = discriminator_study.out_of_fold_cross_scores(config, own, own_meta, cross, cross_meta, n_folds=3,
                                                          trained_model=trained_model)
    assert not np.isnan(scores).any() and len(leaks) == len(cross_meta) and not any(leaks)


def test_cross_validation_holds_a_shared_innocent_out_whole(monkeypatch):
    """The same for choosing the discriminator: a held-out listing's twin never trains the model that scores it."""
    rng = np.random.default_rng(1)
    sources = np.array(["a", "a", "b", "b"] + ["a", "b"] * 6)
    labels = np.array([1, 1, 1, 1] + [0] * 12)
    models = np.array(["a0", "a1", "b0", "b1"] + [m for m in "uvwxyz" for _ in "ab"])
    features = rng.normal(size=(len(labels), 3)) + labels[:, None]
    features[4::2] = features[5::2]  # the twin listings of one innocent answer alike
    leaks = scored_rows_seen_in_training(monkeypatch)
    table = cross_validate({("pixel", "key_distances"): features}, labels, sources, n_folds=2, n_repeats=1, models=models)
    assert table.cv_auc.notna().any() and leaks and not any(leaks)


def test_folds_keep_the_listings_of_one_model_together_and_every_source_trainable():
    """Two sources share six innocent models (each listed under both) and have two infringing shadows each: every
    fold holds both listings of a model out together, and leaves each source an infringing and an innocent model."""
    sources = np.array(["a", "a", "b", "b"] + ["a", "b"] * 6)
    labels = np.array([1, 1, 1, 1] + [0] * 12)
    models = np.array(["a0", "a1", "b0", "b1"] + [m for m in "uvwxyz" for _ in "ab"])
    for seed in range(20):
        folds = shadow_folds(labels, sources, 3, seed, models)
        assert len(folds) == 2 and sorted(np.concatenate([h for _, h in folds])) == list(range(len(labels)))
        for train, held_out in folds:
            assert not set(models[train]) & set(models[held_out])
            for source in "ab":
                assert set(labels[train][sources[train] == source]) == {0, 1}
    plain = shadow_folds(labels, sources, 3, 0)  # without groups: the folds as before
    assert all((a == b).all() and (c == d).all() for (a, c), (b, d) in zip(plain, shadow_folds(labels, sources, 3, 0, None)))
