"""Notebook 07's headline at several seeds, without papermill: every rule's verification accuracy, TPR and FPR,
generator attribution and class fidelity, one row per seed and rule.

    python tools/tp_seed_sweep.py --seeds 2,3 [--preset cpu] [--jobs 2] [--set KEY=VALUE ...] [--out DIR]
    python tools/tp_seed_sweep.py --seeds 0,1 --owner-side [...]

Each seed builds its own world (generators, labelled sets, suspects and shadows) in the artifact cache
(``PROVLIB_CACHE_DIR``) exactly as notebook 07 does, through the same provlib calls, and is decided by the same
rules. It answers "does the result hold at seeds I did not look at?" where running the notebook once per seed would
be slow or papermill is not installed (e.g. on a many-core machine). Writes ``tp_seed_sweep.csv`` and the build
time of each seed. With ``--owner-side`` each seed builds only what the owner measures before any suspect exists
(``tools/pilot_tp_generators.py``: the generators, the defender's shadow and test sets, the shadows) and reports
generator attribution, class fidelity and each generator's share named right, one row per seed: the measures a
generator recipe is chosen on.
"""
from __future__ import annotations

import sys
import time
from pathlib import Path

import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from provlib.core.results import write_pilot_table  # noqa: E402
from provlib.pilot_cli import pilot_parser, preset_overrides  # noqa: E402
from provlib.presets import load_preset  # noqa: E402
from provlib.trainprove.owner_checks import attribution_sets, generator_attribution, transfer_matrix  # noqa: E402
from provlib.trainprove.study import RULES, GrubbsSetup, outputs, summary_by_rule, verdict_table  # noqa: E402
from provlib.trainprove.zoo import REAL, TrainProVeZoo  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from pilot_tp_generators import pilot as generator_pilot  # noqa: E402


def one_seed(preset_name: str, seed: int, overrides: dict, n_jobs: int) -> pd.DataFrame:
    cfg = load_preset(preset_name, inputs_for="trainprove", **{**overrides, "seed": seed})
    zoo, tp = TrainProVeZoo(cfg, show_progress=False), cfg.trainprove
    started = time.perf_counter()
    zoo.build_all(n_jobs)
    built_s = time.perf_counter() - started
    test_sets = zoo.test_sets()
    specs = zoo.classifier_specs()
    shadow_of = {s.source: s.model_id for s in specs if s.role == "shadow"}
    answers = outputs(zoo, specs, {**test_sets, REAL: zoo.real_images("test")})
    labels = {g: s.labels for g, s in test_sets.items()}
    verdicts = verdict_table([s for s in specs if s.role == "suspect"], answers, labels, zoo.generators, tp.alpha,
                             rules=RULES, shadows=shadow_of, grubbs=GrubbsSetup(tp.grubbs_batches, tp.grubbs_quantile, seed))
    attribution, _ = generator_attribution(attribution_sets(zoo), test_sets, epochs=tp.classifier_epochs, seed=seed)
    transfer = transfer_matrix(answers, labels, shadow_of)
    fidelity = {f"fidelity_{row.trained_on}": row.accuracy for row in transfer[transfer.own].itertuples()}
    return summary_by_rule(verdicts).assign(seed=seed, build_s=round(built_s), total_s=round(time.perf_counter() - started),
                                            generator_attribution=attribution, **fidelity)


def owner_side(preset_name: str, seed: int, overrides: dict, n_jobs: int) -> pd.DataFrame:
    rows = generator_pilot(preset_name, {**overrides, "seed": seed, "n_jobs": n_jobs})
    return pd.DataFrame([{"seed": seed, "generators_s": rows.generators_build_s.iloc[0], "total_s": rows.total_s.iloc[0],
                          "generator_attribution": rows.generator_attribution.iloc[0],
                          **{f"fidelity_{r.generator}": r.class_fidelity for r in rows.itertuples()},
                          **{f"named_right_{r.generator}": r.named_right for r in rows.itertuples()}}])


def main() -> None:
    parser = pilot_parser(__doc__, "tp_seed_sweep")
    parser.add_argument("--seeds", required=True, help="comma-separated seeds")
    parser.add_argument("--owner-side", action="store_true", help="the generators and the defender's own sets "
                        "only: generator attribution and class fidelity, no suspect")
    parser.add_argument("--jobs", type=int, default=None, help="worker processes (default: the preset's n_jobs)")
    args = parser.parse_args()
    overrides = preset_overrides(args)
    preset = load_preset(args.preset, **overrides)
    n_jobs = args.jobs or preset.runtime.n_jobs
    measure = owner_side if args.owner_side else one_seed
    table = pd.concat([measure(args.preset, int(s), overrides, n_jobs) for s in args.seeds.split(",")], ignore_index=True)
    write_pilot_table(table, args.name, preset, "tools/tp_seed_sweep.py", args.out)
    print(table.round(3).to_string(index=False))


if __name__ == "__main__":
    main()
