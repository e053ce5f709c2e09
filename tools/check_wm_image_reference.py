"""Diagnostic for issue 19: what should the image-only strategy's test subtract as its reference?

    PROVLIB_CACHE_DIR=... python tools/check_wm_image_reference.py --set seed=2 [--name wm_image_reference_seed2]

Notebook 06 tests an image-only fine-tune on its answers to a licensee's marked captions, calibrated on the owner's
clean dataset (no reference). That is exact over the draw of a licensee's secret message, but not for one fixed
message: if fine-tunes of the licensed data share a content bias that happens to align with that message, every clean
fine-tune is flagged for that licensee. This tool re-tests notebook 06's cached models (its clean fine-tunes and its
image-only fine-tunes at the focus share; nothing is trained) three ways, with ``provlib.watermark.detect.detect``:

* ``dataset``: notebook 06's test (no reference);
* ``plain-paired``: the same model's answers to the dataset's ordinary query captions (notebook 06's ``plain`` prompt
  set, other seeds) as the reference;
* ``base-paired``: the public base the model was fine-tuned from, asked the same captions with the same seeds.

The references do not depend on the tested message, so each test stays exact over the message's draw. The models
read here were evaluated by notebook 06, so this is a diagnostic for the next design, not an owner-side choice.
Writes one row per (model, tested licensee) with the three p-values.
"""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from provlib.core.progress import tqdm  # noqa: E402
from provlib.core.results import write_pilot_table  # noqa: E402
from provlib.pilot_cli import pilot_parser, preset_overrides  # noqa: E402
from provlib.presets import load_preset  # noqa: E402
from provlib.watermark.detect import detect  # noqa: E402
from provlib.watermark.zoo import PLAIN, WatermarkZoo  # noqa: E402

CALIBRATIONS = ("dataset", "plain-paired", "base-paired")


def image_reference_tests(zoo: WatermarkZoo) -> pd.DataFrame:
    p = zoo.p.watermark
    scheme = zoo.owner_scheme("pattern")
    bases = {name: zoo.load(zoo.base_location(name)) for name in zoo.p.models.base_names}
    specs = [s for s in zoo.licensee_specs() if s.laundering == "none" and
             (s.is_clean or (s.strategy == "image" and np.isclose(s.fraction, p.focus_fraction)))]
    rows = []
    for spec in tqdm(specs, desc="re-test image-only prompts"):
        plain = zoo.licensee_answers(spec, PLAIN)
        for licensee in range(p.licensees):
            prompt_set = zoo.licensee_prompt_set("image", licensee, p.focus_fraction)
            answers = zoo.licensee_answers(spec, prompt_set)
            # the base answers the same captions with the seeds the model was asked with
            base_answers = zoo.generate(bases[spec.base], zoo.prompts(prompt_set), seed=zoo.answers_key(spec, prompt_set)["seed"],
                                        images_per_prompt=p.query_images, desc="base reference").images
            message = zoo.licensee_message(licensee)
            p_values = {name: detect(scheme, answers, message, p.alpha, p.statistic, reference=reference).p_value
                        for name, reference in zip(CALIBRATIONS, (None, plain, base_answers))}
            rows.append({"model_id": spec.model_id, "base": spec.base, "clean": spec.is_clean,
                         "true_licensee": spec.licensee, "tested_licensee": licensee,
                         "own_mark": (not spec.is_clean) and spec.licensee == licensee,
                         **{f"p_{name}": value for name, value in p_values.items()}})
    return pd.DataFrame(rows)


def summary(table: pd.DataFrame, alpha: float) -> pd.DataFrame:
    groups = {"clean tests": table[table.clean], "own mark": table[table.own_mark],
              "other licensee's mark": table[~table.clean & ~table.own_mark]}
    return pd.DataFrame([{"tests": name, "calibration": calibration, "n": len(group),
                          "detected": int((group[f"p_{calibration}"] <= alpha).sum()),
                          "median_p": float(group[f"p_{calibration}"].median()),
                          "min_p": float(group[f"p_{calibration}"].min())}
                         for name, group in groups.items() for calibration in CALIBRATIONS])


def main(argv=None) -> None:
    parser = pilot_parser(__doc__.split("\n")[0], "wm_image_reference")
    args = parser.parse_args(argv)
    preset = load_preset(args.preset, **preset_overrides(args))
    table = image_reference_tests(WatermarkZoo(preset, show_progress=False))
    path = write_pilot_table(table, args.name, preset, "tools/check_wm_image_reference.py", args.out)
    print(path)
    print(summary(table, preset.watermark.alpha).round(4).to_string(index=False))


if __name__ == "__main__":
    main()
