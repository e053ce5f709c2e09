"""Notebook 07's figures of TrainProVe, drawn from its study tables (``provlib.trainprove.study``, ``owner_checks``).

Each function only draws: it takes tables the notebook computed and returns the Figure; the notebook saves it.
"""
from __future__ import annotations

import matplotlib.pyplot as plt
import pandas as pd
import seaborn as sns

from provlib.core.plotting import heatmap_figure


def generator_checks_figure(transfer: pd.DataFrame, confusion: pd.DataFrame, attribution: float,
                            generators: list[str]) -> plt.Figure:
    """Left: each shadow's accuracy on every generator's fresh images (class fidelity on the diagonal). Right: the
    generator-attribution classifier's confusion (``owner_checks.transfer_matrix`` and ``generator_attribution``)."""
    fig, axes = plt.subplots(1, 2, figsize=(13, 4.2))
    heatmap_figure(transfer.pivot(index="trained_on", columns="tested_on", values="accuracy").reindex(index=generators, columns=generators),
                   title="Shadow accuracy: class fidelity on the diagonal", xlabel="fresh images from",
                   ylabel="shadow trained on", value_label="accuracy", ax=axes[0])
    heatmap_figure(confusion.set_index("generator")[[f"named_{g}" for g in generators]].set_axis(generators, axis=1),
                   title=f"Which generator drew it? (accuracy {attribution:.2f})", xlabel="named", ylabel="drawn by",
                   value_label="share", ax=axes[1])
    fig.tight_layout()
    return fig


def rules_compared_figure(rules_table: pd.DataFrame, stats: dict) -> plt.Figure:
    """Accuracy, TPR and FPR of every rule on the same (suspect, defender) pairs (``study.summary_by_rule``), with the
    accuracy target 0.95 and the FPR ceiling 0.05; ``stats`` is ``study.summary`` of the published rule (pair counts)."""
    fig, ax = plt.subplots(figsize=(9, 4))
    bars = rules_table.melt(id_vars="rule", value_vars=["accuracy", "tpr", "fpr"], var_name="measure", value_name="rate")
    sns.barplot(data=bars, x="rule", y="rate", hue="measure", ax=ax)
    ax.axhline(0.95, color="gray", ls=":", lw=1, label="accuracy target 0.95")
    ax.axhline(0.05, color="gray", ls="--", lw=1, label="FPR ceiling 0.05")
    ax.set(xlabel="decision rule", ylabel="rate over (suspect, defender) pairs", ylim=(0, 1.02),
           title=f"Four rules on the same {stats['pairs']} pairs ({stats['n_positive']} positive)")
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1))
    fig.tight_layout()
    return fig


def grubbs_statistic_figure(plot_data: pd.DataFrame, critical: float) -> plt.Figure:
    """Left: Grubbs' G of every pair by pair type, against the critical value. Right: the suspect's score on G's
    images minus the shadow's mean. ``plot_data`` is the published rule's verdicts with a ``pair`` type and the
    statistic clipped for display (``shown_statistic``)."""
    fig, axes = plt.subplots(1, 2, figsize=(12, 4.2))
    sns.stripplot(data=plot_data, x="shown_statistic", y="pair", hue="pair", legend=False, ax=axes[0], alpha=0.7, jitter=0.25)
    axes[0].axvline(critical, color="black", ls="--", lw=1, label=f"critical value {critical:.2f}")
    axes[0].set(xlabel="Grubbs G (shadow sd below the shadow's mean accuracy)", ylabel="", title="Grubbs statistic by pair type")
    axes[0].legend(loc="lower right")
    sns.stripplot(data=plot_data.assign(gap=plot_data.suspect_score - plot_data.shadow_mean), x="gap", y="pair", hue="pair",
                  legend=False, ax=axes[1], alpha=0.7, jitter=0.25)
    axes[1].axvline(0, color="black", lw=1)
    axes[1].set(xlabel="suspect's accuracy on G's images − shadow's mean accuracy", ylabel="", title="Accuracy against the shadow's")
    fig.tight_layout()
    return fig


def by_test_size_figure(size_summary: pd.DataFrame, alpha: float, size_repeats: int) -> plt.Figure:
    """Verification accuracy and FPR of every rule against the defender's test images per generator (log scale), mean
    and standard deviation over ``size_repeats`` random subsets (``study.by_test_size``, summarised)."""
    fig, axes = plt.subplots(1, 2, figsize=(12, 4), sharey=True)
    for rule, group in size_summary.groupby("rule", sort=False):
        for ax, metric in zip(axes, ("accuracy", "fpr")):
            ax.errorbar(group.n_per_generator, group[f"{metric}_mean"], yerr=group[f"{metric}_std"], fmt="-o", capsize=3,
                        label=rule)
    for ax, metric in zip(axes, ("verification accuracy", "FPR")):
        ax.axhline(alpha, color="gray", lw=0.8, ls=":")
        ax.set(xscale="log", xlabel="test images per generator (log)", ylabel=metric, ylim=(-0.02, 1.02),
               title=f"{metric} vs. test-set size ({size_repeats} random subsets each)")
        ax.set_xticks(sorted(set(size_summary.n_per_generator)), [str(n) for n in sorted(set(size_summary.n_per_generator))])
        ax.minorticks_off()
        ax.legend(fontsize=8)
    return fig
