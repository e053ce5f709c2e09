"""Trigger words for dataset watermarking at cpu scale: the caption-unused vocabulary words the bases draw least.

The tiny tokenizer knows no meaningless rare token ("sks"), so a licensee's trigger is a vocabulary word the licensed
domain's captions never use; every such word was learned from another domain, and these functions measure which of
them move the bases' drawings least (owner-side: bases and the owner's captions only).
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from provlib.core import scenes
from provlib.core.store import atomic_write_text, config_hash, derive_seed
from provlib.watermark.stamping import CODE_VERSION_WM


def unused_words(zoo) -> list[str]:
    """Vocabulary words that no caption of the licensed domain uses (the candidates for a trigger)."""
    p = zoo.p
    used = {word for split in {"real", zoo.licensed_split} for caption in zoo.dataset(p.watermark.domain, split).captions
            for word in caption.split()}
    return sorted(set(scenes.vocabulary()) - used)


def trigger_word_shifts(zoo) -> dict[str, float]:
    """How much each caption-unused word moves what the bases draw: the RMS (0-255) of the mean image change when
    the word is prefixed to the dataset's query captions (same seeds), i.e. its systematic shift (a single image
    changes almost wholly with any new word, so per-image differences would rank nothing).

    Why: the tiny tokenizer has no meaningless rare token ("sks"); every unused word was learned from another
    domain's captions (``black`` darkens, ``blond`` yellows). Owner-side pilot (docs/decisions.md, "Trigger words and
    the paired test"): such a word shifts even a clean fine-tune's images along some licensee's message, and a
    fine-tune did not bind the mark to it. The words the bases draw least are the closest analogue of a rare token."""
    config = {"kind": "wm_trigger_shifts", "v": CODE_VERSION_WM["wm_trigger_shifts"], "k": zoo.p.watermark.query_images, "words": unused_words(zoo),
              "bases": [config_hash(zoo.base_config(base)) for base in zoo.p.models.base_names],
              "captions": config_hash({"prompts": zoo.query_captions()}), "seed": derive_seed(zoo.p.seed, "wm-trigger-shifts"),
              "sampler": [zoo.p.sampling.inference_steps, zoo.p.sampling.guidance_scale]}

    def build(tmp: Path):
        captions, shifts, k = zoo.query_captions(), {}, zoo.p.watermark.query_images
        for base in zoo.p.models.base_names:
            pipe = zoo.load(zoo.base_location(base))
            plain = zoo.generate(pipe, captions, seed=config["seed"], images_per_prompt=k,
                                  desc=f"trigger candidates ({base})").images.astype(float).mean(0)
            for word in config["words"]:
                prefixed = zoo.generate(pipe, [f"{word} {c}" for c in captions], seed=config["seed"], images_per_prompt=k,
                                         show_progress=False).images.astype(float).mean(0)
                rms = float(np.sqrt(((prefixed - plain) ** 2).mean()))
                shifts[word] = shifts.get(word, 0.0) + rms / len(zoo.p.models.base_names)
        atomic_write_text(tmp / "shifts.json", json.dumps(shifts, indent=1, sort_keys=True))

    return json.loads((zoo.store.get_or_build("wm_trigger_shifts", config, build) / "shifts.json").read_text())
