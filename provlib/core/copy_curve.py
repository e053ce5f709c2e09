"""A source's copy-rate curve: its generations for some training captions, recorded along its fine-tuning.

Notebook 01 turns them into the owner-side memorization curve (copy rate, Gu et al.'s criterion, distances against
the same-caption spread of real images) with ``provlib.attribution.memorization.copy_measures``.
"""
from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np

from provlib.core.store import config_hash, derive_seed

CODE_VERSION_COPY_CURVE = 1  # bump when the recorded generations change meaning
COPY_CURVE_POINTS = 4  # generations recorded along a source's fine-tuning (owner-side copy-rate curve, notebook 01)


class CopyCurveRecorder:
    """``train_denoiser``'s ``after_step`` hook: at the steps ``at``, generate ``SEEDS`` images per caption.

    Each point is saved in the training's work folder as it is made, so a run resumed from a checkpoint keeps the
    points made before the interruption; ``save`` gathers them into the finished artifact.
    """
    SEEDS = 2

    def __init__(self, zoo, pipe, captions: list[str], at: list[int], work: Path, seed: int):
        self.zoo, self.pipe, self.captions, self.at, self.work, self.seed = zoo, pipe, captions, set(at), work, seed

    def __call__(self, step: int) -> None:
        if step not in self.at:
            return
        out = self.zoo.generate(self.pipe, self.captions, seed=self.seed, images_per_prompt=self.SEEDS, show_progress=False)
        images = out.images.reshape(len(self.captions), self.SEEDS, *out.images.shape[1:])
        tmp = self.work / f".curve-{step}.npy"
        np.save(tmp, images, allow_pickle=False)
        os.replace(tmp, self.work / f"curve-{step:07d}.npy")

    def save(self, folder: Path) -> None:
        points = sorted(self.work.glob("curve-*.npy"))
        if not points:
            return
        np.save(folder / "copy_curve.npy", np.stack([np.load(p, allow_pickle=False) for p in points]), allow_pickle=False)
        (folder / "copy_curve.json").write_text(json.dumps({"steps": [int(p.stem.split("-")[1]) for p in points],
                                                            "captions": self.captions}))


def copy_curve_recorder(zoo, source, pipe, work: Path) -> CopyCurveRecorder:
    """The hook for one source: up to ``memorization_prompts`` of its training captions, at ``COPY_CURVE_POINTS``
    evenly spaced steps (the last is the finished model)."""
    train = zoo.training_set(source)
    rng = np.random.default_rng(derive_seed(zoo.p.seed, "copy-curve", source.name))
    picks = np.sort(rng.choice(len(train), size=min(zoo.p.attribution.memorization_prompts, len(train)), replace=False))
    steps = zoo.p.models.source.steps
    at = sorted({max(1, round(steps * k / COPY_CURVE_POINTS)) for k in range(1, COPY_CURVE_POINTS + 1)})
    return CopyCurveRecorder(zoo, pipe, [train.captions[i] for i in picks], at, work,
                             derive_seed(zoo.p.seed, "copy-curve-generate", source.name))


def copy_curve_config(zoo, source) -> dict:
    """The curve's cache identity: its source's, the number of points and prompts, the sampler."""
    p = zoo.p
    return {"kind": "copy_curve", "v": CODE_VERSION_COPY_CURVE, "source": config_hash(zoo.source_config(source)),
            "points": COPY_CURVE_POINTS, "prompts": p.attribution.memorization_prompts,
            "sampler": [p.sampling.inference_steps, p.sampling.guidance_scale]}
