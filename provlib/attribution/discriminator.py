"""Statistical-level attribution: a classifier over suspect *models* (the paper's shadow-model discriminator).

A suspect becomes one feature vector from its answers to a source's N key prompts (k images each). Per
key we measure three distances in one feature space:

* ``key``: best distance of the answers to the key image (the instance-level reconstruction distance);
* ``source``: best distance to any of the source's own generations for that prompt (its probe seeds);
* ``reference``: best distance to the reference model's generations for that prompt (the public base a
  would-be infringer fine-tunes; the defender has it).

Feature sets (each sorted, so the vector does not depend on key order):

* ``key_distances``: the N sorted key distances, the paper's feature;
* ``calibrated``: the N sorted ``source - reference`` differences: how much closer the suspect comes to
  the source than to the public base on each prompt. This removes the prompt's difficulty, which key
  distances alone mix with the suspect's training data (a documented choice of this workbook);
* ``both``: the two concatenated.

Classifiers are scikit-learn's logistic regression, random forest and histogram gradient boosting, all
class-balanced (shadow zoos have more infringing than innocent models). ``scope`` is ``per_source``
(one classifier per source model, as in the paper) or ``pooled`` (one classifier over every source's
shadow models, each described against its own source's keys). The combination is chosen by
cross-validated AUC on **shadow** models only (``cross_validate``).
"""
from __future__ import annotations

import itertools
from dataclasses import asdict, dataclass

import numpy as np
import pandas as pd
from sklearn.ensemble import HistGradientBoostingClassifier, RandomForestClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score
from sklearn.model_selection import StratifiedKFold
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from provlib.attribution.instance import best_distance_per_key, grouped_features
from provlib.core.errors import ParameterError

FEATURE_SETS = ("key_distances", "calibrated", "both")
CLASSIFIERS = ("logreg", "random_forest", "gradient_boosting")
SCOPES = ("per_source", "pooled")


def per_key_distances(answers: np.ndarray, key_images: np.ndarray, source_images: np.ndarray,
                      reference_images: np.ndarray, space) -> pd.DataFrame:
    """answers [N, k, H, W, 3]; key_images [N, H, W, 3]; source / reference images [N, S, H, W, 3].

    Returns one row per key with its ``d_key``, ``d_source`` and ``d_reference`` distance (smallest over the
    k answers and the S generations).
    """
    answers, key_images = np.asarray(answers), np.asarray(key_images)
    n = len(key_images)
    for name, value in (("answers", answers), ("source_images", source_images), ("reference_images", reference_images)):
        if value.ndim != 5 or len(value) != n:
            raise ParameterError(name, f"an array [n_keys={n}, images, H, W, 3]", value.shape)
    queries = grouped_features(answers, space)  # embedded once, compared with all three targets
    return pd.DataFrame({column: best_distance_per_key(queries, grouped_features(targets, space), space)
                         for column, targets in (("d_key", key_images[:, None]), ("d_source", source_images),
                                                 ("d_reference", reference_images))})


def feature_vector(per_key: pd.DataFrame, feature_set: str) -> np.ndarray:
    """The order-free vector of one suspect against one key set."""
    if feature_set == "key_distances":
        return np.sort(per_key["d_key"].to_numpy())
    if feature_set == "calibrated":
        return np.sort((per_key["d_source"] - per_key["d_reference"]).to_numpy())
    if feature_set == "both":
        return np.concatenate([feature_vector(per_key, "key_distances"), feature_vector(per_key, "calibrated")])
    raise ParameterError("feature_set", f"one of {FEATURE_SETS}", feature_set)


def make_classifier(name: str, seed: int = 0):
    """A fresh, class-balanced scikit-learn classifier (small-sample settings: tens of models per source)."""
    if name == "logreg":
        return make_pipeline(StandardScaler(), LogisticRegression(C=1.0, class_weight="balanced", max_iter=5000))
    if name == "random_forest":
        return RandomForestClassifier(n_estimators=300, min_samples_leaf=2, class_weight="balanced", random_state=seed)
    if name == "gradient_boosting":
        return HistGradientBoostingClassifier(max_iter=100, learning_rate=0.1, min_samples_leaf=2,
                                              class_weight="balanced", random_state=seed)
    raise ParameterError("classifier", f"one of {CLASSIFIERS}", name)


@dataclass(frozen=True)
class DiscriminatorConfig:
    feature_space: str
    feature_set: str
    classifier: str
    scope: str

    def __post_init__(self):
        if self.feature_set not in FEATURE_SETS:
            raise ParameterError("feature_set", f"one of {FEATURE_SETS}", self.feature_set)
        if self.classifier not in CLASSIFIERS:
            raise ParameterError("classifier", f"one of {CLASSIFIERS}", self.classifier)
        if self.scope not in SCOPES:
            raise ParameterError("scope", f"one of {SCOPES}", self.scope)


class Discriminator:
    """Infringing-vs-innocent classifier(s) for one configuration; ``score`` is P(infringing)."""

    def __init__(self, config: DiscriminatorConfig, seed: int = 0):
        self.config, self.seed, self.models = config, seed, {}

    def fit(self, features: np.ndarray, labels: np.ndarray, sources: np.ndarray) -> "Discriminator":
        features, labels, sources = np.asarray(features), np.asarray(labels).astype(int), np.asarray(sources)
        groups = {None: np.ones(len(labels), bool)} if self.config.scope == "pooled" else \
            {s: sources == s for s in np.unique(sources)}
        for group, members in groups.items():
            if len(np.unique(labels[members])) < 2:
                raise ParameterError("shadow models", f"infringing and innocent shadow models for {group or 'every source'}",
                                     np.bincount(labels[members], minlength=2).tolist())
            self.models[group] = make_classifier(self.config.classifier, self.seed).fit(features[members], labels[members])
        return self

    def score(self, features: np.ndarray, sources: np.ndarray) -> np.ndarray:
        """P(infringing) of each row, using the classifier of the row's source (its key set's owner)."""
        features, sources = np.asarray(features), np.asarray(sources)
        if not self.models:
            raise ParameterError("discriminator", "a fitted discriminator (call fit on shadow models first)", None)
        if self.config.scope == "per_source" and not np.isin(sources, list(self.models)).all():
            raise ParameterError("sources", f"sources the discriminator was fitted for {sorted(self.models)}",
                                 sorted(set(sources) - set(self.models)))
        out = np.empty(len(features))
        for group, model in self.models.items():
            members = np.ones(len(features), bool) if group is None else sources == group
            if members.any():
                out[members] = model.predict_proba(features[members])[:, 1]
        return out


def shadow_folds(labels: np.ndarray, sources: np.ndarray, n_folds: int, seed: int,
                 groups=None) -> list[tuple[np.ndarray, np.ndarray]]:
    """Folds over shadow models, stratified by (source, label) so each fold holds some of every source's innocents.

    Where a source has fewer than 2 shadow models of a class (tiny presets), folds are stratified by label only.
    ``groups`` names the trained model of each row: rows of one model (an innocent listed under two sources) share a
    fold, placed by the stratum of the model's first row.
    """
    labels = np.asarray(labels).astype(int)
    strata = np.char.add(np.asarray(sources).astype(str), labels.astype(str))
    groups = None if groups is None or len(set(groups)) == len(groups) else np.asarray(groups)
    if groups is not None:
        _, first, row_group = np.unique(groups, return_index=True, return_inverse=True)
        strata, labels = strata[first], labels[first]  # one row per trained model
    if pd.Series(strata).value_counts().min() < 2:
        strata = labels.astype(str)
    counts = pd.Series(strata).value_counts()
    if counts.min() < 2 or len(counts) < 2:
        raise ParameterError("shadow models", "at least 2 infringing and 2 innocent shadow models for cross-validation",
                             counts.to_dict())
    n_folds = int(min(n_folds, counts.min()))
    folds = list(StratifiedKFold(n_folds, shuffle=True, random_state=seed).split(np.zeros(len(strata)), strata))
    if groups is None:
        return folds
    return [(np.flatnonzero(np.isin(row_group, train)), np.flatnonzero(np.isin(row_group, held_out)))
            for train, held_out in folds]


def out_of_fold_scores(config: DiscriminatorConfig, features, labels, sources, folds, seed: int = 0) -> np.ndarray:
    scores = np.empty(len(labels))
    for train, held_out in folds:
        model = Discriminator(config, seed).fit(features[train], labels[train], sources[train])
        scores[held_out] = model.score(features[held_out], sources[held_out])
    return scores


def mean_auc_by_source(labels, scores, sources) -> float:
    """AUC per source model, averaged (the Table 1 summary)."""
    labels, scores, sources = np.asarray(labels), np.asarray(scores), np.asarray(sources)
    return float(np.mean([roc_auc_score(labels[sources == s], scores[sources == s]) for s in np.unique(sources)]))


def cross_validate(feature_tables: dict[tuple[str, str], np.ndarray], labels, sources, n_folds: int = 3,
                   n_repeats: int = 3, seed: int = 0, models=None) -> pd.DataFrame:
    """Cross-validated mean per-source AUC of every configuration, on shadow models only.

    ``feature_tables`` maps (feature_space, feature_set) to a matrix whose rows are the shadow models in
    the order of ``labels`` / ``sources``. With a few innocent shadow models per source one split is
    noisy, so the AUC is averaged over ``n_repeats`` reshuffled fold assignments. Returns one row per
    configuration, best first. ``models``: the trained model of each row, so that a model listed under two sources
    is held out with all its listings (``shadow_folds``).
    """
    labels, sources = np.asarray(labels).astype(int), np.asarray(sources)
    models = None if models is None else np.asarray(models)
    repeats = [shadow_folds(labels, sources, n_folds, seed + r, models) for r in range(n_repeats)]
    rows = []
    for (space, feature_set), classifier, scope in itertools.product(feature_tables, CLASSIFIERS, SCOPES):
        config = DiscriminatorConfig(space, feature_set, classifier, scope)
        features = np.asarray(feature_tables[(space, feature_set)])
        try:
            aucs = [mean_auc_by_source(labels, out_of_fold_scores(config, features, labels, sources, folds, seed), sources)
                    for folds in repeats]
            note = ""
        except ParameterError as error:  # e.g. per-source folds without an innocent model: not comparable here
            aucs, note = [np.nan], str(error)
        rows.append({**asdict(config), "cv_auc": float(np.mean(aucs)), "cv_auc_std": float(np.std(aucs)),
                     "n_folds": len(repeats[0]), "n_repeats": n_repeats, "note": note})
    table = pd.DataFrame(rows).sort_values("cv_auc", ascending=False, kind="stable", na_position="last")
    if table.cv_auc.isna().all():
        raise ParameterError("shadow models", "enough shadow models to cross-validate at least one configuration",
                             table.note.iloc[0])
    return table.reset_index(drop=True)
