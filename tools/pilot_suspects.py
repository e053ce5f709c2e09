"""Owner-side pilot for issue 17: does a suspect recipe inherit the source's key images? A few shadow suspects only.

    python tools/pilot_suspects.py [--preset cpu] [--set suspect_steps=500 ...] [--sources v1-faces] [--rho 0.3]
                                   [--models 2] [--innocents 2] [--name suspect_pilot] [--out data/pilots]

Trains the first ``--models`` *shadow* suspects per (source, ρ) and the first ``--innocents`` shadow innocent models
listed under each source (shared per suspect base and domain, so each is built once) of the preset with the ``--set`` overrides (the same cache as the notebooks: what they
built is reused), asks them the Strategy 1+2 key prompts, and reports the signal chain of notebook 04 with δ0 chosen
on these models by notebook 03's ``low_rho_tpr`` rule (copy-descriptor space): coverage, covered / uncovered key
distances, conf, and the innocent models beside them. Test suspects are never built or read, so a recipe chosen
here is chosen on shadow models only. Writes ``<name>.csv`` (one row per source x ρ, the recipe in every row) and
prints the wall time per suspect.
"""
from __future__ import annotations

import sys
import time
from pathlib import Path

import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from provlib.attribution.calibration import key_distances, key_sets, select_delta0_for_decision  # noqa: E402
from provlib.attribution.chain import signal_chain  # noqa: E402
from provlib.attribution.queries import AttributionZoo  # noqa: E402
from provlib.core.errors import ParameterError  # noqa: E402
from provlib.core.results import write_pilot_table  # noqa: E402
from provlib.pilot_cli import pilot_parser, preset_overrides  # noqa: E402
from provlib.presets import load_preset  # noqa: E402


def pilot_specs(zoo, sources: list[str], rhos: list[float], models: int, innocents: int) -> list:
    """The first shadow suspects per (source, ρ) and the first shadow innocents listed under each source (innocent
    models are shared per (suspect base, domain), so sources of one domain list the same ones)."""
    chosen, taken = [], {}
    for spec in zoo.suspect_specs():
        if spec.split != "shadow" or spec.source not in sources or (spec.rho > 0 and spec.rho not in rhos):
            continue
        group = (spec.source, spec.rho)
        if taken.get(group, 0) < (innocents if spec.rho == 0 else models):
            taken[group] = taken.get(group, 0) + 1
            chosen.append(spec)
    return chosen


def pilot(preset_name: str, overrides: dict, sources: list[str] | None, rhos: list[float], models: int,
          innocents: int, false_positive_rate: float = 0.05) -> pd.DataFrame:
    preset = load_preset(preset_name, **overrides)
    zoo = AttributionZoo(preset)
    sources = sources or preset.fine_tuned_source_names
    unknown = sorted(set(rhos) - set(preset.suspects.rho_values))
    if unknown:
        raise ParameterError("--rho", f"values of the preset's rho_values {preset.suspects.rho_values}", unknown)
    specs = pilot_specs(zoo, sources, rhos, models, innocents)
    unique = zoo.distinct_models(specs)  # a shared innocent is one model
    started = time.perf_counter()
    zoo.build_suspects(specs)
    seconds = time.perf_counter() - started
    zoo.build_answers(specs)
    space = zoo.feature_space("embedding")
    keys = {s: key_sets(zoo, s, space, strategies=("strategy12",))["strategy12"].top(preset.attribution.key_count)
            for s in sources}
    distances = key_distances(zoo, specs, {s: {"strategy12": k} for s, k in keys.items()}, space)
    delta0 = select_delta0_for_decision(distances, min(rhos), false_positive_rate)  # pooled, as notebook 03
    _, chain = signal_chain(zoo, specs, keys, distances, space, delta0)
    recipe = preset.suspects.recipe
    print(f"{len(unique)} pilot models, {seconds:.0f} s to train those not cached "
          f"({preset.runtime.n_jobs} workers: ~{preset.runtime.n_jobs * seconds / len(unique):.0f} core-s each if none was)")
    return chain.assign(steps=recipe.steps, batch_size=recipe.batch_size, lr=recipe.lr, samples=preset.suspects.samples,
                        overrides=str(overrides), train_seconds=round(seconds, 1))


def main() -> None:
    parser = pilot_parser(__doc__, "suspect_pilot")
    parser.add_argument("--sources", nargs="+", default=None, help="fine-tuned sources (default: all of the preset's)")
    parser.add_argument("--rho", type=float, nargs="+", default=[0.3])
    parser.add_argument("--models", type=int, default=2, help="shadow suspects per (source, rho)")
    parser.add_argument("--innocents", type=int, default=2, help="shadow innocents listed under each source")
    args = parser.parse_args()
    overrides = preset_overrides(args)
    table = pilot(args.preset, overrides, args.sources, args.rho, args.models, args.innocents)
    write_pilot_table(table, args.name, load_preset(args.preset, **overrides), "tools/pilot_suspects.py", args.out)
    print(table.round(3).to_string(index=False))


if __name__ == "__main__":
    main()
