"""Notebook 06's figures of dataset watermarking, drawn from its study tables (``provlib.watermark.study``).

Each function only draws: it takes the tables the notebook wrote and returns the Figure; the notebook saves it.
"""
from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns

from provlib.core.plotting import heatmap_figure


def detection_vs_fraction_figure(summary: pd.DataFrame, wm) -> plt.Figure:
    """Detection rate (TPR) against the marked share r, one panel per dataset-mark scheme and one line per strategy.

    ``summary`` is ``study.detection_summary``'s table; ``wm`` the preset's watermark section (strategies, fractions,
    statistic and α). Bands are the exact 95% intervals of the TPR, dotted lines each strategy's FPR on the clean
    fine-tunes, and the dashed line 90%.
    """
    colours = dict(zip(wm.strategies, sns.color_palette(n_colors=len(wm.strategies))))
    grid = sns.relplot(data=summary, x="fraction", y="tpr", hue="strategy", style="strategy", col="scheme", kind="line",
                       markers=True, dashes=False, height=3.4, aspect=1.1, palette=colours)
    for name, ax in grid.axes_dict.items():
        part = summary[summary.scheme == name]
        for strategy, group in part.groupby("strategy"):
            ax.fill_between(group.fraction, group.tpr_lo, group.tpr_hi, alpha=0.15, color=colours[strategy])
            ax.axhline(group.fpr.iloc[0], ls=":", lw=1, color=colours[strategy])
        ax.axhline(0.9, ls="--", lw=0.8, color="black")
        ax.set(xscale="log", ylim=(-0.02, 1.02))
        ax.set_xticks(wm.fractions, [f"{r:.0%}" for r in wm.fractions])
        ax.minorticks_off()
    grid.set_axis_labels("marked share r of the licensed copy (log scale)", "detection rate (TPR)")
    grid.set_titles("{col_name} scheme")
    grid.figure.suptitle(f"Detecting fine-tuning on a watermarked dataset ({wm.statistic} test, α = {wm.alpha}; bands: "
                         "95% intervals; dotted: FPR on clean fine-tunes; dashed: 90%)", y=1.04, fontsize=10)
    return grid.figure


def leak_tracing_figure(traced: pd.DataFrame, wm, mark_schemes) -> plt.Figure:
    """Which licensee leak tracing named against whose copy was used, one heatmap per strategy at the focus share.

    ``traced`` is ``study.traced_licensees``'s table; ``wm`` the preset's watermark section; ``mark_schemes`` the
    schemes licensed copies are marked with. Columns are every licensee, then each "several: ..." naming, then "none".
    """
    main = traced[traced.scheme.isin(mark_schemes) & np.isclose(traced.fraction, wm.focus_fraction)]
    names = [str(i) for i in range(wm.licensees)]
    order = names + sorted(n for n in main.named.unique() if n.startswith("several")) + ["none"]
    fig, axes = plt.subplots(1, len(wm.strategies), figsize=(4.6 * len(wm.strategies), 3.8), squeeze=False)
    for ax, strategy in zip(axes[0], wm.strategies):
        part = main[main.strategy == strategy]
        confusion = (pd.crosstab(part.true_licensee.astype(str), part.named.astype(str))
                     .reindex(index=names, columns=order, fill_value=0))
        heatmap_figure(confusion, fmt="d", cmap="Blues", vmin=None, vmax=None, ax=ax, xlabel="licensee named",
                       ylabel="licensee whose copy was used",
                       title=f"{strategy}, r = {wm.focus_fraction:.0%} ({part.correct.mean():.2f} correct)")
    fig.tight_layout()
    return fig
