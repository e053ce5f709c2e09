"""Deciding from a model's generations whether they carry a watermark message, and whose.

A model is queried with prompts; every image's soft bit scores are averaged and the *aggregated* message is
read off their signs (averaging first is what makes a faint mark learned from a few training images
readable: the content's interference shrinks with the number of images, the mark does not). The statistic
is the number of aggregated bits that match the owner's message.

Why a binomial test is exact here: the owner's message is drawn uniformly at random and kept secret, so
for a model that never saw it, whatever bit string its images decode to matches the message in
Binomial(n_bits, 1/2) positions, whatever biases the model's images have. The p-value is
``P(Binomial(n_bits, 0.5) >= matches)`` (``scipy.stats.binomtest``, one-sided). Averaging per-image bit
accuracies instead (and testing n_images x n_bits bits) would not be exact: one model's images share
their biases, so their bits are not independent.

The ``soft`` statistic (the default) keeps what the bit count throws away, how strongly each bit is read:
T = sum_b s_b * mean soft score_b, with s_b = +-1 the message's signs, i.e. the correlation of the pooled
images with the message's whole pattern (the matched filter, the Neyman-Pearson detector for a known mark).
Its test is exact by the same argument: for a model that never saw the secret message, the message's signs
are independent fair coins, so given the pooled scores T is distributed as sum_b e_b * score_b over random
signs e_b. The p-value is the Monte-Carlo randomization p = (1 + #{T' >= T}) / (1 + draws) over seeded sign
draws, which is valid at any number of draws.

The *paired* test (``reference``) calibrates on the model itself: what a model draws for the licensee's captions
depends on the model, and a calibration on the owner's clean dataset leaves a model-and-caption bias in the pooled
scores that, for a fixed message, helps or hides the mark. Subtracting the same model's mean score on the same
captions without the trigger removes it. Because a mark drawn with and without the trigger cancels in that
difference, the paired p-value is combined with the dataset-calibrated one, which gets a tenth of the level
(``combined_p_value``). Evidence: docs/decisions.md, "Trigger words and the paired test".

Baseline 1's ``conf`` mirrors instance-level attribution's Eq. 6: the share of the N query prompts whose k
answers, aggregated, carry the message at level ``key_alpha``; an innocent model's expected conf is at
most ``key_alpha``.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.stats import binom, binomtest

from provlib.core.errors import ParameterError
from provlib.watermark.schemes import WatermarkScheme, as_image_batch, check_message

STATISTICS = ("soft", "bits")
SIGN_DRAWS = 20_000
DATASET_ARM_WEIGHT = 0.1  # share of the level the paired test leaves to the dataset-calibrated one (``detect``)


def check_level(alpha: float, parameter: str = "alpha") -> float:
    if not isinstance(alpha, (int, float, np.floating)) or not 0.0 < float(alpha) < 1.0:
        raise ParameterError(parameter, "a significance level strictly between 0 and 1", alpha)
    return float(alpha)


def aggregate_bits(soft: np.ndarray) -> np.ndarray:
    """The message read from a set of images: the sign of each bit's mean soft score."""
    soft = np.asarray(soft, dtype=float)
    if soft.ndim != 2 or len(soft) == 0:
        raise ParameterError("soft", "soft scores shaped [n_images >= 1, n_bits]", soft.shape)
    return (soft.mean(0) > 0).astype(np.uint8)


def binomial_p_value(matches: int, n_bits: int) -> float:
    """One-sided P(Binomial(n_bits, 1/2) >= matches)."""
    return float(binomtest(int(matches), int(n_bits), 0.5, alternative="greater").pvalue)


def min_matches(n_bits: int, alpha: float) -> int:
    """Fewest matching bits whose binomial p-value is at most ``alpha`` (n_bits + 1 if none is)."""
    alpha = check_level(alpha)
    tails = binom.sf(np.arange(n_bits + 1) - 1, n_bits, 0.5)  # P(X >= k) for k = 0..n_bits
    allowed = np.flatnonzero(tails <= alpha)
    return int(allowed[0]) if allowed.size else n_bits + 1


def sign_flip_p_values(pooled_scores: np.ndarray, message) -> np.ndarray:
    """Randomization p-values of the matched-filter statistic for each row of pooled soft scores [n, n_bits]."""
    pooled_scores = np.atleast_2d(np.asarray(pooled_scores, dtype=float))
    signs = 2.0 * check_message(message, pooled_scores.shape[1]) - 1.0
    observed = pooled_scores @ signs
    # one fixed set of sign draws: the same scores always give the same p-value
    draws = np.random.default_rng(20_240_927).choice((-1.0, 1.0), size=(SIGN_DRAWS, pooled_scores.shape[1]))
    null = pooled_scores @ draws.T  # [n, draws]
    return (1.0 + (null >= observed[:, None] - 1e-12).sum(1)) / (1.0 + SIGN_DRAWS)


def combined_p_value(paired_p: float, dataset_p: float) -> float:
    """The paired test's p-value combined with the dataset-calibrated one (weighted Bonferroni, see ``detect``)."""
    return float(min(1.0, paired_p / (1.0 - DATASET_ARM_WEIGHT), dataset_p / DATASET_ARM_WEIGHT))


def check_statistic(statistic: str) -> str:
    if statistic not in STATISTICS:
        raise ParameterError("wm_statistic", f"one of {STATISTICS}", statistic)
    return statistic


@dataclass(frozen=True)
class Detection:
    matches: int                 # aggregated bits equal to the message's
    n_bits: int
    score: float                 # matched-filter statistic over the pooled images, in units of the mark's amplitude
    p_value: float               # of the chosen statistic, see module doc
    detected: bool               # p_value <= alpha
    alpha: float
    statistic: str
    n_images: int
    image_bit_accuracy: float    # mean per-image bit accuracy (descriptive: the paper's "bit accuracy")
    bits_p_value: float          # the binomial test on ``matches``, reported whichever statistic decides

    @property
    def bit_accuracy(self) -> float:
        return self.matches / self.n_bits


def detect(scheme: WatermarkScheme, images, message, alpha: float = 0.01, statistic: str = "soft",
           reference=None) -> Detection:
    """Does this set of a model's generations carry ``message``?

    ``reference``: the same model's images for a prompt set that should not carry the mark (for a trigger: the same
    captions without it). Their mean soft score replaces the scheme's calibration offset, so the model's own
    content bias on these captions is removed (the paired test); it is exact because the reference does not depend
    on the secret message. A model that draws the mark with and without the trigger (a copy marked at r = 100%, every
    caption with the trigger) leaves no difference, so the dataset-calibrated test is run too, with a tenth of the level
    (weighted Bonferroni, p = min(p_paired / 0.9, p_dataset / 0.1): the level holds whatever their dependence). That
    arm is for marks drawn everywhere, which are strong; with a small weight the dataset calibration's content bias,
    which the paired arm exists to remove, cannot by itself name a licensee at an ordinary p-value.
    """
    images = as_image_batch(images)
    bits = check_message(message, scheme.n_bits)
    check_statistic(statistic)
    soft = scheme.soft_decode(images)  # decoded once: the paired arm only moves the offset
    if reference is not None:
        unpaired_p, unpaired_bits_p = _p_values(soft, bits, statistic)[1:]
        soft = soft - scheme.soft_decode(as_image_batch(reference, "reference")).mean(0)
    matches, p_value, bits_p = _p_values(soft, bits, statistic)
    if reference is not None:
        p_value, bits_p = combined_p_value(p_value, unpaired_p), combined_p_value(bits_p, unpaired_bits_p)
    per_image = float(((soft > 0).astype(np.uint8) == bits[None]).mean())
    return Detection(matches, scheme.n_bits, float(soft.mean(0) @ (2.0 * bits - 1.0) / scheme.n_bits), float(p_value),
                     p_value <= check_level(alpha), float(alpha), statistic, len(images), per_image, bits_p)


def _p_values(soft: np.ndarray, bits: np.ndarray, statistic: str) -> tuple[int, float, float]:
    """(aggregated matching bits, the decisive statistic's p-value, the bits' binomial p-value) of soft scores."""
    matches = int((aggregate_bits(soft) == bits).sum())
    bits_p = binomial_p_value(matches, len(bits))
    return matches, (sign_flip_p_values(soft.mean(0), bits)[0] if statistic == "soft" else bits_p), bits_p


def prompt_p_values(scheme: WatermarkScheme, answers: np.ndarray, message, statistic: str = "soft") -> np.ndarray:
    """answers uint8 [P, k, H, W, 3] -> one p-value per prompt [P], its k images pooled."""
    answers = np.asarray(answers)
    if answers.ndim != 5:
        raise ParameterError("answers", "an array [n_prompts, k, H, W, 3]", answers.shape)
    bits = check_message(message, scheme.n_bits)
    n, k = answers.shape[:2]
    pooled = scheme.soft_decode(answers.reshape(n * k, *answers.shape[2:])).reshape(n, k, -1).mean(1)
    if check_statistic(statistic) == "soft":
        return sign_flip_p_values(pooled, bits)
    return np.array([binomial_p_value(m, scheme.n_bits) for m in ((pooled > 0).astype(np.uint8) == bits[None]).sum(1)])


def watermark_conf(prompt_p, key_alpha: float = 0.05) -> float:
    """Baseline 1's conf: share of prompts whose pooled answers carry the message at level ``key_alpha``."""
    prompt_p = np.asarray(prompt_p, dtype=float)
    if prompt_p.size == 0:
        raise ParameterError("prompt_p", "the p-value of at least one queried prompt", prompt_p)
    return float((prompt_p <= check_level(key_alpha, "key_alpha")).mean())


def trace_leak(detections: dict) -> list:
    """Every licensee whose message is detected, most significant first (empty: none is).

    Leak tracing names the one licensee this returns; when it returns several, that is reported as such, never
    resolved silently to the most significant one (two licensees' copies may both have been used).
    """
    detected = {who: d for who, d in detections.items() if d.detected}
    return sorted(detected, key=lambda who: (detected[who].p_value, -detected[who].score, str(who)))


def named_licensee(traced: list) -> str:
    """How a leak-tracing result reads in a table: ``none``, the licensee, or ``several: a,b``."""
    if not traced:
        return "none"
    return str(traced[0]) if len(traced) == 1 else "several: " + ",".join(str(who) for who in traced)
