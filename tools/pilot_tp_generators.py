"""Owner-side pilot for issue 18: do the CPU generator analogues differ as real generators do, at what cost?

    python tools/pilot_tp_generators.py [--preset cpu] [--set tp_style_strength=1 --set tp_generator_steps=2000 ...]
                                        [--name tp_generator_pilot] [--out data/pilots]

Builds the preset's generators (the same cache as notebook 07), each one's image sets (the defender's shadow and
test images, the suspects' pool) and its shadow classifier, and reports, before any suspect exists: the
generator-attribution accuracy (one classifier names the generator of a fresh image; trained as notebook 07 trains
it, on shadow set and pool, and, for comparison, on the shadow set alone), each generator's class fidelity (its
shadow's accuracy on its fresh images) and the shadows' transfer to the other generators' images, with the wall time of the build. Suspects
are never built or read, so a generator recipe chosen here is chosen on the owner's side only. Writes
``<name>.csv`` (one row per generator, the overrides in every row).
"""
from __future__ import annotations

import sys
import time
from pathlib import Path

import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from provlib.core.fanout import fan_out  # noqa: E402
from provlib.core.results import write_pilot_table  # noqa: E402
from provlib.pilot_cli import pilot_parser, preset_overrides  # noqa: E402
from provlib.presets import load_preset  # noqa: E402
from provlib.trainprove.owner_checks import attribution_sets, generator_attribution, transfer_matrix  # noqa: E402
from provlib.trainprove.study import outputs  # noqa: E402
from provlib.trainprove.zoo import TrainProVeZoo  # noqa: E402


def pilot(preset_name: str, overrides: dict) -> pd.DataFrame:
    preset = load_preset(preset_name, **overrides)
    zoo = TrainProVeZoo(preset)
    started = time.perf_counter()
    zoo.build_generators(preset.runtime.n_jobs)
    build_seconds = time.perf_counter() - started
    sets = [(g, purpose) for g in zoo.generators for purpose in ("shadow", "test", "pool")]
    fan_out(zoo, "images_for", sets, preset.runtime.n_jobs, "labelled image sets")
    shadows = [s for s in zoo.classifier_specs() if s.role == "shadow"]
    fan_out(zoo, "classifier_location", shadows, preset.runtime.n_jobs, "shadow classifiers")
    seconds = time.perf_counter() - started
    test_sets = zoo.test_sets()
    epochs = preset.trainprove.classifier_epochs
    attribution, confusion = generator_attribution(attribution_sets(zoo), test_sets, epochs=epochs, seed=preset.seed)
    shadow_only, _ = generator_attribution({g: zoo.images(g, "shadow") for g in zoo.generators}, test_sets,
                                           epochs=epochs, seed=preset.seed)
    answers = outputs(zoo, shadows, test_sets)
    transfer = transfer_matrix(answers, {g: s.labels for g, s in test_sets.items()}, {s.source: s.model_id for s in shadows})
    rows = []
    for g in zoo.generators:
        own = transfer[(transfer.trained_on == g) & transfer.own].accuracy.iloc[0]
        others = transfer[(transfer.trained_on == g) & ~transfer.own]
        named = confusion.set_index("generator").loc[g, f"named_{g}"]
        sampling = zoo.sampling(g)
        rows.append({"generator": g, "sampling_steps": sampling["num_inference_steps"],
                     "guidance_scale": sampling["guidance_scale"], "class_fidelity": own,
                     "best_other_accuracy": others.accuracy.max(),
                     "transfer_drop": own - others.accuracy.max(), "named_right": named,
                     "generator_attribution": attribution,
                     "attribution_shadow_set_only": shadow_only, "generators_build_s": round(build_seconds),
                     "total_s": round(seconds), **{k: str(v) for k, v in overrides.items()}})
    return pd.DataFrame(rows)


def main() -> None:
    parser = pilot_parser(__doc__, "tp_generator_pilot")
    args = parser.parse_args()
    overrides = preset_overrides(args)
    table = pilot(args.preset, overrides)
    write_pilot_table(table, args.name, load_preset(args.preset, **overrides), "tools/pilot_tp_generators.py", args.out)
    print(table.round(3).to_string(index=False))


if __name__ == "__main__":
    main()
