"""Notebook 08's figures: what a verification's verdict rests on, and the verdicts beside notebook 04's.

Each function only draws, from the verdict table and what the verifications kept on disk, and returns the Figure;
the notebook saves it.
"""
from __future__ import annotations

from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns

from provlib.core.plotting import image_grid
from provlib.verify.report import best_answers, read_evidence


def key_answer_pairs_figure(verdicts: pd.DataFrame, key_images: np.ndarray, manifest: dict, space) -> plt.Figure:
    """The eight closest key samples of an infringing and an innocent suspect (each as its first kind): every key
    image above the suspects' nearest answers, with the distance; ✓ marks keys within δ0.

    ``verdicts`` has one row per (suspect, kind) with its ``report`` path (the evidence is read from beside it);
    ``key_images`` and ``manifest`` come from the key file; ``space`` is its feature space.
    """
    image_rows, labels, notes = [], [], []
    firsts = verdicts[verdicts.kind == verdicts.kind.iloc[0]].drop_duplicates("model_id")
    for row in pd.concat([firsts[firsts.rho > 0].head(1), firsts[~(firsts.rho > 0)].head(1)]).itertuples():
        kept = read_evidence(Path(row.report).parent)
        evidence = {"answers": kept["answers"], "distances": kept["distances"], "key_images": key_images, "space": space}
        order, nearest = np.argsort(evidence["distances"])[:8], best_answers(evidence)
        if not image_rows:
            image_rows.append([evidence["key_images"][i] for i in order])
            labels.append("key image")
            notes.append([manifest["prompts"][i][:24] for i in order])
        image_rows.append([nearest[i] for i in order])
        labels.append(f"{row.model_id}\n{row.kind}: {row.verdict}")
        notes.append([f"d={evidence['distances'][i]:.3f}" + (" ✓" if evidence["distances"][i] < manifest["delta0"] else "")
                      for i in order])
    return image_grid(image_rows, labels,
                      title=f"Closest key/answer pairs (δ0 = {manifest['delta0']:.3f}, {manifest['feature_space']} space)",
                      annotations=notes)


def verdict_conf_figure(verdicts: pd.DataFrame, conf_threshold: float, source: str) -> plt.Figure:
    """conf of every verified suspect by suspect kind, against the key file's decision level, with notebook 04's conf
    for the same suspect (red crosses) when the verdict table has it (``conf_04``)."""
    fig, ax = plt.subplots(figsize=(7.5, 3.4))
    plot = verdicts.assign(suspect=lambda d: d.model_id.astype(str) + np.where(d.rho > 0, " (infringing)", np.where(d.rho == 0, " (innocent)", "")))
    sns.barplot(data=plot, x="suspect", y="conf", hue="kind", ax=ax)
    ax.axhline(conf_threshold, color="black", linestyle="--", linewidth=1, label=f"decision level {conf_threshold:.2f}")
    if "conf_04" in plot:
        ax.scatter(range(plot.suspect.nunique()), plot.drop_duplicates("suspect").conf_04, marker="x", color="red", zorder=3,
                   label="notebook 04's conf")
    ax.set_ylim(0, 1.02)
    ax.set_ylabel("conf (share of keys within δ0)")
    ax.set_xlabel("")
    ax.tick_params(axis="x", labelsize=7)
    ax.legend(fontsize=7, bbox_to_anchor=(1.01, 1), loc="upper left")
    ax.set_title(f"Verdicts on {source}'s key file, by suspect kind", fontsize=10)
    return fig
