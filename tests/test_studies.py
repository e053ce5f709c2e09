"""The study summaries behind the notebooks' tables, on hand-built inputs whose answers are known."""
import json

import numpy as np
import pandas as pd
import pytest

from provlib.attribution.calibration import model_confs
from provlib.attribution.instance import conf_from_distances, verdict_from_answers
from provlib.attribution.memorization import summarize
from provlib.core.errors import ParameterError
from provlib.core.results import read_table, write_table
from provlib.presets import load_preset
from provlib.trainprove.study import summary as trainprove_summary
from provlib.trainprove.study import verdict_table
from provlib.trainprove.zoo import ClassifierSpec
from provlib.watermark import study as wm_study
from provlib.watermark.transforms import apply_transform


# ---- instance-level conf: one formula, strict comparison ------------------------------------------
def test_conf_counts_keys_strictly_below_delta0():
    assert conf_from_distances(np.array([0.05, 0.1, 0.3]), 0.2) == pytest.approx(2 / 3)  # ">" would give 1/3
    assert conf_from_distances(np.array([0.2, 0.1]), 0.2) == 0.5  # a distance equal to δ0 is not attributed
    with pytest.raises(ParameterError, match="delta0"):
        conf_from_distances(np.array([0.1]), 0.0)


def test_model_confs_and_verdicts_use_the_one_conf_formula(monkeypatch):
    import provlib.attribution.calibration as calibration
    import provlib.attribution.instance as instance
    calls = []
    original = instance.conf_from_distances

    def spy(distances, delta0):
        calls.append(len(distances))
        return original(distances, delta0)

    monkeypatch.setattr(calibration, "conf_from_distances", spy)
    rows = [{"model_id": m, "source": "v1", "rho": rho, "split": "test", "strategy": "strategy12", "key_rank": k + 1,
             "prompt": f"p{k}", "distance": d}
            for m, rho, ds in (("a", 1.0, [0.05, 0.1, 0.3]), ("b", 0.0, [0.2, 0.25, 0.1]))
            for k, d in enumerate(ds)]
    confs = model_confs(pd.DataFrame(rows), 0.2).set_index("model_id")
    assert calls == [3, 3]
    assert confs.conf.to_dict() == pytest.approx({"a": 2 / 3, "b": 1 / 3})
    assert confs.n_keys.to_dict() == {"a": 3, "b": 3}
    assert model_confs(pd.DataFrame(rows), 0.2, n_keys=1).set_index("model_id").conf.to_dict() == {"a": 1.0, "b": 0.0}


def test_verdict_conf_equals_the_formula():
    from provlib.attribution.keys import KeySet
    rng = np.random.default_rng(0)
    keys_images = rng.integers(0, 255, (3, 8, 8, 3), dtype=np.uint8)
    answers = np.stack([keys_images, 255 - keys_images], axis=1)  # first answer of each key is an exact copy
    keys = KeySet("v1", "strategy12", ["a", "b", "c"], keys_images, np.ones(3),
                  pd.DataFrame({"prompt": ["a", "b", "c"], "candidate": np.arange(3)}))
    verdict = verdict_from_answers(answers, keys, delta0=0.01)
    assert verdict.conf == conf_from_distances(verdict.distances, 0.01) == 1.0


# ---- memorization ---------------------------------------------------------------------------------
def test_memorization_copy_rate_is_measured_against_held_out_real_images():
    held_out = np.linspace(0.10, 0.30, 20)  # its 5% quantile is 0.11
    frame = pd.DataFrame(
        [{"source": "v1-faces", "group": "held-out real images", "distance": d} for d in held_out]
        + [{"source": "v1-faces", "group": "source generations", "distance": d} for d in (0.01, 0.02, 0.2, 0.25)])
    table = summarize(frame).set_index("group")
    threshold = np.quantile(held_out, 0.05)
    assert table.copy_threshold.iloc[0] == pytest.approx(threshold)
    assert table.loc["source generations", "copy_rate"] == 0.5     # 2 of 4 generations below the threshold
    assert table.loc["held-out real images", "copy_rate"] == 0.05  # 1 of 20 by construction of the quantile
    assert table.loc["source generations", "mean_distance"] == pytest.approx(0.12)


# ---- dataset watermark summaries ------------------------------------------------------------------
def _detections():
    """Two marked models (one detected), three clean tests (one false positive): TPR 0.5, FPR 1/3."""
    rows = []
    for model, detected in (("m0", True), ("m1", False)):
        for tested in (0, 1):
            own = tested == 0
            rows.append({"model_id": model, "scheme": "pattern", "strategy": "image", "fraction": 0.02, "laundering": "none",
                         "base": "v1", "true_licensee": 0, "tested_licensee": tested, "marked": True, "own_mark": own,
                         "detected": detected and own, "p_value": 0.001 if detected and own else 0.5,
                         "score": 1.0 if own else 0.0, "matches": 20, "bits_p_value": 0.5, "alpha": 0.01,
                         "image_bit_accuracy": 0.6})
    for k, detected in enumerate((True, False, False)):
        rows.append({"model_id": f"clean{k}", "scheme": "pattern", "strategy": "image", "fraction": 0.0, "laundering": "none",
                     "base": "v2", "true_licensee": -1, "tested_licensee": 0, "marked": False, "own_mark": False, "detected": detected,
                     "p_value": 0.001 if detected else 0.7, "score": 0.0, "matches": 16, "bits_p_value": 0.5, "alpha": 0.01,
                     "image_bit_accuracy": 0.5})
    return pd.DataFrame(rows)


def test_detection_summary_reports_tpr_on_marked_and_fpr_on_clean_models():
    row = wm_study.detection_summary(_detections()).iloc[0]
    assert (row.tpr, row.fpr) == (0.5, pytest.approx(1 / 3))  # a swap of the two populations would read (1/3, 0.5)
    assert (row.n_models, row.n_clean_tests, row.n_clean_models) == (2, 3, 3)
    assert row.tpr_lo < row.tpr < row.tpr_hi and row.fpr_lo < row.fpr < row.fpr_hi


def test_leak_tracing_names_the_detected_licensee_or_none():
    traced = wm_study.traced_licensees(_detections()).set_index("model_id")
    assert traced.named.to_dict() == {"m0": "0", "m1": "none"}
    tracing = wm_study.leak_tracing_summary(traced.reset_index()).iloc[0]
    assert (tracing.accuracy, tracing.named_none, tracing.named_wrong_licensee) == (0.5, 1, 0)


def test_rate_with_ci_is_clopper_pearson():
    rate = wm_study.rate_with_ci(0, 10)
    assert rate["rate"] == 0.0 and rate["lo"] == 0.0 and rate["hi"] == pytest.approx(0.3085, abs=1e-4)


# ---- TrainProVe summary -----------------------------------------------------------------------------
def test_trainprove_summary_splits_pairs_by_ground_truth():
    specs = [ClassifierSpec("on_a", "a", 0, "suspect"), ClassifierSpec("on_real", "real", 1, "suspect")]
    strong, weak = np.r_[np.ones(45, bool), np.zeros(5, bool)], np.r_[np.ones(20, bool), np.zeros(30, bool)]
    correct = {"on_a": {"a": strong, "b": weak, "c": weak}, "on_real": {"a": weak, "b": weak, "c": weak}}
    labels = {g: np.zeros(50, int) for g in "abc"}
    answers = {mid: {g: np.where(hits, 0, 1) for g, hits in per_gen.items()} for mid, per_gen in correct.items()}
    verdicts = verdict_table(specs, answers, labels, ["a", "b"], alpha=0.05, rules=["fisher"])
    stats = trainprove_summary(verdicts)
    assert (stats["n_positive"], stats["n_negative"]) == (1, 3)
    assert stats["tpr"] == 1.0 and stats["fpr"] == 0.0 and stats["accuracy"] == 1.0


# ---- transforms ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("spec", ["jpeg:75", "resize:0.5", "crop:0.8", "noise:8"])
def test_each_transform_changes_an_image_but_not_its_shape(spec):
    rng = np.random.default_rng(3)
    images = rng.integers(0, 256, (2, 32, 32, 3), dtype=np.uint8)
    out = apply_transform(images, spec, seed=0)
    assert out.shape == images.shape and out.dtype == np.uint8
    assert np.abs(out.astype(int) - images.astype(int)).mean() > 1.0, spec


# ---- result tables and their provenance ---------------------------------------------------------------
def test_read_table_refuses_a_table_from_another_preset_seed_or_setting():
    cpu = load_preset("cpu")
    frame = pd.DataFrame({"x": [1, 2]})
    write_table(frame, "probe_table", cpu, "03_delta0_threshold")
    assert read_table("probe_table", cpu, "03_delta0_threshold", same=("attribution.key_count",)).equals(frame)
    for other, what in ((load_preset("smoke"), "preset"), (load_preset("cpu", seed=1), "seed"),
                        (load_preset("cpu", key_count=20), "attribution.key_count")):
        with pytest.raises(ParameterError, match="re-run 03_delta0_threshold") as error:
            read_table("probe_table", other, "03_delta0_threshold", same=("attribution.key_count",))
        assert what in error.value.got
    with pytest.raises(ParameterError, match="run 02_suspect_models first"):
        read_table("missing_table", cpu, "02_suspect_models")


def test_write_table_records_the_sectioned_preset(tmp_path):
    cpu = load_preset("cpu", key_count=12)
    path = write_table(pd.DataFrame({"x": [1]}), "probe_table", cpu, "04_instance_attribution")
    meta = json.loads(open(path.replace(".csv", ".meta.json")).read())
    assert meta["preset"] == "cpu" and meta["parameters"]["attribution"]["key_count"] == 12
    assert meta["notebook"] == "04_instance_attribution" and meta["git_commit"]


def test_copy_measures_tell_a_copy_of_the_own_image_from_a_picture_of_the_caption():
    from provlib.attribution.memorization import copy_measures, same_caption_spread
    from provlib.core.data import CaptionedImageSet
    rng = np.random.default_rng(1)
    img = lambda: rng.integers(0, 256, (8, 8, 3), dtype=np.uint8)  # noqa: E731
    train = CaptionedImageSet(np.stack([img(), img()]), ["a", "b"], ["t0", "t1"])
    real = CaptionedImageSet(np.stack([img(), img(), img()]), ["a", "b", "b"], ["r0", "r1", "r2"])
    # caption a: the generation is the training image itself; caption b: a same-caption real image
    generations = np.stack([train.images[0][None], real.images[1][None]])
    frame = copy_measures(generations, ["a", "b"], train, real).set_index("caption")
    assert frame.copies_own.to_dict() == {"a": True, "b": False}
    assert frame.loc["a", "d_own"] == 0.0 and frame.loc["b", "d_same_caption_real"] == 0.0
    assert frame.gu_memorized.to_dict() == {"a": True, "b": False}
    assert same_caption_spread(real) > 0.2  # two random images with caption b


def test_autoencoder_floor_is_zero_for_a_lossless_autoencoder_and_grows_with_its_loss():
    from types import SimpleNamespace

    import numpy as np
    import torch

    from provlib.attribution.memorization import autoencoder_floor

    class Rounding(torch.nn.Module):
        """encode -> decode keeps the image, blurred by ``blur`` (a stand-in for a lossy autoencoder)."""
        def __init__(self, blur: float):
            super().__init__()
            self.blur, self.device, self.dtype = blur, torch.device("cpu"), torch.float32

        def encode(self, x):
            return SimpleNamespace(latent_dist=SimpleNamespace(mean=x, std=torch.zeros_like(x)))

        def decode(self, z):
            return SimpleNamespace(sample=(1 - self.blur) * z + self.blur * z.mean(dim=(2, 3), keepdim=True))

    images = np.random.default_rng(0).integers(0, 256, (6, 16, 16, 3), dtype=np.uint8)
    lossless = autoencoder_floor(Rounding(0.0), images)
    assert lossless.shape == (6,) and np.allclose(lossless, 0, atol=0.003)  # uint8 rounding only
    assert (autoencoder_floor(Rounding(0.5), images) > autoencoder_floor(Rounding(0.2), images) + 0.02).all()


def test_detection_by_base_keeps_each_base_apart():
    detections = _detections()
    detections.loc[detections.model_id == "m1", "base"] = "v2"
    by_base = wm_study.detection_by_base(detections).set_index("base")
    assert by_base.loc["v1", "tpr"] == 1.0 and by_base.loc["v2", "tpr"] == 0.0  # m0 (detected) on v1, m1 on v2
    assert by_base.loc["v2", "n_clean_models"] == 3 and by_base.loc["v1", "n_clean_models"] == 0


def test_false_positives_of_a_share_come_from_clean_models_asked_that_share():
    detections = _detections().assign(query_fraction=0.02)
    asked_elsewhere = detections[~detections.marked].assign(query_fraction=0.1, detected=True, model_id=lambda t: t.model_id + "b")
    row = wm_study.detection_summary(pd.concat([detections, asked_elsewhere], ignore_index=True)).iloc[0]
    assert row.fpr == pytest.approx(1 / 3) and row.n_clean_tests == 3  # the r = 10% queries' flags stay out of r = 2%
