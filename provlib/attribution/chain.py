"""The signal chain: where memorization is kept or lost on its way from a source to a suspect's answers.

Attribution works only if every link holds, so each is measured on its own (one row per suspect, then a mean
per source x ρ x split):

(a) the source memorizes: its copy rate (notebook 01, owner-side);
(b) the memorized content reaches the suspect: the share of the suspect's *generated* training images that are
    near-copies of a key image (within δ0), and the key **coverage**: the share of keys whose prompt, or a
    near-copy of whose image, is among the suspect's generated training images;
(c) the suspect reproduces it: its best distance to covered keys against uncovered ones (innocent models have
    no generated images, so all their keys are uncovered);
(d) the defender sees it: conf at δ0 and the model-level median best distance that the discriminator reads.

When a target is missed, the first link whose value is near its innocent or chance level is the one that broke.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from provlib.attribution.keys import KeySet
from provlib.core.progress import tqdm

CHAIN_COLUMNS = ["source_copy_rate", "near_copy_share", "coverage", "d_covered", "d_uncovered", "conf", "median_distance"]


def generated_training_images(zoo, spec) -> tuple[np.ndarray, list[str]]:
    """The source generations a suspect was fine-tuned on (images, captions), read from its saved training ids."""
    generated = [i for i in zoo.training_record(spec)["train_ids"] if i.startswith("gen/")]
    if not generated:
        return np.zeros((0,) + (zoo.p.world.resolution,) * 2 + (3,), np.uint8), []
    pool = zoo.generated_pool(spec)
    index = {pool_id: n for n, pool_id in enumerate(pool.ids)}
    rows = [index[i] for i in generated]
    return pool.images[rows], [pool.captions[r] for r in rows]


def suspect_chain(zoo, spec, keys: KeySet, key_distances: np.ndarray, space, delta0: float) -> dict:
    """Links (b)-(d) for one suspect: ``key_distances`` are its best distances to ``keys`` (key order)."""
    images, captions = generated_training_images(zoo, spec)
    key_distances = np.asarray(key_distances, dtype=float)
    covered = np.zeros(len(keys), bool)
    near_copy_share = np.nan
    if len(images):
        d = space.pairwise(space.features(keys.images), space.features(images))  # [keys, generated]
        covered = np.isin(keys.prompts, captions) | (d.min(1) < delta0)
        near_copy_share = float((d.min(0) < delta0).mean())
    return {"model_id": spec.model_id, "source": spec.source, "rho": spec.rho, "split": spec.split,
            "near_copy_share": near_copy_share, "coverage": float(covered.mean()),
            "d_covered": float(key_distances[covered].mean()) if covered.any() else np.nan,
            "d_uncovered": float(key_distances[~covered].mean()) if (~covered).any() else np.nan,
            "conf": float((key_distances < delta0).mean()), "median_distance": float(np.median(key_distances))}


def signal_chain(zoo, specs, keys_by_source: dict[str, KeySet], distances: pd.DataFrame, space, delta0: float,
                 copy_rates: dict[str, float] | None = None) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Per-suspect links and their means per (source, ρ, split).

    ``distances``: ``calibration.key_distances`` rows for the key sets in ``keys_by_source`` (one strategy).
    ``copy_rates``: each source's copy rate from notebook 01 (link a), where it was measured.
    """
    by_model = {m: g.sort_values("key_rank").distance.to_numpy() for m, g in distances.groupby("model_id")}
    rows = [suspect_chain(zoo, spec, keys_by_source[spec.source], by_model[spec.model_id][:len(keys_by_source[spec.source])],
                          space, delta0)
            for spec in tqdm(specs, desc="signal chain", disable=not zoo.show_progress, mininterval=5)]
    per_model = pd.DataFrame(rows)
    per_model.insert(4, "source_copy_rate", per_model.source.map(copy_rates or {}).astype(float))
    table = (per_model.groupby(["source", "rho", "split"], as_index=False)[CHAIN_COLUMNS].mean()
             .merge(per_model.groupby(["source", "rho", "split"], as_index=False).size().rename(columns={"size": "n_models"}))
             .assign(delta0=delta0, feature_space=space.name))
    return per_model, table


def chain_figure(table: pd.DataFrame, split: str = "test"):
    """One panel per link (b)-(d) against ρ, one line per source, for one split of ``signal_chain``'s table."""
    import matplotlib.pyplot as plt

    rows = table[table.split == split]
    panels = [("coverage", "(b) key coverage"), ("near_copy_share", "(b) generated images that copy a key"),
              ("d_covered", "(c) best distance, covered keys"), ("conf", "(d) conf at δ0")]
    fig, axes = plt.subplots(1, len(panels), figsize=(4.0 * len(panels), 3.4))
    for ax, (column, title) in zip(axes, panels):
        for source, group in rows.groupby("source"):
            group = group.sort_values("rho")
            ax.plot(group.rho, group[column], marker="o", label=source)
            if column == "d_covered":  # the same suspects' uncovered keys, for comparison
                ax.plot(group.rho, group.d_uncovered, marker="x", linestyle=":", color=ax.lines[-1].get_color())
        if column != "d_covered":  # shares: on one 0-1 scale, so panels compare at a glance
            ax.set_ylim(-0.02, 1.02)
        ax.set_title(title, fontsize=10)
        ax.set_xlabel("ρ (share of generated training data)")
        ax.grid(alpha=0.3)
    axes[2].set_ylabel("distance (dotted: uncovered keys)")
    axes[0].legend(fontsize=8, title="source", title_fontsize=8)
    fig.suptitle(f"Signal chain on {split} suspects (δ0 = {rows.delta0.iloc[0]:.3f}, {rows.feature_space.iloc[0]} space)",
                 fontsize=10)
    fig.tight_layout()
    return fig
