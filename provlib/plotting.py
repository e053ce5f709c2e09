"""Image grids with readable captions."""
from __future__ import annotations

import textwrap

import matplotlib.pyplot as plt
import numpy as np


def image_grid(rows: list[np.ndarray], row_labels: list[str], column_titles: list[str] | None = None,
               title: str | None = None, cell: float = 1.6, wrap: int = 22, annotations=None) -> plt.Figure:
    """``rows[r][c]`` is an image; ``annotations[r][c]`` (optional) is printed under it."""
    n_rows, n_cols = len(rows), max(len(r) for r in rows)
    fig, axes = plt.subplots(n_rows, n_cols, figsize=(cell * n_cols + 1.2, cell * n_rows + 0.9), squeeze=False)
    for r in range(n_rows):
        for c in range(n_cols):
            ax = axes[r][c]
            ax.set_xticks([])
            ax.set_yticks([])
            for spine in ax.spines.values():
                spine.set_visible(False)
            if c < len(rows[r]):
                ax.imshow(rows[r][c], interpolation="nearest")
            if r == 0 and column_titles:
                ax.set_title(textwrap.fill(column_titles[c], wrap), fontsize=7)
            if c == 0:
                ax.set_ylabel(row_labels[r], fontsize=8, rotation=0, ha="right", va="center")
            if annotations is not None and annotations[r][c]:
                ax.set_xlabel(annotations[r][c], fontsize=7)
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return fig
