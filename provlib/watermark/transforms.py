"""Image transforms a watermark should survive: JPEG, resizing, cropping and additive noise.

Named by strings ``"<name>:<value>"`` (``jpeg:75`` = JPEG at quality 75, ``resize:0.5`` = down to half the side
and back, ``crop:0.8`` = keep the central 80% of each side and resize back, ``noise:8`` = Gaussian noise of
standard deviation 8 in 0-255 units), so notebooks and presets can list them as parameters. Output images
keep the input's size, so every decoder reads them as it reads the originals.
"""
from __future__ import annotations

import io

import numpy as np
from PIL import Image

from provlib.core.errors import ParameterError
from provlib.watermark.schemes import as_image_batch


def jpeg(images, quality: float) -> np.ndarray:
    quality = int(quality)
    if not 1 <= quality <= 95:
        raise ParameterError("jpeg quality", "an integer in [1, 95]", quality)
    out = []
    for image in as_image_batch(images):
        buffer = io.BytesIO()
        Image.fromarray(image).save(buffer, format="JPEG", quality=quality)
        buffer.seek(0)
        with Image.open(buffer) as decoded:
            out.append(np.asarray(decoded.convert("RGB")))
    return np.stack(out)


def resize(images, scale: float) -> np.ndarray:
    if not 0.0 < scale < 1.0:
        raise ParameterError("resize scale", "a factor strictly between 0 and 1", scale)
    images = as_image_batch(images)
    h, w = images.shape[1:3]
    small = (max(1, round(w * scale)), max(1, round(h * scale)))
    return np.stack([np.asarray(Image.fromarray(im).resize(small, Image.BICUBIC).resize((w, h), Image.BICUBIC))
                     for im in images])


def crop(images, keep: float) -> np.ndarray:
    if not 0.0 < keep < 1.0:
        raise ParameterError("crop fraction", "the share of each side kept, strictly between 0 and 1", keep)
    images = as_image_batch(images)
    h, w = images.shape[1:3]
    ch, cw = max(1, round(h * keep)), max(1, round(w * keep))
    top, left = (h - ch) // 2, (w - cw) // 2
    return np.stack([np.asarray(Image.fromarray(im[top:top + ch, left:left + cw]).resize((w, h), Image.BICUBIC))
                     for im in images])


def gaussian_noise(images, sigma: float, seed: int = 0) -> np.ndarray:
    if sigma < 0:
        raise ParameterError("noise sigma", "a non-negative standard deviation in 0-255 units", sigma)
    images = as_image_batch(images)
    noise = np.random.default_rng(seed).normal(0.0, sigma, images.shape)
    return np.clip(np.rint(images + noise), 0, 255).astype(np.uint8)


TRANSFORMS = {"jpeg": jpeg, "resize": resize, "crop": crop, "noise": gaussian_noise}


def parse_transform(spec: str, parameter: str = "transform") -> tuple[str, float]:
    """``"jpeg:75"`` -> ``("jpeg", 75.0)``; anything else raises naming ``parameter``."""
    name, _, value = str(spec).partition(":")
    try:
        number = float(value)
    except ValueError:
        number = None
    if name not in TRANSFORMS or number is None:
        raise ParameterError(parameter, f"'<name>:<value>' with a name from {sorted(TRANSFORMS)}, e.g. 'jpeg:75'", spec)
    return name, number


def apply_transform(images, spec: str, seed: int = 0, parameter: str = "transform") -> np.ndarray:
    """Apply a named transform (``"none"`` returns the images unchanged)."""
    if spec == "none":
        return as_image_batch(images)
    name, value = parse_transform(spec, parameter)
    if name == "noise":
        return gaussian_noise(images, value, seed)
    return TRANSFORMS[name](images, value)
