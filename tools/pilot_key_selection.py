"""Owner-side pilot for issue 17: does a source world leave key selection something to find that random keys miss?

    python tools/pilot_key_selection.py [--preset cpu] [--config "n_private=128 private_duplicates=16" ...]
                                        [--name key_selection_pilot] [--out data/pilots]

For each ``--config`` (space-separated KEY=VALUE preset fields on top of ``--preset``, the ``v1`` sources only: with
``base_sources=True`` the base ``v1`` too, whose memorized samples can only come from ``pretrain_duplicates``), the
owner builds its sources, selects Strategy 1+2 and random keys (Baseline 2, three draws) from the
candidate probe exactly as notebook 03 does, and asks two models for k fresh images per key prompt: **the source
itself** (an upper bound on what any infringing suspect can reproduce: a suspect at ρ = 1 learns from the source's
own generations) and **the reference base** (the public model an innocent suspect starts from). conf at a few δ0 in
the copy-descriptor space is the share of keys answered within δ0. No suspect is built or read: the choice of a
world made here uses the owner's models only. Writes ``<name>.csv``, one row per (config, source, strategy, answerer,
δ0), and prints the table.
"""
from __future__ import annotations

import shlex
import sys
from pathlib import Path

import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from provlib.attribution.instance import best_key_distances  # noqa: E402
from provlib.attribution.keys import select_keys  # noqa: E402
from provlib.attribution.queries import AttributionZoo  # noqa: E402
from provlib.core.results import write_pilot_table  # noqa: E402
from provlib.core.store import derive_seed  # noqa: E402
from provlib.pilot_cli import parse_assignment, pilot_parser, preset_overrides  # noqa: E402
from provlib.presets import load_preset  # noqa: E402

DELTA0S = (0.15, 0.22, 0.30)
RANDOM_DRAWS = 3


def pilot_config(preset_name: str, overrides: dict, only: list[str] | None = None) -> pd.DataFrame:
    preset = load_preset(preset_name, fine_tuned_bases=["v1"], **overrides)
    zoo = AttributionZoo(preset, show_progress=False)
    if only is None:  # otherwise each source builds only what it needs, lazily
        zoo.build_sources()
    space = zoo.feature_space("embedding")
    k, n = preset.attribution.query_images, preset.attribution.key_count
    rows = []
    for source in only or preset.source_names:
        probe = zoo.candidate_probe(source)
        answerers = {"source": zoo.source_location(source), "reference": zoo.base_location(zoo.suspect_base(source))}
        seed = derive_seed(preset.seed, "pilot-key-selection-answers", source)
        answers = {}
        for role, location in answerers.items():
            images = zoo.generate(zoo.load(location), probe.prompts, seed=seed, images_per_prompt=k,
                                  show_progress=False).images
            answers[role] = images.reshape(len(probe.prompts), k, *images.shape[1:])
        draws = [("strategy12", 0)] + [("random", r) for r in range(RANDOM_DRAWS)]
        for strategy, draw in draws:
            keys = select_keys(probe, strategy, n, source, space, seed=derive_seed(preset.seed, "pilot-random-keys", source, draw))
            for role, images in answers.items():
                distances = best_key_distances(images[keys.candidate_index], keys.images, space)
                for delta0 in DELTA0S:
                    rows.append({"config": " ".join(f"{a}={b}" for a, b in overrides.items()) or "(preset)",
                                 "source": source, "training_images": len(zoo.training_set(source)),
                                 "candidates": len(probe.prompts), "strategy": strategy, "draw": draw, "answerer": role,
                                 "delta0": delta0, "conf": float((distances < delta0).mean())})
    return pd.DataFrame(rows)


def main() -> None:
    parser = pilot_parser(__doc__, "key_selection_pilot")
    parser.add_argument("--config", action="append", default=[], metavar='"KEY=VALUE ..."',
                        help="one world to try (preset fields, YAML values); repeatable; none: the preset itself")
    parser.add_argument("--sources", nargs="+", default=None,
                        help="only these sources (built alone, with what they need); default: every v1 source")
    args = parser.parse_args()
    common = preset_overrides(args)
    configs = [{**common, **dict(parse_assignment(item) for item in shlex.split(text))} for text in args.config] or [common]
    table = pd.concat([pilot_config(args.preset, overrides, args.sources) for overrides in configs], ignore_index=True)
    write_pilot_table(table, args.name, load_preset(args.preset, **common), "tools/pilot_key_selection.py", args.out)
    summary = (table.groupby(["config", "source", "answerer", "delta0", "strategy"], sort=False).conf.mean()
               .unstack("strategy").assign(difference=lambda t: t.strategy12 - t.random))
    print(summary.round(3).to_string())


if __name__ == "__main__":
    main()
