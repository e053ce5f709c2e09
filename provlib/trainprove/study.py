"""TrainProVe study tables: query every classifier once, decide every (suspect, defender) pair by every rule, summarise.

Rules (``RULES``): ``grubbs`` is the published decision (accuracy; ``provlib.trainprove.grubbs``), ``grubbs-ent`` and
``grubbs-sim`` its two variants, and ``fisher`` the reference-based rule of ``provlib.trainprove.test``.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
import pandas as pd

from provlib.core.errors import ParameterError
from provlib.core.progress import tqdm
from provlib.core.store import derive_seed
from provlib.trainprove.classifier import logits
from provlib.trainprove.grubbs import SCORES, batch_scores, batches, grubbs_test
from provlib.trainprove.test import per_class_indices, provenance_test
from provlib.trainprove.zoo import ClassifierSpec, TrainProVeZoo

RULES = ("grubbs", "grubbs-ent", "grubbs-sim", "fisher")
HEADLINE_RULE = "grubbs"
RULE_NAMES = {"grubbs": "TrainProVe (Grubbs on accuracy, published)", "grubbs-ent": "TrainProVe-Ent (Grubbs on entropy)",
              "grubbs-sim": "TrainProVe-Sim (Grubbs on logit similarity)",
              "fisher": "Fisher per reference generator (intersection-union)"}


@dataclass(frozen=True)
class GrubbsSetup:
    """How the defender's validation images become the shadow's reference sample."""
    n_batches: int = 10
    quantile: str = "published"
    seed: int = 0

    def split(self, n_images: int, defender: str) -> list[np.ndarray]:
        """The defender's validation images split into its seeded batches (the same for every suspect)."""
        return batches(n_images, self.n_batches, derive_seed(self.seed, "tp-batches", defender))


def outputs(zoo: TrainProVeZoo, specs: list[ClassifierSpec], test_sets: dict[str, LabelledImages]) -> dict:
    """``model_id -> generator -> logits [images, classes]``: each classifier is queried once per test image."""
    out = {}
    for spec in tqdm(specs, desc="query classifiers", disable=not zoo.show_progress):
        model = zoo.classifier(spec)
        out[spec.model_id] = {g: logits(model, s.images) for g, s in test_sets.items()}
    return out


def correctness(answers: dict, labels: dict[str, np.ndarray]) -> dict:
    """``model_id -> generator -> bool per image`` from logits (or from predicted labels)."""
    def right(a, y):
        a = np.asarray(a)
        return (a.argmax(1) if a.ndim == 2 else a) == y
    return {mid: {g: right(a, labels[g]) for g, a in per_gen.items() if g in labels} for mid, per_gen in answers.items()}


def _check_rules(rules) -> list[str]:
    unknown = [r for r in rules if r not in RULES]
    if unknown or not rules:
        raise ParameterError("rules", f"a non-empty subset of {list(RULES)}", list(rules))
    return list(rules)


def verdict_table(specs: list[ClassifierSpec], answers: dict, labels: dict[str, np.ndarray], defenders: list[str],
                  alpha: float, *, rules=RULES, shadows: dict[str, str] | None = None,
                  grubbs: GrubbsSetup = GrubbsSetup()) -> pd.DataFrame:
    """One row per (rule, classifier, defender): ground truth, verdict, statistic and p-value.

    ``answers``: ``model_id -> generator -> logits`` (or predicted labels: then only ``grubbs`` and ``fisher``
    apply); ``labels``: ``generator -> true labels`` of the defender's fresh images, the generators the Fisher rule
    compares (real images excluded by the caller); ``shadows``: ``defender -> model_id`` of its shadow classifier,
    whose answers on the defender's images are the Grubbs reference (needed by the Grubbs rules).
    """
    rules = _check_rules(rules)
    grubbs_rules = [r for r in rules if r in SCORES]
    if grubbs_rules and not shadows:
        raise ParameterError("shadows", "the defender -> shadow model_id map (the Grubbs rules' reference)", shadows)
    correct = correctness(answers, labels) if "fisher" in rules else {}  # only the reference-based rule reads it
    splits = {d: grubbs.split(len(labels[d]), d) for d in defenders} if grubbs_rules else {}
    shadow_scores = {(r, d): batch_scores(r, answers[shadows[d]][d], labels[d], splits[d])
                     for r in grubbs_rules for d in defenders}
    rows = []
    for spec in specs:
        for defender in defenders:
            base = {"model_id": spec.model_id, "role": spec.role, "suspect_source": spec.source, "defender": defender,
                    "trained_on_defender": defender in spec.generators,
                    **{f"recipe_{k}": v for k, v in asdict(spec.recipe).items()}}
            for rule in grubbs_rules:
                suspect = batch_scores(rule, answers[spec.model_id][defender], labels[defender], splits[defender])
                v = grubbs_test(shadow_scores[rule, defender], suspect, SCORES[rule].worse, alpha, grubbs.quantile)
                rows.append({"rule": rule, **base, "verified": v.verified, "p_value": v.p_value, "statistic": v.statistic,
                             "critical": v.critical, "suspect_score": v.suspect_score, "shadow_mean": v.shadow_mean,
                             "shadow_sd": v.shadow_sd})
            if "fisher" in rules:
                v = provenance_test(correct[spec.model_id], defender, alpha)
                rows.append({"rule": "fisher", **base, "verified": v.verified, "p_value": v.p_value,
                             "statistic": v.statistic, "closest_reference": v.closest_reference,
                             **{f"acc_{g}": a for g, a in v.accuracies.items()}})
    table = pd.DataFrame(rows)
    table["correct_verdict"] = table.verified == table.trained_on_defender
    return table


def verification_matrix(verdicts: pd.DataFrame) -> pd.DataFrame:
    """Fraction of suspects verified as the defender's, per (rule, defender, suspect's training source)."""
    return (verdicts.groupby(["rule", "defender", "suspect_source"], sort=False)
            .agg(n_suspects=("verified", "size"), verified_fraction=("verified", "mean"),
                 trained_on_defender=("trained_on_defender", "first"), median_p_value=("p_value", "median"))
            .reset_index())


def summary(verdicts: pd.DataFrame) -> dict:
    """Verification accuracy over all pairs, TPR on pairs whose suspect used the defender's data, FPR on the rest."""
    positive = verdicts.trained_on_defender
    return {"pairs": len(verdicts), "accuracy": float(verdicts.correct_verdict.mean()),
            "tpr": float(verdicts.verified[positive].mean()), "fpr": float(verdicts.verified[~positive].mean()),
            "n_positive": int(positive.sum()), "n_negative": int((~positive).sum())}


def summary_by_rule(verdicts: pd.DataFrame) -> pd.DataFrame:
    """``summary`` per rule, in ``RULES`` order."""
    rows = [{"rule": rule, "rule_name": RULE_NAMES[rule], **summary(group)}
            for rule, group in verdicts.groupby("rule", sort=False)]
    return pd.DataFrame(rows).set_index("rule").reindex([r for r in RULES if r in set(verdicts.rule)]).reset_index()


def summary_by_family(verdicts: pd.DataFrame) -> pd.DataFrame:
    """``summary`` per (rule, suspect family): a family much weaker than the shadow fails the accuracy test."""
    rows = [{"rule": rule, "architecture": family, **summary(group)}
            for (rule, family), group in verdicts.groupby(["rule", "recipe_architecture"], sort=False)]
    return pd.DataFrame(rows)


def by_test_size(specs: list[ClassifierSpec], answers: dict, labels: dict[str, np.ndarray], defenders: list[str],
                 sizes: list[int], repeats: int, alpha: float, seed: int, *, rules=RULES,
                 shadows: dict[str, str] | None = None, grubbs: GrubbsSetup = GrubbsSetup()) -> pd.DataFrame:
    """Each rule's accuracy, TPR and FPR when the defender uses only ``n`` test images per class and generator.

    A Grubbs reference never has more batches than images: below ``grubbs.n_batches`` images it has one per image."""
    rows = []
    rng = np.random.default_rng(seed)
    for n in tqdm(sizes, desc="test-set sizes"):
        for repeat in range(repeats):
            indices = {g: per_class_indices(y, n, int(rng.integers(2**31))) for g, y in labels.items()}
            sub = {mid: {g: np.asarray(a)[indices[g]] for g, a in per_gen.items() if g in indices}
                   for mid, per_gen in answers.items()}
            n_images = min(len(i) for i in indices.values())
            setup = GrubbsSetup(min(grubbs.n_batches, n_images), grubbs.quantile, derive_seed(grubbs.seed, n, repeat))
            verdicts = verdict_table(specs, sub, {g: labels[g][i] for g, i in indices.items()}, defenders, alpha,
                                     rules=rules, shadows=shadows, grubbs=setup)
            for rule, group in verdicts.groupby("rule", sort=False):
                stats = summary(group)
                rows.append({"rule": rule, "n_per_class": n, "n_per_generator": n_images, "repeat": repeat,
                             **{k: stats[k] for k in ("accuracy", "tpr", "fpr")}})
    return pd.DataFrame(rows)


def batch_count_summary(calibration: pd.DataFrame) -> pd.DataFrame:
    """Per batch count n: accuracy, TPR and FPR of the defenders' Grubbs verdicts on the owner's calibration models,
    and the mean threshold (critical value x shadow spread); docs/decisions.md, "Grubbs as published, n = 20 batches"."""
    pairs = calibration.astype({"trained_on_defender": bool, "verified": bool})
    pairs["correct_verdict"] = pairs.verified == pairs.trained_on_defender
    return pd.DataFrame([{"n_batches": n, **summary(group), "mean_threshold": float(group.threshold.mean())}
                         for n, group in pairs.groupby("n_batches")])
