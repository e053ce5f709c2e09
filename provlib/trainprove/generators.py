"""TrainProVe's generators: four text-to-image models and the labelled class images they draw.

At CPU scale the generators are tiny analogues of the paper's four, built here and cached
(``provlib.trainprove.analogues``). They differ where the real ones do: training data (each fine-tunes a common base
on its own draw of the object world, with its own attribute frequencies and house style, as LAION, SA-1B and
JourneyDB differ), scheduler and number of sampling steps. At paper scale the same code loads the user's local
checkpoints of SD v1.4, LCM, PixArt-alpha and Stable Cascade through ``diffusers.DiffusionPipeline`` (safetensors
only).
"""
from __future__ import annotations

import inspect
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from diffusers import DiffusionPipeline
from diffusers.utils import logging as diffusers_logging
from PIL import Image

from provlib.core import models, scenes
from provlib.core.data import CaptionedImageSet, load_image
from provlib.core.errors import ParameterError
from provlib.core.generate import image_seed
from provlib.core.progress import tqdm
from provlib.core.store import derive_seed
from provlib.trainprove.test import LabelledImages

REAL = "real"


@dataclass(frozen=True)
class GeneratorSpec:
    name: str
    analogue: str          # the real generator it stands for
    architecture: str      # tiny UNet / text-encoder family (``models.TINY_ARCHITECTURES``)
    scheduler: str         # diffusers scheduler class used for sampling
    steps: int             # sampling steps
    guidance_scale: float
    vae: str               # "shared" (SD v1.4, LCM and PixArt-alpha all decode with SD's VAE) or "own" (on its draw)
    latent_channels: int = models.LATENT_CHANNELS


# Guidance 50 for every analogue: the tiny, briefly trained models show their class only under strong guidance, and the
# stronger the better at the recipe's 2000 steps (owner-side, class fidelity at guidance 25 / 35 / 50: sd14 0.84 / 0.88
# / 0.92 at seed 0 and 0.82 / 0.88 / 0.91 at seed 1, cascade 0.79 / 0.81 / 0.84 and 0.89 / 0.91 / 0.92). At 50 every
# analogue reaches 0.8 at both seeds and a classifier names the generator of 0.97 / 0.98 of fresh images, against 0.93 /
# 0.97 at 25 (docs/decisions.md, "Guidance 50; LCM at 12 steps"). The real models' low guidance is not copied. All four
# are the v1 tiny architecture on one autoencoder: a v2 step costs 1.7 times a v1 step and a second autoencoder 2.5
# minutes, which the 15-minute notebook cannot take; the analogues differ through their training data (draw and house
# style), seeds and samplers
CPU_GENERATORS = {
    "sd14": GeneratorSpec("sd14", "Stable Diffusion v1.4", "v1", "DDIMScheduler", 20, 50.0, "shared"),
    "lcm": GeneratorSpec("lcm", "Latent Consistency Model", "v1", "LCMScheduler", 4, 50.0, "shared"),
    "pixart": GeneratorSpec("pixart", "PixArt-alpha", "v1", "DPMSolverMultistepScheduler", 14, 50.0, "shared"),
    "cascade": GeneratorSpec("cascade", "Stable Cascade", "v1", "EulerAncestralDiscreteScheduler", 20, 50.0, "shared"),
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


def attribute_weights(draw: str, concentration: float, seed: int, attributes: dict = ATTRIBUTES) -> dict[str, np.ndarray]:
    """How often each attribute value occurs in a draw: uniform for the real world, Dirichlet-skewed per generator."""
    if draw == REAL:
        return {k: np.full(len(v), 1.0 / len(v)) for k, v in attributes.items()}
    rng = np.random.default_rng(derive_seed(seed, "tp-draw", draw))
    return {k: rng.dirichlet(np.full(len(v), concentration)) for k, v in attributes.items()}


def render_objects(classes: list[str], n_per_class: int, weights: dict, seed: int, resolution: int,
                   template: str, attributes: dict = ATTRIBUTES,
                   caption_detail: float = 0.5) -> tuple[CaptionedImageSet, np.ndarray]:
    """Single-object images of every class; a share ``caption_detail`` of the captions name every attribute, the rest
    are the bare class prompt (the images do not depend on it)."""
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
            captions.append(template.format(shape) if rng.random() >= caption_detail else long_caption)
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
    except (OSError, ValueError) as error:  # e.g. a folder with .bin weights only: never unpickled
        raise ParameterError("tp_checkpoints", f"a loadable diffusers pipeline folder with safetensors weights: {error}",
                             location) from error
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
