"""Does a source model reproduce its training images? Nearest-training-image distance of its generations.

Following Carlini et al. (2023) and Somepalli et al. (2023): generate from training captions and measure
the distance to the nearest training image. Two references put the number in context: held-out real
images of the same domain (never trained on, so their nearest-training distance is what "new but
similar" looks like) and, for fine-tuned sources, the base model's generations for the same captions.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from provlib.attribution.distance import nearest_distance
from provlib.core.store import derive_seed
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
