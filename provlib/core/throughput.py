"""How fast the workbook's fine-tuning loop runs, against a bare PyTorch loop over the same models (notebook 02 and
``tools/benchmark_training.py`` print the table; docs/decisions.md, "The training loop").

Both loops fine-tune copies of one pipeline on one captioned set at the same batch size and learning rate, the text
encoder trained or frozen as the recipe says:

* **bare loop**: precomputed latents, one global generator, the batch's captions through the text encoder row by row
  (when it trains), MSE on the noise, PyTorch's per-tensor AdamW; then with the fused AdamW, then also channels-last;
* **train_denoiser**: the workbook's loop (accelerate, per-step seeded draws, caption dropout, checkpoint logic, fused
  AdamW, each distinct caption of a batch through the text encoder once, channels-last on the CPU), and the same
  without channels-last;
* with ``compiled=True`` (``tools/benchmark_training.py --compile``; not in notebook 02, whose check it would lengthen by
  the compilation) also the fused bare loop with its UNet under ``torch.compile`` (inductor, default mode).

The first ``WARMUP`` steps are not timed; ``warmup_seconds`` is their wall time, which holds the compilation.
Rates are samples per second on the current number of torch threads.
"""
from __future__ import annotations

import copy
import time

import pandas as pd
import torch
import torch.nn.functional as F
from diffusers import DDPMScheduler

from provlib.core.train import encode_latents, token_ids, train_denoiser

WARMUP = 5
# (loop, channels-last, fused AdamW, torch.compile)
VARIANTS = (("bare PyTorch loop", False, False, False), ("bare PyTorch loop", False, True, False),
            ("bare PyTorch loop", True, True, False), ("workbook train_denoiser", False, True, False),
            ("workbook train_denoiser", True, True, False))
COMPILED_VARIANTS = (("bare PyTorch loop", False, True, True),)


def bare_loop(pipe, data, steps: int, batch: int, lr: float, *, channels_last: bool = False, fused: bool = False,
              train_text_encoder: bool = False, compiled: bool = False) -> tuple[float, float]:
    """Samples per second of a minimal epsilon-prediction loop over ``pipe`` (trained in place), and the seconds of its
    untimed warm-up steps (with ``compiled``, the UNet runs under ``torch.compile`` and the warm-up compiles it)."""
    unet, text_encoder = pipe.unet.train(), pipe.text_encoder
    if channels_last:
        unet.to(memory_format=torch.channels_last)
    params = list(unet.parameters())
    forward = torch.compile(unet) if compiled else unet
    scheduler = DDPMScheduler.from_config(pipe.scheduler.config)
    mean, std = encode_latents(pipe.vae, data.images)
    scale = float(pipe.vae.config.scaling_factor)
    ids = token_ids(pipe, list(data.captions))
    if train_text_encoder:
        text_encoder.train().requires_grad_(True)
        params += list(text_encoder.parameters())
    else:
        with torch.no_grad():
            embeddings = text_encoder(ids)[0]
    optimizer = torch.optim.AdamW(params, lr=lr, weight_decay=1e-2, fused=fused)
    generator = torch.Generator().manual_seed(0)
    began = time.perf_counter()
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
        condition = text_encoder(ids[idx])[0] if train_text_encoder else embeddings[idx]
        loss = F.mse_loss(forward(noisy, t, condition).sample, noise)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
    return steps * batch / (time.perf_counter() - start), start - began


def workbook_loop(pipe, data, steps: int, batch: int, lr: float, *, channels_last: bool = True,
                  train_text_encoder: bool = False) -> tuple[float, float]:
    """Samples per second of ``train_denoiser`` over ``pipe`` (trained in place), and the seconds of the warm-up steps
    (from the loop's start, its set-up included)."""
    marks = {}
    began = time.perf_counter()
    train_denoiser(pipe, data, steps=steps + WARMUP, batch_size=batch, lr=lr, seed=0, show_progress=False,
                   train_text_encoder=train_text_encoder, channels_last=channels_last,
                   after_step=lambda n: marks.setdefault(n, time.perf_counter()) if n in (WARMUP, steps + WARMUP) else None)
    return steps * batch / (marks[steps + WARMUP] - marks[WARMUP]), marks[WARMUP] - began


def throughput_table(pipe, data, *, steps: int, batch_sizes, lr: float, train_text_encoder: bool,
                     threads: int | None = 1, compiled: bool = False) -> pd.DataFrame:
    """One row per loop variant and batch size: samples per second and the ratio to the plain bare loop.

    ``threads`` (1 by default: what each of notebook 02's workers gets) is set for the measurement and restored;
    ``compiled`` adds the fused bare loop under ``torch.compile``.
    """
    previous = torch.get_num_threads()
    if threads:
        torch.set_num_threads(threads)
    rows = []
    try:
        for batch in batch_sizes:
            for loop, channels_last, fused, with_compile in VARIANTS + (COMPILED_VARIANTS if compiled else ()):
                trained = copy.deepcopy(pipe)
                if loop.startswith("bare"):
                    rate, warmup = bare_loop(trained, data, steps, batch, lr, channels_last=channels_last, fused=fused,
                                             train_text_encoder=train_text_encoder, compiled=with_compile)
                else:
                    rate, warmup = workbook_loop(trained, data, steps, batch, lr, channels_last=channels_last,
                                                 train_text_encoder=train_text_encoder)
                rows.append({"loop": loop, "channels_last": channels_last, "fused_adamw": fused,
                             "torch_compile": with_compile, "text_encoder_trained": train_text_encoder,
                             "samples_per_second": rate, "warmup_seconds": warmup, "steps_timed": steps,
                             "batch_size": batch, "threads": torch.get_num_threads()})
    finally:
        torch.set_num_threads(previous)
    table = pd.DataFrame(rows)
    plain = table[(table.loop == "bare PyTorch loop") & ~table.channels_last & ~table.fused_adamw & ~table.torch_compile]
    table["ratio_to_bare_loop"] = table.samples_per_second / table.batch_size.map(
        plain.set_index("batch_size").samples_per_second)
    return table
