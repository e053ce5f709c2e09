from pathlib import Path

import pytest


@pytest.fixture(autouse=True)
def isolated_outputs(tmp_path, monkeypatch):
    """Tests never touch the committed results, figures or the user's cache."""
    for var, sub in (("PROVLIB_RESULTS_DIR", "results"), ("PROVLIB_FIGURES_DIR", "figures"), ("PROVLIB_CACHE_DIR", "cache")):
        monkeypatch.setenv(var, str(tmp_path / sub))
    yield


@pytest.fixture(scope="session")
def smoke_cache(tmp_path_factory) -> Path:
    """One artifact cache shared by the slower tests (built once per session)."""
    return tmp_path_factory.mktemp("smoke-cache")
