"""Owner-side pilot for issue 19: what should the dataset-mark decoder be calibrated on?

    python tools/pilot_wm_calibration.py [--preset cpu] [--models 8] [--clean 6] [--set wm_query_images=4]
                                         [--set wm_draw=1] [--unmarked] [--name wm_calibration_pilot] [--answers DIR]

The owner fine-tunes its own models on its own licensed copies (trigger strategy, r = ``focus_fraction``, licensees in
turn, so every licensee's message is marked) and on the unmarked dataset (clean), with notebook 06's recipe and their
own seeds (ids ``pilot_*``: notebook 06's evaluated models are never used). Each model is asked, for every licensee
i, licensee i's marked captions *with* its trigger and the same captions *without* it, with the same image seeds
(a paired design). Every candidate calibration of the matched-filter test is then scored on the same answers:

* ``dataset``: the soft scores minus the mean over the owner's clean dataset (notebook 06's first cpu run);
* ``clean-models``: minus the mean pooled score of the owner's clean fine-tunes asked the same prompt set (each clean
  model is left out of its own calibration);
* ``paired``: trigger answers minus the same model's no-trigger answers to the same captions and seeds;
* ``paired+clean-models``: the paired difference minus the clean fine-tunes' mean paired difference;
* ``other-licensees``: minus the same model's mean pooled score over the other licensees' trigger prompts.

With ``--unmarked`` each model is also asked captions no licensee marked, with and without the trigger (same seeds):

* ``unmarked-paired``: what the trigger adds on captions the fine-tune never saw marked (a trigger bound to the mark
  draws it there; a memorized marked image does not);
* ``untriggered-dataset``: the marked captions *without* the trigger, dataset-calibrated (a mark memorized with the
  captions rather than bound to the trigger shows here, and cancels in ``paired``);
* ``both-paired``: the sum of the two paired differences.

Every calibration is independent of the tested licensee's secret message, so the sign-flip test stays exact for a
model that never saw it; what changes is how much message-independent content bias is left to drown the mark.
Writes one row per (model, tested licensee, calibration) with the p-value.
"""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pandas as pd
from safetensors.numpy import load_file

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from provlib.core.fanout import fan_out  # noqa: E402
from provlib.core.results import write_pilot_table  # noqa: E402
from provlib.core.store import atomic_save_arrays, config_hash, derive_seed  # noqa: E402
from provlib.pilot_cli import pilot_parser, preset_overrides  # noqa: E402
from provlib.presets import load_preset  # noqa: E402
from provlib.watermark.detect import sign_flip_p_values  # noqa: E402
from provlib.watermark.zoo import WatermarkZoo  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from pilot_wm_mark import pilot_specs  # noqa: E402


def paired_answers(zoo: WatermarkZoo, spec, licensee: int, out_dir: Path,
                   captions: str = "marked") -> tuple[np.ndarray, np.ndarray]:
    """(with trigger, without) uint8 [n*k, H, W, 3] for licensee's marked captions (``captions="marked"``) or for the
    dataset's unmarked query captions (``"unmarked"``), same seeds (cached in out_dir)."""
    k, trigger = zoo.p.watermark.query_images, zoo.triggers()[licensee]
    draw = f"_d{zoo.p.watermark.draw}" if zoo.p.watermark.draw else ""
    suffix = "" if captions == "marked" else "_unmarked"
    # the fine-tuned model's cache key in the name: a pilot with another seed, strength or recipe reuses the same
    # model ids, and must not read another model's answers
    model_key = config_hash(zoo.licensee_config(spec))[:8]
    path = out_dir / f"{spec.model_id}{draw}_{model_key}_l{licensee}_{trigger}_k{k}{suffix}.safetensors"
    if path.exists():
        saved = load_file(str(path))
        return saved["trigger"], saved["plain"]
    if captions == "marked":
        captions = zoo.query_captions(licensee, zoo.p.watermark.focus_fraction)
    else:  # captions no licensee's copy marked: a trigger bound to the mark draws it on them, memorization does not
        marked = {c for i in range(zoo.p.watermark.licensees)
                  for c in zoo.query_captions(i, zoo.p.watermark.focus_fraction)}
        captions = [c for c in zoo.licensed_dataset().captions if c not in marked][:zoo.p.watermark.query_prompts]
    # the marked captions keep the seeds of the pilots committed before --unmarked existed
    seed = derive_seed(zoo.p.seed, "wm-pilot-paired", spec.model_id, licensee, *([suffix] if suffix else []))
    pipe = zoo.load_fine_tuned(spec.base, zoo.licensee_location(spec))
    with_trigger = zoo.generate(pipe, [f"{trigger} {c}" for c in captions], seed=seed, images_per_prompt=k).images
    without = zoo.generate(pipe, captions, seed=seed, images_per_prompt=k).images
    atomic_save_arrays(path, {"trigger": with_trigger, "plain": without})
    return with_trigger, without


def run(preset_name: str, models: int, clean: int, overrides: dict, out_dir: Path, unmarked: bool = False) -> pd.DataFrame:
    preset = load_preset(preset_name, **overrides)
    zoo = WatermarkZoo(preset, show_progress=False)
    wm = preset.watermark
    specs = pilot_specs(zoo, ["trigger"], wm.focus_fraction, models, clean, f"s{wm.mark_strength:g}")
    fan_out(zoo, "licensee_location", specs, preset.runtime.n_jobs, desc="pilot fine-tunes")
    raw = zoo.mark_scheme("pattern")  # uncalibrated: offsets are subtracted below
    dataset_offset = raw.calibrated(zoo.licensed_dataset().images).offset
    out_dir.mkdir(parents=True, exist_ok=True)
    pooled = {}  # (model, licensee) -> (trigger, plain) pooled raw soft scores
    for spec in specs:
        for i in range(wm.licensees):
            t, n = paired_answers(zoo, spec, i, out_dir)
            pooled[spec.model_id, i] = (raw.soft_decode(t).mean(0), raw.soft_decode(n).mean(0))
            if unmarked:
                t, n = paired_answers(zoo, spec, i, out_dir, "unmarked")
                pooled[spec.model_id, i, "u"] = (raw.soft_decode(t).mean(0), raw.soft_decode(n).mean(0))
        print(spec.model_id, "answered", flush=True)
    clean_ids = [s.model_id for s in specs if s.is_clean]
    rows = []
    for spec in specs:
        for i in range(wm.licensees):
            t, n = pooled[spec.model_id, i]
            others = [c for c in clean_ids if c != spec.model_id]
            clean_t = np.mean([pooled[c, i][0] for c in others], 0)
            clean_d = np.mean([pooled[c, i][0] - pooled[c, i][1] for c in others], 0)
            other_licensees = np.mean([pooled[spec.model_id, j][0] for j in range(wm.licensees) if j != i], 0)
            candidates = {"dataset": t - dataset_offset, "clean-models": t - clean_t, "paired": t - n,
                          "paired+clean-models": (t - n) - clean_d, "other-licensees": t - other_licensees}
            if unmarked:
                tu, nu = pooled[spec.model_id, i, "u"]
                candidates.update({"unmarked-paired": tu - nu, "untriggered-dataset": n - dataset_offset,
                                   "both-paired": (t - n) + (tu - nu)})
            message = zoo.licensee_message(i)
            for name, scores in candidates.items():
                p_value = float(sign_flip_p_values(scores, message)[0])
                rows.append({"model_id": spec.model_id, "base": spec.base, "licensee": spec.licensee,
                             "trigger": zoo.triggers()[i], "images": wm.query_prompts * wm.query_images,
                             "tested_licensee": i, "trained_on_mark": i == spec.licensee, "clean": spec.is_clean,
                             "calibration": name, "p_value": p_value, "detected": p_value <= wm.alpha,
                             "score": float(scores @ (2.0 * message - 1.0) / len(message))})
    return pd.DataFrame(rows)


def main() -> None:
    parser = pilot_parser(__doc__, "wm_calibration_pilot")
    parser.add_argument("--models", type=int, default=8, help="marked fine-tunes (licensees in turn)")
    parser.add_argument("--clean", type=int, default=6, help="clean fine-tunes")
    parser.add_argument("--answers", default="data/cache/pilot_wm_calibration", help="where the paired answers are cached")
    parser.add_argument("--unmarked", action="store_true", help="also ask unmarked captions with and without the trigger")
    args = parser.parse_args()
    overrides = preset_overrides(args)
    table = run(args.preset, args.models, args.clean, overrides, Path(args.answers), args.unmarked)
    write_pilot_table(table, args.name, load_preset(args.preset, **overrides), "tools/pilot_wm_calibration.py", args.out)
    marked = table[table.trained_on_mark]
    wrong = table[~table.clean & ~table.trained_on_mark]
    clean = table[table.clean]
    summary = pd.DataFrame({"tpr": marked.groupby("calibration").detected.mean(),
                            "own_p_median": marked.groupby("calibration").p_value.median(),
                            "wrong_licensee_rate": wrong.groupby("calibration").detected.mean(),
                            "clean_fpr": clean.groupby("calibration").detected.mean(),
                            "clean_p_median": clean.groupby("calibration").p_value.median()})
    print(summary.round(4).to_string())


if __name__ == "__main__":
    main()
