"""TrainProVe study tables: query every suspect once, test it against every defender, and summarise."""
from __future__ import annotations

import numpy as np
import pandas as pd

from provlib.core.progress import tqdm
from provlib.trainprove.classifier import predict
from provlib.trainprove.test import LabelledImages, provenance_test
from provlib.trainprove.zoo import ClassifierSpec, TrainProVeZoo


def correctness(zoo: TrainProVeZoo, specs: list[ClassifierSpec], test_sets: dict[str, LabelledImages]) -> dict:
    """``model_id -> generator -> bool per test image``: each black-box suspect is queried once per image."""
    out = {}
    for spec in tqdm(specs, desc="query classifiers", disable=not zoo.show_progress):
        model = zoo.classifier(spec)
        out[spec.model_id] = {g: predict(model, s.images) == s.labels for g, s in test_sets.items()}
    return out


def verdict_table(specs: list[ClassifierSpec], correct: dict, defenders: list[str], alpha: float) -> pd.DataFrame:
    """One row per (classifier, defender): ground truth, verdict, p-value and the per-generator accuracies."""
    rows = []
    for spec in specs:
        for defender in defenders:
            verdict = provenance_test(correct[spec.model_id], defender, alpha)
            rows.append({"model_id": spec.model_id, "role": spec.role, "suspect_source": spec.source, "defender": defender,
                         "trained_on_defender": defender in spec.generators, "verified": verdict.verified,
                         "p_value": verdict.p_value, "statistic": verdict.statistic,
                         "closest_reference": verdict.closest_reference,
                         **{f"acc_{g}": a for g, a in verdict.accuracies.items()}})
    table = pd.DataFrame(rows)
    table["correct_verdict"] = table.verified == table.trained_on_defender
    return table


def verification_matrix(verdicts: pd.DataFrame) -> pd.DataFrame:
    """Fraction of suspects verified as the defender's, per (defender, suspect's training source)."""
    return (verdicts.groupby(["defender", "suspect_source"], sort=False)
            .agg(n_suspects=("verified", "size"), verified_fraction=("verified", "mean"),
                 trained_on_defender=("trained_on_defender", "first"), median_p_value=("p_value", "median"))
            .reset_index())


def summary(verdicts: pd.DataFrame) -> dict:
    """Verification accuracy over all pairs, TPR on pairs whose suspect used the defender's data, FPR on the rest."""
    positive = verdicts.trained_on_defender
    return {"pairs": len(verdicts), "accuracy": float(verdicts.correct_verdict.mean()),
            "tpr": float(verdicts.verified[positive].mean()), "fpr": float(verdicts.verified[~positive].mean()),
            "n_positive": int(positive.sum()), "n_negative": int((~positive).sum())}


def by_test_size(specs: list[ClassifierSpec], correct: dict, test_sets: dict[str, LabelledImages], defenders: list[str],
                 sizes: list[int], repeats: int, alpha: float, seed: int) -> pd.DataFrame:
    """Verification accuracy, TPR and FPR when the defender uses only ``n`` test images per class and generator."""
    rows = []
    rng = np.random.default_rng(seed)
    for n in tqdm(sizes, desc="test-set sizes"):
        for repeat in range(repeats):
            indices = {g: s.per_class_indices(n, int(rng.integers(2**31))) for g, s in test_sets.items()}
            sub = {mid: {g: hits[indices[g]] for g, hits in per_gen.items()} for mid, per_gen in correct.items()}
            stats = summary(verdict_table(specs, sub, defenders, alpha))
            rows.append({"n_per_class": n, "n_per_generator": len(next(iter(indices.values()))), "repeat": repeat,
                         **{k: stats[k] for k in ("accuracy", "tpr", "fpr")}})
    return pd.DataFrame(rows)

