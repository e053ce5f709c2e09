"""Where the workbook reads and writes, relative to the repository root (overridable by env vars).

Only the default ``cpu`` preset writes the committed ``data/results/`` and ``figures/``: every other preset writes
under ``outputs/<preset>/`` (git-ignored), so trying a preset never overwrites the published run.
``PROVLIB_RESULTS_DIR`` and ``PROVLIB_FIGURES_DIR`` (set by ``python -m provlib run --output-dir`` and the tests)
override both.
"""
import os
import re
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
COMMITTED_PRESET = "cpu"
HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")  # "owner/name": a model on the Hugging Face hub


def _dir(env_var: str, default: Path) -> Path:
    path = Path(os.environ.get(env_var, default))
    path.mkdir(parents=True, exist_ok=True)
    return path


def outputs_dir(preset_name: str) -> Path:
    """``outputs/<preset>/``: everything a run of a non-default preset writes."""
    return REPO_ROOT / "outputs" / preset_name


def results_dir(preset_name: str | None = None) -> Path:
    """Result tables of a preset's run (``None``: the committed ``cpu`` run)."""
    default = (REPO_ROOT / "data" / "results" if preset_name in (None, COMMITTED_PRESET)
               else outputs_dir(preset_name) / "results")
    return _dir("PROVLIB_RESULTS_DIR", default)


def figures_dir(preset_name: str | None = None) -> Path:
    """Figures of a preset's run (``None``: the committed ``cpu`` run)."""
    default = REPO_ROOT / "figures" if preset_name in (None, COMMITTED_PRESET) else outputs_dir(preset_name) / "figures"
    return _dir("PROVLIB_FIGURES_DIR", default)


def cache_dir() -> Path:
    return _dir("PROVLIB_CACHE_DIR", REPO_ROOT / "data" / "cache")
