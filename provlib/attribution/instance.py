"""Instance-level attribution: query a suspect with the key prompts and count the keys it reproduces.

For key sample i with key image x_i, the suspect answers the key prompt with k images; the key's
reconstruction distance is the smallest distance between those images and x_i. The key is attributed
when that distance is below δ0, and the suspect's confidence is the share of attributed keys (the
paper's Eq. 6); a population's confidence is the mean over its models (Eq. 9). A suspect is called
infringing when its confidence exceeds a level chosen on shadow models. The query cost is
N prompts × k images.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import stats

from provlib.attribution.distance import PixelSpace
from provlib.attribution.keys import KeySet
from provlib.core.errors import ParameterError
from provlib.core.generate import generate


@dataclass
class Verdict:
    conf: float
    distances: np.ndarray    # best distance per key, in key order
    attributed: np.ndarray   # distance < delta0, per key
    infringing: bool | None  # conf > conf_threshold; None when no threshold was given
    delta0: float
    conf_threshold: float | None
    queries: int             # prompts sent × images per prompt

    def table(self, keys: KeySet) -> pd.DataFrame:
        return pd.DataFrame({"prompt": keys.prompts, "distance": self.distances, "attributed": self.attributed})


def grouped_features(images: np.ndarray, space) -> np.ndarray:
    """uint8 [N, m, H, W, 3] (m images per key) -> features [N, m, d], computed in one batch."""
    images = np.asarray(images)
    n, m = images.shape[:2]
    return space.features(images.reshape(n * m, *images.shape[2:])).reshape(n, m, -1)


def best_distance_per_key(queries: np.ndarray, targets: np.ndarray, space) -> np.ndarray:
    """Features [N, k, d] and [N, m, d] -> [N]: the smallest query-target distance within each key."""
    return np.array([space.pairwise(q, t).min() for q, t in zip(queries, targets)])


def best_key_distances(answers: np.ndarray, key_images: np.ndarray, space=None) -> np.ndarray:
    """answers uint8 [N, k, H, W, 3] (k images per key prompt) -> [N] smallest distance to each key image."""
    space = space or PixelSpace()
    answers, key_images = np.asarray(answers), np.asarray(key_images)
    if answers.ndim != 5 or len(answers) != len(key_images):
        raise ParameterError("answers", f"an array [n_keys={len(key_images)}, k, H, W, 3]", answers.shape)
    return best_distance_per_key(grouped_features(answers, space), grouped_features(key_images[:, None], space), space)


def check_delta0(delta0: float) -> float:
    if not isinstance(delta0, (int, float, np.floating)) or not 0.0 < float(delta0) <= 1.0:
        raise ParameterError("delta0", "a distance threshold in (0, 1]", delta0)
    return float(delta0)


def attributed_keys(distances: np.ndarray, delta0: float) -> np.ndarray:
    """Which key samples are attributed: best distance strictly below δ0 (a distance equal to δ0 is not)."""
    distances = np.asarray(distances, dtype=float)
    if distances.size == 0:
        raise ParameterError("distances", "at least one key sample's distance", distances)
    return distances < check_delta0(delta0)


def conf_from_distances(distances: np.ndarray, delta0: float) -> float:
    """Eq. 6: the share of key samples whose best distance is below δ0 (the one place the formula lives)."""
    return float(attributed_keys(distances, delta0).mean())


def population_conf(confs) -> float:
    """Eq. 9: the mean confidence over a population of models."""
    confs = np.asarray(list(confs), dtype=float)
    if confs.size == 0:
        raise ParameterError("confs", "at least one model's confidence", confs)
    return float(confs.mean())


def verdict_from_answers(answers: np.ndarray, keys: KeySet, delta0: float, conf_threshold: float | None = None,
                         space=None) -> Verdict:
    distances = best_key_distances(answers, keys.images, space)
    attributed = attributed_keys(distances, delta0)
    conf = conf_from_distances(distances, delta0)
    return Verdict(conf, distances, attributed, None if conf_threshold is None else conf > conf_threshold,
                   float(delta0), conf_threshold, int(answers.shape[0] * answers.shape[1]))


def verify(suspect, keys: KeySet, delta0: float, *, conf_threshold: float | None = None, space=None,
           images_per_prompt: int = 4, seed: int = 0, **generation) -> Verdict:
    """Query a black-box suspect pipeline with the key prompts and decide.

    ``generation`` is passed to ``provlib.core.generate.generate`` (batch_size, num_inference_steps, ...).
    """
    out = generate(suspect, keys.prompts, images_per_prompt=images_per_prompt, seed=seed,
                   desc="query suspect", **generation)
    answers = out.images.reshape(len(keys), images_per_prompt, *out.images.shape[1:])
    return verdict_from_answers(answers, keys, delta0, conf_threshold, space)


# ---- threshold selection (shadow models only) ------------------------------------------------------
def select_delta0(infringing_distances: np.ndarray, innocent_distances: np.ndarray, rule: str = "max_gap",
                  innocent_key_rate: float = 0.05, grid: np.ndarray | None = None) -> float:
    """δ0 from pooled per-key distances of shadow infringing and shadow innocent models.

    ``max_gap``: the δ0 that maximizes (share of infringing keys below δ0) - (share of innocent keys
    below δ0), i.e. the conf gap between the two kinds of model (Youden's J on keys).
    ``innocent_rate``: the largest δ0 that attributes at most ``innocent_key_rate`` of innocent keys
    (the paper's δ0 = 0.15 leaves 4.3% of an innocent model's keys below it).
    """
    infringing = np.asarray(infringing_distances, dtype=float).ravel()
    innocent = np.asarray(innocent_distances, dtype=float).ravel()
    if infringing.size == 0 or innocent.size == 0:
        raise ParameterError("shadow models", "distances from at least one infringing and one innocent shadow model",
                             (infringing.size, innocent.size))
    grid = np.round(np.arange(0.005, 1.0, 0.0025), 4) if grid is None else np.asarray(grid)
    below_infringing = (infringing[None, :] < grid[:, None]).mean(1)
    below_innocent = (innocent[None, :] < grid[:, None]).mean(1)
    if rule == "max_gap":
        return float(grid[int(np.argmax(below_infringing - below_innocent))])
    if rule == "innocent_rate":
        allowed = np.flatnonzero(below_innocent <= innocent_key_rate)
        return float(grid[allowed[-1]] if allowed.size else grid[0])
    raise ParameterError("delta0_rule", "'max_gap' or 'innocent_rate'", rule)


CONF_LEVEL_RULES = ("empirical", "conformal", "conformal_tail")


def select_conf_threshold(innocent_confs, false_positive_rate: float = 0.1, level_rule: str = "empirical",
                          n_keys: int | None = None) -> float:
    """The conf level for a decision "conf > level" from shadow innocent models' confs.

    ``"empirical"``: at most ``false_positive_rate`` (α) of the n shadow innocents lie above it (floor(α n) of them),
    so a new innocent model exceeds it with probability (floor(α n) + 1) / (n + 1), above α for small n.
    ``"conformal"``: the split-conformal level, the ceil((n + 1)(1 − α))-th smallest shadow conf (the largest when
    that rank exceeds n), which bounds that probability by α for an innocent model exchangeable with the shadows.
    ``"conformal_tail"``: the larger of the conformal level and ``tail_conf_level`` (needs ``n_keys``). The conformal
    bound holds on average over calibration samples; with a few dozen shadows one sample can put the level at the
    innocents' bulk, and the fitted tail, which reads every shadow's attributed-key count, guards against that.
    """
    confs = np.sort(np.asarray(list(innocent_confs), dtype=float))
    if confs.size == 0:
        raise ParameterError("innocent_confs", "the confidences of at least one innocent shadow model", confs)
    if not 0.0 <= false_positive_rate < 1.0:
        raise ParameterError("false_positive_rate", "a rate in [0, 1)", false_positive_rate)
    if level_rule == "empirical":
        allowed = int(np.floor(false_positive_rate * confs.size + 1e-9))  # innocent models that may exceed the level
        return float(confs[confs.size - 1 - allowed])
    if level_rule in ("conformal", "conformal_tail"):
        rank = int(np.ceil((confs.size + 1) * (1.0 - false_positive_rate) - 1e-9))
        conformal = float(confs[min(max(rank, 1), confs.size) - 1])
        return conformal if level_rule == "conformal" else max(conformal, tail_conf_level(confs, n_keys, false_positive_rate))
    raise ParameterError("level_rule", f"one of {CONF_LEVEL_RULES}", level_rule)


def tail_conf_level(innocent_confs, n_keys: int | None, false_positive_rate: float) -> float:
    """The smallest conf level k / n_keys that a beta-binomial innocent exceeds with probability <= α.

    An innocent model's attributed-key count out of ``n_keys`` is fitted by moments (mean and over-dispersion across
    the shadow innocents; a plain binomial when they vary no more than one), so the level comes from a tail fitted to
    every shadow's count rather than from the largest of a few dozen of them.
    """
    if not isinstance(n_keys, (int, np.integer)) or n_keys < 1:
        raise ParameterError("n_keys", "the number of key samples behind each conf (the tail level counts keys)", n_keys)
    counts = np.round(np.asarray(innocent_confs, dtype=float) * n_keys)
    p = counts.mean() / n_keys
    if p in (0.0, 1.0):
        return float(p)
    binomial_variance = n_keys * p * (1 - p)
    variance = counts.var(ddof=1) if counts.size > 1 else 0.0
    if variance <= binomial_variance or n_keys == 1:
        counts_law = stats.binom(n_keys, p)
    else:  # variance = n p (1 - p) (1 + (n - 1) r), r the intra-model correlation of key attributions
        r = min((variance / binomial_variance - 1) / (n_keys - 1), 0.99)
        counts_law = stats.betabinom(n_keys, p * (1 - r) / r, (1 - p) * (1 - r) / r)
    k = np.arange(n_keys + 1)
    return float(k[counts_law.sf(k) <= false_positive_rate][0] / n_keys)


def distance_bins(distances: np.ndarray, edges=(0.0, 0.05, 0.1, 0.15, 0.2, 1.0)) -> dict:
    """Table 2's columns: share of keys per distance range, mean and best distance."""
    distances = np.asarray(distances, dtype=float)
    counts, _ = np.histogram(distances, bins=np.asarray(edges))
    shares = {f"[{lo:g}, {hi:g})": c / len(distances) for lo, hi, c in zip(edges[:-1], edges[1:], counts)}
    return {**shares, "mean": float(distances.mean()), "best": float(distances.min())}
