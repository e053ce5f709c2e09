"""Naming a suspect's source among several sources, or "none of them" (notebook 05).

Every suspect is scored by the discriminator against every source (P(infringing) per source). The named source is
the one with the largest P if it reaches the *naming level*, else "innocent". Two sources fine-tuned on one private
set copy the same images, so a suspect of either often gets P ≈ 1 against both: the discriminator's probability
saturates and no longer says which. Among the sources within ``tie_tolerance`` of the largest P, the rule names the
one the suspect comes closest to, relative to that source's own shadow innocents (``relative_closeness``), by one of
three statistics (``CLOSENESS``): its median best distance to the source's key images (``d_key``), to the source's
own generations for its key prompts (``d_source``: the rendering a suspect inherits from the source it trained on,
which differs between two sources of one private set even where their key images agree), or to the source's own
generations for *every* candidate prompt (``d_source_all``: three times the prompts of a key set at the ``cpu``
preset, and, where two sources share their candidate draw, the same answers compared with each source's rendering of
the same prompts). These statistics do not saturate. With ``tie_tolerance = 0`` only exact ties are broken this way
(instead of by the order of the sources' names). Level, tolerance and statistic are chosen together on shadow
suspects' out-of-fold scores (``choose_naming_rule``); test suspects only read the chosen rule.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from provlib.core.errors import ParameterError

MODEL_COLUMNS = ["model_id", "source", "rho", "split", "target"]
INNOCENT = "innocent"


# in the order preferred when shadow suspects cannot tell them apart; the last was added after the other two
CLOSENESS = ("d_source", "d_key", "d_source_all")


@dataclass(frozen=True)
class NamingRule:
    """Name the source of largest P(infringing) if it is at least ``threshold``; among sources whose P is within
    ``tie_tolerance`` of it and at least ``threshold``, the one of largest ``closeness`` (a ``CLOSENESS`` statistic;
    "": the first name). ``tie_tolerance = 1`` names the closest of every source whose P reaches the level."""
    threshold: float = 0.5
    tie_tolerance: float = 0.0
    closeness: str = ""

    def __post_init__(self):
        if not 0.0 <= self.threshold <= 1.0:
            raise ParameterError("threshold", "a P(infringing) level in [0, 1]", self.threshold)
        if not 0.0 <= self.tie_tolerance <= 1.0:
            raise ParameterError("tie_tolerance", "a difference of P(infringing) in [0, 1]", self.tie_tolerance)
        if self.closeness not in ("", *CLOSENESS):
            raise ParameterError("closeness", f"one of {CLOSENESS} or '' (ties go to the first name)", self.closeness)


def _names(score_table: pd.DataFrame, closeness_table: pd.DataFrame | None, rule: NamingRule) -> np.ndarray:
    """``name_source`` for every row of a (suspect x source) table of P(infringing) at once (ties in P or in
    closeness go to the first column, as ``idxmax`` does)."""
    scores = score_table.to_numpy(dtype=float)
    largest = scores.max(axis=1)
    best = scores.argmax(axis=1)
    if closeness_table is not None:
        # a source whose own P is below the naming level is never named, however wide the tolerance
        tied = (scores >= (largest - rule.tie_tolerance)[:, None]) & (scores >= rule.threshold)
        best = np.where(tied, closeness_table.to_numpy(dtype=float), -np.inf).argmax(axis=1)
    names = np.asarray(score_table.columns, dtype=object)[best]
    return np.where(largest < rule.threshold, INNOCENT, names).astype(str)


def name_source(scores_by_source: pd.Series, rule: NamingRule = NamingRule(),
                closeness_by_source: pd.Series | None = None) -> str:
    """The most likely source of a suspect from its P(infringing) against every source, or "innocent"."""
    if scores_by_source.empty:
        raise ParameterError("scores_by_source", "P(infringing) against at least one source", scores_by_source)
    closeness = None if closeness_by_source is None else closeness_by_source.reindex(scores_by_source.index).to_frame().T
    return str(_names(scores_by_source.to_frame().T, closeness, rule)[0])


def key_closeness(table: pd.DataFrame, meta: pd.DataFrame, distance: str = "d_key") -> np.ndarray:
    """``relative_closeness`` on a per-key table (``per_key_table``) by its ``d_key`` or ``d_source`` column."""
    if distance not in ("d_key", "d_source"):
        raise ParameterError("distance", "'d_key' or 'd_source' (a per-key table's distance to the source side)", distance)
    return relative_closeness(table, meta, distance)


def closeness_statistics(per_key: pd.DataFrame, per_candidate: pd.DataFrame, meta: pd.DataFrame) -> dict[str, np.ndarray]:
    """Every ``CLOSENESS`` statistic per row of ``meta``: the key statistics from a per-key table, ``d_source_all``
    from a per-candidate table (``candidate_table``) of the same suspects and targets."""
    return {"d_source": relative_closeness(per_key, meta, "d_source"), "d_key": relative_closeness(per_key, meta, "d_key"),
            "d_source_all": relative_closeness(per_candidate, meta, "d_source")}


def relative_closeness(table: pd.DataFrame, meta: pd.DataFrame, column: str) -> np.ndarray:
    """Per row of ``meta`` (a suspect against a target source): how much smaller the suspect's median ``column``
    distance over the table's rows for that pair (the target's keys, or every candidate prompt) is than that of the
    target's shadow innocents (ρ = 0), in their standard deviations.

    Shadow innocents are the defender's own models, so the scale is fixed before any test suspect is read.
    """
    if column not in table.columns:
        raise ParameterError("column", f"a distance column of the table {sorted(table.columns)}", column)
    medians = table.groupby(MODEL_COLUMNS, sort=True)[column].median()
    medians = medians.reindex(pd.MultiIndex.from_frame(meta[MODEL_COLUMNS])).to_numpy()
    if np.isnan(medians).any():
        raise ParameterError("table", "distances for every (suspect, target) row of meta", int(np.isnan(medians).sum()))
    reference = ((meta.rho == 0) & (meta.split == "shadow")).to_numpy()
    closeness = np.empty(len(meta))
    for target in meta.target.unique():
        rows = (meta.target == target).to_numpy()
        innocent = medians[rows & reference]
        if len(innocent) == 0:
            raise ParameterError("meta", f"at least one shadow innocent scored against {target!r}", 0)
        spread = innocent.std(ddof=1) if len(innocent) > 1 else 0.0
        closeness[rows] = (np.median(innocent) - medians[rows]) / (spread if spread > 0 else 1.0)
    return closeness


def _pivot(meta: pd.DataFrame, values: np.ndarray) -> pd.DataFrame:
    """One value per row of ``meta`` as a (model_id x target) table."""
    return meta.assign(value=values).pivot_table(index="model_id", columns="target", values="value")


def _true_origins(meta: pd.DataFrame) -> pd.Series:
    models = meta.drop_duplicates("model_id").set_index("model_id")
    return pd.Series(np.where(models.rho > 0, models.source, INNOCENT), index=models.index, name="true origin")


def named_sources(meta: pd.DataFrame, scores: np.ndarray, rule: NamingRule = NamingRule(),
                  closeness: dict[str, np.ndarray] | None = None) -> pd.Series:
    """The named source (or "innocent") per model_id of suspects scored against every source; ``closeness`` maps
    statistic names to one value per row of ``meta`` and must hold the rule's statistic, if it has one."""
    if rule.closeness and rule.closeness not in (closeness or {}):
        raise ParameterError("closeness", f"the rule's statistic {rule.closeness!r} per row of meta", sorted(closeness or {}))
    score_table = _pivot(meta, scores)
    closeness_table = _pivot(meta, closeness[rule.closeness]) if rule.closeness else None
    return pd.Series(_names(score_table, closeness_table, rule), index=score_table.index, name="named source")


def source_confusion(meta: pd.DataFrame, scores: np.ndarray, rule: NamingRule = NamingRule(),
                     closeness: dict[str, np.ndarray] | None = None) -> pd.DataFrame:
    """Suspects scored against every source: true origin (source or "innocent") x named source (or "innocent")."""
    named = named_sources(meta, scores, rule, closeness)
    truth = _true_origins(meta)
    order = sorted(meta.target.unique()) + [INNOCENT]
    return pd.crosstab(truth, named.reindex(truth.index)).reindex(index=order, columns=order, fill_value=0)


def naming_accuracy(meta: pd.DataFrame, scores: np.ndarray, rule: NamingRule = NamingRule(),
                    closeness: dict[str, np.ndarray] | None = None) -> float:
    """Share of suspects named right (their source, or "innocent")."""
    named = named_sources(meta, scores, rule, closeness)
    return _share_named_right(named.to_numpy(), _true_origins(meta).reindex(named.index).to_numpy())


def _share_named_right(named: np.ndarray, truth: np.ndarray) -> float:
    """The one accuracy formula of naming: ``naming_accuracy`` and every rule of ``choose_naming_rule``'s grid."""
    return float((named == truth).mean())


RULE_CHOICES = ("most_accurate", "one_standard_error")


def choose_naming_rule(meta: pd.DataFrame, scores: np.ndarray, closeness: dict[str, np.ndarray] | None = None,
                       thresholds=None, tie_tolerances=(0.0,), choice: str = "most_accurate"
                       ) -> tuple[NamingRule, pd.DataFrame]:
    """The naming level, tie tolerance and closeness statistic, chosen on shadow suspects (out-of-fold scores): a rule
    of the grid (every statistic in ``closeness``, or none when it is empty), as ``best_rule`` picks it by ``choice``;
    the grid's table is returned with it."""
    thresholds = np.round(np.arange(0.05, 1.0, 0.025), 3) if thresholds is None else np.asarray(thresholds)
    statistics = [name for name in CLOSENESS if name in (closeness or {})] or [""]
    # the tables are pivoted once; every rule of the grid only re-reads them
    score_table, truth = _pivot(meta, scores), _true_origins(meta)
    truth = truth.reindex(score_table.index).to_numpy()
    rows = []
    for statistic in statistics:
        closeness_table = _pivot(meta, closeness[statistic]) if statistic else None
        for tolerance in (tie_tolerances if statistic else (0.0,)):
            for level in thresholds:
                rule = NamingRule(float(level), float(tolerance), statistic)
                rows.append({"closeness": statistic, "tie_tolerance": float(tolerance), "threshold": float(level),
                             "shadow_naming_accuracy": _share_named_right(_names(score_table, closeness_table, rule), truth),
                             "n_shadow_suspects": len(truth)})
    table = pd.DataFrame(rows)
    return best_rule(table, choice), table


def best_rule(table: pd.DataFrame, choice: str = "most_accurate") -> NamingRule:
    """The rule of a ``choose_naming_rule`` grid table (or of a part of it, e.g. one statistic's rows).

    ``"most_accurate"``: the rule that names the most shadow suspects right; among equally accurate ones the smallest
    tolerance, then the statistic first in ``CLOSENESS``, then the middle level. ``"one_standard_error"``: the
    one-standard-error rule (Breiman et al. 1984; Hastie, Tibshirani & Friedman, *Elements of Statistical Learning*
    §7.10): every rule within one binomial standard error, sqrt(a (1 - a) / n), of the best shadow accuracy a over the
    n shadow suspects is as good as the best, and the simplest of them is kept: the smallest tie tolerance, and at that
    tolerance the most accurate rule, as above. A tolerance that wins by one shadow suspect of twenty is not evidence.
    """
    if choice not in RULE_CHOICES:
        raise ParameterError("naming_rule_choice", f"one of {RULE_CHOICES}", choice)
    if table.empty:
        raise ParameterError("table", "at least one naming rule's shadow accuracy", 0)
    accuracy = table.shadow_naming_accuracy
    if choice == "one_standard_error":
        top = accuracy.max()
        error = np.sqrt(top * (1 - top) / table.n_shadow_suspects.iloc[0])
        simplest = table.tie_tolerance[accuracy >= top - error - 1e-12].min()
        table = table[table.tie_tolerance == simplest]
        accuracy = table.shadow_naming_accuracy
    best = table[np.isclose(accuracy, accuracy.max())]
    best = best[best.tie_tolerance == best.tie_tolerance.min()]
    best = best[best.closeness == best.closeness.iloc[0]]  # rows are in CLOSENESS order
    chosen = best.iloc[len(best) // 2]
    return NamingRule(float(chosen.threshold), float(chosen.tie_tolerance), str(chosen.closeness))
