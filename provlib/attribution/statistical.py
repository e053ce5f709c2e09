"""The discriminator over the zoo: per-key distance tables for suspects against sources' key sets."""
from __future__ import annotations

import numpy as np
import pandas as pd

from provlib.attribution.discriminator import (
    Discriminator,
    DiscriminatorConfig,
    feature_vector,
    mean_auc_by_source,
    per_key_distances,
    shadow_folds,
)
from provlib.attribution.instance import best_distance_per_key, grouped_features
from provlib.attribution.keys import KeySet
from provlib.attribution.metrics import bootstrap_report, detection_report
from provlib.attribution.naming import MODEL_COLUMNS
from provlib.core.errors import ParameterError
from provlib.core.progress import tqdm
from provlib.core.store import derive_seed


def _answered_pairs(zoo, specs, targets: list[str] | None, desc: str):
    """(suspect, target source, the suspect's answers to every candidate prompt of the target, the target's probe) for
    every suspect against each of ``targets`` (default: its own source), with progress."""
    probes = {}
    pairs = [(spec, target) for spec in specs for target in (targets or [spec.source])]
    for spec, target in tqdm(pairs, desc=desc, disable=not zoo.show_progress, mininterval=5):
        if target not in probes:
            probes[target] = zoo.candidate_probe(target)
        yield spec, target, zoo.suspect_answers(spec, prompts_of=target), probes[target]


def _model_columns(spec, target: str, space) -> dict:
    return {"model_id": spec.model_id, "source": spec.source, "rho": spec.rho, "split": spec.split, "target": target,
            "feature_space": space.name}


def per_key_table(zoo, specs, keys_by_source: dict[str, KeySet], space, targets: list[str] | None = None,
                  desc: str = "per-key distances") -> pd.DataFrame:
    """One row per (suspect, target source, key): d_key, d_source, d_reference in ``space``.

    ``targets`` are the sources whose key sets each suspect is scored against (default: its own source);
    the suspect's answers for another source's prompts must have been built (``zoo.build_answers``).
    """
    rows = []
    for spec, target, answers, probe in _answered_pairs(zoo, specs, targets, desc):
        keys = keys_by_source[target]
        index = keys.candidate_index
        table = per_key_distances(answers[index], keys.images, probe.source_images[index], probe.reference_images[index],
                                  space)
        rows.append(table.assign(**_model_columns(spec, target, space), key_rank=np.arange(1, len(table) + 1)))
    return pd.concat(rows, ignore_index=True)


def candidate_table(zoo, specs, space, targets: list[str] | None = None,
                    desc: str = "every candidate prompt") -> pd.DataFrame:
    """One row per (suspect, target source, candidate prompt): the suspect's best distance to the target's own
    generations for that prompt (``d_source``) and to the reference models' (``d_reference``), over every candidate
    prompt, not only the keys. Sources of one training set share their candidate prompts (``key_candidate_draw``), so
    a suspect's rows against two such sources compare the same answers with each source's rendering of the same
    prompts (``provlib.attribution.naming``)."""
    rows, embedded = [], {}
    for spec, target, answers, probe in _answered_pairs(zoo, specs, targets, desc):
        if target not in embedded:  # a source's generations are embedded once, not once per suspect
            embedded[target] = [grouped_features(probe.source_images, space), grouped_features(probe.reference_images, space)]
        queries = grouped_features(answers, space)
        source, reference = embedded[target]
        rows.append(pd.DataFrame({"d_source": best_distance_per_key(queries, source, space),
                                  "d_reference": best_distance_per_key(queries, reference, space)}
                                 ).assign(**_model_columns(spec, target, space), candidate=np.arange(len(answers))))
    return pd.concat(rows, ignore_index=True)


def feature_matrix(table: pd.DataFrame, feature_set: str) -> tuple[np.ndarray, pd.DataFrame]:
    """(features [models, d], one row of model columns per feature row) from a one-space per-key table."""
    if table.feature_space.nunique() != 1:
        raise ParameterError("table", "the per-key table of one feature space", sorted(table.feature_space.unique()))
    groups = list(table.groupby(MODEL_COLUMNS, sort=True))
    features = np.stack([feature_vector(g, feature_set) for _, g in groups])
    meta = pd.DataFrame([key for key, _ in groups], columns=MODEL_COLUMNS)
    return features, meta


def labels_of(meta: pd.DataFrame) -> np.ndarray:
    """1 for a suspect infringing on the target source (ρ > 0 and trained on its data), else 0."""
    return ((meta.rho > 0) & (meta.source == meta.target)).astype(int).to_numpy()


def report_by_source(meta: pd.DataFrame, scores: np.ndarray, threshold: float = 0.5, n_resamples: int = 1000,
                     seed: int = 0) -> pd.DataFrame:
    """Table 1: per source, accuracy / AUC / TPR@FPR on the given (test) models, with bootstrap CIs."""
    rows = []
    for source in sorted(meta.target.unique()):
        members = np.flatnonzero(meta.target == source)
        frame = meta.iloc[members]
        labels = labels_of(frame)
        report = bootstrap_report(labels, scores[members], threshold, n_resamples, seed=derive_seed(seed, "bootstrap", source))
        rows.append({"source": source, **report, "n_test_models": len(frame), "n_test_infringing": int(labels.sum()),
                     "n_test_innocent": int((labels == 0).sum())})
    return pd.DataFrame(rows)


def report_by_rho(meta: pd.DataFrame, scores: np.ndarray, threshold: float = 0.5) -> pd.DataFrame:
    """Accuracy and AUC of innocent vs infringing-at-ρ models, pooled over sources, for each ρ."""
    innocent = meta.rho == 0
    rows = []
    for rho in sorted(meta.rho[meta.rho > 0].unique()):
        members = (innocent | (meta.rho == rho)).to_numpy()
        labels = labels_of(meta[members])
        rows.append({"rho": rho, **detection_report(labels, scores[members], threshold),
                     "n_infringing": int(labels.sum()), "n_innocent": int((labels == 0).sum())})
    return pd.DataFrame(rows)


def shadow_count_curve(config: DiscriminatorConfig, features: np.ndarray, meta: pd.DataFrame, counts: list[int],
                       repeats: int, seed: int = 0, threshold: float = 0.5) -> pd.DataFrame:
    """Test AUC and accuracy when the defender has only ``m`` shadow models per source (random draws, both classes kept)."""
    shadow, test = (meta.split == "shadow").to_numpy(), (meta.split == "test").to_numpy()
    labels, sources = labels_of(meta), meta.target.to_numpy()
    rows = []
    for m in counts:
        for r in range(repeats):
            rng = np.random.default_rng(derive_seed(seed, "shadow-count", m, r))
            chosen = []
            for source in np.unique(sources[shadow]):
                by_class = [np.flatnonzero(shadow & (sources == source) & (labels == c)) for c in (0, 1)]
                if m < 2 or sum(map(len, by_class)) < m:
                    continue
                # one of each class first, the rest drawn from what is left
                first = [rng.choice(members) for members in by_class]
                rest = np.setdiff1d(np.concatenate(by_class), first)
                chosen += first + list(rng.choice(rest, size=m - 2, replace=False))
            if not chosen:
                continue
            chosen = np.array(chosen)
            model = Discriminator(config, seed).fit(features[chosen], labels[chosen], sources[chosen])
            scores = model.score(features[test], sources[test])
            report = detection_report(labels[test], scores, threshold)
            rows.append({"shadow_models_per_source": m, "repeat": r, "auc": mean_auc_by_source(labels[test], scores, sources[test]),
                         "accuracy": report["accuracy"], "balanced_accuracy": report["balanced_accuracy"]})
    return pd.DataFrame(rows)


def out_of_fold_cross_scores(config: DiscriminatorConfig, features: np.ndarray, meta: pd.DataFrame, cross_features: np.ndarray,
                             cross_meta: pd.DataFrame, n_folds: int = 3, seed: int = 0,
                             trained_model: dict[str, str] | None = None) -> np.ndarray:
    """P(infringing) of shadow suspects against every source, each scored by a discriminator that never saw it.

    ``features``/``meta``: the shadow suspects against their own source (what the discriminator trains on);
    ``cross_*``: the same suspects against every source. Folds are ``shadow_folds`` over the shadow suspects, so
    the scores behave as a test suspect's would, and a threshold chosen on them is not fitted to the training set.
    ``trained_model`` maps a model_id to the model it names (``SuspectZoo.trained_models``): an innocent listed under
    two sources is one model, so its listings share a fold and while one is held out the other is not trained on.
    """
    labels, sources = labels_of(meta), meta.target.to_numpy()
    ids = meta.model_id.to_numpy()
    model_of = np.array([trained_model.get(i, i) for i in ids]) if trained_model else ids
    scores = np.full(len(cross_meta), np.nan)
    for train, held_out in shadow_folds(labels, sources, n_folds, seed, model_of):
        model = Discriminator(config, seed).fit(features[train], labels[train], sources[train])
        rows = cross_meta.model_id.isin(ids[held_out]).to_numpy()
        scores[rows] = model.score(cross_features[rows], cross_meta.target.to_numpy()[rows])
    return scores
