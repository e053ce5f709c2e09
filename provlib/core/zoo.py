"""The model zoo's foundation: datasets, base models, source models and their generations.

Each piece is a cached artifact (see ``store``) whose key includes the keys of everything it was built from, so
changing an upstream parameter rebuilds exactly what depends on it. The ``*_config`` methods are public: they
are the cache identities other zoos (suspects, attribution queries, watermarks) build their own keys from.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from diffusers import AutoencoderKL

from provlib.core import data as data_mod
from provlib.core import models, scenes
from provlib.core.config import Models
from provlib.core.copy_curve import copy_curve_config, copy_curve_recorder
from provlib.core.data import CaptionedImageSet
from provlib.core.errors import ParameterError
from provlib.core.fanout import fan_out
from provlib.core.fingerprint import Fingerprints
from provlib.core.generate import generate
from provlib.core.paths import cache_dir
from provlib.core.source import Source
from provlib.core.store import ArtifactStore, config_hash, derive_seed, levers_on
from provlib.core.train import train_denoiser, train_vae

# Bump a kind's version when its build code changes meaning, so old cache entries are not reused.
CODE_VERSION = {"dataset": 2, "vae": 1, "base": 1, "source": 1, "generations": 1, "suspect": 1,
                "descriptor": 1, "probe": 1, "answers": 1}
PAPER_NAMES = {"faces": "CelebA", "scenes": "CC3M", "v1": "SD-v1", "v2": "SD-v2"}


class Zoo:
    def __init__(self, preset, cache_root: str | Path | None = None, show_progress: bool = True):
        self.p = preset
        self.cache_root = Path(cache_root) if cache_root else cache_dir() / "artifacts"
        self.store = ArtifactStore(self.cache_root)
        self.show_progress = show_progress
        self.fingerprint = Fingerprints()

    # ---- data -------------------------------------------------------------------------------
    def dataset_config(self, domain: str, split: str) -> dict:
        w = self.p.world
        if w.data_source == "folder" and domain not in w.dataset_dirs:
            raise ParameterError(f"dataset_dirs['{domain}']", "a folder of images with captions.csv or metadata.jsonl "
                                 f"(the {domain} domain has no procedural data at paper scale)", sorted(w.dataset_dirs))
        n = {"licensed": self.p.watermark.dataset_size, "private": w.n_pretrain if domain == "generic" else w.n_private}.get(split, w.n_real)
        config = {"kind": "dataset", "v": CODE_VERSION["dataset"], "domain": domain, "split": split, "n": n,
                  "resolution": w.resolution, "seed": self.p.seed, "data_source": w.data_source}
        if w.data_source == "folder":
            # what the folder holds, not only where it is: an edited caption file or image rebuilds what depends on it
            config.update(folder=str(w.dataset_dirs[domain]), n_private=w.n_private, n_real=w.n_real,
                          contents=self.fingerprint(w.dataset_dirs[domain]))
        else:
            config.update(scene_caption_list_size=w.scene_caption_list_size, **levers_on(identity_grid=w.identity_grid))
        return config

    def dataset(self, domain: str, split: str) -> CaptionedImageSet:
        config = self.dataset_config(domain, split)
        w = self.p.world

        def build(tmp: Path):
            if w.data_source == "folder":
                full = data_mod.folder_dataset(config["folder"], w.resolution)
                part = data_mod.split_folder_dataset(full, split, w.n_private, w.n_real, self.p.seed)
            else:
                part = data_mod.procedural_domain(domain, split, config["n"], w.resolution, self.p.seed,
                                                  w.scene_caption_list_size, w.identity_grid)
            part.save(tmp)

        return CaptionedImageSet.load(self.store.get_or_build("dataset", config, build))

    def source(self, name: str | Source) -> Source:
        """The source named ``name`` (``"v1-faces"``), checked against the preset's sources."""
        source = Source.parse(name)
        if source not in self.p.sources:
            raise ParameterError("source", f"one of {self.p.source_names}", str(name))
        return source

    def source_domain(self, source: str | Source) -> str:
        """Where a source's prompts and its suspects' real data come from."""
        source = self.source(source)
        return source.domain if source.is_fine_tuned else self.p.world.base_source_domain

    def training_set(self, source: str | Source) -> CaptionedImageSet:
        """What the source model was trained on: the private domain split, or the pre-training set for a base."""
        if not self.has_known_training_set(source):
            raise ParameterError("source", "a fine-tuned source: a real checkpoint's pre-training data is not available",
                                 str(source))
        if not self.source(source).is_fine_tuned:
            return self.pretraining_set()
        images, w = self.dataset(*self.prompt_split(source)), self.p.world
        # the owner's data holds duplicates, as web data does: the first images appear duplicate_copies times in all
        # (the private split's order is a seeded shuffle of its captions, so which ones is random)
        return images.with_duplicates(range(min(w.private_duplicates, len(images))), w.duplicate_copies)

    def pretraining_set(self) -> CaptionedImageSet:
        """What the CPU-scale bases are pre-trained on: the generic images, a seeded few of them duplicated."""
        images, w = self.dataset("generic", "private"), self.p.world
        rng = np.random.default_rng(derive_seed(self.p.seed, "pretrain-duplicates"))
        chosen = np.sort(rng.choice(len(images), min(w.pretrain_duplicates, len(images)), replace=False))
        return images.with_duplicates(chosen, w.pretrain_duplicate_copies)

    def has_known_training_set(self, source: str | Source) -> bool:
        """Fine-tuned sources always; base-only sources only at CPU scale, where we pre-trained them."""
        return self.source(source).is_fine_tuned or not self.p.is_paper_scale

    def prompt_set(self, source: str | Source) -> CaptionedImageSet:
        """Captioned images to prompt a source with: its training set where known, else its domain's private split."""
        return self.dataset(*self.prompt_split(source))

    def prompt_split(self, source: str | Source) -> tuple[str, str]:
        """(domain, split) of ``prompt_set``: the training split where known, else the domain's private split."""
        source = self.source(source)
        if not self.has_known_training_set(source):
            return self.source_domain(source), "private"
        return (source.domain, "private") if source.is_fine_tuned else ("generic", "private")

    def public_split(self) -> tuple[str, str]:
        """(domain, split) of images anyone has: the generic pre-training set at CPU scale, else a real pool."""
        return ("generic", "private") if not self.p.is_paper_scale else (self.p.world.base_source_domain, "real")

    # ---- models -------------------------------------------------------------------------------
    def vae_config(self) -> dict:
        m, default = self.p.models, Models()
        shape = {"downsampling": "vae_downsampling", "latent_channels": "vae_latent_channels", "width": "vae_width"}
        return {"kind": "vae", "v": CODE_VERSION["vae"], "steps": m.vae_steps, "seed": self.p.seed,
                "data": config_hash(self.dataset_config("generic", "private")),  # a default shape stays out of the key
                **{k: getattr(m, f) for k, f in shape.items() if getattr(m, f) != getattr(default, f)}}

    def base_config(self, base: str) -> dict:
        p, pretrain = self.p, self.p.models.pretrain
        if p.is_paper_scale:
            location = str(p.models.base_checkpoints[base])
            return {"kind": "base", "checkpoint": location, "contents": self.fingerprint(location)}
        return {"kind": "base", "v": CODE_VERSION["base"], "base": base, "vae": config_hash(self.vae_config()),
                "data": config_hash(self.dataset_config("generic", "private")), "steps": pretrain.steps,
                "batch_size": pretrain.batch_size, "lr": pretrain.lr, "seed": derive_seed(p.seed, "base", base),
                **levers_on(duplicates=[p.world.pretrain_duplicates, p.world.pretrain_duplicate_copies]
                            if p.world.pretrain_duplicates else None, unet_width=p.models.unet_widths.get(base))}

    def base_location(self, base: str) -> str:
        """Folder (or hub id) of a pre-trained base pipeline; at CPU scale it is pre-trained here once and cached."""
        if base not in self.p.models.base_names:
            raise ParameterError("base", f"one of {self.p.models.base_names}", base)
        if self.p.is_paper_scale:
            return str(self.p.models.base_checkpoints[base])
        config = self.base_config(base)
        pretrain = self.p.models.pretrain

        def build(tmp: Path):
            pipe = models.build_tiny_pipeline(base, scenes.vocabulary(), self.vae(), config["seed"], config.get("unet_width"))
            losses = train_denoiser(pipe, self.pretraining_set(), steps=pretrain.steps,
                                    batch_size=pretrain.batch_size, lr=pretrain.lr, seed=config["seed"],
                                    train_text_encoder=True, checkpoint_dir=self.store.work_dir("base", config),
                                    checkpoint_every=self.p.runtime.checkpoint_every, desc=f"pre-train base {base}",
                                    show_progress=self.show_progress)
            models.save_pipeline(pipe, tmp)
            (tmp / "losses.json").write_text(json.dumps(losses))

        return str(self.store.get_or_build("base", config, build))

    def vae(self) -> AutoencoderKL:
        """The tiny autoencoder every CPU-scale base shares (trained once on the generic images)."""
        config = self.vae_config()

        def build(tmp: Path):
            m = self.p.models
            vae = models.build_tiny_vae(self.p.world.resolution, seed=self.p.seed, downsampling=m.vae_downsampling,
                                        latent_channels=m.vae_latent_channels, widths=models.vae_widths(m.vae_width))
            train_vae(vae, self.dataset("generic", "private").images, steps=self.p.models.vae_steps, batch_size=32,
                      lr=2e-3, seed=self.p.seed, show_progress=self.show_progress)
            vae.save_pretrained(tmp, safe_serialization=True)

        return AutoencoderKL.from_pretrained(self.store.get_or_build("vae", config, build), use_safetensors=True)

    def generate(self, pipe, prompts: list[str], *, seed: int, images_per_prompt: int = 1, desc: str = "generate",
                 show_progress: bool | None = None):
        """``provlib.core.generate.generate`` with the preset's sampler settings."""
        sampling = self.p.sampling
        return generate(pipe, prompts, images_per_prompt=images_per_prompt, seed=seed,
                        batch_size=sampling.batch_size, num_inference_steps=sampling.inference_steps,
                        guidance_scale=sampling.guidance_scale, resolution=self.p.world.resolution, desc=desc,
                        show_progress=self.show_progress if show_progress is None else show_progress)

    def load(self, location: str):
        return models.load_pipeline(location, device=self.p.runtime.device, dtype=self.p.runtime.dtype,
                                    allow_download=self.p.models.allow_download, parameter="base_checkpoints")

    def source_config(self, source: str | Source) -> dict:
        source, p = self.source(source), self.p
        if not source.is_fine_tuned:
            return self.base_config(source.base)
        recipe = p.models.source
        return {"kind": "source", "v": CODE_VERSION["source"], "base": config_hash(self.base_config(source.base)),
                "data": config_hash(self.dataset_config(source.domain, "private")), "steps": recipe.steps,
                "batch_size": recipe.batch_size, "lr": recipe.lr, "mixed_precision": p.runtime.mixed_precision,
                "seed": derive_seed(p.seed, "source", source.name),
                **levers_on(duplicates=[p.world.private_duplicates, p.world.duplicate_copies] if p.world.private_duplicates else None,
                            train_text_encoder=p.models.source_train_text_encoder)}

    def source_location(self, source: str | Source) -> str:
        """A source model: a base as it is, or a base fine-tuned on a private domain split (cached)."""
        source = self.source(source)
        if not source.is_fine_tuned:
            return self.base_location(source.base)
        config = self.source_config(source)

        def build(tmp: Path):
            pipe, losses = self._fine_tune_source(source, self.store.work_dir("source", config))
            models.save_pipeline(pipe, tmp)
            (tmp / "losses.json").write_text(json.dumps(losses))

        return str(self.store.get_or_build("source", config, build))

    def _fine_tune_source(self, source: Source, work: Path):
        """Fine-tune the source's base on its training set (resumable in ``work``), recording its copy curve on the way."""
        config, recipe = self.source_config(source), self.p.models.source
        pipe = self.load(self.base_location(source.base))
        record = copy_curve_recorder(self, source, pipe, work)
        losses = train_denoiser(pipe, self.training_set(source), steps=recipe.steps, batch_size=recipe.batch_size,
                                lr=recipe.lr, seed=config["seed"], checkpoint_dir=work,
                                train_text_encoder=self.p.models.source_train_text_encoder,
                                checkpoint_every=self.p.runtime.checkpoint_every,
                                mixed_precision=self.p.runtime.mixed_precision,
                                desc=f"fine-tune source {source}", show_progress=self.show_progress, after_step=record)
        self.store.get_or_build("copy_curve", copy_curve_config(self, source), record.save)
        return pipe, losses

    def copy_curve(self, source: str | Source) -> tuple[list[int], list[str], np.ndarray] | None:
        """A fine-tuned source's generations along its training: (steps, captions, uint8 [points, captions, seeds, H, W, 3]).

        Recorded while the source trains (``COPY_CURVE_POINTS`` points, ``copy_curve.CopyCurveRecorder.SEEDS`` seeds per caption,
        cached as its own artifact); for a source cached before curves were recorded, its fine-tuning is re-run once
        (seeded, so the same model) to record them. None for a base alone or a source whose training set is unknown.
        """
        source = self.source(source)
        if not source.is_fine_tuned:
            return None
        config = copy_curve_config(self, source)
        if not self.store.exists("copy_curve", config):
            self._fine_tune_source(source, self.store.work_dir("copy_curve", config))
        location = self.store.path("copy_curve", config)
        meta = json.loads((location / "copy_curve.json").read_text())
        return meta["steps"], meta["captions"], np.load(location / "copy_curve.npy", allow_pickle=False)

    def generations_config(self, source: str | Source) -> dict:
        p, name = self.p, self.source(source).name
        return {"kind": "generations", "v": CODE_VERSION["generations"], "source": config_hash(self.source_config(name)),
                "captions": config_hash(self.dataset_config(self.source_domain(name), "real")),
                "steps": p.sampling.inference_steps, "guidance": p.sampling.guidance_scale,
                "seed": derive_seed(p.seed, "generations", name)}

    def source_generations(self, source: str | Source) -> tuple[CaptionedImageSet, list[int]]:
        """The source's image for every caption of its domain's real pool (what an infringer would collect)."""
        name = self.source(source).name
        config = self.generations_config(name)

        def build(tmp: Path):
            pipe = self.load(self.source_location(name))
            out = self.generate(pipe, self.dataset(self.source_domain(name), "real").captions, seed=config["seed"],
                                desc=f"generate with {name}")
            out.as_dataset(f"gen/{name}").save(tmp)
            (tmp / "seeds.json").write_text(json.dumps(out.seeds))

        path = self.store.get_or_build("generations", config, build)
        return CaptionedImageSet.load(path), json.loads((path / "seeds.json").read_text())

    def build_sources(self, n_jobs: int | None = None) -> dict[str, str]:
        """VAE, then both bases in parallel, then the fine-tuned sources in parallel."""
        n_jobs = self.p.runtime.n_jobs if n_jobs is None else n_jobs
        if not self.p.is_paper_scale:
            self.vae()
            self.dataset("generic", "private")
        for domain in self.p.world.source_domains:
            self.dataset(domain, "private")
        pending = [b for b in self.p.models.base_names if not self.store.exists("base", self.base_config(b))]
        fan_out(self, "base_location", pending, n_jobs, desc="base models")
        fine_tuned = [s.name for s in self.p.sources if s.is_fine_tuned]
        pending = [s for s in fine_tuned if not self.store.exists("source", self.source_config(s))]
        fan_out(self, "source_location", pending, n_jobs, desc="source models")
        return {s: self.source_location(s) for s in self.p.source_names}
