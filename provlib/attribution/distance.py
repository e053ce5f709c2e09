"""Image distances used for memorization and reconstruction checks.

``pixel_distance`` is the root-mean-square difference of RGB values scaled to [0, 1], after resizing
both images to a fixed side: 0 for identical images, 1 for black vs white, and comparable across
resolutions (the paper's "normalized" reconstruction distance; its values cluster in [0.1, 0.2)).
"""
from __future__ import annotations

import numpy as np

from provlib.attribution.descriptor import embed
from provlib.core.images import to_compare_space


def pairwise_pixel_distance(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """[len(a), len(b)] matrix of normalized RMS distances."""
    return pairwise_distance(a, b, PixelSpace())


def nearest_distance(queries: np.ndarray, references: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """For each query image, the distance to its nearest reference and that reference's index."""
    d = pairwise_pixel_distance(queries, references)
    nearest = d.argmin(1)
    return d[np.arange(len(d)), nearest], nearest


class PixelSpace:
    """Normalized RMS over RGB at 32x32: 0 for identical images, 1 for black vs white."""
    name = "pixel"

    def features(self, images: np.ndarray) -> np.ndarray:
        return to_compare_space(images)

    def pairwise(self, fa: np.ndarray, fb: np.ndarray) -> np.ndarray:
        fa, fb = fa.astype(np.float64), fb.astype(np.float64)  # float32 cancellation leaves ~3e-4 for identical images
        squared = (fa**2).sum(1)[:, None] + (fb**2).sum(1)[None, :] - 2.0 * fa @ fb.T
        return np.sqrt(np.clip(squared, 0.0, None) / fa.shape[1])


class EmbeddingSpace:
    """Cosine distance between copy-descriptor embeddings, mapped to [0, 1] by (1 - cos) / 2."""
    name = "embedding"

    def __init__(self, descriptor):
        self.descriptor = descriptor

    def features(self, images: np.ndarray) -> np.ndarray:
        images = np.asarray(images)
        return embed(self.descriptor, images if images.ndim == 4 else images[None])

    def pairwise(self, fa: np.ndarray, fb: np.ndarray) -> np.ndarray:
        return np.clip((1.0 - fa.astype(np.float64) @ fb.astype(np.float64).T) / 2.0, 0.0, 1.0)


def pairwise_distance(a: np.ndarray, b: np.ndarray, space=None) -> np.ndarray:
    """[len(a), len(b)] distances in ``space`` (default: pixel space)."""
    space = space or PixelSpace()
    return space.pairwise(space.features(a), space.features(b))
