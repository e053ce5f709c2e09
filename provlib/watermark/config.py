"""The watermarks' configuration (notebook 06): Baseline 1 of the attribution paper and dataset watermarking."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from provlib.core.errors import ParameterError
from provlib.core.config import (
    Section,
    at_least_int,
    choice,
    names,
    non_negative_int,
    number,
    numbers_in,
    positive_int,
    positive_number,
    probability_open,
    setting,
    share,
    text,
)
from provlib.watermark.detect import STATISTICS
from provlib.watermark.schemes import SCHEMES
from provlib.watermark.transforms import parse_transform


def _band(value):
    ok = (isinstance(value, tuple) and len(value) == 2 and not number(0.0, low_open=True)(value[0])
          and not number()(value[1]) and value[0] < value[1])
    return None if ok else "(low, high) cycles per image with 0 < low < high"


def _transforms(value):
    if not isinstance(value, tuple):
        return "a list of transform names such as 'jpeg:75'"
    for spec in value:
        parse_transform(spec, "robustness")  # raises with the accepted forms
    return None


def removal_strength(attack: str) -> float | None:
    """``"vae"`` -> None (an autoencoder round trip); ``"diffusion:0.3"`` -> 0.3; anything else raises."""
    kind, _, value = str(attack).partition(":")
    try:
        strength = float(value) if kind == "diffusion" else None
    except ValueError:
        strength = -1.0
    if (kind, value) != ("vae", "") and not (kind == "diffusion" and strength is not None and 0 < strength <= 1):
        raise ParameterError("wm_removal", "'vae' (autoencoder round trip) or 'diffusion:<s>' with 0 < s <= 1 "
                             "(noise to that share of the diffusion, denoise with the base)", attack)
    return strength


def _removal(value):
    if not isinstance(value, tuple):
        return "a list of removal attacks such as 'vae' or 'diffusion:0.3'"
    for attack in value:
        removal_strength(attack)  # raises with the accepted forms
    return None


@dataclass(frozen=True)
class Watermark(Section):
    bits: int = setting(32, positive_int)                 # message length (the attribution paper's Baseline 1: 32 bits)
    schemes: tuple = setting(("dwtdct", "pattern"), names(allowed=SCHEMES))
    pattern_strength: float = setting(2.0, positive_number)  # spread-spectrum amplitude, RMS in 0-255 pixel units
    # the dataset mark's amplitude on a licensed copy's marked images (pattern scheme; Baseline 1 keeps
    # pattern_strength): a fine-tune must learn it from a few images (r = 2% of 500 is 10)
    # Chosen owner-side on the owner's own fine-tunes (r = 2% of 500, trigger): in the fitted subspace at 8 / 16 no
    # marked fine-tune was detected; as a 4x4 cell layout at 16 / 24 (PSNR 24.7 / 21.3 dB) both were, asked their
    # marked captions. 24 left one licensee's mark unlearned on a re-draw of the secrets (owner's pilot 6/8); 32 found
    # 8/8 there but 6/8 on seed 1's world (licensee 0 on v1 at p 0.017 / 0.024); 40 found those 8/8, at p <= 0.005,
    # with no clean model or wrong licensee detected (docs/decisions.md, "Dataset mark: a 4×4 colour layout
    # at RMS 40")
    mark_strength: float = setting(40.0, positive_number)
    # the dataset mark's directions: 0, the pattern scheme's fitted subspace (as Baseline 1's stamp); g > 0, a keyed
    # colour layout on a g x g grid of cells (an image-level signature at the scale a tiny latent model learns), added
    # to the image: removing the image's own projection would flatten a cell layout's colours, not add a mark
    mark_cells: int = setting(4, non_negative_int)
    pattern_band: tuple = setting((1.0, 6.0), _band)       # its frequency band, cycles per image
    pattern_host_rejection: float = setting(1.0, number(0.0, 1.0, text="a share in [0, 1]"))  # ISS: host removed
    # the pattern scheme's subspace (0: the whole band): of the `pattern_transmitted` band directions the base's VAE
    # passes best, the `pattern_subspace` least used by image content. Chosen on the owner's side only (public and
    # owner images through the VAE): PSNR 35-37 dB, and a mark read from 4 round-tripped images per prompt
    pattern_transmitted: int = setting(128, positive_int)
    pattern_subspace: int = setting(64, non_negative_int)
    subspace_probe_images: int = setting(48, positive_int)  # public images the VAE's response is measured on
    subspace_images: int = setting(512, positive_int)      # public images the content's energy is measured on
    baseline_scheme: str = setting("pattern", choice(*SCHEMES))  # the scheme the source stamps into every generation
    statistic: str = setting("soft", choice(*STATISTICS))  # "soft" (matched filter, sign flips) or "bits" (binomial)
    alpha: float = setting(0.01, probability_open)         # level of the model-level test (both statistics are exact)
    key_alpha: float = setting(0.05, probability_open)     # per-prompt level behind Baseline 1's conf
    domain: str = setting("scenes", text)                  # the licensed dataset: a draw of this domain's real pool
    dataset_size: int = setting(500, positive_int)        # the paper's suspects fine-tune on 500 images
    fractions: tuple = setting((0.01, 0.02, 0.05, 0.1, 1.0), numbers_in(0.0, 1.0, what="marked shares"))
    strategies: tuple = setting(("image", "trigger"), names(allowed=("image", "trigger")))
    licensees: int = setting(4, at_least_int(2))             # at least 2: leak tracing chooses among them
    # fine-tunes per (scheme, strategy, r) away from the focus share, and per laundering / removal attack, licensees in
    # turn: one at cpu, where a fine-tune that learns the mark (750 steps; 400 did not: docs/decisions.md, "Licensee
    # fine-tunes: 750 steps of 64") costs a core 1.5-3 minutes and 40 are spent on the 2% cells and clean
    models_per_setting: int = setting(1, positive_int)
    # the share whose every cell gets focus_models fine-tunes (the paper's 2%: a rate needs 10 models to mean much);
    # clean fine-tunes are asked every licensee's marked captions at it, and laundered / regenerated copies are made at it
    focus_fraction: float = setting(0.02, share)
    focus_models: int = setting(10, positive_int)
    clean_models: int = setting(20, at_least_int(2))         # clean fine-tunes: the false-positive population
    query_prompts: int = setting(32, positive_int)         # prompts the defender sends a fine-tuned model per prompt set
    query_images: int = setting(2, positive_int)           # images per prompt
    robustness: tuple = setting(("jpeg:75", "resize:0.5", "crop:0.8", "noise:8"), _transforms)
    # removal attacks on every image of a licensed copy before fine-tuning (regeneration, as the dataset-watermark
    # benchmark of arXiv 2511.19316 attacks): the base's autoencoder, or noise-and-denoise with the base model
    removal: tuple = setting(("vae", "diffusion:0.3"), _removal)
    triggers: tuple = setting((), names(at_least=0, word=True))  # one per licensee; empty: words captions never use
    # 0: dataset watermarking's keys, messages, marked images and fine-tune / query seeds derive from the preset's seed;
    # k > 0 re-draws all of them on the same world and licensed dataset (a re-run with another seed without 01-05)
    draw: int = setting(0, non_negative_int)

    def validate(self):
        self.require(any(np.isclose(self.focus_fraction, r) for r in self.fractions), "focus_fraction",
                     f"one of fractions={self.fractions}")
        self.require(self.query_prompts <= self.dataset_size, "query_prompts", f"at most dataset_size={self.dataset_size}")
        self.require(self.pattern_subspace == 0 or self.bits <= self.pattern_subspace <= self.pattern_transmitted,
                     "pattern_subspace", f"0 (the whole band) or between bits={self.bits} and pattern_transmitted="
                     f"{self.pattern_transmitted} directions")
        self.require(not self.triggers or len(self.triggers) >= self.licensees, "triggers",
                     f"empty, or at least licensees={self.licensees} distinct single words")
