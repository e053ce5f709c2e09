"""Owner-side pilot for issue 18: which suspect families can the published Grubbs test verify at all?

    python tools/pilot_tp_suspect_families.py [--preset cpu] [--generators sd14,lcm] [--families cnn,resnet,mlp]
                                              [--recipes 2] [--name tp_suspect_families_pilot] [--out data/pilots]

TrainProVe compares a suspect's accuracy with the shadow's, so a suspect family that is much weaker than the
shadow on the generator's own images looks "not trained on it" whatever its data. The owner can measure that on
its own side: it trains each family, by ``--recipes`` recipes drawn from the suspects' grids (``tp_suspect_*``), on
its own shadow set (its generator's images, never a suspect's) and asks its own Grubbs test about each model. No
suspect is built or read. Writes ``<name>.csv``, one row per (generator, family, recipe).
"""
from __future__ import annotations

import sys
from dataclasses import asdict
from pathlib import Path

import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from provlib.core.results import write_pilot_table  # noqa: E402
from provlib.core.store import derive_seed  # noqa: E402
from provlib.pilot_cli import pilot_parser, preset_overrides  # noqa: E402
from provlib.presets import load_preset  # noqa: E402
from provlib.trainprove.classifier import ARCHITECTURES, draw_recipe, logits, train_classifier  # noqa: E402
from provlib.trainprove.grubbs import batch_scores, grubbs_test  # noqa: E402
from provlib.trainprove.study import GrubbsSetup  # noqa: E402
from provlib.trainprove.zoo import TrainProVeZoo  # noqa: E402


def pilot(preset, generators: list[str], families: list[str], n_recipes: int) -> pd.DataFrame:
    zoo = TrainProVeZoo(preset, show_progress=False)
    tp, rows = preset.trainprove, []
    for generator in generators:
        own, test = zoo.images(generator, "shadow"), zoo.images(generator, "test")
        # the notebook's own shadow and batches (same seeds), so the verdicts are the ones notebook 07 would give
        shadow = zoo.classifier(zoo.shadow_spec(generator))
        split = GrubbsSetup(tp.grubbs_batches, tp.grubbs_quantile, preset.seed).split(len(test.labels), generator)
        reference = batch_scores("grubbs", logits(shadow, test.images), test.labels, split)
        for family in families:
            for k in range(n_recipes):
                seed = derive_seed(preset.seed, "tp-family-pilot", generator, family, k)
                recipe = draw_recipe(seed, family, tp.suspect_lrs, tp.suspect_weight_decays, tp.suspect_batch_sizes,
                                     tp.suspect_losses)
                model, _ = train_classifier(own.images, own.labels, len(zoo.classes), epochs=tp.classifier_epochs,
                                            seed=seed, recipe=recipe)
                scores = batch_scores("grubbs", logits(model, test.images), test.labels, split)
                v = grubbs_test(reference, scores, "lower", tp.alpha, tp.grubbs_quantile)
                rows.append({"generator": generator, "family": family, **{f"recipe_{a}": b for a, b in asdict(recipe).items()},
                             "accuracy": v.suspect_score, "shadow_mean": v.shadow_mean, "shadow_sd": v.shadow_sd,
                             "statistic": v.statistic, "critical": v.critical, "verified": v.verified})
                print(rows[-1], flush=True)
    return pd.DataFrame(rows)


def main() -> None:
    parser = pilot_parser(__doc__, "tp_suspect_families_pilot")
    parser.add_argument("--generators", default="", help="comma-separated (default: the preset's)")
    parser.add_argument("--families", default=",".join(ARCHITECTURES))
    parser.add_argument("--recipes", type=int, default=2, help="recipes drawn per family and generator")
    args = parser.parse_args()
    preset = load_preset(args.preset, **preset_overrides(args))
    generators = [g for g in args.generators.split(",") if g] or list(preset.trainprove.generators)
    table = pilot(preset, generators, [f for f in args.families.split(",") if f], args.recipes)
    write_pilot_table(table, args.name, preset, "tools/pilot_tp_suspect_families.py", args.out)
    print(table.groupby("family")[["accuracy", "verified"]].mean().round(3).to_string())


if __name__ == "__main__":
    main()
