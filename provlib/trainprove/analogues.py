"""CPU scale: TrainProVe's four generator analogues, trained here from the procedural object world (cached).

Each analogue sees the object world through its own draw (attribute frequencies, house style) and is trained from
scratch on it, so no two share weights: real generators come from different training runs on different data, and
analogues fine-tuned from one common base drew their classes so alike that a classifier trained on one was nearly
as accurate on another's images (docs/decisions.md, "Analogues trained from scratch on their own draws"). One
autoencoder is trained on the uniform world (SD v1.4, LCM and PixArt-alpha all decode with SD's VAE; an analogue may
have its own, ``GeneratorSpec.vae``). A mixin of ``GeneratorZoo``: it needs ``p``, ``store``, ``classes``, ``spec``,
``generator_lr`` and ``show_progress``.
"""
from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path

import numpy as np
from diffusers import AutoencoderKL
from diffusers import schedulers as diffusers_schedulers

from provlib.core import models, scenes
from provlib.core.data import CaptionedImageSet
from provlib.core.fanout import fan_out
from provlib.core.store import config_hash, derive_seed
from provlib.core.train import train_denoiser, train_vae
from provlib.trainprove.generators import REAL, attribute_weights, object_attributes, render_objects
from provlib.trainprove.styles import apply_style, style_of

CODE_VERSION = {"tp_data": 1, "tp_vae": 1, "tp_generator": 3}
# 4x keeps an 8x8 latent at 32 px. 8x was tried for the 15-minute goal: after 1500 steps its reconstructions keep too
# little of the shapes (sd14 draw, a classifier on them: 0.30 against 0.97 rendered; 4x: 0.78; docs/decisions.md,
# "Analogues trained from scratch on their own draws")
VAE_DOWNSAMPLING = 4
# The text encoder stays frozen at its (random, seeded) initialisation, as SD v1.4, PixArt-alpha and Stable Cascade
# keep their pre-trained CLIP / T5 encoders frozen: the UNet then learns to read fixed, distinct prompt embeddings.
# Trained with the UNet (the earlier recipe), the analogues learned their classes or not by seed: owner-side, sd14
# after 1250 steps drew them at 0.81 (seed 0) and 0.34 (seed 1), frozen at 0.77 and 0.75, and 0.81 at both seeds
# after 2000 steps; a frozen step also costs about three quarters of one that trains the encoder (docs/decisions.md,
# "Generator recipe: bare captions, frozen text encoder, cosine decay")
TRAIN_TEXT_ENCODER = False


class CpuAnalogues:
    def draw_config(self, draw: str, n: int, purpose: str) -> dict:
        p = self.p
        return {"kind": "tp_data", "v": CODE_VERSION["tp_data"], "draw": draw, "n_per_class": n, "purpose": purpose,
                "classes": self.classes, "template": p.trainprove.prompt_template, "resolution": p.world.resolution,
                "concentration": p.trainprove.draw_concentration, "sizes": list(p.trainprove.sizes),
                "seed": derive_seed(p.seed, "tp-data", draw, purpose),
                # a generator's house style, its strength and its look, enters the key only when on
                **({"style": p.trainprove.style_strength, "look": asdict(style_of(draw))}
                   if p.trainprove.style_strength and draw != REAL else {}),
                **({"caption_detail": p.trainprove.caption_detail}
                   if p.trainprove.caption_detail != 0.5 and draw != REAL else {})}

    def object_draw(self, draw: str, n_per_class: int, purpose: str) -> tuple[CaptionedImageSet, np.ndarray]:
        """Rendered objects with a draw's attribute frequencies (``draw``: a generator's training world or ``real``)."""
        config = self.draw_config(draw, n_per_class, purpose)

        def build(tmp: Path):
            attributes = object_attributes(self.p.trainprove.sizes)
            weights = attribute_weights(draw, self.p.trainprove.draw_concentration, self.p.seed, attributes)
            data, labels = render_objects(self.classes, n_per_class, weights, config["seed"], self.p.world.resolution,
                                          self.p.trainprove.prompt_template, attributes, self.p.trainprove.caption_detail)
            if draw != REAL:
                styled = apply_style(data.images, style_of(draw), self.p.trainprove.style_strength, config["seed"])
                data = CaptionedImageSet(styled, data.captions, data.ids)
            data.save(tmp)
            np.save(tmp / "labels.npy", labels)

        path = self.store.get_or_build("tp_data", config, build)
        return CaptionedImageSet.load(path), np.load(path / "labels.npy")

    def train_images_per_class(self) -> int:
        return max(1, self.p.trainprove.generator_images // len(self.classes))

    def training_draw(self, draw: str) -> tuple[CaptionedImageSet, np.ndarray]:
        return self.object_draw(draw, self.train_images_per_class(), "generator-training")

    def vae_config(self, generator: str) -> dict:
        spec = self.spec(generator)
        draw = REAL if spec.vae == "shared" else generator
        return {"kind": "tp_vae", "v": CODE_VERSION["tp_vae"], "latent_channels": spec.latent_channels,
                "downsampling": VAE_DOWNSAMPLING,
                "steps": self.p.trainprove.vae_steps, "seed": derive_seed(self.p.seed, "tp-vae", draw),
                # the autoencoder sees the images only: their captions stay out of its key
                "data": config_hash({k: v for k, v in self.draw_config(draw, self.train_images_per_class(),
                                                                     "generator-training").items() if k != "caption_detail"})}

    def vae(self, generator: str) -> AutoencoderKL:
        """The analogue's autoencoder: the shared one (trained on the uniform world) or its own (on its draw)."""
        config = self.vae_config(generator)
        draw = REAL if self.spec(generator).vae == "shared" else generator

        def build(tmp: Path):
            images = self.training_draw(draw)[0].images
            vae = models.build_tiny_vae(self.p.world.resolution, seed=config["seed"], latent_channels=config["latent_channels"],
                                        downsampling=config["downsampling"])
            train_vae(vae, images, steps=self.p.trainprove.vae_steps, batch_size=32, lr=2e-3, seed=config["seed"],
                      show_progress=self.show_progress)
            vae.save_pretrained(tmp, safe_serialization=True)

        return AutoencoderKL.from_pretrained(self.store.get_or_build("tp_vae", config, build), use_safetensors=True)

    def analogue_config(self, generator: str) -> dict:
        p = self.p
        # sampling steps and guidance are applied at sampling time: they never retrain an analogue
        trained = {k: v for k, v in asdict(self.spec(generator)).items() if k not in ("steps", "guidance_scale")}
        return {"kind": "tp_generator", "v": CODE_VERSION["tp_generator"], "spec": trained,
                "vae": config_hash(self.vae_config(generator)), "steps": p.trainprove.generator_steps,
                "batch_size": p.trainprove.generator_batch_size, "lr": self.generator_lr(generator),
                "lr_schedule": p.trainprove.generator_lr_schedule, "train_text_encoder": TRAIN_TEXT_ENCODER,
                "seed": derive_seed(p.seed, "tp-generator", generator),
                "data": config_hash(self.draw_config(generator, self.train_images_per_class(), "generator-training"))}

    def analogue_location(self, generator: str) -> str:
        """An analogue's pipeline folder: a tiny pipeline trained from scratch on its own draw, with its own sampler."""
        config = self.analogue_config(generator)
        spec = self.spec(generator)

        def build(tmp: Path):
            vocabulary = scenes.vocabulary() + self.p.trainprove.prompt_template.replace("{}", " ").split()
            pipe = models.build_tiny_pipeline(spec.architecture, vocabulary, self.vae(generator), seed=config["seed"])
            losses = train_denoiser(pipe.to(self.p.runtime.device), self.training_draw(generator)[0],
                                    steps=config["steps"], batch_size=config["batch_size"], lr=config["lr"],
                                    seed=config["seed"], train_text_encoder=config["train_text_encoder"],
                                    lr_schedule=config["lr_schedule"],
                                    checkpoint_dir=self.store.work_dir("tp_generator", config),
                                    checkpoint_every=self.p.runtime.checkpoint_every, desc=f"train generator {generator}",
                                    show_progress=self.show_progress)
            scheduler_class = getattr(diffusers_schedulers, spec.scheduler)
            pipe.scheduler = scheduler_class.from_config(pipe.scheduler.config)
            models.save_pipeline(pipe.to("cpu"), tmp)
            (tmp / "losses.json").write_text(json.dumps(losses))

        return str(self.store.get_or_build("tp_generator", config, build))

    def build_analogues(self, n_jobs: int) -> None:
        """Every training draw, then the autoencoders and the analogues, each stage fanned out."""
        for draw in [REAL] + self.generators:
            self.training_draw(draw)
        for kind, config_of, method, desc in (("tp_vae", self.vae_config, "vae", "VAEs"),
                                              ("tp_generator", self.analogue_config, "analogue_location", "generators")):
            owners = {config_hash(config_of(g)): g for g in self.generators}  # one build per distinct artifact
            fan_out(self, method, [g for g in owners.values() if not self.store.exists(kind, config_of(g))], n_jobs, desc)
