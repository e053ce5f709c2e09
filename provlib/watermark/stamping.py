"""Watermarks a model stamps into its generations (Baseline 1 of the attribution paper), on the attribution zoo.

The source stamps its own 32-bit message into every image it generates; a ``MarkedSuspectSpec`` is an infringing
suspect of the attribution zoo whose generated share is the stamped version of the same generations (everything
else, its seed and real images included, is identical). Innocent suspects never see generated images, so
Baseline 1 reuses the attribution zoo's innocent models. ``StampingZoo`` also owns the keyed schemes, the
secret messages, and what a latent-diffusion VAE leaves of a mark.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch

from provlib.attribution.queries import AttributionZoo
from provlib.core.data import CaptionedImageSet
from provlib.core.store import config_hash, derive_seed
from provlib.core.suspects import SuspectSpec
from provlib.watermark.schemes import (
    WatermarkScheme,
    fit_transmitted_subspace,
    make_scheme,
    message_hex,
    random_message,
)

CODE_VERSION_WM = {"wm_model": 1, "wm_answers": 1, "wm_base_answers": 1, "wm_subspace": 1, "wm_trigger_shifts": 1}


@dataclass(frozen=True)
class MarkedSuspectSpec(SuspectSpec):
    scheme: str = "pattern"   # the source stamped this scheme's mark into the generations the suspect used


class StampingZoo(AttributionZoo):
    def __init__(self, preset, cache_root=None, show_progress: bool = True):
        super().__init__(preset, cache_root, show_progress)
        self._subspaces, self._vaes = {}, {}

    # ---- schemes, messages, triggers ---------------------------------------------------------------
    def scheme(self, name: str, strength: float | None = None, key_seed: int | None = None, **pattern_options) -> WatermarkScheme:
        """The owner's keyed scheme (uncalibrated) with the preset's settings; ``strength`` and ``pattern_options``
        (``host_rejection``, ``subspace`` with its ``subspace_id``) override the pattern's; ``key_seed`` (default: the
        preset's seed) is what the secret key is derived from."""
        p = self.p
        options = {"dwtdct": {},  # the QIM step is invisible-watermark's default (DwtDctScheme)
                   "pattern": {"strength": p.watermark.pattern_strength if strength is None else strength, "band": tuple(p.watermark.pattern_band),
                               "host_rejection": p.watermark.pattern_host_rejection}}
        if name == "pattern" and p.watermark.pattern_subspace and "subspace" not in pattern_options:
            options["pattern"].update(subspace=self.pattern_subspace()[0], subspace_id=config_hash(self.subspace_config()))
        options["pattern"].update(pattern_options)
        return make_scheme(name, p.watermark.bits, key=derive_seed(p.seed if key_seed is None else key_seed, "wm-key", name), **options.get(name, {}))

    def subspace_config(self) -> dict:
        p = self.p
        domain, split = self.public_split()
        return {"kind": "wm_subspace", "v": CODE_VERSION_WM["wm_subspace"], "base": config_hash(self.base_config(self.fit_base)),
                "band": list(p.watermark.pattern_band), "transmitted": p.watermark.pattern_transmitted, "dims": p.watermark.pattern_subspace,
                "n_probe": p.watermark.subspace_probe_images, "n_content": p.watermark.subspace_images,
                "images": config_hash(self.dataset_config(domain, split)), "resolution": p.world.resolution}

    @property
    def fit_base(self) -> str:
        """The base whose VAE the pattern subspace is fitted to (at CPU scale both bases share one VAE)."""
        return self.p.models.base_names[0]

    def pattern_subspace(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The pattern scheme's subspace (``watermark.fit_transmitted_subspace``), gains and content RMS (cached).

        Fitted on public images, never on a suspect: the owner knows the autoencoder of the model family a
        copier fine-tunes (Stable Diffusion's is public), so it can put its mark where that VAE keeps it and
        image content leaves room.
        """
        config = self.subspace_config()
        key = config_hash(config)
        if key not in self._subspaces:
            def build(tmp: Path):
                p = self.p
                images = self.dataset(*self.public_split()).images[:p.watermark.subspace_images]
                fitted = fit_transmitted_subspace(lambda x: self._vae_round_trip_float(x, self.fit_base),
                                                  images[:p.watermark.subspace_probe_images], images, tuple(p.watermark.pattern_band),
                                                  p.watermark.pattern_transmitted, p.watermark.pattern_subspace)
                for name, array in zip(("subspace", "gains", "content_rms"), fitted):
                    np.save(tmp / f"{name}.npy", array)

            path = self.store.get_or_build("wm_subspace", config, build)
            self._subspaces[key] = tuple(np.load(path / f"{name}.npy") for name in ("subspace", "gains", "content_rms"))
        return self._subspaces[key]

    def message(self, owner) -> np.ndarray:
        """A source's (Baseline 1) or a licensee's (dataset watermarking) secret random message."""
        return random_message(self.p.watermark.bits, derive_seed(self.p.seed, "wm-message", owner))

    # ---- Baseline 1: the source stamps every generation --------------------------------------------
    def source_scheme(self, source: str, name: str | None = None) -> WatermarkScheme:
        """The source owner's decoder, calibrated on its own generations before they were stamped."""
        return self.scheme(name or self.p.watermark.baseline_scheme).calibrated(self.source_generations(source)[0].images)

    def baseline_specs(self, splits=("test",)) -> list[MarkedSuspectSpec]:
        """Infringing suspects of the attribution zoo, re-trained on the stamped generations."""
        name = self.p.watermark.baseline_scheme
        return [MarkedSuspectSpec(**{**asdict(s), "model_id": f"{s.model_id}_wm-{name}"}, scheme=name)
                for s in self.suspect_specs() if s.rho > 0 and s.split in splits]

    def generated_pool(self, spec: SuspectSpec) -> CaptionedImageSet:
        pool = super().generated_pool(spec)
        if not isinstance(spec, MarkedSuspectSpec):
            return pool
        marked = self.scheme(spec.scheme).encode(pool.images, self.message(spec.source))
        return CaptionedImageSet(marked, pool.captions, pool.ids)

    def suspect_config(self, spec: SuspectSpec) -> dict:
        config = super().suspect_config(spec)
        if isinstance(spec, MarkedSuspectSpec):
            config["watermark"] = {**self.scheme(spec.scheme).describe(), "message": message_hex(self.message(spec.source))}
        return config

    def baseline_prompt_order(self, source: str) -> np.ndarray:
        """Candidate prompts in the seeded random order Baseline 1 queries them (its first N are its N prompts)."""
        n_candidates = len(self.key_candidates(source))
        return np.random.default_rng(derive_seed(self.p.seed, "wm-prompts", source)).permutation(n_candidates)

    # ---- what a latent-diffusion VAE leaves of a mark ------------------------------------------------
    def vae_round_trip(self, images: np.ndarray, base: str) -> np.ndarray:
        """uint8 images after the base pipeline's VAE (encode to the posterior mean, decode): what any model
        built on that VAE can reproduce at best."""
        return np.clip(np.rint(self._vae_round_trip_float(np.asarray(images, dtype=np.float64), base)), 0, 255).astype(np.uint8)

    def _vae_round_trip_float(self, images: np.ndarray, base: str, batch_size: int = 64) -> np.ndarray:
        """float [n, H, W, 3] in 0-255 (not clipped, so small probes stay linear) -> the same after the VAE."""
        if base not in self._vaes:
            self._vaes[base] = self.load(self.base_location(base)).vae  # may train the base: outside no_grad
        vae = self._vaes[base]
        out = []
        with torch.no_grad():
            for start in range(0, len(images), batch_size):
                x = torch.from_numpy(np.asarray(images[start:start + batch_size], dtype=np.float32)).permute(0, 3, 1, 2)
                decoded = vae.decode(vae.encode((x / 127.5 - 1).to(vae.device, vae.dtype)).latent_dist.mean).sample
                out.append(((decoded.float().cpu() + 1) * 127.5).permute(0, 2, 3, 1).numpy())
        return np.concatenate(out).astype(np.float64)
