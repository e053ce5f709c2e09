"""Where the workbook reads and writes, relative to the repository root (overridable by env vars)."""
import os
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]


def _dir(env_var: str, default: Path) -> Path:
    path = Path(os.environ.get(env_var, default))
    path.mkdir(parents=True, exist_ok=True)
    return path


def results_dir() -> Path:
    return _dir("PROVLIB_RESULTS_DIR", REPO_ROOT / "data" / "results")


def figures_dir() -> Path:
    return _dir("PROVLIB_FIGURES_DIR", REPO_ROOT / "figures")


def cache_dir() -> Path:
    return _dir("PROVLIB_CACHE_DIR", REPO_ROOT / "data" / "cache")
