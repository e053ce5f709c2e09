"""Does a source model reproduce its training images? Nearest-training-image distance of its generations.

Following Carlini et al. (2023) and Somepalli et al. (2023): generate from training captions and measure
the distance to the nearest training image. Two references put the number in context: held-out real
images of the same domain (never trained on, so their nearest-training distance is what "new but
similar" looks like) and, for fine-tuned sources, the base model's generations for the same captions.
"""
from __future__ import annotations

import numpy as np
import pandas as pd
import torch

from provlib.attribution.distance import (
    PixelSpace,
    nearest_distance,
    pairwise_pixel_distance,
)
from provlib.core.store import derive_seed
from provlib.core.train import encode_latents
from provlib.core.zoo import Zoo


def memorization_distances(zoo: Zoo, source: str, n_prompts: int) -> pd.DataFrame:
    """One row per query image: group (source / base / held-out real), its caption and nearest-training distance."""
    p = zoo.p
    train = zoo.training_set(source)
    held_out = zoo.dataset(zoo.source_domain(source), "real")
    rng = np.random.default_rng(derive_seed(p.seed, "memorization", source))
    picks = rng.choice(len(train), size=min(n_prompts, len(train)), replace=False)
    prompts = [train.captions[i] for i in picks]
    seed = derive_seed(p.seed, "memorization-generate", source)

    groups = {"source generations": zoo.load(zoo.source_location(source))}
    if zoo.source(source).is_fine_tuned:  # its own base never saw the private split
        groups["base-model generations"] = zoo.load(zoo.base_location(zoo.source(source).base))
    rows = []
    for group, pipe in groups.items():
        images = zoo.generate(pipe, prompts, seed=seed, desc=f"{source}: {group}").images
        distances, nearest = nearest_distance(images, train.images)
        rows += [{"source": source, "group": group, "caption": c, "distance": float(d), "nearest": int(n)}
                 for c, d, n in zip(prompts, distances, nearest)]
    held = held_out.subset(rng.choice(len(held_out), size=min(n_prompts, len(held_out)), replace=False))
    distances, nearest = nearest_distance(held.images, train.images)
    rows += [{"source": source, "group": "held-out real images", "caption": c, "distance": float(d), "nearest": int(n)}
             for c, d, n in zip(held.captions, distances, nearest)]
    return pd.DataFrame(rows)


def summarize(distances: pd.DataFrame, copy_quantile: float = 0.05) -> pd.DataFrame:
    """Mean/median distance per (source, group) and the copy rate: share of images closer to a training image
    than the ``copy_quantile`` of held-out real images are (so held-out real scores about that share)."""
    out = []
    for source, frame in distances.groupby("source", sort=False):
        threshold = frame.loc[frame.group == "held-out real images", "distance"].quantile(copy_quantile)
        for group, g in frame.groupby("group", sort=False):
            out.append({"source": source, "group": group, "n_images": len(g), "mean_distance": g.distance.mean(),
                        "median_distance": g.distance.median(), "copy_threshold": threshold,
                        "copy_rate": float((g.distance < threshold).mean())})
    return pd.DataFrame(out)


# ---- copy measures that separate memorization from drawing the caption ------------------------------------
GU_RATIO = 1 / 3  # Gu et al. (arXiv 2310.02664): memorized when nearest < 1/3 of the second-nearest training distance


def copy_measures(generations: np.ndarray, captions: list[str], train, real) -> pd.DataFrame:
    """Per generated image: is it a copy of *its own* training image, or only a picture of its caption?

    ``generations`` uint8 [P, S, H, W, 3] are S seeds for each of P training captions (each caption names one
    training image in ``train``); ``real`` is the domain's real pool, whose images with the same caption are what
    drawing the caption without copying looks like. Columns: the distance to the own training image, the smallest
    distance to a same-caption real image, ``copies_own`` (own image nearer than every same-caption real one: the
    copy rate), the nearest / second-nearest training distances and ``gu_memorized`` (their ratio below
    ``GU_RATIO``). Pixel space, as notebook 01's memorization check.
    """
    generations = np.asarray(generations)
    n_prompts, n_seeds = generations.shape[:2]
    space = PixelSpace()  # features once per image set, not once per caption
    generated = space.features(generations.reshape(n_prompts * n_seeds, *generations.shape[2:])).reshape(n_prompts, n_seeds, -1)
    train_features, real_features = space.features(train.images), space.features(real.images)
    own_index = {c: i for i, c in enumerate(train.captions)}  # private splits use each caption once first
    real_by_caption = _indices_by_caption(real.captions)
    rows = []
    for p, caption in enumerate(captions):
        to_train = space.pairwise(generated[p], train_features)
        own = to_train[:, own_index[caption]]
        same = real_by_caption.get(caption, [])
        to_same = space.pairwise(generated[p], real_features[same]).min(1) if same else np.full(n_seeds, np.nan)
        ordered = np.sort(to_train, axis=1)
        for s in range(n_seeds):
            rows.append({"caption": caption, "seed_index": s, "d_own": float(own[s]), "d_same_caption_real": float(to_same[s]),
                         "copies_own": bool(same) and bool(own[s] < to_same[s]),
                         "d_nearest": float(ordered[s, 0]), "d_second": float(ordered[s, 1]),
                         "gu_memorized": bool(ordered[s, 0] < GU_RATIO * ordered[s, 1]),
                         "n_same_caption_real": len(same)})
    return pd.DataFrame(rows)


def same_caption_spread(real) -> float:
    """Mean distance between two real images with one caption: how much content a caption leaves undescribed."""
    pairs = [pairwise_pixel_distance(real.images[idx], real.images[idx])[np.triu_indices(len(idx), 1)]
             for idx in _indices_by_caption(real.captions).values() if len(idx) > 1]
    return float(np.concatenate(pairs).mean()) if pairs else float("nan")


def _indices_by_caption(captions: list[str]) -> dict[str, list[int]]:
    """caption -> the indices of the images that carry it."""
    groups: dict[str, list[int]] = {}
    for i, caption in enumerate(captions):
        groups.setdefault(caption, []).append(i)
    return groups


@torch.no_grad()
def autoencoder_reconstructions(vae, images: np.ndarray, batch_size: int = 64) -> np.ndarray:
    """Each image encoded to its posterior mean and decoded again (uint8, as the images)."""
    means, _ = encode_latents(vae, images, batch_size)
    decoded = [vae.decode(means[i:i + batch_size].to(vae.device, vae.dtype)).sample.float().clamp(-1, 1).cpu()
               for i in range(0, len(means), batch_size)]
    return ((torch.cat(decoded).permute(0, 2, 3, 1).numpy() + 1) * 127.5).round().astype(np.uint8)


def autoencoder_floor(vae, images: np.ndarray) -> np.ndarray:
    """Each image's distance to its own reconstruction: a generation is a decoded latent, so no source can come
    nearer a training image than this, however exactly it memorized it (docs/decisions.md, "An 8× autoencoder trained
    2000 steps")."""
    return np.diag(pairwise_pixel_distance(autoencoder_reconstructions(vae, images), images))
