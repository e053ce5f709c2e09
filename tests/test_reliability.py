"""Reliability defects found by probing, each with the test that would have caught it: the CLI takes and checks
parameters, folder inputs are keyed by content, non-default presets never write the committed results, headless runs
show progress, bad inputs name the parameter, fan-outs reach a Dask cluster with the same results."""
import json
import os
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from provlib import cli
from provlib.core import paths
from provlib.core.data import read_caption_file
from provlib.core.errors import ParameterError
from provlib.core.fingerprint import folder_fingerprint
from provlib.core.store import config_hash
from provlib.core.zoo import Zoo
from provlib.presets import PRESETS, load_preset

REPO = Path(__file__).resolve().parents[1]


# ---- 1. the CLI takes parameters and checks them before any notebook starts ------------------------
def test_cli_help_lists_presets_and_notebooks():
    text = cli.build_parser()._subparsers._group_actions[0].choices["run"].format_help()
    for name in list(PRESETS) + [nb.name for nb in cli.notebooks()]:
        assert name in text


def test_assignments_are_yaml_values_and_split_between_preset_and_notebooks(tmp_path):
    assert cli.parse_assignment("rho_values=[0.3, 1.0]") == ("rho_values", [0.3, 1.0])
    assert cli.parse_assignment("dataset_dirs={faces: /d}") == ("dataset_dirs", {"faces": "/d"})
    with pytest.raises(ParameterError, match="key=value"):
        cli.parse_assignment("suspect_steps")
    third = [nb for nb in cli.notebooks() if nb.name.startswith("03")]
    overrides, per_notebook = cli.plan("smoke", third, {"suspect_steps": 5, "attribution.key_count": 3,
                                                         "feature_spaces": ["pixel"]})
    assert overrides == {"suspect_steps": 5, "attribution.key_count": 3}
    assert per_notebook[third[0].name] == {"preset": "smoke", "overrides": overrides, "feature_spaces": ["pixel"]}
    with pytest.raises(ParameterError, match="'cv_folds'"):  # a parameter of notebook 05, not of 03
        cli.plan("smoke", third, {"cv_folds": 5})
    with pytest.raises(ParameterError, match="suspect_lr"):
        cli.plan("smoke", third, {"suspect_lr": "fast"})
    file = tmp_path / "params.yaml"
    file.write_text("suspect_steps: 7\nrho_values: [0.5]\n")
    assert cli.read_parameter_file(str(file)) == {"suspect_steps": 7, "rho_values": [0.5]}


def test_sd_run_fails_before_any_notebook_and_names_the_missing_input(tmp_path, capsys):
    with pytest.raises(SystemExit, match=r"dataset_dirs\['scenes'\]"):
        cli.main(["run", "--preset", "sd", "--only", "01", "--output-dir", str(tmp_path),
                  "-p", f"dataset_dirs={{faces: {tmp_path}}}"])
    assert not (tmp_path / "notebooks").exists() or not any((tmp_path / "notebooks").iterdir())


# ---- 3. folder inputs are keyed by what they hold ---------------------------------------------------
def _folder(root: Path, n: int = 6) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    rows = ["file_name,caption"]
    for i in range(n):
        Image.fromarray(rng.integers(0, 256, (8, 8, 3), dtype=np.uint8)).save(root / f"{i}.png")
        rows.append(f"{i}.png,a face number {i}")
    (root / "captions.csv").write_text("\n".join(rows) + "\n")
    return root


def _zoo(data: Path, tmp_path: Path, base: Path | None = None) -> Zoo:
    preset = PRESETS["sd-rehearsal"].replace(dataset_dirs={"faces": str(data), "scenes": str(data)}, n_private=2, n_real=2,
                                            suspect_samples=2, wm_dataset_size=2, wm_query_prompts=2,
                                            base_checkpoints={"v1": str(base or data), "v2": str(base or data)})
    return Zoo(preset, tmp_path / "cache", show_progress=False)


def test_editing_adding_or_removing_a_file_changes_the_dataset_key(tmp_path):
    data = _folder(tmp_path / "faces")
    key = lambda: config_hash(_zoo(data, tmp_path).dataset_config("faces", "private"))  # noqa: E731
    original = key()
    assert key() == original  # stable while nothing changes
    first = _zoo(data, tmp_path).dataset("faces", "private").captions
    text = (data / "captions.csv").read_text()
    (data / "captions.csv").write_text(text.replace("a face number", "a FACE number"))  # same size, new content
    edited = key()
    assert edited != original
    assert {c.replace("FACE", "face") for c in _zoo(data, tmp_path).dataset("faces", "private").captions} == set(first)
    (data / "extra.txt").write_text("notes")
    added = key()
    assert added not in (original, edited)
    (data / "extra.txt").unlink()
    assert key() == edited  # removing the file gives back the key of what the folder holds again


def test_a_rewritten_checkpoint_changes_the_base_key(tmp_path):
    data = _folder(tmp_path / "faces")
    base = tmp_path / "pipeline"
    (base / "unet").mkdir(parents=True)
    (base / "model_index.json").write_text('{"_class_name": "StableDiffusionPipeline"}')
    (base / "unet" / "config.json").write_text('{"sample_size": 8}')
    before = config_hash(_zoo(data, tmp_path, base).base_config("v1"))
    (base / "unet" / "config.json").write_text('{"sample_size": 9}')
    assert config_hash(_zoo(data, tmp_path, base).base_config("v1")) != before
    assert folder_fingerprint(tmp_path / "nothing-here") != folder_fingerprint(base)


# ---- 4. only the cpu run writes the committed results -------------------------------------------------
def test_non_default_presets_write_under_outputs(tmp_path, monkeypatch):
    monkeypatch.setattr(paths, "REPO_ROOT", tmp_path)
    for var in ("PROVLIB_RESULTS_DIR", "PROVLIB_FIGURES_DIR"):
        monkeypatch.delenv(var, raising=False)
    assert paths.results_dir("cpu") == tmp_path / "data" / "results" == paths.results_dir()
    assert paths.figures_dir("cpu") == tmp_path / "figures"
    assert paths.results_dir("smoke") == tmp_path / "outputs" / "smoke" / "results"
    assert paths.figures_dir("sd") == tmp_path / "outputs" / "sd" / "figures"
    import pandas as pd

    from provlib.core.results import write_table
    written = write_table(pd.DataFrame({"x": [1]}), "probe", load_preset("smoke"), "01_source_models")
    assert Path(written).parent == tmp_path / "outputs" / "smoke" / "results"


def test_relative_directories_reach_the_kernels_as_absolute_paths(tmp_path, monkeypatch):
    # kernels run in notebooks/: a relative cache path must not name an empty cache there
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("PROVLIB_CACHE_DIR", "data/cache/x")
    monkeypatch.delenv("PROVLIB_FIGURES_DIR", raising=False)
    with cli.redirected_outputs(Path("out")):
        assert os.environ["PROVLIB_CACHE_DIR"] == str(tmp_path / "data" / "cache" / "x")
        assert os.environ["PROVLIB_RESULTS_DIR"] == str(tmp_path / "out" / "results")
        assert os.environ["PROVLIB_FIGURES_DIR"] == str(tmp_path / "out" / "figures")
    assert os.environ["PROVLIB_CACHE_DIR"] == "data/cache/x" and "PROVLIB_FIGURES_DIR" not in os.environ


def test_a_run_stopped_midway_keeps_the_cost_of_the_notebooks_it_finished(tmp_path, monkeypatch):
    import pandas as pd
    calls = []

    def execute(source, target, **_):
        calls.append(Path(source).name)
        if len(calls) == 2:
            raise KeyboardInterrupt  # stopped during the second notebook
    monkeypatch.setattr(cli.papermill, "execute_notebook", execute)
    monkeypatch.setenv("PROVLIB_CACHE_DIR", str(tmp_path / "cache"))
    with pytest.raises(KeyboardInterrupt):
        cli.run("smoke", only=["01", "02"], output_dir=tmp_path / "out", log=False)
    runs = pd.read_csv(tmp_path / "out" / "results" / "workbook_runs.csv")
    assert list(runs.notebook) == ["01_source_models.ipynb"] and runs.cached_artifacts_at_start.tolist() == [0]


def test_readme_examples_never_write_tracked_files():
    readme = (REPO / "README.md").read_text()
    for line in readme.splitlines():
        if "papermill notebooks/" in line:
            assert "-p preset cpu" not in line and " out.ipynb" not in line and " /tmp/" in line, line


# ---- 5. a headless run shows cells and progress ---------------------------------------------------------
def test_headless_runs_print_cells_with_elapsed_time_and_text_progress(monkeypatch, capsys):
    import logging

    from provlib.core import progress
    monkeypatch.delenv("PROVLIB_HEADLESS", raising=False)
    with cli.headless_logging(True):
        assert progress.headless()
        bar = progress.tqdm(range(3), desc="suspect models")
        assert type(bar).__module__.startswith("tqdm.std") and bar.mininterval >= 20
        bar.close()
        logging.getLogger("papermill").info("Executing Cell 3---------")
    assert not progress.headless()
    assert "[00:00] Executing Cell 3" in capsys.readouterr().err


# ---- 6. bad inputs name the parameter -------------------------------------------------------------------
def test_caption_files_without_captions_or_empty_are_refused(tmp_path):
    (tmp_path / "captions.csv").write_text("file_name,caption\n0.png,a face\n1.png,\n")
    with pytest.raises(ParameterError, match="non-empty caption on line 3"):
        read_caption_file(tmp_path / "captions.csv")
    (tmp_path / "captions.csv").write_text("")
    with pytest.raises(ParameterError, match="empty"):
        read_caption_file(tmp_path / "captions.csv")
    (tmp_path / "metadata.jsonl").write_text(json.dumps({"file_name": "0.png", "text": " "}) + "\n")
    with pytest.raises(ParameterError, match="line 1"):
        read_caption_file(tmp_path / "metadata.jsonl")


def test_a_pipeline_folder_without_safetensors_names_the_folder(tmp_path):
    from provlib.core import models
    pipe = models.build_tiny_pipeline("v1", ["a", "face"], models.build_tiny_vae(32, seed=0), seed=0)
    models.save_pipeline(pipe, tmp_path / "pipe")
    for weights in (tmp_path / "pipe" / "unet").glob("*.safetensors"):
        weights.rename(weights.with_suffix(".bin"))
    with pytest.raises(ParameterError, match=r"base_checkpoints.*safetensors weights in .*unet"):
        models.load_pipeline(tmp_path / "pipe", parameter="base_checkpoints")


# ---- 7. the repository stands alone ---------------------------------------------------------------------
def test_no_file_cites_outside_the_repository():
    files = list((REPO / "notebooks").glob("*.ipynb")) + list((REPO / "provlib").rglob("*.py")) + [REPO / "README.md"]
    for file in files:
        assert "../shared" not in file.read_text(), file


# ---- fan-out on a Dask cluster -------------------------------------------------------------------------------
@pytest.mark.extended  # starts a local Dask cluster: run by `make test-extended` (and CI), not by `make test`
def test_dask_local_cluster_builds_the_same_models_as_local_processes(tmp_path):
    pytest.importorskip("dask.distributed")
    from provlib.core.fanout import shutdown_clusters
    quick = dict(n_pretrain=32, vae_steps=2, pretrain_steps=3, source_steps=2, n_jobs=2, checkpoint_every=100)
    built = {}
    for backend in ("loky", "dask"):
        zoo = Zoo(load_preset("smoke", fan_out_backend=backend, **quick), tmp_path / backend, show_progress=False)
        try:
            built[backend] = zoo.build_sources()
        finally:
            shutdown_clusters()
    assert built["loky"].keys() == built["dask"].keys()
    for source in built["loky"]:
        for weights in sorted(Path(built["loky"][source]).rglob("*.safetensors")):
            twin = Path(built["dask"][source]) / weights.relative_to(built["loky"][source])
            assert weights.read_bytes() == twin.read_bytes(), f"{source}: {weights.name}"


def test_a_lone_pending_item_trains_on_a_workers_share_of_the_cores(monkeypatch):
    # a model's bits depend on torch's thread count: the one source a resumed run has left must be built on the
    # threads it would have had in the cold run's worker (cores // n_jobs), and the caller's count comes back
    import torch
    from types import SimpleNamespace
    from provlib.core import fanout
    seen = []
    owner = SimpleNamespace(p=SimpleNamespace(runtime=SimpleNamespace(fan_out_backend="loky")), show_progress=False,
                            build=lambda item: seen.append((item, torch.get_num_threads())))
    before = torch.get_num_threads()
    monkeypatch.setattr(fanout, "available_cores", lambda: 2 * (before + 1))  # a worker's share differs from `before`
    fanout.fan_out(owner, "build", ["lone source"], n_jobs=2, desc="sources")
    fanout.fan_out(owner, "build", ["serial source"], n_jobs=1, desc="sources")  # n_jobs = 1 leaves torch as it is
    assert seen == [("lone source", before + 1), ("serial source", before)] and torch.get_num_threads() == before
