"""Every notebook runs headless at the smoke preset and writes the tables other notebooks read."""
import os
from pathlib import Path

import nbformat
import pandas as pd
import pytest

from provlib import run_notebooks

NOTEBOOKS = run_notebooks.notebooks()
CONTRACTS = {
    "suspect_manifest": {"model_id", "source", "rho", "seed", "split"},
    "delta0": {"feature_space", "delta0"},
    "instance_conf_by_rho": {"method", "rho", "mean_conf", "n_models", "queries"},
    "instance_conf_by_n": {"method", "n_keys", "rho", "mean_conf", "n_models", "queries"},
    "table1_discriminator": {"source", "accuracy", "auc", "tpr_at_10fpr", "tpr_at_1fpr", "n_test_models", "auc_lo", "auc_hi"},
    "discriminator_cv": {"feature_space", "feature_set", "classifier", "scope", "cv_auc"},
    "discriminator_by_rho": {"rho", "accuracy", "auc"},
    "source_attribution_confusion": {"true origin", "innocent"},
    "trainprove_verification": {"defender", "suspect_source", "n_suspects", "verified_fraction"},
    "trainprove_verdicts": {"model_id", "defender", "trained_on_defender", "verified", "p_value", "statistic"},
    "trainprove_by_test_size": {"n_per_class", "accuracy_mean", "tpr_mean", "fpr_mean"},
    "dataset_watermark_detection": {"scheme", "strategy", "fraction", "tpr", "fpr", "n_models"},
    "leak_tracing": {"scheme", "strategy", "accuracy", "n_models"},
    "baseline1_watermark": {"model_id", "source", "rho", "split", "n_keys", "conf", "matches", "p_value", "detected"},
    "instance_conf_with_watermark": {"method", "rho", "mean_conf", "n_models", "queries"},
    "watermark_robustness": {"scheme", "strategy", "fraction", "transform", "applied_to", "tpr", "fpr"},
    "watermark_quality": {"scheme", "psnr_db", "ssim"},
    "watermark_scheme_survival": {"scheme", "stage", "image_bit_accuracy", "pooled_matches"},
}


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
    for expected in ("01_memorization.png", "01_memorization.pdf", "02_suspect_losses.png", "02_suspect_preview.png",
                     "03_key_distance_histograms.png", "03_conf_vs_delta0.png", "04_conf_vs_rho.png", "04_conf_vs_n.png",
                     "05_roc.png", "05_accuracy_vs_rho.png", "05_source_confusion.png", "07_generator_samples.png",
                     "07_accuracy_profile.png", "07_verification_matrix.png", "07_pvalues_and_gap.png", "07_test_size.png",
                     "06_marked_examples.png", "06_conf_vs_rho_three_methods.png", "06_detection_vs_fraction.png",
                     "06_fine_tune_generations.png", "06_leak_tracing.png", "06_robustness.png"):
        assert expected in figures
    by_rho = pd.read_csv(results / "instance_conf_by_rho.csv")
    assert set(by_rho.method) >= {"strategy12", "random"} and 0.0 in set(by_rho.rho)
    assert (by_rho.queries == by_rho.n_keys * 2).all()  # smoke: k = 2 images per key prompt
    assert by_rho.mean_conf.between(0, 1).all()
    table1 = pd.read_csv(results / "table1_discriminator.csv")
    assert sorted(table1.source) == sorted(manifest.source.unique())
    assert table1.auc.between(0, 1).all() and (table1.auc_lo <= table1.auc_hi).all()
    confusion = pd.read_csv(results / "source_attribution_confusion.csv").set_index("true origin")
    assert confusion.to_numpy().sum() == (manifest.split == "test").sum()
    verification = pd.read_csv(results / "trainprove_verification.csv")
    verdicts = pd.read_csv(results / "trainprove_verdicts.csv")
    assert set(verification.defender) == {"sd14", "lcm", "pixart", "cascade"} and "real" in set(verification.suspect_source)
    assert verification.n_suspects.sum() == len(verdicts) and verification.verified_fraction.between(0, 1).all()
    assert verdicts.p_value.between(0, 1).all() and set(verdicts.trained_on_defender) == {True, False}
    three = pd.read_csv(results / "instance_conf_with_watermark.csv")
    assert set(three.method) == {"strategy12", "random", "watermark"} and three.mean_conf.between(0, 1).all()
    detection = pd.read_csv(results / "dataset_watermark_detection.csv")
    assert detection[["tpr", "fpr"]].stack().between(0, 1).all()
    assert len(detection) == 2 * 2 * 2  # smoke: 2 schemes x 2 strategies x 2 fractions
    tracing = pd.read_csv(results / "leak_tracing.csv")
    assert tracing.n_models.sum() == 2 * 2 * 2 * 2 and tracing.accuracy.between(0, 1).all()
    robustness = pd.read_csv(results / "watermark_robustness.csv")
    assert set(robustness["transform"]) == {"none", "jpeg:75", "noise:8"} and "dataset before fine-tuning" in set(robustness.applied_to)
    delta0 = pd.read_csv(results / "delta0.csv")
    assert delta0.selected.sum() == 1 and delta0.delta0.between(0, 1).all()


def test_bad_preset_in_a_notebook_fails_with_the_parameter_name(tmp_path):
    import papermill
    with pytest.raises(papermill.PapermillExecutionError, match="preset"):
        papermill.execute_notebook(str(NOTEBOOKS[0]), str(tmp_path / "out.ipynb"), parameters={"preset": "nope"},
                                   cwd=str(NOTEBOOKS[0].parent), progress_bar=False, kernel_name="python3")
