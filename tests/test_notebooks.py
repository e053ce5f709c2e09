"""Every notebook runs headless at the smoke preset and writes the tables other notebooks read."""
import os
from pathlib import Path

import nbformat
import pandas as pd
import pytest

from provlib import run_notebooks

NOTEBOOKS = run_notebooks.notebooks()
CONTRACTS = {"suspect_manifest": {"model_id", "source", "rho", "seed", "split"}}


def test_notebooks_exist_and_have_one_parameters_cell():
    assert [nb.name[:2] for nb in NOTEBOOKS][:2] == ["01", "02"]
    for nb in NOTEBOOKS:
        cells = nbformat.read(nb, as_version=4).cells
        tagged = [c for c in cells if "parameters" in c.metadata.get("tags", [])]
        assert len(tagged) == 1, f"{nb.name}: needs exactly one cell tagged 'parameters'"
        assert "preset =" in tagged[0].source
        assert all(not c.get("outputs") for c in cells if c.cell_type == "code"), f"{nb.name}: commit notebooks without outputs"


def test_all_notebooks_run_at_smoke_preset(tmp_path, smoke_cache, monkeypatch):
    monkeypatch.setenv("PROVLIB_CACHE_DIR", str(smoke_cache))
    table = run_notebooks.run("smoke", output_dir=tmp_path / "executed", log=False)
    assert list(table.notebook) == [nb.name for nb in NOTEBOOKS]
    results = Path(os.environ["PROVLIB_RESULTS_DIR"])
    for name, columns in CONTRACTS.items():
        df = pd.read_csv(results / f"{name}.csv")
        assert columns <= set(df.columns), f"{name}.csv misses {columns - set(df.columns)}"
    manifest = pd.read_csv(results / "suspect_manifest.csv")
    assert set(manifest.split) == {"shadow", "test"} and manifest.rho.min() == 0.0
    figures = {p.name for p in Path(os.environ["PROVLIB_FIGURES_DIR"]).iterdir()}
    for expected in ("01_memorization.png", "01_memorization.pdf", "02_suspect_losses.png", "02_suspect_preview.png"):
        assert expected in figures


def test_bad_preset_in_a_notebook_fails_with_the_parameter_name(tmp_path):
    import papermill
    with pytest.raises(papermill.PapermillExecutionError, match="preset"):
        papermill.execute_notebook(str(NOTEBOOKS[0]), str(tmp_path / "out.ipynb"), parameters={"preset": "nope"},
                                   cwd=str(NOTEBOOKS[0].parent), progress_bar=False, kernel_name="python3")
