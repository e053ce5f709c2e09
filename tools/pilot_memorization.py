"""Owner-side pilot for issue 17: does a fine-tuned source reproduce *its own* training images, against steps?

    python tools/pilot_memorization.py --steps 4000 --every 1000 --private 32 [--seeds 4] [--out DIR]

Fine-tunes the ``cpu`` preset's ``v1`` base on ``--private`` faces (each caption once), once with the text encoder
frozen (today's recipe) and once trained with the UNet (DreamBooth's ``train_text_encoder``), and every ``--every``
steps generates ``--seeds`` images per training caption and measures ``provlib.attribution.memorization
.copy_measures``: the copy rate (own training image nearer than every same-caption real image), Gu et al.'s
criterion (nearest < 1/3 of the second-nearest training distance) and the distances themselves, beside the
same-caption real-vs-real spread. Only owner-side data: the source's own training set and the domain's real pool.
Writes ``memorization_pilot.csv`` (one row per setting and step) under ``--out`` (default ``data/pilots``).
"""
from __future__ import annotations

import sys
from pathlib import Path

import pandas as pd
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from provlib.attribution.memorization import copy_measures, same_caption_spread  # noqa: E402
from provlib.core.generate import generate  # noqa: E402
from provlib.core.results import write_pilot_table  # noqa: E402
from provlib.core.store import derive_seed  # noqa: E402
from provlib.core.train import train_denoiser  # noqa: E402
from provlib.core.zoo import Zoo  # noqa: E402
from provlib.pilot_cli import pilot_parser, preset_overrides  # noqa: E402
from provlib.presets import load_preset  # noqa: E402


def pilot(preset_name: str, steps: int, every: int, n_private: int, seeds: int, text_encoder: bool, threads: int,
          base: str = "v1", batch_size: int | None = None, lr: float | None = None, overrides: dict | None = None,
          guidance_scales: list[float] | None = None) -> pd.DataFrame:
    torch.set_num_threads(threads)
    preset = load_preset(preset_name, n_private=n_private, source_train_text_encoder=text_encoder, **(overrides or {}))
    zoo = Zoo(preset)
    train, real = zoo.dataset("faces", "private"), zoo.dataset("faces", "real")
    pipe = zoo.load(zoo.base_location(base))
    spread = same_caption_spread(real)
    rows = []

    def measure(step: int) -> None:
        if step % every:
            return
        for guidance in guidance_scales or [preset.sampling.guidance_scale]:
            measure_at(step, guidance)

    def measure_at(step: int, guidance: float) -> None:
        out = generate(pipe, train.captions, images_per_prompt=seeds, seed=derive_seed(preset.seed, "pilot", step),
                       batch_size=preset.sampling.batch_size, num_inference_steps=preset.sampling.inference_steps,
                       guidance_scale=guidance, resolution=preset.world.resolution, show_progress=False)
        frame = copy_measures(out.images.reshape(len(train), seeds, *out.images.shape[1:]), train.captions, train, real)
        rows.append({"setting": "text encoder trained" if text_encoder else "text encoder frozen", "step": step,
                     "base": base, "batch_size": batch_size, "lr": lr, "guidance_scale": guidance,
                     "n_private": n_private, "seeds": seeds, "copy_rate": frame.copies_own.mean(),
                     "gu_memorized_rate": frame.gu_memorized.mean(), "within_0.1": (frame.d_own < 0.1).mean(),
                     "mean_d_own": frame.d_own.mean(), "mean_d_same_caption_real": frame.d_same_caption_real.mean(),
                     "same_caption_real_spread": spread})
        print(rows[-1], flush=True)

    recipe = preset.models.source
    batch_size = batch_size or recipe.batch_size
    lr = lr or recipe.lr
    train_denoiser(pipe, train, steps=steps, batch_size=batch_size, lr=lr,
                   seed=derive_seed(preset.seed, "pilot-source"), train_text_encoder=text_encoder,
                   desc=f"pilot ({'trained' if text_encoder else 'frozen'} text encoder)", after_step=measure)
    return pd.DataFrame(rows)


def main() -> None:
    parser = pilot_parser(__doc__, "memorization_pilot")
    parser.add_argument("--steps", type=int, default=4000)
    parser.add_argument("--every", type=int, default=1000)
    parser.add_argument("--private", type=int, default=32)
    parser.add_argument("--seeds", type=int, default=4)
    parser.add_argument("--setting", choices=("frozen", "trained", "both"), default="both")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--base", default="v1", help="the base model to fine-tune (v2: a suspect's base)")
    parser.add_argument("--batch", type=int, default=None, help="batch size (default: the preset's source recipe)")
    parser.add_argument("--lr", type=float, default=None, help="learning rate (default: the preset's source recipe)")
    parser.add_argument("--guidance", type=float, nargs="+", default=None,
                        help="guidance scales to measure at (default: the preset's)")
    args = parser.parse_args()
    settings = {"frozen": [False], "trained": [True], "both": [False, True]}[args.setting]
    overrides = preset_overrides(args)
    table = pd.concat([pilot(args.preset, args.steps, args.every, args.private, args.seeds, te, args.threads,
                             args.base, args.batch, args.lr, overrides, args.guidance) for te in settings],
                      ignore_index=True)
    name = args.name + ("" if args.setting == "both" else f"_{args.setting}")
    write_pilot_table(table, name, load_preset(args.preset, n_private=args.private, **overrides),
                      "tools/pilot_memorization.py", args.out)
    print(table.round(3).to_string())


if __name__ == "__main__":
    main()
