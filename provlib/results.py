"""Result tables and figures: written atomically, with a sidecar recording what produced them."""
from __future__ import annotations

import datetime
import json
import subprocess

import matplotlib.pyplot as plt
import pandas as pd

from .paths import REPO_ROOT, figures_dir, results_dir
from .presets import Preset
from .store import atomic_write_text


def _git(*args: str) -> str:
    return subprocess.run(["git", *args], cwd=REPO_ROOT, capture_output=True, text=True, timeout=5).stdout.strip()


def _git_commit() -> str:
    """HEAD's short hash, marked when the code (not the results a run rewrites) differs from it."""
    try:
        head = _git("rev-parse", "--short", "HEAD") or "unknown"
        changed = _git("status", "--porcelain", "--", "provlib", "notebooks")
        return f"{head}+uncommitted" if changed else head
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def write_table(df: pd.DataFrame, name: str, preset: Preset, notebook: str) -> str:
    """``data/results/<name>.csv`` plus ``<name>.meta.json`` (preset, seed, commit, time)."""
    path = results_dir() / f"{name}.csv"
    atomic_write_text(path, df.to_csv(index=False))
    meta = {"table": f"{name}.csv", "notebook": notebook, "preset": preset.name, "seed": preset.seed,
            "parameters": preset.to_dict(), "git_commit": _git_commit(),
            "written": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")}
    atomic_write_text(results_dir() / f"{name}.meta.json", json.dumps(meta, indent=1, default=str))
    return str(path)


def save_figure(fig: plt.Figure, name: str) -> list[str]:
    """Save as PNG (for slides) and PDF (for papers) under ``figures/``."""
    paths = []
    for ext in ("png", "pdf"):
        path = figures_dir() / f"{name}.{ext}"
        tmp = path.with_name(f".{path.stem}.tmp.{ext}")
        fig.savefig(tmp, dpi=150, bbox_inches="tight")
        tmp.replace(path)
        paths.append(str(path))
    return paths
