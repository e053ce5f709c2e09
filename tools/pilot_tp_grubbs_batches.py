"""Owner-side pilot for issue 18: into how many batches n should the defender split its validation images?

    python tools/pilot_tp_grubbs_batches.py [--preset cpu] [--batches 5,10,15,20,30] [--families cnn,resnet,vit]
                                            [--name tp_grubbs_batches_pilot] [--out data/pilots]

The published test's threshold is the Grubbs critical value times the shadow's spread over n batches of the
defender's fresh images; n is the implementation's choice (the paper fixes no number), and it sets both how noisy
that spread is and how large it is. The owner can choose n on its own side, before any suspect exists, with
calibration models it trains itself: for every generator it can query (its own and the public ones), each suspect
family of ``--families`` (one recipe drawn from the suspects' grids) on a fresh set of that generator's images, and
on a half-real mixture of it; and each family on fresh real images. A calibration model trained on a generator's
images should be verified by that generator's defender and rejected by every other one; one trained on real
images should be rejected by all. Every model is asked once; its per-batch accuracies are regrouped for each
``--batches`` value against the notebook's shadow. No suspect is built or read. Writes ``<name>.csv``, one row per
(model, defender, n), and prints accuracy, TPR and FPR per n.
"""
from __future__ import annotations

import sys
from pathlib import Path

import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from provlib.core.results import write_pilot_table  # noqa: E402
from provlib.core.store import derive_seed  # noqa: E402
from provlib.pilot_cli import pilot_parser, preset_overrides  # noqa: E402
from provlib.presets import load_preset  # noqa: E402
from provlib.trainprove.classifier import draw_recipe, logits, train_classifier  # noqa: E402
from provlib.trainprove.generators import REAL  # noqa: E402
from provlib.trainprove.grubbs import batch_scores, grubbs_test  # noqa: E402
from provlib.trainprove.study import GrubbsSetup, batch_count_summary  # noqa: E402
from provlib.trainprove.zoo import TrainProVeZoo  # noqa: E402


def pilot(preset, families: list[str], batch_counts: list[int]) -> pd.DataFrame:
    zoo = TrainProVeZoo(preset, show_progress=False)
    tp, generators = preset.trainprove, list(preset.trainprove.generators)
    tests = {g: zoo.images(g, "test") for g in generators}
    shadow_logits = {g: logits(zoo.classifier(zoo.shadow_spec(g)), tests[g].images) for g in generators}
    # the batches, and the shadow's scores on them, are the same for every calibration model
    splits = {(g, n): GrubbsSetup(n, tp.grubbs_quantile, preset.seed).split(len(tests[g].labels), g)
              for g in generators for n in batch_counts}
    references = {key: batch_scores("grubbs", shadow_logits[key[0]], tests[key[0]].labels, split)
                  for key, split in splits.items()}
    sources = generators + [f"{g}+{REAL}" for g in generators] + [REAL]
    rows = []
    for source in sources:
        for family in families:
            seed = derive_seed(preset.seed, "tp-batches-pilot", source, family)
            recipe = draw_recipe(seed, family, tp.suspect_lrs, tp.suspect_weight_decays, tp.suspect_batch_sizes,
                                 tp.suspect_losses)
            data = zoo.mixed_images(source, "calibration", seed)  # fresh owner-side images, mixtures half-half
            model, _ = train_classifier(data.images, data.labels, len(zoo.classes), epochs=tp.classifier_epochs,
                                        seed=seed, recipe=recipe)
            for defender in generators:
                outputs = logits(model, tests[defender].images)
                for n in batch_counts:
                    v = grubbs_test(references[defender, n],
                                    batch_scores("grubbs", outputs, tests[defender].labels, splits[defender, n]),
                                    "lower", tp.alpha, tp.grubbs_quantile)
                    rows.append({"source": source, "family": family, "defender": defender, "n_batches": n,
                                 "trained_on_defender": defender in source.split("+"), "accuracy": v.suspect_score,
                                 "shadow_mean": v.shadow_mean, "shadow_sd": v.shadow_sd, "critical": v.critical,
                                 "threshold": v.critical * v.shadow_sd, "verified": v.verified})
            print(source, family, flush=True)
    return pd.DataFrame(rows)


def main() -> None:
    parser = pilot_parser(__doc__, "tp_grubbs_batches_pilot")
    parser.add_argument("--families", default="cnn,resnet,vit")
    parser.add_argument("--batches", default="5,10,15,20,30")
    args = parser.parse_args()
    preset = load_preset(args.preset, **preset_overrides(args))
    table = pilot(preset, [f for f in args.families.split(",") if f], [int(n) for n in args.batches.split(",")])
    write_pilot_table(table, args.name, preset, "tools/pilot_tp_grubbs_batches.py", args.out)
    print(batch_count_summary(table).round(3).to_string())


if __name__ == "__main__":
    main()
