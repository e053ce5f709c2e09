"""TrainProVe's published decision (Xie et al., CVPR 2025, arXiv 2503.09122): a one-sided Grubbs outlier test.

The defender's shadow classifier, trained on its own generator G's class-prompted images, answers a fresh labelled
validation set from G split into ``n`` batches; its per-batch scores are the reference sample. The suspect's score
on the same batches is an outlier on the bad side of that sample when it was *not* trained on G's images:

    G = (mean_shadow - score_suspect) / sd_shadow    (ddof 1; the sign flips for a score where higher is worse)
    critical value = (n - 1) / sqrt(n) * sqrt(t^2 / (n - 2 + t^2)),   t = Student-t quantile, n - 2 degrees of freedom

at 1 - alpha / (2n) as the authors' code has it ("published"), or at 1 - alpha / n, the textbook one-sided value
("textbook"). An outlier means "not trained on the defender's data"; otherwise the suspect is verified.

Three scores, one per variant: accuracy (TrainProVe; needs only labels), mean prediction entropy (TrainProVe-Ent,
outlier *above*) and mean within-class pairwise cosine similarity of the logits (TrainProVe-Sim, outlier *below*).
Ent and Sim need the suspect's output vector, so a label-only black box admits the accuracy rule alone.
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np
from scipy import stats

from provlib.core.errors import ParameterError

QUANTILES = {"published": 2, "textbook": 1}  # alpha is divided by this many times n


@dataclass(frozen=True)
class Score:
    """A per-batch score of a classifier's outputs and the side on which a suspect's value is an outlier."""
    name: str
    worse: str            # "lower" (accuracy, Sim) or "higher" (entropy): the side that says "not trained on G"
    needs_logits: bool    # False only for accuracy, the one score a label-only suspect admits


SCORES = {"grubbs": Score("accuracy", "lower", False), "grubbs-ent": Score("entropy", "higher", True),
          "grubbs-sim": Score("within-class logit similarity", "lower", True)}


def critical_value(n: int, alpha: float = 0.05, quantile: str = "published") -> float:
    """The one-sided Grubbs critical value for a reference sample of ``n`` values."""
    if not isinstance(n, (int, np.integer)) or n < 3:
        raise ParameterError("tp_grubbs_batches", "an integer of at least 3 (Grubbs' t has n - 2 degrees of freedom)", n)
    if not 0.0 < alpha < 1.0:
        raise ParameterError("alpha", "a significance level strictly between 0 and 1", alpha)
    if quantile not in QUANTILES:
        raise ParameterError("tp_grubbs_quantile", f"one of {sorted(QUANTILES)}", quantile)
    return _critical_value(int(n), float(alpha), quantile)


@lru_cache(maxsize=None)  # one value per (n, alpha, quantile): the test-size study asks for it tens of thousands of times
def _critical_value(n: int, alpha: float, quantile: str) -> float:
    t = stats.t.ppf(1 - alpha / (QUANTILES[quantile] * n), n - 2)
    return float((n - 1) / np.sqrt(n) * np.sqrt(t ** 2 / (n - 2 + t ** 2)))


def statistic(reference: np.ndarray, value: float, worse: str) -> float:
    """How many reference standard deviations ``value`` lies on the ``worse`` side of the reference mean."""
    reference = np.asarray(reference, dtype=float)
    shortfall = (reference.mean() - value) if worse == "lower" else (value - reference.mean())
    sd = reference.std(ddof=1)
    if sd == 0:  # a shadow that scores the same on every batch: any step to the worse side is an outlier
        return float(np.inf if shortfall > 0 else 0.0)
    return float(shortfall / sd)


def p_value(g: float, n: int, quantile: str = "published") -> float:
    """The level at which ``g`` would just reach the critical value (so p < alpha exactly when G exceeds it)."""
    bound = (n - 1) / np.sqrt(n)
    if g <= 0:
        return 1.0
    room = (n - 1) ** 2 - n * g ** 2  # zero at the bound; a G just below it can round to zero here too
    if g >= bound or room <= 0:  # at or beyond the largest value a Grubbs statistic of n values can take
        return 0.0
    t = np.sqrt(n * (n - 2) * g ** 2 / room)
    return float(min(1.0, QUANTILES[quantile] * n * stats.t.sf(t, n - 2)))


@dataclass(frozen=True)
class GrubbsVerdict:
    verified: bool         # not an outlier on the worse side: the suspect trained on the defender's data
    statistic: float       # G
    critical: float
    p_value: float
    suspect_score: float
    shadow_mean: float
    shadow_sd: float
    n_batches: int


def grubbs_test(shadow_batches: np.ndarray, suspect_batches: np.ndarray, worse: str, alpha: float = 0.05,
                quantile: str = "published") -> GrubbsVerdict:
    """The shadow's per-batch scores are the reference; the suspect's mean over the same batches is tested."""
    shadow_batches, suspect_batches = np.asarray(shadow_batches, float), np.asarray(suspect_batches, float)
    if shadow_batches.shape != suspect_batches.shape or shadow_batches.ndim != 1:
        raise ParameterError("suspect_batches", f"one score per batch, as the shadow's {shadow_batches.shape}",
                             suspect_batches.shape)
    if worse not in ("lower", "higher"):
        raise ParameterError("worse", "'lower' or 'higher'", worse)
    n = len(shadow_batches)
    critical = critical_value(n, alpha, quantile)
    value = float(suspect_batches.mean())
    g = statistic(shadow_batches, value, worse)
    return GrubbsVerdict(verified=not g > critical, statistic=g, critical=critical, p_value=p_value(g, n, quantile),
                         suspect_score=value, shadow_mean=float(shadow_batches.mean()),
                         shadow_sd=float(shadow_batches.std(ddof=1)), n_batches=n)


def batches(n_images: int, n_batches: int, seed: int) -> list[np.ndarray]:
    """A seeded split of the validation images into ``n_batches`` near-equal batches."""
    if not isinstance(n_batches, (int, np.integer)) or not 3 <= n_batches <= n_images:
        raise ParameterError("tp_grubbs_batches", f"an integer from 3 to the validation images ({n_images})", n_batches)
    return np.array_split(np.random.default_rng(seed).permutation(n_images), n_batches)


def _softmax(logits: np.ndarray) -> np.ndarray:
    shifted = np.exp(logits - logits.max(axis=1, keepdims=True))
    return shifted / shifted.sum(axis=1, keepdims=True)


def within_class_similarity(logits: np.ndarray, labels: np.ndarray) -> float:
    """Mean over classes (with two images or more) of the mean pairwise cosine similarity of their logit vectors."""
    unit = logits / np.maximum(np.linalg.norm(logits, axis=1, keepdims=True), 1e-12)
    classes, inverse, counts = np.unique(labels, return_inverse=True, return_counts=True)
    one_hot = (inverse[:, None] == np.arange(len(classes))[None, :]).astype(float)
    # every class's sum over pairs i < j of u_i . u_j at once, without an m x m matrix per class:
    # |sum u|^2 = sum |u_i|^2 + 2 sum_{i<j} u_i . u_j
    totals = one_hot.T @ unit
    squares = one_hot.T @ np.einsum("ij,ij->i", unit, unit)
    pair_sums = (np.einsum("ij,ij->i", totals, totals) - squares) / 2
    pairs = counts * (counts - 1) / 2
    kept = counts >= 2
    return float(np.mean(pair_sums[kept] / pairs[kept])) if kept.any() else float("nan")


def batch_scores(rule: str, outputs: np.ndarray, labels: np.ndarray, split: list[np.ndarray]) -> np.ndarray:
    """The rule's score on every batch. ``outputs``: logits [n, classes], or predicted labels [n] for ``grubbs``."""
    if rule not in SCORES:
        raise ParameterError("rule", f"one of {sorted(SCORES)}", rule)
    outputs = np.asarray(outputs)
    if SCORES[rule].needs_logits and outputs.ndim != 2:
        raise ParameterError("outputs", f"{rule} needs the suspect's logits [images, classes]; a label-only suspect "
                             "admits the accuracy rule ('grubbs') alone", outputs.shape)
    predicted = outputs.argmax(axis=1) if outputs.ndim == 2 else outputs
    if rule == "grubbs":
        per_image = (predicted == labels).astype(float)
        return np.array([per_image[b].mean() for b in split])
    if rule == "grubbs-ent":
        probabilities = _softmax(outputs.astype(float))
        entropy = -(probabilities * np.log(np.clip(probabilities, 1e-12, None))).sum(axis=1)
        return np.array([entropy[b].mean() for b in split])
    return np.array([within_class_similarity(outputs[b].astype(float), labels[b]) for b in split])
