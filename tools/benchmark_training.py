"""How fast is the workbook's fine-tuning loop against a bare PyTorch loop on the same UNet?

    python tools/benchmark_training.py [--preset cpu] [--steps 60] [--batch 16 64] [--threads 1] [--compile]
                                       [--base v1] [--set KEY=VALUE] [--out outputs/benchmarks]

Both loops fine-tune a copy of one of the preset's bases (``--base``, default ``v1``; ``--set unet_widths='{v2: 32}'``
times a narrower one) on the faces private split at the same batch size and learning
rate, the text encoder trained as the preset's suspects train it (``provlib.core.throughput``, which notebook 02 also
runs; ``--compile`` adds the fused bare loop with its UNet under ``torch.compile``). Writes samples per second and the
untimed warm-up's seconds (the compilation, for the compiled loop), one row per variant, to
``<--out>/training_throughput.csv`` with its provenance sidecar.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from provlib.cli import parse_assignment  # noqa: E402
from provlib.core.results import write_table  # noqa: E402
from provlib.core.throughput import throughput_table  # noqa: E402
from provlib.core.zoo import Zoo  # noqa: E402
from provlib.presets import load_preset  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--preset", default="cpu", help="the preset whose bases and recipe are timed")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="a preset field (YAML value), e.g. --set unet_widths='{v2: 32}'; repeatable")
    parser.add_argument("--name", default="training_throughput", help="the table's name under --out")
    parser.add_argument("--out", default="outputs/benchmarks", help="the folder the table and its sidecar go to")
    parser.add_argument("--steps", type=int, default=60)
    parser.add_argument("--batch", type=int, nargs="+", default=[16])
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's choice)")
    parser.add_argument("--compile", action="store_true", help="also time the bare loop under torch.compile")
    parser.add_argument("--base", default="v1", help="the base whose UNet is fine-tuned (default: v1)")
    args = parser.parse_args()
    preset = load_preset(args.preset, **dict(parse_assignment(a) for a in args.set))
    zoo = Zoo(preset, show_progress=False)
    recipe = preset.suspects.recipe
    pipe = zoo.load(zoo.base_location(args.base))
    table = throughput_table(pipe, zoo.dataset("faces", "private"), steps=args.steps,
                             batch_sizes=args.batch, lr=recipe.lr, train_text_encoder=preset.suspects.train_text_encoder,
                             threads=args.threads, compiled=args.compile)
    table["vae_downsampling"] = preset.models.vae_downsampling
    table["base"], table["unet_widths"] = args.base, str(tuple(pipe.unet.config.block_out_channels))
    table["unet_parameters"] = sum(parameter.numel() for parameter in pipe.unet.parameters())
    write_table(table, args.name, preset, "tools/benchmark_training.py", args.out)
    print(table.round(3).to_string())


if __name__ == "__main__":
    main()
