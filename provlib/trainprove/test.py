"""TrainProVe's reference-based rule, kept beside the published Grubbs decision (``provlib.trainprove.grubbs``).

Rationale (generalization error bound): a model generalizes best to the distribution it was trained on, so
a classifier trained on G's images is more accurate on fresh G images than on images of other generators.

This rule needs reference generators, which the published test (arXiv 2503.09122) does not: for every reference
generator G_j, a one-sided Fisher exact test of H0 "accuracy on G's images <= accuracy on G_j's images"
(``scipy.stats.fisher_exact``, alternative='greater'), on the suspect's correct / wrong counts. The suspect is
verified when *every* reference is beaten, i.e. the largest of the per-reference p-values is below alpha
(an intersection-union test, which needs no multiplicity correction).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Mapping

import numpy as np
from scipy.stats import fisher_exact

from provlib.core.errors import ParameterError

TEST_NAME = "one-sided Fisher exact test per reference, intersection-union (max p)"


def per_class_indices(labels: np.ndarray, n_per_class: int, seed: int) -> np.ndarray:
    """Positions of ``n_per_class`` random images of each class (all of a class if it has fewer)."""
    rng = np.random.default_rng(seed)
    picks = [rng.permutation(np.flatnonzero(labels == c))[:n_per_class] for c in np.unique(labels)]
    return np.sort(np.concatenate(picks))


@dataclass(frozen=True)
class LabelledImages:
    images: np.ndarray   # uint8 [n, H, W, 3]
    labels: np.ndarray   # int [n], index into the class list

    def __post_init__(self):
        if len(self.images) != len(self.labels):
            raise ParameterError("labels", f"one label per image ({len(self.images)})", len(self.labels))

    def __len__(self) -> int:
        return len(self.labels)

    def subset(self, indices) -> "LabelledImages":
        indices = np.asarray(indices)
        return LabelledImages(self.images[indices], self.labels[indices])

    def per_class_indices(self, n_per_class: int, seed: int) -> np.ndarray:
        return per_class_indices(self.labels, n_per_class, seed)

    def per_class_subset(self, n_per_class: int, seed: int) -> "LabelledImages":
        return self.subset(self.per_class_indices(n_per_class, seed))

    @staticmethod
    def concat(parts: list["LabelledImages"]) -> "LabelledImages":
        return LabelledImages(np.concatenate([p.images for p in parts]), np.concatenate([p.labels for p in parts]))


@dataclass(frozen=True)
class Verdict:
    defender: str
    verified: bool                 # p_value < alpha: the suspect's training data came from the defender's generator
    statistic: float               # accuracy on G's images minus the highest accuracy on a reference's images
    p_value: float
    alpha: float
    closest_reference: str         # the reference the suspect is most accurate on (the one that decides)
    accuracies: dict               # generator -> the suspect's accuracy on its fresh images
    n_images: dict                 # generator -> how many test images
    reference_p_values: dict = field(default_factory=dict)
    test: str = TEST_NAME


def check_classes(classes) -> list[str]:
    classes = list(classes)
    if not classes:
        raise ParameterError("classes", "a non-empty list of class names", classes)
    return classes


def class_prompts(classes, template: str = "a photo of a {}") -> list[str]:
    """TrainProVe's class prompts, one per class."""
    return [template.format(c) for c in check_classes(classes)]


def provenance_test(correct: Mapping[str, np.ndarray], defender: str, alpha: float = 0.05) -> Verdict:
    """Decide from per-image correctness (``generator -> bool array``) whether the suspect learned from ``defender``."""
    if defender not in correct:
        raise ParameterError("defender", f"one of the tested generators {sorted(correct)}", defender)
    references = [g for g in correct if g != defender]
    if len(references) < 2:
        raise ParameterError("references", "at least 2 reference generators besides the defender's", references)
    if not 0.0 < alpha < 1.0:
        raise ParameterError("alpha", "a significance level strictly between 0 and 1", alpha)
    counts = {}
    for generator, hits in correct.items():
        hits = np.asarray(hits, dtype=bool)
        if hits.ndim != 1 or len(hits) == 0:
            raise ParameterError(f"correct['{generator}']", "a non-empty 1-D array of per-image correctness", hits.shape)
        counts[generator] = (int(hits.sum()), len(hits))
    accuracies = {g: k / n for g, (k, n) in counts.items()}
    k_def, n_def = counts[defender]
    p_values = {}
    for ref in references:
        k_ref, n_ref = counts[ref]
        table = [[k_def, n_def - k_def], [k_ref, n_ref - k_ref]]
        p_values[ref] = float(fisher_exact(table, alternative="greater").pvalue)
    closest = max(references, key=lambda g: (accuracies[g], p_values[g]))
    p_value = max(p_values.values())
    return Verdict(defender=defender, verified=p_value < alpha, statistic=accuracies[defender] - accuracies[closest],
                   p_value=p_value, alpha=alpha, closest_reference=closest, accuracies=accuracies,
                   n_images={g: n for g, (_, n) in counts.items()}, reference_p_values=p_values)


def verify(predict: Callable[[np.ndarray], np.ndarray], defender: str, test_sets: Mapping[str, LabelledImages],
           alpha: float = 0.05) -> Verdict:
    """Query a black-box suspect (``predict``: images -> class indices) on every generator's fresh test set."""
    correct = {g: np.asarray(predict(s.images)) == s.labels for g, s in test_sets.items()}
    return provenance_test(correct, defender, alpha)
