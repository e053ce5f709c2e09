"""How the owner asks a suspect, whatever its kind: the sampler settings, the seed of every image asked for, and the
check that an answer is the images asked for."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from PIL import Image

from provlib.core.errors import ParameterError
from provlib.core.generate import image_seed


@dataclass
class Sampler:
    """How the owner asks: the same settings its keys were prepared with (recorded in the key file)."""
    num_inference_steps: int = 20
    guidance_scale: float = 3.0
    resolution: int = 32
    batch_size: int = 32

    def as_dict(self) -> dict:
        return {"num_inference_steps": self.num_inference_steps, "guidance_scale": self.guidance_scale,
                "resolution": self.resolution, "batch_size": self.batch_size}


def image_seeds(seed: int, prompt_numbers, images_per_prompt: int) -> list[list[int]]:
    """The generator seed of every image asked for: one list of ``images_per_prompt`` seeds per prompt."""
    return [[image_seed(seed, int(n), j) for j in range(images_per_prompt)] for n in prompt_numbers]


def fit_answers(images, n_images: int, resolution: int, parameter: str = "suspect") -> np.ndarray:
    """A suspect's images for one prompt -> uint8 [n_images, resolution, resolution, 3], or a clear error."""
    if len(images) != n_images:
        raise ParameterError(parameter, f"{n_images} images per prompt", f"{len(images)} images")
    out = []
    for image in images:
        array = np.asarray(image)
        if array.dtype != np.uint8 or array.ndim != 3 or array.shape[2] not in (3, 4):
            raise ParameterError(parameter, "RGB images (uint8 [H, W, 3])", f"{array.dtype} {array.shape}")
        picture = Image.fromarray(array[..., :3])
        if picture.size != (resolution, resolution):
            picture = picture.resize((resolution, resolution), Image.BICUBIC)
        out.append(np.asarray(picture))
    return np.stack(out)
