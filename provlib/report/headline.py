"""The headline quantities of a run, the targets it is held to, and its measured cost.

Each quantity is computed once here and used by the README, ``docs/results.md`` and ``python -m provlib replicate``.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np
import pandas as pd

from provlib.report.tables import Tables, selected, welch_interval

# ---------------------------------------------------------------------------------------------------------------
# headline quantities: each one is computed once here and used by the README, docs/results.md and replications


def chosen_operating_point(t: Tables) -> pd.Series:
    """Notebook 03's selected row: feature space, delta0, conf level and the answers asked per key."""
    table = t["delta0"]
    return selected(table).iloc[0]


def instance_conf(t: Tables) -> pd.DataFrame:
    table = t["instance_conf_by_rho"]
    return selected(table).set_index(["method", "rho"])


def instance_gap(t: Tables) -> dict:
    """Strategy 1+2's mean conf at the smallest rho minus the innocent mean, with a Welch interval (test suspects)."""
    sel = instance_conf(t)
    rhos = sorted(r for r in sel.loc["strategy12"].index if r > 0)
    low, innocent = sel.loc[("strategy12", rhos[0])], sel.loc[("strategy12", 0.0)]
    value = low.mean_conf - innocent.mean_conf
    interval = welch_interval(low.mean_conf, low.std_conf, int(low.n_models),
                              innocent.mean_conf, innocent.std_conf, int(innocent.n_models))
    margin = min(sel.loc[("strategy12", r)].mean_conf - sel.loc[("random", r)].mean_conf for r in rhos)
    return {"rho": rhos[0], "gap": value, "interval": interval, "n_infringing": int(low.n_models),
            "n_innocent": int(innocent.n_models), "margin_over_random": margin}


def instance_decisions(t: Tables) -> pd.DataFrame:
    """Test suspects called infringing at notebook 03's level, per rho, as counts (at the chosen answers per key)."""
    point = chosen_operating_point(t)
    table = t["instance_conf_by_queries"]
    rows = table[(table.split == "test") & (table.queries_per_key == int(point.query_images))
                 & (table.feature_space == point.feature_space)].copy()
    rows["called"] = (rows.called_infringing * rows.n_models).round().astype(int)
    return rows[["rho", "called", "n_models", "mean_conf"]].reset_index(drop=True)


def discriminator_summary(t: Tables) -> dict:
    table = t["table1_discriminator"]
    table = table[~table.source.isin(["mean", "all", "pooled"])]
    return {"auc": float(table.auc.mean()), "tpr_at_10fpr": float(table.tpr_at_10fpr.mean()),
            "n_sources": len(table), "n_infringing": int(table.n_test_infringing.sum()),
            "n_innocent": int(table.n_test_innocent.min()), "n_test_models": int(table.n_test_models.max()),
            "listings_right": int(round((table.accuracy * table.n_test_models).sum())),
            "listings": int(table.n_test_models.sum())}


def naming_counts(t: Tables) -> tuple[int, int]:
    table = t["source_attribution_confusion"].set_index("true origin")
    right = sum(int(table.loc[origin, origin]) for origin in table.index if origin in table.columns)
    return right, int(table.to_numpy().sum())


def watermark_row(t: Tables, strategy: str, fraction: float, table: str = "dataset_watermark_detection") -> pd.Series:
    frame = t[table]
    frame = frame[(frame.strategy == strategy) & np.isclose(frame.fraction, fraction)]
    return frame.iloc[0] if len(frame) else None


def trainprove_rule(t: Tables, rule: str = "grubbs") -> pd.Series:
    table = t["trainprove_rules"]
    return table[table.rule == rule].iloc[0]


# ---------------------------------------------------------------------------------------------------------------
# targets: what the committed run is held to, and what a replication is scored on


@dataclass
class Target:
    name: str
    needs: tuple[str, ...]
    measure: Callable[[Tables], float]
    bar: float
    at_least: bool = True

    def met(self, value: float) -> bool:
        return bool(value >= self.bar) if self.at_least else bool(value <= self.bar)

    def describe(self) -> str:
        return f"{'≥' if self.at_least else '≤'} {self.bar:g}"


def _innocent_flag_rate(t: Tables) -> float:
    decisions = instance_decisions(t)
    innocent = decisions[decisions.rho == 0].iloc[0]
    return innocent.called / innocent.n_models


TARGETS = [
    Target("conf gap, Strategy 1+2 at the smallest rho minus innocent", ("instance_conf_by_rho",),
           lambda t: instance_gap(t)["gap"], 0.4),
    Target("Strategy 1+2 minus random keys, smallest over rho", ("instance_conf_by_rho",),
           lambda t: instance_gap(t)["margin_over_random"], 0.2),
    Target("innocent test suspects called infringing", ("instance_conf_by_queries", "delta0"),
           _innocent_flag_rate, 0.05, at_least=False),
    Target("discriminator AUC, mean over sources (Table 1)", ("table1_discriminator",),
           lambda t: discriminator_summary(t)["auc"], 0.95),
    Target("discriminator TPR at 10% FPR, mean over sources", ("table1_discriminator",),
           lambda t: discriminator_summary(t)["tpr_at_10fpr"], 0.9),
    Target("source named right (test suspects)", ("source_attribution_confusion",),
           lambda t: naming_counts(t)[0] / naming_counts(t)[1], 0.9),
    Target("trigger watermark at 2%: marked fine-tunes detected", ("dataset_watermark_detection",),
           lambda t: float(watermark_row(t, "trigger", 0.02).tpr), 0.9),
    Target("TrainProVe Grubbs accuracy", ("trainprove_rules",),
           lambda t: float(trainprove_rule(t).accuracy), 0.95),
]


def score_targets(t: Tables) -> pd.DataFrame:
    rows = []
    for target in TARGETS:
        if not all(t.has(name) for name in target.needs):
            continue
        try:
            value = float(target.measure(t))
        except (KeyError, IndexError, AttributeError):
            continue  # the run lacks the rows this target reads (another preset's grid)
        rows.append({"target": target.name, "bar": target.describe(), "value": round(value, 4),
                     "met": target.met(value)})
    return pd.DataFrame(rows, columns=["target", "bar", "value", "met"])


# ---------------------------------------------------------------------------------------------------------------
# run cost


def cold_costs(t: Tables, preset: str = "cpu") -> pd.DataFrame:
    """Per notebook, the recorded run that started with the fewest cached artifacts (the latest among ties).

    ``make workbook`` from an empty cache builds every notebook's models in its own run, so that row is its cold cost.
    """
    runs = t["workbook_runs"]
    runs = runs[runs.preset == preset].reset_index(drop=True)
    if runs.empty:
        return pd.DataFrame(columns=["notebook", "seconds", "peak_rss_gib", "cpus", "cached_artifacts_at_start",
                                     "cpu_model"])
    if "cpu_model" not in runs:
        runs["cpu_model"] = "unknown"
    coldest = runs.sort_values(["notebook", "cached_artifacts_at_start", "finished"],
                               ascending=[True, True, False]).groupby("notebook").head(1)
    return coldest.sort_values("notebook")[["notebook", "seconds", "peak_rss_gib", "cpus", "cached_artifacts_at_start",
                                            "cpu_model"]].reset_index(drop=True)


def test_cost(t: Tables) -> pd.Series | None:
    if not t.has("test_runs"):
        return None
    return t["test_runs"].iloc[-1]


def minutes(seconds: float) -> str:
    return f"{seconds / 60:.0f} min"
