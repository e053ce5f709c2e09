"""Result tables and figures: written atomically, with a sidecar recording what produced them."""
from __future__ import annotations

import datetime
import json
import subprocess
from pathlib import Path

import matplotlib.pyplot as plt
import pandas as pd

from provlib.core.errors import ParameterError
from provlib.core.paths import REPO_ROOT, figures_dir, results_dir
from provlib.core.store import atomic_write_text


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


def write_table(df: pd.DataFrame, name: str, preset, notebook: str, directory: str | Path | None = None) -> str:
    """``<directory>/<name>.csv`` plus ``<name>.meta.json`` (preset, seed, commit, time); the directory defaults to
    the preset's results folder (``data/results/``)."""
    directory = Path(directory) if directory is not None else results_dir(preset.name)
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{name}.csv"
    atomic_write_text(path, df.to_csv(index=False))
    meta = {"table": f"{name}.csv", "notebook": notebook, "preset": preset.name, "seed": preset.seed,
            "parameters": preset.to_dict(), "git_commit": _git_commit(),
            "written": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")}
    atomic_write_text(directory / f"{name}.meta.json", json.dumps(meta, indent=1, default=str))
    return str(path)


def _parameter(parameters: dict, path: str):
    """A value of a recorded preset at a dotted path (``attribution.key_count``). Sidecars written before presets had
    sections recorded flat names, which equal the leaf name for the attribution fields read across notebooks."""
    node = parameters
    for part in path.split("."):
        if not isinstance(node, dict) or part not in node:
            return parameters.get(path.split(".")[-1])
        node = node[part]
    return node


def read_table(name: str, preset, written_by: str, same: tuple[str, ...] = ()) -> pd.DataFrame:
    """Another notebook's table, refused unless it was written for this preset, this seed and the same ``same`` fields.

    ``written_by`` names the notebook that writes it (for the error message); ``same`` lists dotted preset fields the
    table depends on (e.g. ``("attribution.key_count",)``). Every cross-notebook read goes through here, so a
    stale table (another preset, seed or setting) is never used silently.
    """
    path = results_dir(preset.name) / f"{name}.csv"
    meta_path = results_dir(preset.name) / f"{name}.meta.json"
    if not path.exists() or not meta_path.exists():
        raise ParameterError(f"{name}.csv", f"the table notebook {written_by} writes: run {written_by} first", str(path))
    meta = json.loads(meta_path.read_text())
    recorded = meta.get("parameters", {})
    checks = {"preset": (meta.get("preset"), preset.name), "seed": (meta.get("seed"), preset.seed)}
    now = preset.to_dict()
    for field in same:
        current = _parameter(now, field)
        checks[field] = (_parameter(recorded, field), list(current) if isinstance(current, tuple) else current)
    stale = {k: written for k, (written, now) in checks.items()
             if (list(written) if isinstance(written, (list, tuple)) else written) != now}
    if stale:
        wanted = {k: checks[k][1] for k in stale}
        raise ParameterError(f"{name}.csv", f"a table written by {written_by} with {wanted}: re-run {written_by} with "
                             "the same preset and overrides", stale)
    return pd.read_csv(path)


def save_figure(fig: plt.Figure, name: str, preset) -> list[str]:
    """Save as PNG (for slides) and PDF (for papers) under the preset's figures folder (``figures/`` for ``cpu``)."""
    paths = []
    for ext in ("png", "pdf"):
        path = figures_dir(preset.name) / f"{name}.{ext}"
        tmp = path.with_name(f".{path.stem}.tmp.{ext}")
        fig.savefig(tmp, dpi=150, bbox_inches="tight")
        tmp.replace(path)
        paths.append(str(path))
    return paths
