"""Issue 17's cost question: how fast is the workbook's fine-tuning loop against a bare PyTorch loop on the same UNet?

    python tools/benchmark_training.py [--preset cpu] [--steps 60] [--batch 16 64] [--threads 1] [--set KEY=VALUE]

Both loops fine-tune a copy of the preset's ``v1`` base UNet on the faces private split at the same batch size and
learning rate: ``train_denoiser`` (accelerate, per-step seeded draws, caption dropout, checkpoint logic) and a bare
loop (precomputed latents and prompt embeddings, one global generator, AdamW, MSE on the noise), with PyTorch's
default per-tensor AdamW and with the fused one, and each in ``channels_last`` memory format. The first steps are a warm-up and are not timed. Writes samples per second, one
row per variant, to ``training_throughput.csv``.
"""
from __future__ import annotations

import copy
import sys
import time
from pathlib import Path

import pandas as pd
import torch
import torch.nn.functional as F
from diffusers import DDPMScheduler

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from provlib.core.results import write_pilot_table  # noqa: E402
from provlib.core.train import encode_latents, train_denoiser  # noqa: E402
from provlib.core.zoo import Zoo  # noqa: E402
from provlib.pilot_cli import pilot_parser, preset_overrides  # noqa: E402
from provlib.presets import load_preset  # noqa: E402

WARMUP = 10


def bare_loop(pipe, data, steps: int, batch: int, lr: float, channels_last: bool, fused: bool = False) -> float:
    """Samples per second of a minimal epsilon-prediction loop over ``pipe.unet`` (timed after the warm-up)."""
    unet = pipe.unet.train()
    if channels_last:
        unet = unet.to(memory_format=torch.channels_last)
    scheduler = DDPMScheduler.from_config(pipe.scheduler.config)
    mean, std = encode_latents(pipe.vae, data.images)
    scale = float(pipe.vae.config.scaling_factor)
    with torch.no_grad():
        ids = pipe.tokenizer(data.captions, padding="max_length", max_length=pipe.tokenizer.model_max_length,
                             truncation=True, return_tensors="pt").input_ids
        embeddings = pipe.text_encoder(ids)[0]
    optimizer = torch.optim.AdamW(unet.parameters(), lr=lr, weight_decay=1e-2, fused=fused)
    generator = torch.Generator().manual_seed(0)
    for step in range(steps + WARMUP):
        if step == WARMUP:
            start = time.perf_counter()
        idx = torch.randint(0, len(data), (batch,), generator=generator)
        latents = (mean[idx] + std[idx] * torch.randn(mean[idx].shape, generator=generator)) * scale
        noise = torch.randn(latents.shape, generator=generator)
        t = torch.randint(0, scheduler.config.num_train_timesteps, (batch,), generator=generator)
        noisy = scheduler.add_noise(latents, noise, t)
        if channels_last:
            noisy = noisy.contiguous(memory_format=torch.channels_last)
        loss = F.mse_loss(unet(noisy, t, embeddings[idx]).sample, noise)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
    return steps * batch / (time.perf_counter() - start)


def workbook_loop(pipe, data, steps: int, batch: int, lr: float, channels_last: bool, fused: bool = True) -> float:
    """``train_denoiser`` (fused AdamW since issue 17) over the same UNet."""
    if channels_last:
        pipe.unet.to(memory_format=torch.channels_last)
    marks = {}
    train_denoiser(pipe, data, steps=steps + WARMUP, batch_size=batch, lr=lr, seed=0, show_progress=False,
                   after_step=lambda n: marks.setdefault(n, time.perf_counter()) if n in (WARMUP, steps + WARMUP) else None)
    return steps * batch / (marks[steps + WARMUP] - marks[WARMUP])


def main() -> None:
    parser = pilot_parser(__doc__, "training_throughput")
    parser.add_argument("--steps", type=int, default=60)
    parser.add_argument("--batch", type=int, nargs="+", default=[16])
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's choice)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    preset = load_preset(args.preset, **preset_overrides(args))
    zoo = Zoo(preset, show_progress=False)
    base = zoo.load(zoo.base_location("v1"))
    data = zoo.dataset("faces", "private")
    rows = []
    variants = [("bare PyTorch loop", bare_loop, False, False), ("bare PyTorch loop", bare_loop, False, True),
                ("bare PyTorch loop", bare_loop, True, True), ("workbook train_denoiser", workbook_loop, False, True),
                ("workbook train_denoiser", workbook_loop, True, True)]
    for batch in args.batch:
        for name, loop, channels_last, fused in variants:
            pipe = copy.deepcopy(base)
            rate = loop(pipe, data, args.steps, batch, preset.models.source.lr, channels_last, fused)
            rows.append({"loop": name, "channels_last": channels_last, "fused_adamw": fused, "samples_per_second": rate,
                         "steps_timed": args.steps, "batch_size": batch, "threads": torch.get_num_threads(),
                         "vae_downsampling": preset.models.vae_downsampling})
            print(rows[-1], flush=True)
    table = pd.DataFrame(rows)
    plain = table[(table.loop == "bare PyTorch loop") & ~table.channels_last & ~table.fused_adamw]
    table["ratio_to_bare_loop"] = table.samples_per_second / table.batch_size.map(plain.set_index("batch_size").samples_per_second)
    write_pilot_table(table, args.name, preset, "tools/benchmark_training.py", args.out)
    print(table.round(3).to_string())


if __name__ == "__main__":
    main()
