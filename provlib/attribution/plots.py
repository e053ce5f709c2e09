"""The attribution notebooks' (01-05) larger figures, drawn from their tables.

Each function only draws: it takes the table a notebook computed (and the few labels its title needs) and returns
the Figure; the notebook saves it (``save_figure``) under the name it always had and shows it.

========================================= ======== ===============================
function                                  notebook figure saved as
========================================= ======== ===============================
``copy_curve_figure``                     01       ``01_copy_curve``
``key_distance_histograms_figure``        03       ``03_key_distance_histograms``
``conf_vs_delta0_figure``                 03       ``03_conf_vs_delta0``
``conf_by_queries_figure``                04       ``04_conf_by_queries``
``roc_figure``                            05       ``05_roc``
========================================= ======== ===============================
"""
from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd


def copy_curve_figure(copy_curve: pd.DataFrame) -> plt.Figure:
    """Notebook 01's copy rate along fine-tuning: left, the share of generations that copy their own training image
    (and Gu et al.'s criterion) per source and step against chance; right, the distances to the own image and to the
    nearest same-caption real image, with the same-caption spread (dotted) and the autoencoder floor (dash-dot).

    ``copy_curve`` is the ``source_copy_curve`` table (one row per source and recorded step).
    """
    fig, axes = plt.subplots(1, 2, figsize=(11, 3.8))
    for source, group in copy_curve.groupby("source"):
        line, = axes[0].plot(group.step, group.copy_rate, marker="o", label=f"{source}: copy rate")
        axes[0].plot(group.step, group.gu_memorized_rate, marker="x", linestyle=":", color=line.get_color(),
                     label=f"{source}: Gu et al. memorized")
        axes[1].plot(group.step, group.d_own, marker="o", color=line.get_color(), label=f"{source}: to its own image")
        axes[1].plot(group.step, group.d_same_caption_real, linestyle="--", color=line.get_color(),
                     label=f"{source}: to nearest same-caption real")
        axes[1].axhline(group.same_caption_real_spread.iloc[0], linestyle=":", color=line.get_color(), alpha=0.6)
        axes[1].axhline(group.autoencoder_floor.iloc[0], linestyle="-.", color=line.get_color(), alpha=0.6)
    axes[0].axhline(copy_curve.chance_copy_rate.mean(), color="gray", linestyle="--", label="chance (caption only)")
    axes[0].set(xlabel="fine-tuning step", ylabel="share of generations", ylim=(0, 1.02),
                title="Does the source copy its own training image?")
    axes[1].set(xlabel="fine-tuning step", ylabel="pixel distance (normalized RMS)",
                title="Distances (dotted: two same-caption reals; dash-dot: autoencoder floor)")
    for ax in axes:
        ax.legend(fontsize=7)
        ax.grid(alpha=0.3)
    fig.tight_layout()
    return fig


def key_distance_histograms_figure(table2_distances: pd.DataFrame, delta0_of: dict, top_rho: float,
                                   key_count: int) -> plt.Figure:
    """Notebook 03's Table 2 as histograms: the key samples' best distances on the infringing (ρ = ``top_rho``) and
    the innocent shadow model of each source, one row per feature space, with δ0 dashed.

    ``table2_distances`` has one row per (feature space, model, key) with ``distance`` and ``rho``; ``delta0_of``
    maps a feature space to the δ0 drawn in its row; ``key_count`` (N) is named in the title.
    """
    import seaborn as sns  # the plotting extra

    grid = sns.displot(data=table2_distances.assign(model=np.where(table2_distances.rho > 0, f"infringing (rho={top_rho})", "innocent")),
                       x="distance", hue="model", col="source", row="feature_space", kind="hist", bins=20, common_norm=False,
                       stat="probability", height=2.4, aspect=1.15, facet_kws={"sharex": "row", "sharey": False},
                       palette={f"infringing (rho={top_rho})": "tab:red", "innocent": "tab:blue"})
    for (space_name, _), ax in grid.axes_dict.items():
        ax.axvline(delta0_of[space_name], color="k", ls="--", lw=1)
        ax.text(delta0_of[space_name], ax.get_ylim()[1] * 0.9, " δ0", fontsize=8)
    grid.set_axis_labels("best distance to the key image", "share of key samples")
    grid.set_titles("{row_name} space, {col_name}", size=9)
    grid.figure.suptitle(f"Reconstruction distances of the {key_count} key samples (shadow models; dashed: δ0 chosen on shadow models)",
                         y=1.02, fontsize=10)
    return grid.figure


def conf_vs_delta0_figure(sweep: pd.DataFrame, delta0_of: dict) -> plt.Figure:
    """Notebook 03's sweep: mean conf of the shadow infringing and innocent suspects against δ0, one panel per feature
    space, with δ0 dashed.

    ``sweep`` has columns ``feature_space``, ``delta0``, ``model`` and ``mean_conf``; ``delta0_of`` maps a feature
    space to the δ0 drawn in its panel.
    """
    import seaborn as sns  # the plotting extra

    grid = sns.relplot(data=sweep, x="delta0", y="mean_conf", hue="model", col="feature_space", kind="line", height=3, aspect=1.3,
                       palette=["tab:blue", "tab:red"], facet_kws={"sharex": False})
    for name, ax in grid.axes_dict.items():
        ax.axvline(delta0_of[name], color="k", ls="--", lw=1)
    grid.set_axis_labels("δ0", "mean conf (shadow models)")
    grid.figure.suptitle("conf of shadow infringing vs innocent suspects as δ0 varies (dashed: chosen δ0)", y=1.04, fontsize=10)
    return grid.figure


def conf_by_queries_figure(budget: pd.DataFrame, feature_space: str, key_count: int) -> plt.Figure:
    """Notebook 04's query budget on the test suspects: mean conf (left) and the share called infringing (right)
    against the answers asked per key, one line per ρ (innocent models as ρ = 0).

    ``budget`` is the ``instance_conf_by_queries`` table (shadow rows are left out here); ``feature_space`` and
    ``key_count`` (N) are named in the title.
    """
    import seaborn as sns  # the plotting extra

    shown = budget[budget.split == "test"].assign(
        model=lambda d: np.where(d.rho > 0, "infringing, rho=" + d.rho.astype(str), "innocent"))
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.6))
    sns.lineplot(data=shown, x="queries_per_key", y="mean_conf", hue="model", marker="o", ax=axes[0], palette="viridis")
    sns.lineplot(data=shown, x="queries_per_key", y="called_infringing", hue="model", marker="o", ax=axes[1],
                 palette="viridis", legend=False)
    for ax, label in zip(axes, ("mean conf (test suspects)", "share called infringing (test)")):
        ax.set_xlabel("answers per key k")
        ax.set_ylabel(label)
        ax.set_ylim(-0.02, 1.02)
        ax.set_xticks(sorted(shown.queries_per_key.unique()))
    axes[0].legend(fontsize=7)
    fig.suptitle(f"The query budget ({feature_space} space, Strategy 1+2, N = {key_count}; "
                 "δ0 and the conf level re-chosen on shadows for each k)", fontsize=10)
    return fig


def roc_figure(test_meta: pd.DataFrame, test_scores: np.ndarray, table1: pd.DataFrame, config, decision_threshold: float,
               key_count: int, query_images: int) -> plt.Figure:
    """Notebook 05's ROC curves of the chosen discriminator on the test suspects: per source (left, each with its
    Table 1 AUC) and pooled over sources (right), with chance dotted and 10% FPR dashed.

    ``test_meta`` and ``test_scores`` are the test models' rows and P(infringing); ``table1`` the
    ``table1_discriminator`` table; ``config`` the chosen ``DiscriminatorConfig``, named in the title with N and k.
    """
    from sklearn.metrics import roc_curve

    from provlib.attribution.metrics import detection_report
    from provlib.attribution.statistical import labels_of

    fig, axes = plt.subplots(1, 2, figsize=(10, 4.2))
    for source in sorted(test_meta.target.unique()):
        members = (test_meta.target == source).to_numpy()
        fpr, tpr, _ = roc_curve(labels_of(test_meta)[members], test_scores[members])
        auc = table1.set_index("source").auc[source]
        axes[0].plot(fpr, tpr, drawstyle="steps-post", label=f"{source} (AUC {auc:.2f})")
    fpr, tpr, _ = roc_curve(labels_of(test_meta), test_scores)
    pooled = detection_report(labels_of(test_meta), test_scores, decision_threshold)
    axes[1].plot(fpr, tpr, drawstyle="steps-post", color="k", label=f"all sources pooled (AUC {pooled['auc']:.2f})")
    for ax in axes:
        ax.plot([0, 1], [0, 1], ":", color="gray", label="chance")
        ax.axvline(0.1, color="tab:red", lw=0.8, ls="--")
        ax.set_xlabel("false-positive rate (innocent models called infringing)")
        ax.set_ylabel("true-positive rate (infringing models caught)")
        ax.legend(fontsize=7, loc="lower right")
    axes[0].set_title("ROC per source model (test suspects)", fontsize=10)
    axes[1].set_title("ROC over all test suspects; dashed: 10% FPR", fontsize=10)
    fig.suptitle(f"Discriminator: {config.feature_set} features, {config.feature_space} space, {config.classifier}, "
                 f"{config.scope}; N={key_count}, k={query_images}", fontsize=10)
    fig.tight_layout()
    return fig
