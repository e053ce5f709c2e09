"""TrainProVe's world: four text-to-image generators, labelled class images from each, and suspect classifiers.

At CPU scale the generators are tiny analogues of the paper's four, built here and cached. They differ where
the real ones do: training data draw (each sees the object world with its own attribute frequencies, as
LAION, SA-1B and JourneyDB differ), architecture size, VAE, scheduler and number of sampling steps (the LCM
analogue samples in 4 steps). At paper scale the same code loads the user's local checkpoints of SD v1.4,
LCM, PixArt-alpha and Stable Cascade through ``diffusers.DiffusionPipeline`` (safetensors only).
"""
from __future__ import annotations

import inspect
import json
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
from diffusers import AutoencoderKL, DiffusionPipeline
from diffusers import schedulers as diffusers_schedulers
from diffusers.utils import logging as diffusers_logging
from PIL import Image
from tqdm.auto import tqdm

from . import models, scenes
from .classifier import load_classifier, save_classifier, train_classifier
from .data import CaptionedImageSet, load_image
from .errors import ParameterError
from .generate import image_seed
from .paths import cache_dir
from .presets import Preset, check_trainprove_inputs
from .store import ArtifactStore, config_hash
from .train import train_denoiser, train_vae
from .trainprove import LabelledImages, check_classes, class_prompts
from .zoo import derive_seed, fan_out

CODE_VERSION = {"tp_data": 1, "tp_vae": 1, "tp_generator": 1, "tp_images": 1, "tp_classifier": 1}
REAL = "real"


@dataclass(frozen=True)
class GeneratorSpec:
    name: str
    analogue: str          # the real generator it stands for
    architecture: str      # tiny UNet / text-encoder family (``models.TINY_ARCHITECTURES``)
    scheduler: str         # diffusers scheduler class used for sampling
    steps: int             # sampling steps
    guidance_scale: float
    vae: str               # "shared" (SD v1.4, LCM and PixArt-alpha all decode with SD's VAE) or "own"
    latent_channels: int = models.LATENT_CHANNELS


CPU_GENERATORS = {
    "sd14": GeneratorSpec("sd14", "Stable Diffusion v1.4", "v1", "DDIMScheduler", 20, 3.0, "shared"),
    "lcm": GeneratorSpec("lcm", "Latent Consistency Model", "v1", "LCMScheduler", 4, 1.5, "shared"),
    "pixart": GeneratorSpec("pixart", "PixArt-alpha", "v2", "DPMSolverMultistepScheduler", 14, 3.0, "shared"),
    # Stable Cascade works in a much more compressed latent: its analogue has its own 4-channel VAE
    "cascade": GeneratorSpec("cascade", "Stable Cascade", "v2", "EulerAncestralDiscreteScheduler", 20, 3.0, "own", 4),
}
# Each model card's recommended sampling for the real checkpoints (paper scale)
PAPER_SAMPLING = {
    "sd14": dict(num_inference_steps=50, guidance_scale=7.5),
    "lcm": dict(num_inference_steps=4, guidance_scale=8.0),
    "pixart": dict(num_inference_steps=20, guidance_scale=4.5),
    "cascade": dict(num_inference_steps=10, prior_num_inference_steps=20, prior_guidance_scale=4.0, guidance_scale=0.0),
}
DEFAULT_PAPER_SAMPLING = dict(num_inference_steps=50, guidance_scale=7.5)
ATTRIBUTES = {"colour": list(scenes.OBJECT_COLOURS), "size": list(scenes.SIZES), "position": list(scenes.POSITIONS),
              "texture": list(scenes.TEXTURES), "background": list(scenes.BACKGROUNDS)}


def object_attributes(sizes) -> dict[str, list[str]]:
    """The object world's attribute values, with only the given object ``sizes`` (``tp_sizes``)."""
    sizes = list(sizes)
    if not sizes or not set(sizes) <= set(scenes.SIZES):
        raise ParameterError("tp_sizes", f"a non-empty subset of {scenes.SIZES}", sizes)
    return {**ATTRIBUTES, "size": sizes}


@dataclass(frozen=True)
class ClassifierSpec:
    model_id: str
    source: str        # a generator name, "real", or "<generator>+real" (half generated, half real)
    seed: int
    role: str          # "suspect" (evaluation only) or "shadow" (the defender's own)

    @property
    def generators(self) -> list[str]:
        return [part for part in self.source.split("+") if part != REAL]


def attribute_weights(draw: str, concentration: float, seed: int, attributes: dict = ATTRIBUTES) -> dict[str, np.ndarray]:
    """How often each attribute value occurs in a draw: uniform for the real world, Dirichlet-skewed per generator."""
    if draw == REAL:
        return {k: np.full(len(v), 1.0 / len(v)) for k, v in attributes.items()}
    rng = np.random.default_rng(derive_seed(seed, "tp-draw", draw))
    return {k: rng.dirichlet(np.full(len(v), concentration)) for k, v in attributes.items()}


def render_objects(classes: list[str], n_per_class: int, weights: dict, seed: int, resolution: int,
                   template: str, attributes: dict = ATTRIBUTES) -> tuple[CaptionedImageSet, np.ndarray]:
    """Single-object images of every class; half the captions are the bare class prompt, half name every attribute."""
    unknown = sorted(set(classes) - set(scenes.SHAPES))
    if unknown:
        raise ParameterError("tp_classes", f"shapes the procedural world can draw, {scenes.SHAPES}", unknown)
    rng = np.random.default_rng(seed)
    images, captions, labels = [], [], []
    for label, shape in enumerate(classes):
        for _ in range(n_per_class):
            a = {k: values[rng.choice(len(values), p=weights[k])] for k, values in attributes.items()}
            attrs = scenes.SceneAttributes((scenes.SceneObject(a["size"], a["colour"], shape, a["position"]),),
                                           a["texture"], a["background"])
            images.append(scenes.render_scene(attrs, int(rng.integers(2**31)), resolution))
            long_caption = template.format(f"{a['size']} {a['colour']} {shape}") + f" on a {a['texture']} {a['background']} background"
            captions.append(template.format(shape) if rng.random() < 0.5 else long_caption)
            labels.append(label)
    ids = [f"objects/{i}" for i in range(len(images))]
    return CaptionedImageSet(np.stack(images), captions, ids), np.array(labels)


def real_folder_images(directory: str | Path, classes: list[str], resolution: int) -> LabelledImages:
    """Paper scale: ``directory/<class>/*`` image files (an ImageFolder layout, e.g. CIFAR-10 exported to PNG)."""
    directory = Path(directory)
    if not directory.is_dir():
        raise ParameterError("tp_real_dir", "a folder with one subfolder of real images per class", str(directory))
    images, labels = [], []
    for label, name in enumerate(classes):
        files = sorted(p for p in (directory / name).glob("*") if p.is_file()) if (directory / name).is_dir() else []
        if not files:
            raise ParameterError("tp_real_dir", f"a non-empty subfolder '{name}' of images", str(directory / name))
        images += [load_image(f, resolution) for f in files]
        labels += [label] * len(files)
    return LabelledImages(np.stack(images), np.array(labels))


def load_generator(location: str, device: str, dtype: str):
    """Any diffusers text-to-image pipeline folder (SD, LCM, PixArt, Cascade...), safetensors only, no download."""
    local = Path(location).expanduser()
    if not (local / "model_index.json").is_file():
        raise ParameterError("tp_checkpoints", "a local diffusers pipeline folder containing model_index.json", location)
    verbosity = diffusers_logging.get_verbosity()
    diffusers_logging.set_verbosity_error()
    diffusers_logging.disable_progress_bar()  # per-component load bars, once per set
    try:
        pipe = DiffusionPipeline.from_pretrained(str(local), torch_dtype=getattr(torch, dtype), use_safetensors=True,
                                                 local_files_only=True)
    finally:
        diffusers_logging.set_verbosity(verbosity)
    pipe.set_progress_bar_config(disable=True)
    return pipe.to(device)


@torch.no_grad()
def generate_labelled(pipe, prompts: list[str], n_per_class: int, *, seed: int, sampling: dict, resolution: int,
                      output_resolution: int, batch_size: int, desc: str, show_progress: bool = True) -> LabelledImages:
    """``n_per_class`` images per class prompt; image j of class c uses seed ``image_seed(seed, c, j)``."""
    jobs = [(c, j) for c in range(len(prompts)) for j in range(n_per_class)]
    # sampler arguments one pipeline class does not take (Cascade's prior steps for an SD pipeline) are left out
    accepted = inspect.signature(pipe.__call__).parameters
    sampling = {k: v for k, v in sampling.items() if k in accepted}
    out = []
    for start in tqdm(range(0, len(jobs), batch_size), desc=desc, disable=not show_progress, mininterval=5):
        chunk = jobs[start:start + batch_size]
        generators = [torch.Generator(device="cpu").manual_seed(image_seed(seed, c, j)) for c, j in chunk]
        size = {"height": resolution, "width": resolution} if resolution else {}
        result = pipe(prompt=[prompts[c] for c, _ in chunk], generator=generators, output_type="np", **size, **sampling)
        images = (np.clip(np.asarray(result.images, dtype=np.float32), 0, 1) * 255).round().astype(np.uint8)
        if images.shape[1] != output_resolution:
            images = np.stack([np.asarray(Image.fromarray(im).resize((output_resolution,) * 2, Image.BICUBIC)) for im in images])
        out.append(images)
    return LabelledImages(np.concatenate(out), np.array([c for c, _ in jobs]))


class TrainProVeZoo:
    def __init__(self, preset: Preset, cache_root: str | Path | None = None, show_progress: bool = True):
        self.p = preset
        self.classes = check_classes(preset.tp_classes)
        self.cache_root = Path(cache_root) if cache_root else cache_dir() / "artifacts"
        self.store = ArtifactStore(self.cache_root)
        self.show_progress = show_progress
        if preset.is_paper_scale:
            check_trainprove_inputs(preset)
        else:
            unknown = [g for g in preset.tp_generators if g not in CPU_GENERATORS]
            if unknown:
                raise ParameterError("tp_generators", f"names of CPU analogues, from {sorted(CPU_GENERATORS)}", unknown)

    @property
    def generators(self) -> list[str]:
        return list(self.p.tp_generators)

    @property
    def prompts(self) -> list[str]:
        return class_prompts(self.classes, self.p.tp_prompt_template)

    def spec(self, generator: str) -> GeneratorSpec:
        if generator not in self.generators:
            raise ParameterError("generator", f"one of {self.generators}", generator)
        return CPU_GENERATORS[generator]

    def describe(self) -> list[dict]:
        """One row per generator: what it stands for and how it differs."""
        if self.p.is_paper_scale:
            return [{"generator": g, "checkpoint": self.p.tp_checkpoints[g], **PAPER_SAMPLING.get(g, DEFAULT_PAPER_SAMPLING)}
                    for g in self.generators]
        rows = []
        for g in self.generators:
            spec = self.spec(g)
            rows.append({"generator": g, **{k: v for k, v in asdict(spec).items() if k != "name"},
                         "sampling_steps": self.sampling(g)["num_inference_steps"], "train_images": self.p.tp_generator_images,
                         "train_steps": self.p.tp_generator_steps})
        return rows

    # ---- CPU-scale generators ----------------------------------------------------------------------
    def _draw_config(self, draw: str, n: int, purpose: str) -> dict:
        p = self.p
        return {"kind": "tp_data", "v": CODE_VERSION["tp_data"], "draw": draw, "n_per_class": n, "purpose": purpose,
                "classes": self.classes, "template": p.tp_prompt_template, "resolution": p.resolution,
                "concentration": p.tp_draw_concentration, "sizes": list(p.tp_sizes),
                "seed": derive_seed(p.seed, "tp-data", draw, purpose)}

    def object_draw(self, draw: str, n_per_class: int, purpose: str) -> tuple[CaptionedImageSet, np.ndarray]:
        """Rendered objects with a draw's attribute frequencies (``draw``: a generator's training world or ``real``)."""
        config = self._draw_config(draw, n_per_class, purpose)

        def build(tmp: Path):
            attributes = object_attributes(self.p.tp_sizes)
            weights = attribute_weights(draw, self.p.tp_draw_concentration, self.p.seed, attributes)
            data, labels = render_objects(self.classes, n_per_class, weights, config["seed"], self.p.resolution,
                                          self.p.tp_prompt_template, attributes)
            data.save(tmp)
            np.save(tmp / "labels.npy", labels)

        path = self.store.get_or_build("tp_data", config, build)
        return CaptionedImageSet.load(path), np.load(path / "labels.npy")

    def _train_images_per_class(self) -> int:
        return max(1, self.p.tp_generator_images // len(self.classes))

    def _vae_config(self, generator: str) -> dict:
        spec = self.spec(generator)
        draw = REAL if spec.vae == "shared" else generator
        return {"kind": "tp_vae", "v": CODE_VERSION["tp_vae"], "latent_channels": spec.latent_channels,
                "steps": self.p.vae_steps, "seed": derive_seed(self.p.seed, "tp-vae", draw),
                "data": config_hash(self._draw_config(draw, self._train_images_per_class(), "generator-training"))}

    def vae(self, generator: str) -> AutoencoderKL:
        """SD v1.4, LCM and PixArt-alpha share one VAE (trained on the real world); Cascade's analogue has its own."""
        config = self._vae_config(generator)
        draw = REAL if self.spec(generator).vae == "shared" else generator

        def build(tmp: Path):
            images = self.object_draw(draw, self._train_images_per_class(), "generator-training")[0].images
            vae = models.build_tiny_vae(self.p.resolution, seed=config["seed"], latent_channels=config["latent_channels"])
            train_vae(vae, images, steps=self.p.vae_steps, batch_size=32, lr=2e-3, seed=config["seed"],
                      show_progress=self.show_progress)
            vae.save_pretrained(tmp, safe_serialization=True)

        return AutoencoderKL.from_pretrained(self.store.get_or_build("tp_vae", config, build), use_safetensors=True)

    def _generator_config(self, generator: str) -> dict:
        p = self.p
        if p.is_paper_scale:
            return {"kind": "tp_generator", "checkpoint": str(p.tp_checkpoints[generator])}
        return {"kind": "tp_generator", "v": CODE_VERSION["tp_generator"], "spec": asdict(self.spec(generator)),
                "vae": config_hash(self._vae_config(generator)), "steps": p.tp_generator_steps,
                "batch_size": p.pretrain_batch_size, "lr": p.pretrain_lr, "seed": derive_seed(p.seed, "tp-generator", generator),
                "data": config_hash(self._draw_config(generator, self._train_images_per_class(), "generator-training"))}

    def generator_location(self, generator: str) -> str:
        """A generator's pipeline folder: the user's checkpoint, or a CPU analogue trained from scratch here (cached)."""
        if self.p.is_paper_scale:
            return str(self.p.tp_checkpoints[generator])
        config = self._generator_config(generator)
        spec = self.spec(generator)

        def build(tmp: Path):
            data, _ = self.object_draw(generator, self._train_images_per_class(), "generator-training")
            vocabulary = scenes.vocabulary() + self.p.tp_prompt_template.replace("{}", " ").split()
            pipe = models.build_tiny_pipeline(spec.architecture, vocabulary, self.vae(generator), seed=config["seed"])
            losses = train_denoiser(pipe, data, steps=self.p.tp_generator_steps, batch_size=self.p.pretrain_batch_size,
                                    lr=self.p.pretrain_lr, seed=config["seed"], train_text_encoder=True,
                                    checkpoint_dir=self.store.work_dir("tp_generator", config),
                                    checkpoint_every=self.p.checkpoint_every, desc=f"train generator {generator}",
                                    show_progress=self.show_progress)
            scheduler_class = getattr(diffusers_schedulers, spec.scheduler)
            pipe.scheduler = scheduler_class.from_config(pipe.scheduler.config)
            models.save_pipeline(pipe, tmp)
            (tmp / "losses.json").write_text(json.dumps(losses))

        return str(self.store.get_or_build("tp_generator", config, build))

    def sampling(self, generator: str) -> dict:
        """Sampler arguments of a generator's pipeline call (CPU: steps capped by the preset's ``inference_steps``)."""
        if self.p.is_paper_scale:
            return dict(PAPER_SAMPLING.get(generator, DEFAULT_PAPER_SAMPLING))
        spec = self.spec(generator)
        return {"num_inference_steps": min(spec.steps, self.p.inference_steps), "guidance_scale": spec.guidance_scale}

    # ---- labelled image sets -------------------------------------------------------------------------
    def _images_config(self, generator: str, purpose: str, n_per_class: int) -> dict:
        p = self.p
        return {"kind": "tp_images", "v": CODE_VERSION["tp_images"], "generator": config_hash(self._generator_config(generator)),
                "purpose": purpose, "n_per_class": n_per_class, "prompts": self.prompts, "sampling": self.sampling(generator),
                "resolution": p.tp_resolution, "seed": derive_seed(p.seed, "tp-images", generator, purpose)}

    def _purpose_size(self, purpose: str) -> int:
        sizes = {"pool": self.p.tp_pool_per_class, "shadow": self.p.tp_train_per_class, "test": self.p.tp_test_per_class}
        if purpose not in sizes:
            raise ParameterError("purpose", f"one of {sorted(sizes)}", purpose)
        return sizes[purpose]

    def images(self, generator: str, purpose: str) -> LabelledImages:
        """Class-prompted images of a generator: the suspects' ``pool``, the defender's ``shadow`` set, or its ``test`` set.

        Each purpose has its own seed, so the defender's images are never the suspects' own training images.
        """
        if generator == REAL:
            return self.real_images(purpose)
        n = self._purpose_size(purpose)
        config = self._images_config(generator, purpose, n)

        def build(tmp: Path):
            p = self.p
            pipe = load_generator(self.generator_location(generator), p.device, p.dtype)
            out = generate_labelled(pipe, self.prompts, n, seed=config["seed"], sampling=self.sampling(generator),
                                    resolution=None if p.is_paper_scale else p.resolution, output_resolution=p.tp_resolution,
                                    batch_size=p.generation_batch_size, desc=f"{generator}: {purpose} images",
                                    show_progress=self.show_progress)
            np.savez(tmp / "images.npz", images=out.images, labels=out.labels)

        with np.load(self.store.get_or_build("tp_images", config, build) / "images.npz") as saved:
            return LabelledImages(saved["images"], saved["labels"])

    def real_images(self, purpose: str) -> LabelledImages:
        """Real labelled images: the uniform procedural world at CPU scale, the user's class folders at paper scale."""
        n = self._purpose_size(purpose)
        p = self.p
        if p.is_paper_scale:
            everything = real_folder_images(p.tp_real_dir, self.classes, p.tp_resolution)
            order = np.random.default_rng(derive_seed(p.seed, "tp-real-split")).permutation(len(everything))
            half = len(order) // 2  # disjoint halves: suspects' pool, then the defender's test images
            part = everything.subset(order[:half] if purpose != "test" else order[half:])
            return part.per_class_subset(n, derive_seed(p.seed, "tp-real", purpose))
        data, labels = self.object_draw(REAL, n, purpose)
        images = data.images
        if images.shape[1] != p.tp_resolution:
            images = np.stack([np.asarray(Image.fromarray(im).resize((p.tp_resolution,) * 2, Image.BICUBIC)) for im in images])
        return LabelledImages(images, labels)

    def test_sets(self) -> dict[str, LabelledImages]:
        """The defender's fresh test images from every generator."""
        return {g: self.images(g, "test") for g in self.generators}

    # ---- classifiers ---------------------------------------------------------------------------------
    def suspect_sources(self) -> list[str]:
        return self.generators + [REAL] + [f"{g}+{REAL}" for g in self.generators]

    def classifier_specs(self) -> list[ClassifierSpec]:
        """Suspects (several seeds per training source) and one shadow model per generator (the defender's)."""
        p = self.p
        specs = [ClassifierSpec(f"{source}_{k:02d}", source, derive_seed(p.seed, "tp-suspect", source, k), "suspect")
                 for source in self.suspect_sources() for k in range(p.tp_suspect_seeds)]
        specs += [ClassifierSpec(f"shadow_{g}", g, derive_seed(p.seed, "tp-shadow", g), "shadow") for g in self.generators]
        return specs

    def training_images(self, spec: ClassifierSpec) -> LabelledImages:
        """A shadow trains on the defender's own fresh generations; a suspect samples its sources' pools (mixtures half-half)."""
        n = self.p.tp_train_per_class
        if spec.role == "shadow":
            return self.images(spec.source, "shadow")
        parts = spec.source.split("+")
        shares = [n // len(parts) + (1 if i < n % len(parts) else 0) for i in range(len(parts))]
        return LabelledImages.concat([self.images(part, "pool").per_class_subset(share, derive_seed(spec.seed, part))
                                      for part, share in zip(parts, shares)])

    def _set_key(self, source: str, purpose: str) -> str:
        """Cache key of a labelled set, for the configs of the classifiers trained on it."""
        if source == REAL:
            return config_hash(self._draw_config(REAL, self._purpose_size(purpose), purpose))
        return config_hash(self._images_config(source, purpose, self._purpose_size(purpose)))

    def _classifier_config(self, spec: ClassifierSpec) -> dict:
        purpose = "shadow" if spec.role == "shadow" else "pool"
        return {"kind": "tp_classifier", "v": CODE_VERSION["tp_classifier"], "spec": asdict(spec),
                "inputs": {part: self._set_key(part, purpose) for part in spec.source.split("+")},
                "n_per_class": self.p.tp_train_per_class, "epochs": self.p.tp_classifier_epochs, "classes": self.classes}

    def classifier_location(self, spec: ClassifierSpec) -> str:
        config = self._classifier_config(spec)

        def build(tmp: Path):
            data = self.training_images(spec)
            model, losses = train_classifier(data.images, data.labels, len(self.classes), epochs=self.p.tp_classifier_epochs,
                                             seed=spec.seed, device=self.p.device)
            save_classifier(model, tmp, {"spec": asdict(spec), "n_train": len(data), "losses": losses})

        return str(self.store.get_or_build("tp_classifier", config, build))

    def classifier(self, spec: ClassifierSpec):
        return load_classifier(Path(self.classifier_location(spec)))

    def build_all(self, n_jobs: int | None = None) -> None:
        """Generators, then every labelled set, then every classifier, fanned out over worker processes."""
        n_jobs = self.p.n_jobs if n_jobs is None else n_jobs
        if not self.p.is_paper_scale:
            for draw in [REAL] + self.generators:
                self.object_draw(draw, self._train_images_per_class(), "generator-training")
            vae_owners = {config_hash(self._vae_config(g)): g for g in self.generators}
            fan_out(self, "vae", [g for g in vae_owners.values() if not self.store.exists("tp_vae", self._vae_config(g))], n_jobs, "VAEs")
            pending = [g for g in self.generators if not self.store.exists("tp_generator", self._generator_config(g))]
            fan_out(self, "generator_location", pending, n_jobs, "generators")
        self.real_images("pool")
        self.real_images("test")
        sets = [(g, purpose) for g in self.generators for purpose in ("pool", "shadow", "test")]
        pending = [s for s in sets if not self.store.exists("tp_images", self._images_config(s[0], s[1], self._purpose_size(s[1])))]
        # generation is batched and multi-threaded already; one process per set at paper scale (one GPU)
        fan_out(self, "_images_for", pending, n_jobs if not self.p.is_paper_scale else 1, "labelled image sets")
        pending = [s for s in self.classifier_specs() if not self.store.exists("tp_classifier", self._classifier_config(s))]
        fan_out(self, "classifier_location", pending, n_jobs, "classifiers")

    def _images_for(self, item: tuple[str, str]) -> LabelledImages:
        return self.images(*item)
