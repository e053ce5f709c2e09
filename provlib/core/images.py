"""Image arrays in the one comparison space every distance and descriptor reads (so 32 px and 512 px mean the same)."""
from __future__ import annotations

import numpy as np
from PIL import Image

COMPARE_SIDE = 32  # every image is compared at 32x32 so distances mean the same at 32 px and 512 px


def to_compare_space(images: np.ndarray, side: int = COMPARE_SIDE) -> np.ndarray:
    """uint8 [n, H, W, 3] -> float32 [n, side*side*3] in [0, 1]."""
    images = np.asarray(images)
    if images.ndim == 3:
        images = images[None]
    if images.shape[1] != side:
        images = np.stack([np.asarray(Image.fromarray(im).resize((side, side), Image.BILINEAR)) for im in images])
    return images.reshape(len(images), -1).astype(np.float32) / 255.0
