"""Key-sample selection: which prompts (and images) act as the source model's natural watermarks.

Every selector ranks candidate prompts by a score whose parts are kept in ``KeySet.details``, and
returns the same structure (prompt, key image, score):

* ``strategy1_detection``: among the source's own training samples D_S, the ones the source has
  memorized: its generations reproduce the training image across several seeds (small mean distance over
  the probe seeds; ``detection_statistic="min"``, the best seed alone, is the alternative) while a reference
  model that never saw D_S does not. Score = reference distance - source distance. The key image is the
  training image.
* ``strategy2_generation``: without D_S: prompts for which the source's generations agree with each
  other across seeds (an idiosyncratic "attractor" image) and that the reference does not produce.
  Score = reference distance to the attractor - spread of the source's generations around it. The
  key image is the source's own medoid generation.
* ``combine_strategies``: Strategy 1+2: each strategy's scores are robustly standardized (median,
  MAD) and a candidate is ranked by the larger of its two; its key image is the source's medoid generation
  (``key_image="generation"``) or that of the strategy that flagged it more strongly (``"strongest"``).
* ``random_keys``: Baseline 2, N random training samples of D_S with their training images.

The reference model is the public pre-trained model a would-be infringer fine-tunes (the zoo's
``suspect_base``): the defender has it too, and a prompt that model already answers with the key image
says nothing about the suspect's training data.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from scipy.stats import median_abs_deviation

from provlib.attribution.config import COMBINED_KEY_IMAGES, DETECTION_STATISTICS
from provlib.attribution.distance import PixelSpace
from provlib.core.errors import ParameterError

STRATEGIES = ("strategy1", "strategy2", "strategy12", "random")


@dataclass
class CandidateProbe:
    """What key selection looks at: the source's and the reference's generations for each candidate prompt."""
    prompts: list[str]
    source_images: np.ndarray     # uint8 [P, seeds, H, W, 3]
    reference_images: np.ndarray  # uint8 [P, seeds, H, W, 3]
    training_images: np.ndarray | None = None  # uint8 [P, H, W, 3]: the D_S image of each prompt, if known

    def __post_init__(self):
        if len(self.prompts) == 0:
            raise ParameterError("prompts", "at least one candidate prompt", self.prompts)
        for name in ("source_images", "reference_images"):
            value = getattr(self, name)
            if value.ndim != 5 or len(value) != len(self.prompts):
                raise ParameterError(name, f"an array [n_prompts={len(self.prompts)}, seeds, H, W, 3]", value.shape)

    def save(self, folder: Path) -> None:
        np.save(folder / "source_images.npy", self.source_images)
        np.save(folder / "reference_images.npy", self.reference_images)
        if self.training_images is not None:
            np.save(folder / "training_images.npy", self.training_images)
        (folder / "prompts.json").write_text(json.dumps(self.prompts))

    @classmethod
    def load(cls, folder: Path) -> "CandidateProbe":
        training = folder / "training_images.npy"
        return cls(json.loads((folder / "prompts.json").read_text()), np.load(folder / "source_images.npy"),
                   np.load(folder / "reference_images.npy"), np.load(training) if training.exists() else None)


@dataclass
class KeySet:
    source: str
    strategy: str
    prompts: list[str]
    images: np.ndarray    # uint8 [N, H, W, 3]: the key image of each prompt
    scores: np.ndarray    # higher = better key (NaN for random keys)
    details: pd.DataFrame  # one row per key: prompt, candidate index, score and its parts

    def __len__(self) -> int:
        return len(self.prompts)

    def top(self, n: int) -> "KeySet":
        """The n best keys (keys are stored best first)."""
        if not 1 <= n <= len(self):
            raise ParameterError("n_keys", f"between 1 and the {len(self)} keys available for {self.source}", n)
        return KeySet(self.source, self.strategy, self.prompts[:n], self.images[:n], self.scores[:n],
                      self.details.iloc[:n].reset_index(drop=True))

    @property
    def candidate_index(self) -> np.ndarray:
        return self.details["candidate"].to_numpy()


def nearest_training_images(generations: np.ndarray, prompts: list[str], training_set, space=None) -> np.ndarray:
    """For each prompt, the training image with that caption nearest to any of the source's generations for it.

    ``generations`` is uint8 [P, seeds, H, W, 3]. Where many training images share a caption (a base's pre-training
    set), a candidate prompt does not name one image: the defender searches its own training data for the one its
    model draws, as extraction attacks match generations to the training set (Carlini et al. 2023).
    """
    space = space or PixelSpace()
    by_caption: dict[str, list[int]] = {}
    for i, caption in enumerate(training_set.captions):
        by_caption.setdefault(caption, []).append(i)
    missing = [p for p in prompts if p not in by_caption]
    if missing:
        raise ParameterError("prompts", "captions of the training set", missing[:3])
    matched = []
    for prompt, images in zip(prompts, generations):
        pool = training_set.images[by_caption[prompt]]
        distance = space.pairwise(space.features(pool), space.features(images)).min(axis=1)
        matched.append(pool[int(np.argmin(distance))])
    return np.stack(matched)


def _check_n(n: int, available: int, source: str) -> int:
    if not isinstance(n, (int, np.integer)) or n < 1:
        raise ParameterError("n_keys", "a positive number of key samples", n)
    return min(int(n), available)


def _ranked(source: str, strategy: str, probe: CandidateProbe, scores: np.ndarray, key_images: np.ndarray,
            parts: dict, n: int) -> KeySet:
    order = np.argsort(-scores, kind="stable")[:_check_n(n, len(scores), source)]
    details = pd.DataFrame({"prompt": [probe.prompts[i] for i in order], "candidate": order,
                            "score": scores[order], **{k: np.asarray(v)[order] for k, v in parts.items()}})
    details.insert(0, "rank", np.arange(1, len(order) + 1))
    return KeySet(source, strategy, list(details.prompt), key_images[order], scores[order], details)


def _best_distance(images: np.ndarray, target: np.ndarray, space) -> float:
    return _seed_distance(images, target, space, "min")


def _seed_distance(images: np.ndarray, target: np.ndarray, space, statistic: str) -> float:
    """The distances of one prompt's generations (one per seed) to ``target``, summed up by ``statistic``."""
    distances = space.pairwise(space.features(images), space.features(target[None]))[:, 0]
    return float(distances.mean() if statistic == "mean" else distances.min())


def check_detection_statistic(statistic: str) -> str:
    if statistic not in DETECTION_STATISTICS:
        raise ParameterError("detection_statistic", f"one of {DETECTION_STATISTICS}", statistic)
    return statistic


def strategy1_detection(probe: CandidateProbe, n: int, source: str = "", space=None,
                        detection_statistic: str = "mean") -> KeySet:
    """Detection-based: training samples the source reproduces (over the probe seeds, by ``detection_statistic``)
    and the reference does not."""
    space = space or PixelSpace()
    check_detection_statistic(detection_statistic)
    if probe.training_images is None:
        raise ParameterError("strategy", "strategy2 for a source whose training data is unknown "
                             "(strategy 1 detects memorized *training* samples)", "strategy1")
    source_distance = np.array([_seed_distance(s, x, space, detection_statistic)
                                for s, x in zip(probe.source_images, probe.training_images)])
    reference_distance = np.array([_best_distance(r, x, space) for r, x in zip(probe.reference_images, probe.training_images)])
    scores = reference_distance - source_distance
    return _ranked(source, "strategy1", probe, scores, probe.training_images,
                   {"source_distance": source_distance, "reference_distance": reference_distance}, n)


def attractor(images: np.ndarray, space) -> tuple[int, float]:
    """The medoid of one prompt's generations and the median distance of the others to it."""
    d = space.pairwise(space.features(images), space.features(images))
    medoid = int(d.sum(1).argmin())
    return medoid, float(np.median(np.delete(d[medoid], medoid))) if len(images) > 1 else 0.0


def strategy2_generation(probe: CandidateProbe, n: int, source: str = "", space=None) -> KeySet:
    """Generation-based: prompts the source answers consistently with an image the reference does not make."""
    space = space or PixelSpace()
    medoids, spread = zip(*(attractor(images, space) for images in probe.source_images))
    key_images = np.stack([images[m] for images, m in zip(probe.source_images, medoids)])
    reference_distance = np.array([_best_distance(r, k, space) for r, k in zip(probe.reference_images, key_images)])
    spread = np.array(spread)
    scores = reference_distance - spread
    return _ranked(source, "strategy2", probe, scores, key_images,
                   {"source_spread": spread, "reference_distance": reference_distance}, n)


def robust_standardize(scores: np.ndarray) -> np.ndarray:
    """(score - median) / (1.4826 MAD): puts both strategies' scores on one scale, insensitive to outliers."""
    scores = np.asarray(scores, dtype=float)
    spread = 1.4826 * median_abs_deviation(scores)
    return (scores - np.median(scores)) / (spread if spread > 0 else 1.0)


def combine_strategies(first: KeySet, second: KeySet, n: int, key_image: str = "generation") -> KeySet:
    """Strategy 1+2: rank every candidate by the larger of its two standardized scores.

    Both key sets must rank the same candidates (the full candidate list). A prompt either strategy flags strongly
    comes first. Its key image is ``second``'s (Strategy 2's: the source's medoid generation) with
    ``key_image="generation"``, or that of the strategy that flagged it more strongly with ``"strongest"``. A suspect
    learns from the source's generations, never from its training images, so a Strategy 1 key scored against the
    training image also counts the source's own reproduction error, which no suspect can undo.
    """
    if key_image not in COMBINED_KEY_IMAGES:
        raise ParameterError("combined_key_image", f"one of {COMBINED_KEY_IMAGES}", key_image)
    by_candidate = {}
    for keys in (first, second):
        for i, (candidate, z) in enumerate(zip(keys.candidate_index, robust_standardize(keys.scores))):
            if candidate not in by_candidate or z > by_candidate[candidate][0]:
                by_candidate[candidate] = (float(z), keys, i)
    ranked = sorted(by_candidate.items(), key=lambda item: (-item[1][0], item[0]))[:n]
    details = pd.DataFrame([{"prompt": k.prompts[i], "candidate": int(c), "score": z, "picked_by": k.strategy,
                             "rank_in_strategy": i + 1} for c, (z, k, i) in ranked])
    details.insert(0, "rank", np.arange(1, len(details) + 1))
    if key_image == "generation":
        position = {int(c): i for i, c in enumerate(second.candidate_index)}
        images = second.images[[position[int(c)] for c, _ in ranked]]
    else:
        images = np.stack([k.images[i] for _, (_, k, i) in ranked])
    return KeySet(first.source, "strategy12", list(details.prompt), images, details.score.to_numpy(), details)


def random_keys(prompts: list[str], training_images: np.ndarray, n: int, seed: int, source: str = "") -> KeySet:
    """Baseline 2: N random samples of the source's training set, no selection."""
    if training_images is None:
        raise ParameterError("method", "strategy12 for a source whose training data is unknown (the random "
                             "baseline draws from the training set)", "random")
    order = np.random.default_rng(seed).permutation(len(prompts))[:_check_n(n, len(prompts), source)]
    details = pd.DataFrame({"rank": np.arange(1, len(order) + 1), "prompt": [prompts[i] for i in order],
                            "candidate": order, "score": np.nan})
    return KeySet(source, "random", list(details.prompt), training_images[order], np.full(len(order), np.nan), details)


def select_keys(probe: CandidateProbe, strategy: str, n: int, source: str = "", space=None, seed: int = 0,
                detection_statistic: str = "mean", combined_key_image: str = "generation") -> KeySet:
    """One entry point for every strategy name in ``STRATEGIES``."""
    if strategy == "strategy1":
        return strategy1_detection(probe, n, source, space, detection_statistic)
    if strategy == "strategy2":
        return strategy2_generation(probe, n, source, space)
    if strategy == "strategy12":
        second = strategy2_generation(probe, len(probe.prompts), source, space)
        if probe.training_images is None:  # paper-scale base source: detection needs D_S, generation does not
            return second.top(min(n, len(second)))
        first = strategy1_detection(probe, len(probe.prompts), source, space, detection_statistic)
        return combine_strategies(first, second, min(n, len(probe.prompts)), combined_key_image)
    if strategy == "random":
        return random_keys(probe.prompts, probe.training_images, n, seed, source)
    raise ParameterError("strategy", f"one of {STRATEGIES}", strategy)
