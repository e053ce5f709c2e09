"""Intervals, Markdown formatting and a run's tables: the pieces every rendered document is made of."""
from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import stats

from provlib.core.errors import ParameterError

LEVEL = 0.95

# ---------------------------------------------------------------------------------------------------------------
# intervals and formatting


def exact_interval(successes: int, trials: int, level: float = LEVEL) -> tuple[float, float]:
    """Clopper-Pearson interval of a proportion (scipy's exact binomial interval)."""
    if trials <= 0:
        return (math.nan, math.nan)
    ci = stats.binomtest(int(successes), int(trials)).proportion_ci(confidence_level=level, method="exact")
    return (float(ci.low), float(ci.high))


def t_interval(mean: float, sd: float, n: int, level: float = LEVEL) -> tuple[float, float]:
    """Two-sided t-interval of a mean from its sample standard deviation and size."""
    if n < 2 or not np.isfinite(sd):
        return (math.nan, math.nan)
    half = stats.t.ppf(0.5 + level / 2, n - 1) * sd / math.sqrt(n)
    return (mean - half, mean + half)


def welch_interval(m1: float, s1: float, n1: int, m2: float, s2: float, n2: int,
                   level: float = LEVEL) -> tuple[float, float]:
    """Welch t-interval of a difference of two means (m1 - m2)."""
    if min(n1, n2) < 2:
        return (math.nan, math.nan)
    v1, v2 = s1 ** 2 / n1, s2 ** 2 / n2
    se = math.sqrt(v1 + v2)
    if se == 0:
        return (m1 - m2, m1 - m2)
    dof = (v1 + v2) ** 2 / (v1 ** 2 / (n1 - 1) + v2 ** 2 / (n2 - 1))
    half = stats.t.ppf(0.5 + level / 2, dof) * se
    return (m1 - m2 - half, m1 - m2 + half)


def rate(successes: float, trials: float) -> str:
    """``k/n = p [lo, hi]`` with the exact interval."""
    k, n = int(round(successes)), int(round(trials))
    if n == 0:
        return "n = 0"
    lo, hi = exact_interval(k, n)
    return f"{k}/{n} = {k / n:.2f} [{lo:.2f}, {hi:.2f}]"


def rates(frame: pd.DataFrame, share: str, count: str) -> list[str]:
    """``rate`` of every row, from a column of shares and the column of its denominators."""
    return [rate(k * n, n) for k, n in zip(frame[share], frame[count])]


def selected(frame: pd.DataFrame) -> pd.DataFrame:
    """The rows a notebook marked ``selected`` (the column reads back as bool, or as text in older tables)."""
    return frame[frame.selected.astype(str) == "True"]


def mean_ci(value: float, interval: tuple[float, float], n: int | None = None) -> str:
    text = f"{value:+.2f}" if value < 0 else f"{value:.2f}"
    if np.isfinite(interval[0]):
        text += f" [{interval[0]:.2f}, {interval[1]:.2f}]"
    return text + (f" (n = {n})" if n is not None else "")


def markdown_table(frame: pd.DataFrame, digits: int = 3) -> str:
    """A GitHub Markdown table; floats rounded to ``digits``."""
    def cell(value):
        if isinstance(value, (float, np.floating)):
            if not np.isfinite(value):
                return ""
            return f"{value:.{digits}f}".rstrip("0").rstrip(".") if digits else f"{value:.0f}"
        return str(value).replace("|", "\\|")
    header = "| " + " | ".join(str(c) for c in frame.columns) + " |"
    rule = "| " + " | ".join("---" for _ in frame.columns) + " |"
    body = ["| " + " | ".join(cell(v) for v in row) + " |" for row in frame.itertuples(index=False)]
    return "\n".join([header, rule, *body])


# ---------------------------------------------------------------------------------------------------------------
# reading a run's tables


class Tables:
    """The CSV tables of one run's results folder, read on first use."""

    def __init__(self, folder: str | Path, root: str | Path | None = None):
        self.folder = Path(folder)
        self.root = Path(root) if root is not None else self.folder.parents[1]  # the tree the documents live in
        if not self.folder.is_dir():
            raise ParameterError("results", "a folder of result tables (data/results or a run's results folder)",
                                 str(folder))
        self._cache: dict[str, pd.DataFrame] = {}

    def has(self, name: str) -> bool:
        return (self.folder / f"{name}.csv").exists()

    def __getitem__(self, name: str) -> pd.DataFrame:
        if name not in self._cache:
            path = self.folder / f"{name}.csv"
            if not path.exists():
                raise ParameterError("results", f"a results folder holding {name}.csv", str(self.folder))
            self._cache[name] = pd.read_csv(path)
        return self._cache[name]

    def seed(self) -> int | None:
        for meta in sorted(self.folder.glob("*.meta.json")):
            try:
                return int(json.loads(meta.read_text())["seed"])
            except (KeyError, ValueError, json.JSONDecodeError):
                continue
        return None
