"""Binary-detection metrics shared by the discriminator and the watermark detectors.

The positive class is always "infringing" (label 1) and a higher score means "more likely infringing".
ROC points come from ``sklearn.metrics.roc_curve``; TPR at a fixed FPR is read off the ROC curve by
linear interpolation between the two operating points around the target FPR (a randomized choice
between their thresholds achieves exactly that point), taking the highest TPR where the curve is
vertical. Confidence intervals are percentile bootstraps over models, resampled within each class so
every resample has both classes.
"""
from __future__ import annotations

import numpy as np
from sklearn.metrics import (
    accuracy_score,
    balanced_accuracy_score,
    roc_auc_score,
    roc_curve,
)

from provlib.core.errors import ParameterError


def _check_binary(labels, scores) -> tuple[np.ndarray, np.ndarray]:
    labels, scores = np.asarray(labels).astype(int), np.asarray(scores, dtype=float)
    if labels.shape != scores.shape or labels.ndim != 1:
        raise ParameterError("scores", f"one score per label ({labels.shape})", scores.shape)
    if set(np.unique(labels)) != {0, 1}:
        raise ParameterError("labels", "both classes present (0 = innocent, 1 = infringing)", sorted(set(labels.tolist())))
    return labels, scores


def tpr_at_fpr(labels, scores, fpr: float) -> float:
    """True-positive rate at false-positive rate ``fpr`` on the ROC curve, interpolated between operating points."""
    if not 0.0 <= fpr <= 1.0:
        raise ParameterError("fpr", "a false-positive rate in [0, 1]", fpr)
    labels, scores = _check_binary(labels, scores)
    fprs, tprs, _ = roc_curve(labels, scores, drop_intermediate=False)
    below = np.flatnonzero(fprs <= fpr)
    lo = below[-1]  # roc_curve orders points by FPR then TPR, so the last one at FPR <= target has the highest TPR
    if fprs[lo] == fpr or lo == len(fprs) - 1:
        return float(tprs[lo])
    hi = lo + 1
    weight = (fpr - fprs[lo]) / (fprs[hi] - fprs[lo])
    return float(tprs[lo] + weight * (tprs[hi] - tprs[lo]))


def detection_report(labels, scores, threshold: float = 0.5) -> dict:
    """Accuracy and balanced accuracy of ``score >= threshold``, AUC, TPR at 10% and 1% FPR."""
    labels, scores = _check_binary(labels, scores)
    decisions = scores >= threshold
    return {"accuracy": float(accuracy_score(labels, decisions)),
            "balanced_accuracy": float(balanced_accuracy_score(labels, decisions)),
            "auc": float(roc_auc_score(labels, scores)),
            "tpr_at_10fpr": tpr_at_fpr(labels, scores, 0.10),
            "tpr_at_1fpr": tpr_at_fpr(labels, scores, 0.01)}


def bootstrap_report(labels, scores, threshold: float = 0.5, n_resamples: int = 1000, level: float = 0.95,
                     seed: int = 0) -> dict:
    """``detection_report`` with percentile confidence intervals (``<metric>_lo`` / ``<metric>_hi``)."""
    labels, scores = _check_binary(labels, scores)
    rng = np.random.default_rng(seed)
    by_class = [np.flatnonzero(labels == c) for c in (0, 1)]
    draws = []
    for _ in range(n_resamples):
        idx = np.concatenate([rng.choice(members, size=len(members), replace=True) for members in by_class])
        draws.append(detection_report(labels[idx], scores[idx], threshold))
    report = detection_report(labels, scores, threshold)
    tail = (1.0 - level) / 2 * 100
    for metric in list(report):
        values = np.array([d[metric] for d in draws])
        report[f"{metric}_lo"], report[f"{metric}_hi"] = (float(v) for v in np.percentile(values, [tail, 100 - tail]))
    return report
