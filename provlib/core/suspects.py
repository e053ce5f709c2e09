"""The suspect zoo: models fine-tuned on M samples of a domain's real pool, a share ρ of them a source's generations.

A suspect is what the defender is asked about. Innocent suspects (ρ = 0) never see generated images; infringing
ones replace a share ρ of their real images by the source's generations for the same captions. Each setting's
first models are *shadow* models (the defender may build and use them), the rest *test* models (evaluation only).
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
from transformers import CLIPTextModel

from provlib.core.data import CaptionedImageSet
from provlib.core.fanout import fan_out
from provlib.core.source import Source
from provlib.core.store import config_hash, derive_seed, levers_on
from provlib.core.train import train_denoiser
from provlib.core.zoo import CODE_VERSION, Zoo


@dataclass(frozen=True)
class SuspectSpec:
    model_id: str
    source: str     # the source's name (``Source.name``): a string, so cache keys and tables stay plain text
    rho: float
    seed: int
    split: str      # "shadow" (the defender may train on it) or "test" (evaluation only)
    base: str       # the pre-trained model the suspect fine-tunes
    domain: str     # where its captions and real images come from


class SuspectZoo(Zoo):
    def suspect_base(self, source: str | Source) -> str:
        """The base a suspect of ``source`` fine-tunes: the preset's ``suspect_base``, or the other base."""
        if self.p.suspects.base != "other":
            return self.p.suspects.base
        source_base = self.source(source).base
        return next(b for b in self.p.models.base_names if b != source_base)

    def suspect_specs(self) -> list[SuspectSpec]:
        p, s = self.p, self.p.suspects
        specs = []
        for source in p.source_names:
            base, domain = self.suspect_base(source), self.source_domain(source)
            for rho in (0.0,) + tuple(s.rho_values):
                count = (s.innocents or s.per_setting) if rho == 0 else s.per_setting
                n_shadow = max(1, min(count - 1, round(count * s.shadow_fraction)))
                for suspect_base in self.innocent_bases(base) if rho == 0 else [base]:
                    # the suspect base's innocents keep their names; another base's carry it in theirs
                    tag = "" if suspect_base == base else f"{suspect_base}-"
                    for k in range(count):
                        # an innocent's seed names its (base, domain) group, not the source: one model serves them all
                        seed = derive_seed(p.seed, "innocent", suspect_base, domain, k) if rho == 0 else \
                            derive_seed(p.seed, "suspect", source, rho, k)
                        specs.append(SuspectSpec(
                            model_id=f"{source}_rho{round(rho * 100):03d}_{tag}{k:02d}", source=source, rho=float(rho),
                            seed=seed, split="shadow" if k < n_shadow else "test", base=suspect_base, domain=domain))
        return specs

    def innocent_bases(self, suspect_base: str) -> list[str]:
        """The bases whose innocent models a source lists: its suspect base first, then (with
        ``innocents_on_every_base``) every other base."""
        if not self.p.suspects.innocents_on_every_base:
            return [suspect_base]
        return [suspect_base] + [b for b in self.p.models.base_names if b != suspect_base]

    def trained_models(self, specs: list[SuspectSpec]) -> dict[str, str]:
        """model_id -> the trained model it lists (its cache key): listings of one shared innocent map to one key."""
        return {s.model_id: config_hash(self.suspect_config(s)) for s in specs}

    def distinct_models(self, specs: list[SuspectSpec]) -> list[SuspectSpec]:
        """One listing per trained model (an innocent listed under several sources is one model): for counts over
        models rather than over (source, model) verdicts, such as naming a suspect's source."""
        model_of, first = self.trained_models(specs), {}
        for spec in specs:
            first.setdefault(model_of[spec.model_id], spec)
        return list(first.values())

    def recipe_of(self, kind: str):
        """The fine-tuning recipe of a model ``kind`` (a cache kind such as ``"suspect"``): the suspects' recipe."""
        return self.p.suspects.recipe

    def fine_tune_recipe(self, kind: str = "suspect") -> dict:
        """A fine-tuned kind's hyper-parameters, as they enter every fine-tuned model's cache key."""
        recipe = self.recipe_of(kind)
        return {"steps": recipe.steps, "batch_size": recipe.batch_size, "lr": recipe.lr,
                "mixed_precision": self.p.runtime.mixed_precision,
                **levers_on(train_text_encoder=self.p.suspects.train_text_encoder)}

    def suspect_config(self, spec: SuspectSpec) -> dict:
        p = self.p
        identity = asdict(spec)
        if spec.rho == 0:  # an innocent model is the same whichever source it is listed under
            identity = {k: v for k, v in identity.items() if k not in ("model_id", "source")}
        config = {"kind": "suspect", "v": CODE_VERSION["suspect"], "spec": identity,
                  "base": config_hash(self.base_config(spec.base)),
                  "real": config_hash(self.dataset_config(spec.domain, "real")), "samples": p.suspects.samples,
                  **self.fine_tune_recipe()}
        if spec.rho > 0:
            config["source"] = config_hash(self.source_config(spec.source))
            config["generation"] = [p.sampling.inference_steps, p.sampling.guidance_scale]
        return config

    def suspect_training_set(self, spec: SuspectSpec) -> CaptionedImageSet:
        """M samples of the domain's real pool; for a share rho of them the image is the source's generation."""
        real = self.dataset(spec.domain, "real")
        rng = np.random.default_rng(spec.seed)
        chosen = rng.choice(len(real), size=self.p.suspects.samples, replace=False)
        n_generated = int(round(spec.rho * self.p.suspects.samples))
        parts = [real.subset(chosen[n_generated:])]
        if n_generated:
            parts.insert(0, self.generated_pool(spec).subset(chosen[:n_generated]))
        return CaptionedImageSet.concat(parts)

    def generated_pool(self, spec: SuspectSpec) -> CaptionedImageSet:
        """The source's generations an infringing suspect draws from (a watermarking zoo stamps them first)."""
        return self.source_generations(spec.source)[0]

    def suspect_location(self, spec: SuspectSpec) -> str:
        return self.fine_tuned_unet("suspect", self.suspect_config(spec), spec.base, lambda: self.suspect_training_set(spec),
                                    spec.seed, spec.model_id, {"spec": asdict(spec)})

    def fine_tuned_unet(self, kind: str, config: dict, base: str, training_set, seed: int, desc: str, meta: dict) -> str:
        """A base's UNet fine-tuned with ``kind``'s recipe on ``training_set()`` (cached as ``kind``; resumable)."""
        recipe, runtime = self.recipe_of(kind), self.p.runtime

        def build(tmp: Path):
            pipe = self.load(self.base_location(base))
            train_set = training_set()
            losses = train_denoiser(pipe, train_set, steps=recipe.steps, batch_size=recipe.batch_size, lr=recipe.lr,
                                    seed=seed, checkpoint_dir=self.store.work_dir(kind, config),
                                    train_text_encoder=self.p.suspects.train_text_encoder,
                                    checkpoint_every=runtime.checkpoint_every, mixed_precision=runtime.mixed_precision,
                                    desc=desc, show_progress=False)
            pipe.unet.save_pretrained(tmp / "unet", safe_serialization=True)
            if self.p.suspects.train_text_encoder:
                pipe.text_encoder.save_pretrained(tmp / "text_encoder", safe_serialization=True)
            (tmp / "suspect.json").write_text(json.dumps({**meta, "train_ids": train_set.ids, "losses": losses}))

        return str(self.store.get_or_build(kind, config, build))

    def load_fine_tuned(self, base: str, location: str):
        """A black-box pipeline: the base with a fine-tuned UNet (saved by ``fine_tuned_unet``) swapped in."""
        pipe = self.load(self.base_location(base))
        unet = UNet2DConditionModel.from_pretrained(Path(location) / "unet", use_safetensors=True,
                                                    torch_dtype=getattr(torch, self.p.runtime.dtype))
        pipe.unet = unet.to(self.p.runtime.device)
        if (Path(location) / "text_encoder").is_dir():  # fine-tuned with its text encoder
            encoder = CLIPTextModel.from_pretrained(Path(location) / "text_encoder", use_safetensors=True,
                                                    torch_dtype=getattr(torch, self.p.runtime.dtype))
            pipe.text_encoder = encoder.to(self.p.runtime.device)
        return pipe

    def load_suspect(self, spec: SuspectSpec):
        """The suspect as a black-box pipeline: its base with the fine-tuned UNet swapped in."""
        return self.load_fine_tuned(spec.base, self.suspect_location(spec))

    def build_suspects(self, specs: list[SuspectSpec], n_jobs: int | None = None) -> list[str]:
        """Build every suspect, fanning out over ``n_jobs`` worker processes (1 = in this process)."""
        n_jobs = self.p.runtime.n_jobs if n_jobs is None else n_jobs
        # shared inputs first, in this process, so workers only read finished artifacts
        for source in sorted({s.source for s in specs if s.rho > 0}):
            self.source_generations(source)
        for base in sorted({s.base for s in specs}):
            self.base_location(base)
        for domain in sorted({s.domain for s in specs}):
            self.dataset(domain, "real")
        # an innocent model listed under several sources is one artifact: build it once
        pending = [s for s in self.distinct_models(specs) if not self.store.exists("suspect", self.suspect_config(s))]
        fan_out(self, "suspect_location", pending, n_jobs, desc="suspect models")
        return [self.suspect_location(s) for s in specs]

    def training_record(self, spec: SuspectSpec) -> dict:
        """What ``fine_tuned_unet`` saved beside the model: its spec, the ids of its training images, its losses."""
        return json.loads((Path(self.suspect_location(spec)) / "suspect.json").read_text())

    def suspect_record(self, spec: SuspectSpec) -> dict:
        meta = self.training_record(spec)
        n_generated = sum(i.startswith("gen/") for i in meta["train_ids"])
        return {**asdict(spec), "n_generated": n_generated, "n_real": len(meta["train_ids"]) - n_generated,
                "steps": len(meta["losses"]), "final_loss": float(np.mean(meta["losses"][-50:])),
                "artifact": os.path.relpath(self.suspect_location(spec), self.cache_root)}

    def manifest(self, specs: list[SuspectSpec] | None = None) -> pd.DataFrame:
        specs = self.suspect_specs() if specs is None else specs
        return pd.DataFrame([self.suspect_record(s) for s in specs])
