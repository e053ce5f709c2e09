"""Diagnostic for issue 17: the conf level rules (empirical, split-conformal, conformal guarded by a fitted tail).

    PROVLIB_CACHE_DIR=... PROVLIB_RESULTS_DIR=data/results/reruns/world_seed2 \
        python tools/check_conf_level_rule.py --set seed=2 [--name conf_level_rule_seed2]

Notebook 03 sets the conf level so that at most ``conf_false_positive_rate`` (α) of its shadow innocents lie above it:
with n innocents it allows floor(α n) of them (24 shadows, α = 0.05: one), so a new innocent model exceeds it with
probability (floor(α n) + 1) / (n + 1), about 8%, not α. The split-conformal level (the ceil((n + 1)(1 - α))-th
smallest shadow conf, the largest when that exceeds n) bounds that probability by α for an exchangeable innocent, on
average over calibration samples; ``conformal_tail`` (notebook 03's since stop 48) takes the larger of it and a
beta-binomial tail fitted to every shadow innocent's attributed-key count. Every rule (``select_conf_threshold``'s
``level_rule``) runs
``provlib.attribution.calibration``'s δ0 choice (``low_rho_tpr``: the same rule picks δ0 and the
level) on the shadows of a cached world, with the keys of the reference bases 03 chose, then scores its test
suspects; nothing is trained. One row per rule and ρ.
"""
from __future__ import annotations

import sys
from pathlib import Path

import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import provlib.attribution.calibration as calibration  # noqa: E402
from provlib.attribution.instance import CONF_LEVEL_RULES  # noqa: E402
from provlib.attribution.queries import AttributionZoo  # noqa: E402
from provlib.core.results import read_table, write_pilot_table  # noqa: E402
from provlib.pilot_cli import pilot_parser, preset_overrides  # noqa: E402
from provlib.presets import load_preset  # noqa: E402


RULES = CONF_LEVEL_RULES  # "empirical", "conformal" and "conformal_tail"


def compare(zoo: AttributionZoo, chosen) -> pd.DataFrame:
    specs = zoo.suspect_specs()
    space = zoo.feature_space(chosen.feature_space)
    reference = chosen.get("reference_bases")  # the reference notebook 03 chose (tables before it: the preset's)
    keys = {source: {chosen.strategy: calibration.key_sets(zoo, source, space, strategies=(chosen.strategy,),
                                                           reference_bases=reference)[chosen.strategy]}
            for source in zoo.p.source_names}
    distances = calibration.key_distances(zoo, specs, keys, space)
    shadow = distances[(distances.split == "shadow") & distances.rho.isin([0.0, chosen.shadow_rho])]
    rows = []
    for name in RULES:
        picked = calibration._calibrate_on(shadow, chosen.shadow_rho, chosen.rule, 0.05,
                                           float(chosen.conf_false_positive_rate), space.name, chosen.strategy, name)
        confs = calibration.model_confs(distances[distances.split == "test"], picked["delta0"])
        confs["called"] = confs.conf > picked["conf_threshold"]
        for rho, group in confs.groupby("rho"):
            rows.append({"rule": name, "delta0": picked["delta0"], "conf_level": picked["conf_threshold"], "rho": rho,
                         "test_models": len(group), "called_infringing": int(group.called.sum()),
                         "mean_conf": float(group.conf.mean())})
    return pd.DataFrame(rows)


def main(argv=None) -> None:
    parser = pilot_parser(__doc__.split("\n")[0], "conf_level_rule")
    args = parser.parse_args(argv)
    preset = load_preset(args.preset, **preset_overrides(args))
    thresholds = read_table("delta0", preset, "03_delta0_threshold")  # PROVLIB_RESULTS_DIR: a re-run's tables
    table = compare(AttributionZoo(preset, show_progress=False), thresholds[thresholds.selected].iloc[0])
    print(write_pilot_table(table, args.name, preset, "tools/check_conf_level_rule.py", args.out))
    print(table.round(3).to_string(index=False))


if __name__ == "__main__":
    main()
