"""Typed configuration sections: each field carries its own check, next to it.

A section is a frozen dataclass whose fields are declared with ``setting(default, check)``; ``check`` is one of
the small validators below (or any callable ``value -> error text or None``). Building a section validates every
field and names the offending one in a ``ParameterError`` (``section.field``), so a string learning rate, a
negative step count, a boolean among the ρ values or a string where a folder mapping is expected never reaches
the code. Lists given for tuple fields become tuples (papermill passes YAML lists).

The sections every method shares live here; each method's own section lives in its package
(``provlib.attribution.config``, ``provlib.trainprove.config``, ``provlib.watermark.config``) and ``provlib.presets``
composes them.
"""
from __future__ import annotations

import dataclasses
import numbers
from dataclasses import dataclass, field

from provlib.core.errors import ParameterError


# ---- validators: each returns None when the value is fine, else what was expected ---------------------------
def _is_int(value) -> bool:
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def _is_number(value) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


def positive_int(value):
    return None if _is_int(value) and value >= 1 else "a positive integer"


def non_negative_int(value):
    return None if _is_int(value) and value >= 0 else "a non-negative integer"


def any_int(value):
    return None if _is_int(value) else "an integer"


def at_least_int(low: int):
    return lambda value: None if _is_int(value) and value >= low else f"an integer >= {low}"


def number(low: float | None = None, high: float | None = None, *, low_open: bool = False, high_open: bool = False,
           text: str | None = None):
    """A real number (not a bool, not a string) within the given bounds."""
    def check(value):
        ok = _is_number(value)
        if ok and low is not None:
            ok = value > low if low_open else value >= low
        if ok and high is not None:
            ok = value < high if high_open else value <= high
        if ok:
            return None
        if text:
            return text
        lo = "" if low is None else f"{'>' if low_open else '>='} {low}"
        hi = "" if high is None else f"{'<' if high_open else '<='} {high}"
        return "a number" + (f" {lo}" if lo else "") + (" and" if lo and hi else "") + (f" {hi}" if hi else "")
    return check


def positive_number(value):
    return number(0.0, low_open=True, text="a positive number")(value)


def probability_open(value):
    return number(0.0, 1.0, low_open=True, high_open=True, text="a number strictly between 0 and 1")(value)


def share(value):
    return number(0.0, 1.0, low_open=True, text="a share in (0, 1]")(value)


def choice(*options):
    return lambda value: None if isinstance(value, str) and value in options else f"one of {options}"


def downsampling_factor(value):
    """A tiny autoencoder's downsampling (``models.build_tiny_vae``)."""
    return None if value in (4, 8) and not isinstance(value, bool) else "4 or 8"


def boolean(value):
    return None if isinstance(value, bool) else "True or False"


def text(value):
    return None if isinstance(value, str) else "a string"


def mapping(value):
    """A dict from names (strings) to paths or hub ids (strings)."""
    if isinstance(value, dict) and all(isinstance(k, str) and isinstance(v, str) for k, v in value.items()):
        return None
    return "a dict of name -> folder (or hub id) strings"


def block_width(value):
    """A tiny network's block width: a positive multiple of 8 (its norm groups)."""
    return None if not positive_int(value) and value % 8 == 0 else "a positive multiple of 8"


def unet_width_mapping(value):
    """A dict from base names to the tiny UNet's first block width (``block_width``)."""
    if isinstance(value, dict) and all(isinstance(k, str) and not block_width(v) for k, v in value.items()):
        return None
    return "a dict of base name -> first UNet block width (a positive multiple of 8)"


def names(*, allowed=None, at_least: int = 1, distinct: bool = True, word: bool = False):
    """A tuple of strings: non-empty (``at_least``), optionally distinct, single words, or from ``allowed``."""
    def check(value):
        what = f"a list of at least {at_least} {'distinct ' if distinct else ''}{'single words' if word else 'names'}"
        if allowed is not None:
            what += f" from {tuple(allowed)}"
        if not isinstance(value, tuple) or len(value) < at_least or not all(isinstance(v, str) and v for v in value):
            return what
        if distinct and len(set(value)) != len(value):
            return what
        if word and any(" " in v for v in value):
            return what
        if allowed is not None and not set(value) <= set(allowed):
            return what
        return None
    return check


def numbers_in(low: float, high: float, *, low_open: bool = True, at_least: int = 1, what: str = "numbers"):
    """A tuple of distinct real numbers (no bools) in (low, high] (or [low, high] with ``low_open=False``)."""
    inner = number(low, high, low_open=low_open)

    def check(value):
        bound = f"{'(' if low_open else '['}{low:g}, {high:g}]"
        expected = f"a list of at least {at_least} distinct {what} in {bound}"
        if not isinstance(value, tuple) or len(value) < at_least or any(inner(v) for v in value):
            return expected
        if len(set(value)) != len(value):
            return expected
        return None
    return check


def setting(default, check, **kwargs):
    """A section field with its validator stored next to it."""
    if isinstance(default, (dict, list)):
        return field(default_factory=lambda: type(default)(default), metadata={"check": check}, **kwargs)
    return field(default=default, metadata={"check": check}, **kwargs)


class Section:
    """Base of every configuration section: validates its fields on construction."""

    def __post_init__(self):
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if isinstance(value, list) and isinstance(f.default, tuple):
                value = tuple(value)
                object.__setattr__(self, f.name, value)
            check = f.metadata.get("check")
            if isinstance(value, Section) or check is None:
                continue
            problem = check(value)
            if problem:
                raise ParameterError(f.name, problem, value)
        self.validate()

    def validate(self) -> None:
        """Checks across this section's fields (override); single fields are checked by their own validators."""

    def require(self, ok: bool, name: str, expected: str) -> None:
        if not ok:
            raise ParameterError(name, expected, getattr(self, name))


@dataclass(frozen=True)
class Recipe(Section):
    """One fine-tuning (or pre-training) schedule: used for the bases, the sources and the suspects."""
    steps: int = setting(400, positive_int)
    batch_size: int = setting(16, positive_int)
    lr: float = setting(6e-4, positive_number)


@dataclass(frozen=True)
class Runtime(Section):
    """Where and how the work runs."""
    device: str = setting("cpu", choice("cpu", "cuda"))
    dtype: str = setting("float32", choice("float32", "float16"))      # weights / inference dtype
    mixed_precision: str = setting("no", choice("no", "fp16", "bf16"))  # accelerate's setting for fine-tuning
    n_jobs: int = setting(2, positive_int)                 # parallel worker processes (1 = this process)
    checkpoint_every: int = setting(500, positive_int)     # training steps between resumable checkpoints
    # joblib backend of every fan-out: local processes, a Dask cluster or a Ray cluster (see provlib.core.fanout)
    fan_out_backend: str = setting("loky", choice("loky", "dask", "ray"))
    scheduler_address: str = setting("", text)             # dask/ray: the cluster's address; "": a local cluster

    def validate(self):
        self.require(self.device == "cuda" or self.dtype == "float32", "dtype",
                     "'float32' on the CPU (fp16 needs device='cuda')")


@dataclass(frozen=True)
class World(Section):
    """The data: procedural domains at CPU scale, the user's image folders at paper scale."""
    data_source: str = setting("procedural", choice("procedural", "folder"))
    dataset_dirs: dict = setting({}, mapping)             # domain -> folder with captions.csv / metadata.jsonl
    resolution: int = setting(32, positive_int)
    n_pretrain: int = setting(3000, positive_int)         # generic images the tiny base models are pre-trained on
    n_private: int = setting(64, positive_int)            # a source owner's private fine-tuning set, per domain
    n_real: int = setting(256, positive_int)              # real-data pool per domain that suspects draw from
    scene_caption_list_size: int = setting(400, positive_int)  # the CC3M analogue's caption list
    # cells per side of each image's undescribed background grid (0: none); content a caption cannot predict
    identity_grid: int = setting(0, non_negative_int)
    # private images that appear duplicate_copies times in a source's fine-tuning set (memorization follows
    # duplication: Carlini et al. 2023, Somepalli et al. 2023)
    private_duplicates: int = setting(0, non_negative_int)
    duplicate_copies: int = setting(4, at_least_int(2))
    # generic pre-training images (a seeded random choice) that appear pretrain_duplicate_copies times in the bases'
    # pre-training set, as web data holds duplicates: what the base-only sources can memorize (Carlini et al. 2023)
    pretrain_duplicates: int = setting(0, non_negative_int)
    pretrain_duplicate_copies: int = setting(16, at_least_int(2))
    base_source_domain: str = setting("generic", text)    # prompts / real data for the base-only sources
    source_domains: tuple = setting(("faces", "scenes"), names())

    def validate(self):
        self.require(self.resolution % 8 == 0, "resolution", "a multiple of 8")
        if self.data_source == "procedural":
            self.require(set(self.source_domains) <= {"faces", "scenes"}, "source_domains",
                         "a subset of ('faces', 'scenes')")
            self.require(self.base_source_domain == "generic" or self.base_source_domain in self.source_domains,
                         "base_source_domain", "'generic' or one of source_domains")


@dataclass(frozen=True)
class Sampling(Section):
    """The sampler every text-to-image generation uses."""
    inference_steps: int = setting(20, positive_int)
    guidance_scale: float = setting(3.0, number(1.0, text="a number >= 1"))
    batch_size: int = setting(64, positive_int)           # prompts per pipeline call


@dataclass(frozen=True)
class Models(Section):
    """The base ("pre-trained") models and the source models fine-tuned from them."""
    base_names: tuple = setting(("v1", "v2"), names())
    base_checkpoints: dict = setting({}, mapping)         # base -> local pipeline dir or hub id (paper scale)
    allow_download: bool = setting(False, boolean)        # hub ids are only fetched when this is True
    vae_steps: int = setting(1500, positive_int)
    vae_downsampling: int = setting(4, downsampling_factor)
    # the autoencoder's latent channels and first-block width: its reconstruction error is the floor under a source's
    # distance to its own training images (docs/decisions.md, "An 8× autoencoder trained 2000 steps")
    vae_latent_channels: int = setting(8, positive_int)
    vae_width: int = setting(16, block_width)
    # base -> the tiny UNet's first block width (blocks: w, 2w) where it differs from models.TINY_ARCHITECTURES: a
    # cost lever (CPU scale only; SD-v1 and SD-v2 have UNets of about one size, 860M parameters)
    unet_widths: dict = setting({}, unet_width_mapping)
    pretrain: Recipe = field(default_factory=lambda: Recipe(2500, 32, 6e-4))
    source: Recipe = field(default_factory=lambda: Recipe(2500, 16, 6e-4))
    # fine-tune the text encoder with the UNet (DreamBooth's train_text_encoder): a memorization lever
    source_train_text_encoder: bool = setting(False, boolean)
    fine_tuned_bases: tuple = setting((), names(at_least=0))  # bases with fine-tuned sources (empty: every base)
    base_sources: bool = setting(True, boolean)           # the bases themselves are sources too (SD-v1, SD-v2)

    def validate(self):
        self.require(set(self.fine_tuned_bases) <= set(self.base_names), "fine_tuned_bases",
                     f"a subset of base_names={self.base_names}")
        self.require(set(self.unet_widths) <= set(self.base_names), "unet_widths",
                     f"widths of bases among base_names={self.base_names}")


@dataclass(frozen=True)
class Suspects(Section):
    """The suspect zoo: models fine-tuned on M samples, a share ρ of them the source's generations."""
    samples: int = setting(128, positive_int)             # M: size of a suspect's fine-tuning set (paper: 500)
    # 400 steps x 16 = 50 epochs at lr 6e-4, the section's default (every preset sets its own: docs/decisions.md,
    # "Suspect recipe: M = 256, 1500 steps, three per setting"); the paper's 12 epochs at lr 2e-6 left tiny suspects
    # too close to their base to reproduce anything
    recipe: Recipe = field(default_factory=lambda: Recipe(400, 16, 6e-4))
    rho_values: tuple = setting((0.3, 0.5, 0.7, 1.0), numbers_in(0.0, 1.0, what="proportions (rho = 0, the innocent "
                                                                                   "models, is always built)"))
    per_setting: int = setting(6, at_least_int(2))        # per (source, rho > 0)
    # innocent models per source (0: per_setting). An innocent model does not depend on the source, so one is
    # trained per (suspect base, domain) and serves every source whose suspects share that base and domain
    innocents: int = setting(0, lambda v: None if v == 0 or not at_least_int(2)(v) else "0 (as per_setting) or an integer >= 2")
    shadow_fraction: float = setting(0.5, probability_open)  # share of each setting the defender may use
    base: str = setting("other", text)                    # "other": the base the source was not built on; or a base name
    train_text_encoder: bool = setting(False, boolean)    # fine-tune the text encoder with the UNet
    # list the innocent models of a source's domain on *every* base under it, not only those on the suspect base: a
    # model fine-tuned on real images never saw the source's data whichever base it starts from, so the same trained
    # models give each source twice the innocents (the infringing suspects keep ``base``; tables tell the two apart
    # by the ``base`` column)
    innocents_on_every_base: bool = setting(False, boolean)
    # dataset watermarking's licensee fine-tunes (notebook 06) train this many steps with the recipe's batch and lr
    # (0: recipe.steps). At cpu the attribution suspects train longer than a licensee needs to learn a 2% mark
    licensee_steps: int = setting(0, non_negative_int)
