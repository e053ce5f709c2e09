"""Image grids with readable captions."""
from __future__ import annotations

import textwrap

import matplotlib.pyplot as plt
import numpy as np


def image_grid(rows: list[np.ndarray], row_labels: list[str], column_titles: list[str] | None = None,
               title: str | None = None, cell: float = 1.6, wrap: int = 22, annotations=None,
               cell_titles=None) -> plt.Figure:
    """``rows[r][c]`` is an image; ``annotations[r][c]`` (optional) is printed under it and ``cell_titles[r][c]``
    (optional, e.g. each image's own caption) above it; ``column_titles`` label the first row only."""
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
            if cell_titles is not None and c < len(cell_titles[r]):
                ax.set_title(textwrap.fill(cell_titles[r][c], wrap), fontsize=6)
            elif r == 0 and column_titles:
                ax.set_title(textwrap.fill(column_titles[c], wrap), fontsize=7)
            if c == 0:
                ax.set_ylabel(row_labels[r], fontsize=8, rotation=0, ha="right", va="center")
            if annotations is not None and annotations[r][c]:
                ax.set_xlabel(annotations[r][c], fontsize=7)
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return fig


def heatmap_figure(table, *, title: str, xlabel: str, ylabel: str, fmt: str = ".2f", cmap: str = "viridis",
                   value_label: str | None = None, vmin: float | None = 0.0, vmax: float | None = 1.0,
                   ax=None) -> plt.Figure:
    """An annotated heatmap of a table (rates or counts), sized to its shape; the workbook's matrix figure.

    ``value_label`` names the colour bar; without it no colour bar is drawn (counts speak for themselves).
    """
    import seaborn as sns  # the plotting extra; imported here so the core stays light

    if ax is None:
        _, ax = plt.subplots(figsize=(1.1 * table.shape[1] + 3.0, 0.45 * table.shape[0] + 1.6))
    sns.heatmap(table, annot=True, fmt=fmt, cmap=cmap, vmin=vmin, vmax=vmax, ax=ax, cbar=value_label is not None,
                cbar_kws={"label": value_label} if value_label else None)
    ax.set(xlabel=xlabel, ylabel=ylabel)
    ax.set_title(title, fontsize=10)
    return ax.figure


def mean_conf_lines(ax, table, labels: dict, *, group: str = "method", x: str = "rho", order=None) -> None:
    """Mean conf against ρ, one line per ``group`` value with standard-error bars (Figure 6's form).

    ``table`` has columns ``x``, ``mean_conf``, ``std_conf`` and ``n_models`` (as ``conf_by_rho`` writes them).
    """
    for name in order or sorted(table[group].unique()):
        rows = table[table[group] == name].sort_values(x)
        if rows.empty:
            continue
        ax.errorbar(rows[x], rows.mean_conf, yerr=rows.std_conf / np.sqrt(rows.n_models), marker="o", capsize=3,
                    label=labels.get(name, name))
    ax.set(xlabel="ρ (share of source-generated training data; 0 = innocent)", ylabel="mean conf (test suspects)",
           ylim=(-0.02, 1.02))
    ax.legend(fontsize=8)
