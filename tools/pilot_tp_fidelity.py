"""Owner-side pilot for issue 18: how fast does a CPU generator analogue learn to draw its classes?

    python tools/pilot_tp_fidelity.py [--preset cpu] [--generator sd14] [--at 500,1000,2000] [--guidance 3,6]
                                      [--snr-gamma 5] [--ema-decay 0.999] [--lr-schedule cosine --warmup 50]
                                      [--text-encoder trained]
                                      [--set tp_style_strength=1 ...] [--name tp_fidelity_pilot] [--out data/pilots]
    python tools/pilot_tp_fidelity.py --generator lcm --sampling-steps 4,8,12 [...]

Trains one generator analogue from scratch on notebook 07's data draw, VAE, architecture and recipe (the text
encoder frozen or trained as ``provlib.trainprove.analogues.TRAIN_TEXT_ENCODER`` says, unless ``--text-encoder``)
up to the largest step of ``--at`` and measures its class fidelity at every step of ``--at``: a classifier (the
shadow's recipe) trained on ``--per-class`` of its class-prompted images per class and tested on as many fresh ones. Also
reported, as ceilings: the same classifier on rendered images of that generator's draw, and on their reconstructions
through the generator's VAE. No suspect is built or read. Writes ``<name>.csv``, one row per measured step.
With ``--sampling-steps`` it trains nothing: it samples notebook 07's generator (from the cache) with each number
of sampling steps and measures the same class fidelity.
"""
from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from provlib.core import models, scenes  # noqa: E402
from provlib.core.results import write_pilot_table  # noqa: E402
from provlib.core.store import derive_seed  # noqa: E402
from provlib.core.train import train_denoiser  # noqa: E402
from provlib.pilot_cli import pilot_parser, preset_overrides  # noqa: E402
from provlib.presets import load_preset  # noqa: E402
from provlib.trainprove.analogues import TRAIN_TEXT_ENCODER  # noqa: E402
from provlib.trainprove.classifier import predict, train_classifier  # noqa: E402
from provlib.trainprove.generators import generate_labelled, load_generator  # noqa: E402
from provlib.trainprove.zoo import TrainProVeZoo  # noqa: E402


def accuracy(train_images, train_labels, test_images, test_labels, n_classes: int, epochs: int, seed: int) -> float:
    with torch.enable_grad():  # also called from inside the denoiser's training, which measures under no_grad
        model, _ = train_classifier(train_images, train_labels, n_classes, epochs=epochs, seed=seed)
    return float((predict(model, test_images) == test_labels).mean())


@torch.no_grad()
def reconstruct(vae, images: np.ndarray) -> np.ndarray:
    x = torch.from_numpy(images).permute(0, 3, 1, 2).float() / 127.5 - 1
    y = vae.decode(vae.encode(x).latent_dist.mean).sample
    return ((y.clamp(-1, 1) + 1) * 127.5).round().byte().permute(0, 2, 3, 1).numpy()


def class_fidelity(pipe, zoo: TrainProVeZoo, sampling: dict, per_class: int, seed: int, *seed_tags) -> float:
    """A classifier (the shadow's recipe) trained on ``per_class`` of the pipeline's class-prompted images per class,
    tested on as many fresh ones; each set is seeded by ``seed``, its purpose and ``seed_tags``."""
    p = zoo.p
    sets = [generate_labelled(pipe, zoo.prompts, per_class, seed=derive_seed(seed, purpose, *seed_tags),
                              sampling=sampling, resolution=p.world.resolution, output_resolution=p.trainprove.resolution,
                              batch_size=p.sampling.batch_size, desc=purpose, show_progress=False)
            for purpose in ("train", "test")]
    return accuracy(sets[0].images, sets[0].labels, sets[1].images, sets[1].labels, len(zoo.classes),
                    p.trainprove.classifier_epochs, 0)


def pilot(preset_name: str, generator: str, at: list[int], per_class: int, overrides: dict,
          guidance: list[float] = (), snr_gamma: float | None = None, ema_decay: float | None = None,
          lr_schedule: str | None = None, lr_warmup_steps: int = 0, train_text_encoder: bool = TRAIN_TEXT_ENCODER) -> pd.DataFrame:
    """``lr_schedule``: None follows the preset's ``tp_generator_lr_schedule``."""
    preset = load_preset(preset_name, **{**overrides, "tp_generator_steps": max(at)})
    lr_schedule = lr_schedule or preset.trainprove.generator_lr_schedule
    zoo = TrainProVeZoo(preset, show_progress=False)
    tp, n_classes, epochs = preset.trainprove, len(zoo.classes), preset.trainprove.classifier_epochs
    spec = zoo.spec(generator)
    started = time.perf_counter()
    data, labels = zoo.object_draw(generator, zoo.train_images_per_class(), "generator-training")
    fresh, fresh_labels = zoo.object_draw(generator, per_class, "pilot-fresh")
    vae = zoo.vae(generator)
    vae_seconds = time.perf_counter() - started
    # ceilings on as many training images as the fidelity classifier gets
    keep = np.concatenate([np.flatnonzero(labels == c)[:per_class] for c in range(n_classes)])
    ceilings = {"rendered": accuracy(data.images[keep], labels[keep], fresh.images, fresh_labels, n_classes, epochs, 0),
                "reconstructed": accuracy(reconstruct(vae, data.images[keep]), labels[keep],
                                          reconstruct(vae, fresh.images), fresh_labels, n_classes, epochs, 0)}
    print(ceilings, flush=True)
    vocabulary = scenes.vocabulary() + tp.prompt_template.replace("{}", " ").split()
    seed = derive_seed(preset.seed, "tp-generator", generator)
    pipe = models.build_tiny_pipeline(spec.architecture, vocabulary, vae, seed=seed)
    pipe.set_progress_bar_config(disable=True)
    rows, train_started = [], time.perf_counter()

    def measure(step: int) -> None:
        if step not in at:
            return
        trained_s = time.perf_counter() - train_started
        for scale in guidance or [zoo.sampling(generator)["guidance_scale"]]:
            fidelity = class_fidelity(pipe, zoo, {**zoo.sampling(generator), "guidance_scale": scale}, per_class,
                                      seed, step)
            rows.append({"generator": generator, "step": step, "guidance_scale": scale, "class_fidelity": fidelity,
                         "train_s": round(trained_s), "vae_s": round(vae_seconds),
                         "rendered_accuracy": ceilings["rendered"], "reconstructed_accuracy": ceilings["reconstructed"],
                         "snr_gamma": snr_gamma, "ema_decay": ema_decay, "lr_schedule": lr_schedule,
                         "lr_warmup_steps": lr_warmup_steps, "seed": preset.seed,
                         "train_text_encoder": train_text_encoder, **{k: str(v) for k, v in overrides.items()}})
            print(rows[-1], flush=True)

    train_denoiser(pipe, data, steps=max(at), batch_size=tp.generator_batch_size, lr=zoo.generator_lr(generator),
                   seed=seed, train_text_encoder=train_text_encoder, desc=f"train {generator}", show_progress=False, after_step=measure,
                   snr_gamma=snr_gamma, ema_decay=ema_decay, lr_schedule=lr_schedule, lr_warmup_steps=lr_warmup_steps)
    return pd.DataFrame(rows)


def sampling_pilot(preset_name: str, generator: str, sampling_steps: list[int], per_class: int, overrides: dict,
                   guidance: list[float] = ()) -> pd.DataFrame:
    """The generator notebook 07 trains (from the zoo's cache, trained there if absent), sampled with each number of
    ``sampling_steps``: its class fidelity, measured as ``pilot`` measures it."""
    preset = load_preset(preset_name, **overrides)
    zoo = TrainProVeZoo(preset, show_progress=False)
    tp = preset.trainprove
    pipe = load_generator(zoo.generator_location(generator), preset.runtime.device, preset.runtime.dtype)
    seed = derive_seed(preset.seed, "tp-generator", generator)
    rows = []
    for steps in sampling_steps:
        for scale in guidance or [zoo.sampling(generator)["guidance_scale"]]:
            sampling = {**zoo.sampling(generator), "num_inference_steps": steps, "guidance_scale": scale}
            fidelity = class_fidelity(pipe, zoo, sampling, per_class, seed, "sampling", steps)
            rows.append({"generator": generator, "step": tp.generator_steps, "sampling_steps": steps,
                         "guidance_scale": scale, "class_fidelity": fidelity, "seed": preset.seed,
                         **{k: str(v) for k, v in overrides.items()}})
            print(rows[-1], flush=True)
    return pd.DataFrame(rows)


def main() -> None:
    parser = pilot_parser(__doc__, "tp_fidelity_pilot")
    parser.add_argument("--generator", default="sd14")
    parser.add_argument("--at", default="500,1000,2000", help="steps at which to measure, comma-separated")
    parser.add_argument("--per-class", type=int, default=100)
    parser.add_argument("--guidance", default="", help="guidance scales to sample with, comma-separated "
                        "(default: the generator's own)")
    parser.add_argument("--sampling-steps", default="", help="instead of training: sample notebook 07's trained "
                        "generator (cached) with each of these step counts, comma-separated")
    parser.add_argument("--snr-gamma", type=float, default=None, help="train with Min-SNR loss weighting at this gamma")
    parser.add_argument("--ema-decay", type=float, default=None, help="measure (and end on) an EMA of the weights")
    parser.add_argument("--lr-schedule", default=None, help="diffusers learning-rate schedule over the largest "
                        "step of --at (constant, cosine, linear...); with a decaying one, only that last step is final")
    parser.add_argument("--text-encoder", choices=("frozen", "trained"), default=None, help="keep the text encoder at "
                        "its initialisation or train it with the UNet (default: as notebook 07's analogues do)")
    parser.add_argument("--warmup", type=int, default=0, help="linear warm-up steps of --lr-schedule")
    args = parser.parse_args()
    overrides = preset_overrides(args)
    guidance = [float(g) for g in args.guidance.split(",") if g]
    if args.sampling_steps:
        table = sampling_pilot(args.preset, args.generator, [int(s) for s in args.sampling_steps.split(",")],
                               args.per_class, overrides, guidance)
    else:
        table = pilot(args.preset, args.generator, sorted(int(s) for s in args.at.split(",")), args.per_class,
                      overrides, guidance, args.snr_gamma, args.ema_decay,
                      args.lr_schedule, args.warmup,
                      TRAIN_TEXT_ENCODER if args.text_encoder is None else args.text_encoder == "trained")
    write_pilot_table(table, args.name, load_preset(args.preset, **overrides), "tools/pilot_tp_fidelity.py", args.out)
    print(table.round(3).to_string(index=False))


if __name__ == "__main__":
    main()
