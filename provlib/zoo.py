"""The model zoo: base models, source models, their generations, and the suspect models.

Each piece is a cached artifact (see ``store``) whose key includes the keys of everything it was
built from, so changing an upstream parameter rebuilds exactly what depends on it.
"""
from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from diffusers import UNet2DConditionModel
from joblib import Parallel, delayed
from tqdm.auto import tqdm

from . import data as data_mod
from . import models, scenes
from .data import CaptionedImageSet
from .descriptor import load_descriptor, save_descriptor, train_descriptor
from .distance import EmbeddingSpace, PixelSpace
from .errors import ParameterError
from .generate import generate
from .keys import CandidateProbe
from .paths import cache_dir
from .presets import Preset
from .store import ArtifactStore, config_hash
from .train import train_denoiser, train_vae

# Bump a kind's version when its build code changes meaning, so old cache entries are not reused.
CODE_VERSION = {"dataset": 2, "vae": 1, "base": 1, "source": 1, "generations": 1, "suspect": 1,
                "descriptor": 1, "probe": 1, "answers": 1}
PAPER_NAMES = {"faces": "CelebA", "scenes": "CC3M", "v1": "SD-v1", "v2": "SD-v2"}


def derive_seed(*parts) -> int:
    """A stable 31-bit seed from any mix of ints and strings."""
    digest = config_hash({"parts": [str(p) for p in parts]})
    return int(digest[:8], 16) % (2**31)


@dataclass(frozen=True)
class SuspectSpec:
    model_id: str
    source: str
    rho: float
    seed: int
    split: str      # "shadow" (the defender may train on it) or "test" (evaluation only)
    base: str       # the pre-trained model the suspect fine-tunes
    domain: str     # where its captions and real images come from


class Zoo:
    def __init__(self, preset: Preset, cache_root: str | Path | None = None, show_progress: bool = True):
        self.p = preset
        self.cache_root = Path(cache_root) if cache_root else cache_dir() / "artifacts"
        self.store = ArtifactStore(self.cache_root)
        self.show_progress = show_progress

    # ---- data -------------------------------------------------------------------------------
    def _dataset_config(self, domain: str, split: str) -> dict:
        p = self.p
        n = p.n_pretrain if (domain == "generic" and split == "private") else (p.n_private if split == "private" else p.n_real)
        config = {"kind": "dataset", "v": CODE_VERSION["dataset"], "domain": domain, "split": split, "n": n,
                  "resolution": p.resolution, "seed": p.seed, "data_source": p.data_source}
        if p.data_source == "folder":
            config.update(folder=str(p.dataset_dirs[domain]), n_private=p.n_private, n_real=p.n_real)
        else:
            config.update(scene_caption_list_size=p.scene_caption_list_size)
        return config

    def dataset(self, domain: str, split: str) -> CaptionedImageSet:
        config = self._dataset_config(domain, split)

        def build(tmp: Path):
            if self.p.data_source == "folder":
                full = data_mod.folder_dataset(config["folder"], self.p.resolution)
                part = data_mod.split_folder_dataset(full, split, self.p.n_private, self.p.n_real, self.p.seed)
            else:
                part = data_mod.procedural_domain(domain, split, config["n"], self.p.resolution, self.p.seed,
                                                  self.p.scene_caption_list_size)
            part.save(tmp)

        return CaptionedImageSet.load(self.store.get_or_build("dataset", config, build))

    def source_domain(self, source: str) -> str:
        """Where a source's prompts and its suspects' real data come from."""
        self._check_source(source)
        return source.split("-", 1)[1] if "-" in source else self.p.base_source_domain

    def training_set(self, source: str) -> CaptionedImageSet:
        """What the source model was trained on: the private domain split, or the pre-training set for a base."""
        self._check_source(source)
        if not self.has_known_training_set(source):
            raise ParameterError("source", "a fine-tuned source: a real checkpoint's pre-training data is not available", source)
        return self.dataset(*self._prompt_split(source))

    def has_known_training_set(self, source: str) -> bool:
        """Fine-tuned sources always; base-only sources only at CPU scale, where we pre-trained them."""
        return "-" in source or not self.p.is_paper_scale

    def prompt_set(self, source: str) -> CaptionedImageSet:
        """Captioned images to prompt a source with: its training set where known, else its domain's private split."""
        return self.dataset(*self._prompt_split(source))

    def _prompt_split(self, source: str) -> tuple[str, str]:
        """(domain, split) of ``prompt_set``: the training split where known, else the domain's private split."""
        if not self.has_known_training_set(source):
            return self.source_domain(source), "private"
        return (source.split("-", 1)[1], "private") if "-" in source else ("generic", "private")

    # ---- models -------------------------------------------------------------------------------
    def _vae_config(self) -> dict:
        p = self.p
        return {"kind": "vae", "v": CODE_VERSION["vae"], "steps": p.vae_steps, "seed": p.seed,
                "data": config_hash(self._dataset_config("generic", "private"))}

    def _base_config(self, base: str) -> dict:
        p = self.p
        if p.is_paper_scale:
            return {"kind": "base", "checkpoint": str(p.base_checkpoints[base])}
        return {"kind": "base", "v": CODE_VERSION["base"], "base": base, "vae": config_hash(self._vae_config()),
                "data": config_hash(self._dataset_config("generic", "private")), "steps": p.pretrain_steps,
                "batch_size": p.pretrain_batch_size, "lr": p.pretrain_lr, "seed": derive_seed(p.seed, "base", base)}

    def base_location(self, base: str) -> str:
        """Folder (or hub id) of a pre-trained base pipeline; at CPU scale it is pre-trained here once and cached."""
        if base not in self.p.base_names:
            raise ParameterError("base", f"one of {self.p.base_names}", base)
        if self.p.is_paper_scale:
            return str(self.p.base_checkpoints[base])
        config = self._base_config(base)

        def build(tmp: Path):
            vae = self._vae()
            pipe = models.build_tiny_pipeline(base, scenes.vocabulary(), vae, seed=config["seed"])
            losses = train_denoiser(pipe, self.dataset("generic", "private"), steps=self.p.pretrain_steps,
                                    batch_size=self.p.pretrain_batch_size, lr=self.p.pretrain_lr, seed=config["seed"],
                                    train_text_encoder=True, checkpoint_dir=self.store.work_dir("base", config),
                                    checkpoint_every=self.p.checkpoint_every, desc=f"pre-train base {base}",
                                    show_progress=self.show_progress)
            models.save_pipeline(pipe, tmp)
            (tmp / "losses.json").write_text(json.dumps(losses))

        return str(self.store.get_or_build("base", config, build))

    def _vae(self):
        config = self._vae_config()

        def build(tmp: Path):
            vae = models.build_tiny_vae(self.p.resolution, seed=self.p.seed)
            train_vae(vae, self.dataset("generic", "private").images, steps=self.p.vae_steps, batch_size=32, lr=2e-3,
                      seed=self.p.seed, show_progress=self.show_progress)
            vae.save_pretrained(tmp, safe_serialization=True)

        path = self.store.get_or_build("vae", config, build)
        from diffusers import AutoencoderKL
        return AutoencoderKL.from_pretrained(path, use_safetensors=True)

    def generate(self, pipe, prompts: list[str], *, seed: int, images_per_prompt: int = 1, desc: str = "generate",
                 show_progress: bool | None = None):
        """``provlib.generate.generate`` with the preset's sampler settings."""
        p = self.p
        return generate(pipe, prompts, images_per_prompt=images_per_prompt, seed=seed,
                        batch_size=p.generation_batch_size, num_inference_steps=p.inference_steps,
                        guidance_scale=p.guidance_scale, resolution=p.resolution, desc=desc,
                        show_progress=self.show_progress if show_progress is None else show_progress)

    def load(self, location: str):
        return models.load_pipeline(location, device=self.p.device, dtype=self.p.dtype,
                                    allow_download=self.p.allow_download, parameter="base_checkpoints")

    def _check_source(self, source: str) -> None:
        if source not in self.p.source_names:
            raise ParameterError("source", f"one of {self.p.source_names}", source)

    def _source_config(self, source: str) -> dict:
        self._check_source(source)
        p = self.p
        if "-" not in source:
            return self._base_config(source)
        base, domain = source.split("-", 1)
        return {"kind": "source", "v": CODE_VERSION["source"], "base": config_hash(self._base_config(base)),
                "data": config_hash(self._dataset_config(domain, "private")), "steps": p.source_steps,
                "batch_size": p.source_batch_size, "lr": p.source_lr, "mixed_precision": p.mixed_precision,
                "seed": derive_seed(p.seed, "source", source)}

    def source_location(self, source: str) -> str:
        """A source model: a base as it is, or a base fine-tuned on a private domain split (cached)."""
        config = self._source_config(source)
        if config["kind"] == "base":
            return self.base_location(source)
        base = source.split("-", 1)[0]

        def build(tmp: Path):
            pipe = self.load(self.base_location(base))
            losses = train_denoiser(pipe, self.training_set(source), steps=self.p.source_steps,
                                    batch_size=self.p.source_batch_size, lr=self.p.source_lr, seed=config["seed"],
                                    checkpoint_dir=self.store.work_dir("source", config),
                                    checkpoint_every=self.p.checkpoint_every, mixed_precision=self.p.mixed_precision,
                                    desc=f"fine-tune source {source}", show_progress=self.show_progress)
            models.save_pipeline(pipe, tmp)
            (tmp / "losses.json").write_text(json.dumps(losses))

        return str(self.store.get_or_build("source", config, build))

    def source_generations(self, source: str) -> tuple[CaptionedImageSet, list[int]]:
        """The source's image for every caption of its domain's real pool (what an infringer would collect)."""
        p = self.p
        domain = self.source_domain(source)
        config = {"kind": "generations", "v": CODE_VERSION["generations"], "source": config_hash(self._source_config(source)),
                  "captions": config_hash(self._dataset_config(domain, "real")), "steps": p.inference_steps,
                  "guidance": p.guidance_scale, "seed": derive_seed(p.seed, "generations", source)}

        def build(tmp: Path):
            pipe = self.load(self.source_location(source))
            out = self.generate(pipe, self.dataset(domain, "real").captions, seed=config["seed"],
                                desc=f"generate with {source}")
            out.as_dataset(f"gen/{source}").save(tmp)
            (tmp / "seeds.json").write_text(json.dumps(out.seeds))

        path = self.store.get_or_build("generations", config, build)
        return CaptionedImageSet.load(path), json.loads((path / "seeds.json").read_text())

    # ---- suspects -------------------------------------------------------------------------------
    def suspect_base(self, source: str) -> str:
        if self.p.suspect_base != "other":
            return self.p.suspect_base
        source_base = source.split("-", 1)[0]
        return next(b for b in self.p.base_names if b != source_base)

    def suspect_specs(self) -> list[SuspectSpec]:
        p = self.p
        n_shadow = max(1, min(p.suspects_per_setting - 1, round(p.suspects_per_setting * p.shadow_fraction)))
        specs = []
        for source in p.source_names:
            for rho in (0.0,) + tuple(p.rho_values):
                for k in range(p.suspects_per_setting):
                    specs.append(SuspectSpec(
                        model_id=f"{source}_rho{round(rho * 100):03d}_{k:02d}", source=source, rho=float(rho),
                        seed=derive_seed(p.seed, "suspect", source, rho, k), split="shadow" if k < n_shadow else "test",
                        base=self.suspect_base(source), domain=self.source_domain(source)))
        return specs

    def _suspect_config(self, spec: SuspectSpec) -> dict:
        p = self.p
        config = {"kind": "suspect", "v": CODE_VERSION["suspect"], "spec": asdict(spec),
                  "base": config_hash(self._base_config(spec.base)),
                  "real": config_hash(self._dataset_config(spec.domain, "real")), "samples": p.suspect_samples,
                  **self.fine_tune_recipe()}
        if spec.rho > 0:
            config["source"] = config_hash(self._source_config(spec.source))
            config["generation"] = [p.inference_steps, p.guidance_scale]
        return config

    def suspect_training_set(self, spec: SuspectSpec) -> CaptionedImageSet:
        """M samples of the domain's real pool; for a share rho of them the image is the source's generation."""
        real = self.dataset(spec.domain, "real")
        rng = np.random.default_rng(spec.seed)
        chosen = rng.choice(len(real), size=self.p.suspect_samples, replace=False)
        n_generated = int(round(spec.rho * self.p.suspect_samples))
        parts = [real.subset(chosen[n_generated:])]
        if n_generated:
            parts.insert(0, self.generated_pool(spec).subset(chosen[:n_generated]))
        return CaptionedImageSet.concat(parts)

    def generated_pool(self, spec: SuspectSpec) -> CaptionedImageSet:
        """The source's generations an infringing suspect draws from (a watermarking zoo stamps them first)."""
        return self.source_generations(spec.source)[0]

    def suspect_location(self, spec: SuspectSpec) -> str:
        return self.fine_tuned_unet("suspect", self._suspect_config(spec), spec.base, lambda: self.suspect_training_set(spec),
                                    spec.seed, spec.model_id, {"spec": asdict(spec)})

    def fine_tune_recipe(self) -> dict:
        """The suspects' fine-tuning hyper-parameters, as they enter every fine-tuned model's cache key."""
        p = self.p
        return {"steps": p.suspect_steps, "batch_size": p.suspect_batch_size, "lr": p.suspect_lr,
                "mixed_precision": p.mixed_precision}

    def fine_tuned_unet(self, kind: str, config: dict, base: str, training_set, seed: int, desc: str, meta: dict) -> str:
        """A base's UNet fine-tuned with the suspect recipe on ``training_set()`` (cached as ``kind``; resumable)."""
        def build(tmp: Path):
            pipe = self.load(self.base_location(base))
            train_set = training_set()
            losses = train_denoiser(pipe, train_set, steps=self.p.suspect_steps, batch_size=self.p.suspect_batch_size,
                                    lr=self.p.suspect_lr, seed=seed, checkpoint_dir=self.store.work_dir(kind, config),
                                    checkpoint_every=self.p.checkpoint_every, mixed_precision=self.p.mixed_precision,
                                    desc=desc, show_progress=False)
            pipe.unet.save_pretrained(tmp / "unet", safe_serialization=True)
            (tmp / "suspect.json").write_text(json.dumps({**meta, "train_ids": train_set.ids, "losses": losses}))

        return str(self.store.get_or_build(kind, config, build))

    def load_fine_tuned(self, base: str, location: str):
        """A black-box pipeline: the base with a fine-tuned UNet (saved by ``fine_tuned_unet``) swapped in."""
        pipe = self.load(self.base_location(base))
        unet = UNet2DConditionModel.from_pretrained(Path(location) / "unet", use_safetensors=True,
                                                    torch_dtype=getattr(torch, self.p.dtype))
        pipe.unet = unet.to(self.p.device)
        return pipe

    def load_suspect(self, spec: SuspectSpec):
        """The suspect as a black-box pipeline: its base with the fine-tuned UNet swapped in."""
        return self.load_fine_tuned(spec.base, self.suspect_location(spec))

    def build_suspects(self, specs: list[SuspectSpec], n_jobs: int | None = None) -> list[str]:
        """Build every suspect, fanning out over ``n_jobs`` worker processes (1 = in this process)."""
        n_jobs = self.p.n_jobs if n_jobs is None else n_jobs
        # shared inputs first, in this process, so workers only read finished artifacts
        for source in sorted({s.source for s in specs if s.rho > 0}):
            self.source_generations(source)
        for base in sorted({s.base for s in specs}):
            self.base_location(base)
        for domain in sorted({s.domain for s in specs}):
            self.dataset(domain, "real")
        pending = [s for s in specs if not self.store.exists("suspect", self._suspect_config(s))]
        self.fan_out("suspect_location", pending, n_jobs, desc="suspect models")
        return [self.suspect_location(s) for s in specs]

    def build_sources(self, n_jobs: int | None = None) -> dict[str, str]:
        """VAE, then both bases in parallel, then the fine-tuned sources in parallel."""
        n_jobs = self.p.n_jobs if n_jobs is None else n_jobs
        if not self.p.is_paper_scale:
            self._vae()
            self.dataset("generic", "private")
        for domain in self.p.source_domains:
            self.dataset(domain, "private")
        pending = [b for b in self.p.base_names if not self.store.exists("base", self._base_config(b))]
        self.fan_out("base_location", pending, n_jobs, desc="base models")
        fine_tuned = [s for s in self.p.source_names if "-" in s]
        pending = [s for s in fine_tuned if not self.store.exists("source", self._source_config(s))]
        self.fan_out("source_location", pending, n_jobs, desc="source models")
        return {s: self.source_location(s) for s in self.p.source_names}

    def fan_out(self, method: str, items: list, n_jobs: int, desc: str) -> None:
        """Call ``self.<method>(item)`` for every item, in ``n_jobs`` worker processes (see ``fan_out``)."""
        fan_out(self, method, items, n_jobs, desc)

    # ---- instance-level attribution ------------------------------------------------------------
    def public_split(self) -> tuple[str, str]:
        """(domain, split) of images anyone has: the generic pre-training set at CPU scale, else a real pool."""
        return ("generic", "private") if not self.p.is_paper_scale else (self.p.base_source_domain, "real")

    def _descriptor_config(self) -> dict:
        p = self.p
        domain, split = self.public_split()
        return {"kind": "descriptor", "v": CODE_VERSION["descriptor"], "steps": p.descriptor_steps, "seed": p.seed,
                "data": config_hash(self._dataset_config(domain, split)), "domain": domain, "split": split}

    def copy_descriptor(self):
        """The embedding space's descriptor, trained on public images only (generic pre-training data)."""
        config = self._descriptor_config()

        def build(tmp: Path):
            images = self.dataset(config["domain"], config["split"]).images
            model, losses = train_descriptor(images, steps=self.p.descriptor_steps, seed=self.p.seed,
                                             show_progress=self.show_progress)
            save_descriptor(model, tmp)
            (tmp / "losses.json").write_text(json.dumps(losses))

        return load_descriptor(self.store.get_or_build("descriptor", config, build))

    def feature_space(self, name: str):
        """'pixel' (normalized RMS) or 'embedding' (copy-descriptor cosine distance)."""
        if name == "pixel":
            return PixelSpace()
        if name == "embedding":
            return EmbeddingSpace(self.copy_descriptor())
        raise ParameterError("feature_space", "'pixel' or 'embedding'", name)

    def _candidates_config(self, source: str) -> dict:
        data = self._dataset_config(*self._prompt_split(source))
        return {"source": source, "data": config_hash(data), "n": self.p.key_candidates, "seed": self.p.seed}

    def key_candidates(self, source: str) -> CaptionedImageSet:
        """Up to ``key_candidates`` captioned samples the source can be prompted with (its training set where known).

        Captions are taken once each, so a candidate prompt names one training image.
        """
        pool = self.prompt_set(source)
        _, first = np.unique(np.asarray(pool.captions), return_index=True)
        rng = np.random.default_rng(derive_seed(self.p.seed, "key-candidates", source))
        picks = rng.permutation(np.sort(first))[:self.p.key_candidates]
        return pool.subset(np.sort(picks))

    def candidate_probe(self, source: str) -> CandidateProbe:
        """The source's and the reference model's generations for every candidate prompt (cached)."""
        p = self.p
        reference = self.suspect_base(source)
        config = {"kind": "probe", "v": CODE_VERSION["probe"], "candidates": self._candidates_config(source),
                  "source": config_hash(self._source_config(source)), "reference": config_hash(self._base_config(reference)),
                  "seeds": p.probe_seeds, "sampler": [p.inference_steps, p.guidance_scale],
                  "seed": derive_seed(p.seed, "probe", source)}

        def build(tmp: Path):
            candidates = self.key_candidates(source)
            shape = (len(candidates), p.probe_seeds, p.resolution, p.resolution, 3)
            images = {}
            for role, location in (("source", self.source_location(source)), ("reference", self.base_location(reference))):
                images[role] = self.generate(self.load(location), candidates.captions, seed=config["seed"],
                                             images_per_prompt=p.probe_seeds, desc=f"key candidates: {source} ({role})"
                                             ).images.reshape(shape)
            known = self.has_known_training_set(source)
            CandidateProbe(candidates.captions, images["source"], images["reference"],
                           candidates.images if known else None).save(tmp)

        return CandidateProbe.load(self.store.get_or_build("probe", config, build))

    def _answers_config(self, spec: SuspectSpec, prompts_of: str | None = None) -> dict:
        p = self.p
        config = {"kind": "answers", "v": CODE_VERSION["answers"], "suspect": config_hash(self._suspect_config(spec)),
                  "candidates": self._candidates_config(spec.source), "k": p.query_images,
                  "sampler": [p.inference_steps, p.guidance_scale], "seed": derive_seed(p.seed, "query", spec.model_id)}
        if prompts_of is not None and prompts_of != spec.source:
            self._check_source(prompts_of)
            captions = self.key_candidates(prompts_of).captions
            if captions != self.key_candidates(spec.source).captions:
                # keyed by the prompts themselves: sources sharing a caption list share one answer set
                config["candidates"] = {"captions": config_hash({"captions": list(captions)})}
        return config

    def suspect_answers(self, spec: SuspectSpec, prompts_of: str | None = None) -> np.ndarray:
        """The suspect's k images for every candidate prompt of a source: uint8 [P, k, H, W, 3] (cached).

        ``prompts_of`` defaults to the suspect's own source; another source's prompts are what scoring a
        suspect against every source needs (notebook 05). Queried once for all candidates so that every
        key set and every N reuses them; a method that uses N keys is charged N x k queries.
        """
        p = self.p
        config = self._answers_config(spec, prompts_of)

        def build(tmp: Path):
            prompts = self.key_candidates(prompts_of or spec.source).captions
            out = self.generate(self.load_suspect(spec), prompts, seed=config["seed"], images_per_prompt=p.query_images,
                                desc=f"query {spec.model_id}")
            np.save(tmp / "answers.npy", out.images.reshape(len(prompts), p.query_images, *out.images.shape[1:]))

        return np.load(self.store.get_or_build("answers", config, build) / "answers.npy")

    def build_answers(self, specs: list[SuspectSpec], n_jobs: int | None = None, prompts_of: str | None = None) -> None:
        """Query every suspect with its source's (or ``prompts_of``'s) candidate prompts, in worker processes."""
        for source in sorted({s.source for s in specs} | ({prompts_of} if prompts_of else set())):
            self.key_candidates(source)
        pending = [s for s in specs if not self.store.exists("answers", self._answers_config(s, prompts_of))]
        self.build_suspects(pending, n_jobs)
        self.fan_out("_answers_for", [(s, prompts_of) for s in pending], self.p.n_jobs if n_jobs is None else n_jobs,
                     desc="query suspects")

    def _answers_for(self, item: tuple[SuspectSpec, str | None]) -> np.ndarray:
        return self.suspect_answers(*item)

    def suspect_record(self, spec: SuspectSpec) -> dict:
        meta = json.loads((Path(self.suspect_location(spec)) / "suspect.json").read_text())
        n_generated = sum(i.startswith("gen/") for i in meta["train_ids"])
        return {**asdict(spec), "n_generated": n_generated, "n_real": len(meta["train_ids"]) - n_generated,
                "steps": len(meta["losses"]), "final_loss": float(np.mean(meta["losses"][-50:])),
                "artifact": os.path.relpath(self.suspect_location(spec), self.cache_root)}

    def manifest(self, specs: list[SuspectSpec] | None = None) -> pd.DataFrame:
        specs = self.suspect_specs() if specs is None else specs
        return pd.DataFrame([self.suspect_record(s) for s in specs])


def fan_out(owner, method: str, items: list, n_jobs: int, desc: str) -> None:
    """Call ``owner.<method>(item)`` for every item, in ``n_jobs`` worker processes (1 = in this process).

    ``owner`` is a zoo built as ``type(owner)(preset, cache_root, show_progress)``; each worker rebuilds it, gets
    an equal share of the cores and leaves its results in the shared artifact store.
    """
    if not items:
        return
    n_jobs = max(1, min(n_jobs, len(items)))
    if n_jobs == 1:
        iterator = (getattr(owner, method)(item) for item in items)
    else:
        threads = max(1, (os.cpu_count() or 1) // n_jobs)
        iterator = Parallel(n_jobs=n_jobs, return_as="generator_unordered")(
            delayed(_run_in_worker)(type(owner), owner.p, str(owner.cache_root), method, item, threads) for item in items)
    for _ in tqdm(iterator, total=len(items), desc=desc, disable=not owner.show_progress):
        pass


def _run_in_worker(owner_class, preset: Preset, cache_root: str, method: str, item, threads: int) -> None:
    torch.set_num_threads(threads)
    getattr(owner_class(preset, cache_root, show_progress=False), method)(item)
