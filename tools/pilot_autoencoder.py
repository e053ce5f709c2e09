"""Owner-side pilot for issue 17: is the autoencoder the floor of how closely a source can copy its own images?

    python tools/pilot_autoencoder.py [--preset cpu] [--variant NAME:DOWN:CHANNELS:WIDTH:STEPS ...] [--out data/pilots]

A source's generation is a decoded latent, so its distance to its own training image can never fall below the
autoencoder's reconstruction error of that image. Each variant (downsampling 4 or 8, latent channels, width of the
first block, training steps) is trained as ``Zoo.vae`` trains the workbook's (the generic pre-training images, batch
32, lr 2e-3, the preset's seed) and scored on the faces and scenes private images by the pixel distance of
``provlib.attribution.distance`` (the copy curve's): mean and share under 0.1, beside the same-caption real spread.
Writes ``autoencoder_pilot.csv`` (one row per variant and domain) with the seconds ``Zoo.vae`` took (only a load when
the variant was already in the cache).
"""
from __future__ import annotations

import sys
import time
from pathlib import Path

import pandas as pd
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from provlib.attribution.memorization import autoencoder_floor, same_caption_spread  # noqa: E402
from provlib.core.results import write_pilot_table  # noqa: E402
from provlib.core.zoo import Zoo  # noqa: E402
from provlib.pilot_cli import pilot_parser, preset_overrides  # noqa: E402
from provlib.presets import load_preset  # noqa: E402

DEFAULT_VARIANTS = ["cpu:8:8:16:800", "longer:8:8:16:2000", "16ch:8:16:16:800", "16ch-longer:8:16:16:2000",
                    "wide:8:8:32:800", "4x:4:8:16:800"]


def main() -> None:
    parser = pilot_parser(__doc__, "autoencoder_pilot")
    parser.add_argument("--variant", action="append", default=None, help="NAME:DOWNSAMPLING:CHANNELS:WIDTH:STEPS")
    parser.add_argument("--threads", type=int, default=None)
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    preset = load_preset(args.preset, **preset_overrides(args))
    zoo = Zoo(preset, show_progress=False)
    domains = {d: (zoo.dataset(d, "private"), zoo.dataset(d, "real")) for d in preset.world.source_domains}
    rows = []
    for variant in args.variant or DEFAULT_VARIANTS:
        name, down, channels, width, steps = (int(v) if i else v for i, v in enumerate(variant.split(":")))
        # the workbook's own autoencoder recipe (Zoo.vae) with the variant's shape: cached like the workbook's
        variant_zoo = Zoo(preset.replace(vae_downsampling=down, vae_latent_channels=channels, vae_width=width,
                                         vae_steps=steps), show_progress=False)
        start = time.perf_counter()
        vae = variant_zoo.vae()
        seconds = time.perf_counter() - start
        for domain, (private, real) in domains.items():
            d = autoencoder_floor(vae, private.images)
            rows.append({"variant": name, "downsampling": down, "latent_channels": channels,
                         "widths": str(tuple(vae.config.block_out_channels)), "steps": steps, "domain": domain,
                         "reconstruction_distance": float(d.mean()),
                         "within_0.1": float((d < 0.1).mean()), "same_caption_real_spread": same_caption_spread(real),
                         "train_seconds": seconds, "threads": torch.get_num_threads()})
            print(rows[-1], flush=True)
    write_pilot_table(pd.DataFrame(rows), args.name, preset, "tools/pilot_autoencoder.py", args.out)


if __name__ == "__main__":
    main()
