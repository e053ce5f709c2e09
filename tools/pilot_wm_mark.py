"""Owner-side pilot for issue 19: how strong must a dataset mark be for a fine-tune to learn it from r = 2%?

    python tools/pilot_wm_mark.py [--preset cpu] [--strengths 4,8,16] [--fraction 0.02] [--strategies trigger]
                                  [--models 2] [--clean 2] [--set wm_dataset_size=500 ...] [--name wm_mark_pilot]

The owner marks its own licensed dataset (``wm_dataset_size`` images, a share ``--fraction`` marked with the
``pattern`` scheme at each ``--strengths`` RMS, in 0-255 pixel units), fine-tunes its own models on those copies
with the notebook's fine-tuning recipe, asks each the prompts notebook 06 would (the licensee's trigger prompts, or
plain captions for the image-only strategy) and runs the notebook's exact test on the answers. Clean fine-tunes
(the unmarked dataset) are asked every prompt set and give the false-positive side. The pilot's models have their
own seeds (ids ``pilot_*``), so notebook 06's evaluated models are never used for the choice. Writes one row per
(model, prompt set) with the p-value, the matched-filter score, the visual cost of the mark (PSNR / SSIM of the
marked images against the clean ones) and the fine-tune's seconds.
"""
from __future__ import annotations

import sys
import time
from pathlib import Path

import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from provlib.core.results import write_pilot_table  # noqa: E402
from provlib.core.store import derive_seed  # noqa: E402
from provlib.pilot_cli import pilot_parser, preset_overrides  # noqa: E402
from provlib.presets import load_preset  # noqa: E402
from provlib.watermark.detect import detect  # noqa: E402
from provlib.watermark.schemes import image_quality  # noqa: E402
from provlib.watermark.zoo import CLEAN, PLAIN, LicenseeSpec, WatermarkZoo, fraction_tag  # noqa: E402


def pilot_specs(zoo: WatermarkZoo, strategies, fraction: float, models: int, clean: int, tag: str) -> list[LicenseeSpec]:
    p = zoo.p
    bases, k_licensees = p.models.base_names, p.watermark.licensees

    def spec(model_id, strategy, r, k, licensee):
        return LicenseeSpec(model_id, "pattern" if licensee != CLEAN else "", strategy, float(r), licensee,
                            derive_seed(p.seed, "wm-pilot-model", model_id), bases[k % len(bases)])

    marked = [spec(f"pilot_{tag}_{strategy}_{fraction_tag(fraction)}_{k:02d}", strategy, fraction, k, k % k_licensees)
              for strategy in strategies for k in range(models)]
    return marked + [spec(f"pilot_clean_{k:02d}", "", 0.0, k, CLEAN) for k in range(clean)]


def run(preset_name: str, strengths: list[float], strategies: list[str], fraction: float, models: int, clean: int,
        overrides: dict) -> pd.DataFrame:
    rows = []
    for strength in strengths:
        preset = load_preset(preset_name, **{**overrides, "wm_mark_strength": strength})
        zoo = WatermarkZoo(preset, show_progress=False)
        scheme = zoo.owner_scheme("pattern")
        clean_images = zoo.licensed_dataset().images
        marked_at = zoo.marked_indices(fraction, 0)
        quality = image_quality(clean_images[marked_at],
                                zoo.licensed_copy("pattern", "trigger", fraction, 0).images[marked_at])
        # clean fine-tunes do not depend on the strength: one set, asked with this strength's decoder
        for spec in pilot_specs(zoo, strategies, fraction, models, clean, f"s{strength:g}"):
            started = time.perf_counter()
            zoo.licensee_location(spec)
            seconds = time.perf_counter() - started
            for prompt_set in zoo.prompt_sets(spec):
                answers = zoo.licensee_answers(spec, prompt_set)
                # a licensee's prompt set tests its message; plain prompts (random queries) test every licensee's
                tested = [int(prompt_set.split("-")[1])] if prompt_set != PLAIN else range(preset.watermark.licensees)
                for licensee in tested:
                    d = detect(scheme, answers, zoo.licensee_message(licensee), preset.watermark.alpha,
                               preset.watermark.statistic)
                    rows.append({"strength": strength, "model_id": spec.model_id, "strategy": spec.strategy or "clean",
                                 "fraction": spec.fraction, "base": spec.base, "prompt_set": prompt_set,
                                 "tested_licensee": licensee, "licensee": spec.licensee,
                                 "trained_on_mark": licensee == spec.licensee,
                                 "p_value": d.p_value, "score": d.score, "bit_accuracy": d.bit_accuracy,
                                 "detected": d.detected, "fine_tune_s": round(seconds),
                                 "psnr_db": quality["psnr_db"], "ssim": quality["ssim"]})
            print(pd.DataFrame(rows).tail(1).round(4).to_string(index=False, header=False), flush=True)
    return pd.DataFrame(rows)


def main() -> None:
    parser = pilot_parser(__doc__, "wm_mark_pilot")
    parser.add_argument("--strengths", default="4,8,16")
    parser.add_argument("--strategies", default="trigger")
    parser.add_argument("--fraction", type=float, default=0.02)
    parser.add_argument("--models", type=int, default=2, help="marked fine-tunes per strength and strategy")
    parser.add_argument("--clean", type=int, default=2, help="clean fine-tunes")
    args = parser.parse_args()
    overrides = preset_overrides(args)
    table = run(args.preset, [float(s) for s in args.strengths.split(",")], args.strategies.split(","),
                args.fraction, args.models, args.clean, overrides)
    write_pilot_table(table, args.name, load_preset(args.preset, **overrides), "tools/pilot_wm_mark.py", args.out)
    summary = table.groupby(["strength", "strategy", "trained_on_mark"]).agg(detected=("detected", "mean"), p_median=("p_value", "median"),
                                                          score=("score", "mean"), psnr=("psnr_db", "first"))
    print(summary.round(4).to_string())


if __name__ == "__main__":
    main()
