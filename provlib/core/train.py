"""Fine-tuning: the standard text-to-image recipe (epsilon-prediction MSE on VAE latents), via accelerate.

Every random draw of step ``k`` comes from a generator seeded by ``(seed, k)``, so a run resumed from
a checkpoint continues exactly as the uninterrupted run would have.
"""
from __future__ import annotations

import json
import os
import shutil
import uuid
import warnings
from pathlib import Path
from typing import Callable

import numpy as np
import torch
import torch.nn.functional as F
from accelerate import Accelerator
from accelerate.state import AcceleratorState
from diffusers import DDPMScheduler, StableDiffusionPipeline
from diffusers.optimization import get_scheduler
from diffusers.training_utils import EMAModel, compute_snr
from safetensors.torch import load_file, save_file

from provlib.core.data import CaptionedImageSet
from provlib.core.progress import tqdm


def step_generator(seed: int, step: int) -> torch.Generator:
    return torch.Generator().manual_seed(int(np.random.SeedSequence([seed, step]).generate_state(1)[0]))


def images_to_tensor(images: np.ndarray) -> torch.Tensor:
    """uint8 [n, H, W, 3] -> float [-1, 1] [n, 3, H, W]."""
    return torch.from_numpy(images).permute(0, 3, 1, 2).float().div(127.5).sub(1.0)


def train_vae(vae, images: np.ndarray, steps: int, batch_size: int, lr: float, seed: int,
              kl_weight: float = 1e-6, show_progress: bool = True) -> list[float]:
    """Train the tiny autoencoder (reconstruction + SD's small KL term); sets SD-style ``scaling_factor``."""
    data = images_to_tensor(images)
    optimizer = torch.optim.AdamW(vae.parameters(), lr=lr)
    losses = []
    vae.train()
    for step in tqdm(range(steps), desc="train VAE", disable=not show_progress, mininterval=5):
        gen = step_generator(seed, step)
        batch = data[torch.randint(0, len(data), (batch_size,), generator=gen)]
        posterior = vae.encode(batch).latent_dist
        recon = vae.decode(posterior.mean + posterior.std * torch.randn(posterior.mean.shape, generator=gen)).sample
        loss = F.mse_loss(recon, batch) + F.l1_loss(recon, batch) + kl_weight * posterior.kl().mean()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(float(loss.detach()))
    vae.eval()
    with torch.no_grad():
        latents = torch.cat([vae.encode(data[i:i + 256]).latent_dist.mean for i in range(0, len(data), 256)])
    # scale latents to unit variance, as SD's 0.18215 does for its VAE
    vae.register_to_config(scaling_factor=float(1.0 / latents.std()))
    return losses


@torch.no_grad()
def encode_latents(vae, images: np.ndarray, batch_size: int = 64) -> tuple[torch.Tensor, torch.Tensor]:
    """Posterior mean and std for every image, computed once so each step only samples."""
    means, stds = [], []
    device, dtype = vae.device, vae.dtype
    for i in range(0, len(images), batch_size):
        posterior = vae.encode(images_to_tensor(images[i:i + batch_size]).to(device, dtype)).latent_dist
        means.append(posterior.mean.float().cpu())
        stds.append(posterior.std.float().cpu())
    return torch.cat(means), torch.cat(stds)


def token_ids(pipe: StableDiffusionPipeline, captions: list[str]) -> torch.Tensor:
    return pipe.tokenizer(captions, padding="max_length", max_length=pipe.tokenizer.model_max_length,
                          truncation=True, return_tensors="pt").input_ids


def encode_each_caption_once(text_encoder, caption_ids: torch.Tensor, rows: torch.Tensor) -> torch.Tensor:
    """The text embedding of caption ``caption_ids[r]`` for each ``r`` in ``rows``, each distinct caption encoded once.

    A batch of 64 holds about 40 of a 64-caption list, and encoding every row was a third of a step; the gradients
    are the same, as repeats sum through the gather. The gather is ``index_select``, whose backward adds the repeats
    in order: ``[position]``'s backward is a CPU ``index_put_`` with accumulation, whose threads add them in a racing
    order, so two 2-thread runs of one seeded training ended with different weights.
    """
    distinct, position = torch.unique(rows, return_inverse=True)
    return text_encoder(caption_ids[distinct])[0].index_select(0, position)


def _encode_prompts(pipe: StableDiffusionPipeline, captions: list[str]) -> torch.Tensor:
    return pipe.text_encoder(token_ids(pipe, captions).to(pipe.text_encoder.device))[0]


def _latest_checkpoint(checkpoint_dir: Path | None) -> Path | None:
    if checkpoint_dir is None:
        return None
    done = sorted(checkpoint_dir.glob("step-*/meta.json"), key=lambda p: int(p.parent.name.split("-")[1]))
    return done[-1].parent if done else None


def _save_checkpoint(checkpoint_dir: Path, step: int, modules: dict, optimizer, losses: list[float],
                     averages: dict | None = None) -> None:
    # a temporary name of this process's own: two runs of the same training (two notebooks sharing a cache) must
    # not write into each other's half-saved checkpoint
    tmp = checkpoint_dir / f".tmp-step-{step}-{uuid.uuid4().hex[:8]}"
    tmp.mkdir(parents=True)
    for name, module in modules.items():
        save_file({k: v.detach().contiguous().cpu() for k, v in module.state_dict().items()}, tmp / f"{name}.safetensors")
    torch.save(optimizer.state_dict(), tmp / "optimizer.pt")  # tensors and numbers only: loaded with weights_only
    for name, average in (averages or {}).items():
        torch.save(average.state_dict(), tmp / f"ema_{name}.pt")  # likewise
    (tmp / "meta.json").write_text(json.dumps({"step": step, "losses": losses}))
    final = checkpoint_dir / f"step-{step}"
    try:
        os.replace(tmp, final)
    except OSError:
        if not (final / "meta.json").is_file():
            raise
        shutil.rmtree(tmp, ignore_errors=True)  # another run of the same training saved this step (seeded: same weights)
    for old in checkpoint_dir.glob("step-*"):
        if old.name != final.name:
            shutil.rmtree(old, ignore_errors=True)
    for stale in checkpoint_dir.glob(".tmp-step-*"):
        if int(stale.name.split("-")[2]) < step:  # left by a killed run
            shutil.rmtree(stale, ignore_errors=True)


def train_denoiser(pipe: StableDiffusionPipeline, data: CaptionedImageSet, *, steps: int, batch_size: int, lr: float,
                   seed: int, train_text_encoder: bool = False, caption_dropout: float = 0.1,
                   checkpoint_dir: Path | None = None, checkpoint_every: int = 500, mixed_precision: str = "no",
                   desc: str = "fine-tune", show_progress: bool = True,
                   after_step: Callable[[int], None] | None = None, snr_gamma: float | None = None,
                   ema_decay: float | None = None, lr_schedule: str = "constant", lr_warmup_steps: int = 0,
                   channels_last: bool | None = None) -> list[float]:
    """Fine-tune ``pipe.unet`` (and the text encoder when pre-training) in place; returns the loss per step.

    ``caption_dropout`` replaces a share of captions with the empty prompt so classifier-free guidance works.
    With ``checkpoint_dir`` the run saves every ``checkpoint_every`` steps and resumes from the latest save.
    ``after_step(n)`` is called after step n (1-based), e.g. to measure the model along its training: it may
    generate with ``pipe`` (it runs under ``torch.no_grad`` with the trained modules in eval mode).
    ``snr_gamma`` weights each sample's loss by min(SNR, gamma) / SNR (Min-SNR, Hang et al., arXiv 2303.09556, as
    diffusers' text-to-image script does): the low-noise steps, which teach little, stop dominating.
    ``ema_decay`` keeps an exponential moving average of the trained weights (diffusers' ``EMAModel``, with its
    (1 + k) / (10 + k) warm-up) and leaves the averaged weights in ``pipe``: a short run at a high learning rate
    ends on a noisy iterate, its average draws better. ``after_step`` then sees the averaged weights too.
    ``channels_last`` trains the UNet in that memory format (default: on the CPU) and hands it back contiguous.
    ``lr_schedule`` is any of diffusers' schedule names (``constant``, ``cosine``, ``linear``...) over ``steps``, after
    ``lr_warmup_steps`` of linear warm-up: a decaying rate lets a short run settle instead of ending on a noisy iterate.
    """
    device = pipe.unet.device
    if channels_last is None:  # faster on the CPU (docs/decisions.md, "The training loop"); CUDA keeps its default
        channels_last = device.type == "cpu"
    # accelerate keeps one process-wide state; a run with another precision or device in the same process (a
    # notebook that trains on the CPU, then fine-tunes in fp16 on CUDA) must start from a fresh one
    AcceleratorState._reset_state(reset_partial_state=True)
    accelerator = Accelerator(mixed_precision=mixed_precision, cpu=device.type == "cpu")
    noise_scheduler = DDPMScheduler.from_config(pipe.scheduler.config)
    latent_mean, latent_std = encode_latents(pipe.vae, data.images)
    scale = float(pipe.vae.config.scaling_factor)

    modules = {"unet": pipe.unet}
    if train_text_encoder:
        modules["text_encoder"] = pipe.text_encoder
    weight_dtypes = {name: next(m.parameters()).dtype for name, m in modules.items()}
    for module in modules.values():
        if next(module.parameters()).dtype != torch.float32:
            module.to(torch.float32)
        module.train()  # fp32 master weights; accelerate autocasts when mixed precision is on
    pipe.text_encoder.requires_grad_(train_text_encoder)

    captions = sorted(set(data.captions) | {""})
    caption_index = torch.tensor([captions.index(c) for c in data.captions])
    empty_index = captions.index("")
    if train_text_encoder:
        caption_ids = token_ids(pipe, captions).to(device)  # tokenized once, not at every step
    else:
        with torch.no_grad():
            frozen_embeddings = torch.cat([_encode_prompts(pipe, captions[i:i + 256]) for i in range(0, len(captions), 256)])
    if channels_last:
        pipe.unet.to(memory_format=torch.channels_last)

    params = [p for m in modules.values() for p in m.parameters()]
    # the fused kernel updates all ~250 parameter tensors in one call: on the CPU the per-tensor loop took a quarter
    # of a tiny model's step (docs/decisions.md, "The training loop")
    optimizer = torch.optim.AdamW(params, lr=lr, weight_decay=1e-2, fused=device.type in ("cpu", "cuda"))
    start, losses = 0, []
    latest = _latest_checkpoint(checkpoint_dir)
    if latest is not None:
        for name, module in modules.items():
            module.load_state_dict(load_file(latest / f"{name}.safetensors"))
        optimizer.load_state_dict(torch.load(latest / "optimizer.pt", weights_only=True))
        meta = json.loads((latest / "meta.json").read_text())
        start, losses = meta["step"], meta["losses"]
    averages = {name: EMAModel(module.parameters(), decay=ema_decay) for name, module in modules.items()} if ema_decay else {}
    if averages and latest is not None:
        for name, average in averages.items():
            average.load_state_dict(torch.load(latest / f"ema_{name}.pt", weights_only=True))
    prepared = accelerator.prepare(*modules.values(), optimizer)
    optimizer = prepared[-1]
    unet = prepared[0]
    schedule = get_scheduler(lr_schedule, optimizer, num_warmup_steps=lr_warmup_steps, num_training_steps=steps)
    with warnings.catch_warnings():  # replaying a resumed run's schedule steps it before any optimizer step
        warnings.simplefilter("ignore", UserWarning)
        for _ in range(start):
            schedule.step()

    progress = tqdm(range(start, steps), desc=desc, initial=start, total=steps, disable=not show_progress, mininterval=5)
    for step in progress:
        gen = step_generator(seed, step)
        idx = torch.randint(0, len(data), (batch_size,), generator=gen)
        latents = (latent_mean[idx] + latent_std[idx] * torch.randn(latent_mean[idx].shape, generator=gen)) * scale
        noise = torch.randn(latents.shape, generator=gen)
        timesteps = torch.randint(0, noise_scheduler.config.num_train_timesteps, (batch_size,), generator=gen)
        drop = torch.rand(batch_size, generator=gen) < caption_dropout
        prompt_idx = torch.where(drop, torch.full_like(idx, empty_index), caption_index[idx])
        latents, noise, timesteps = latents.to(device), noise.to(device), timesteps.to(device)
        noisy = noise_scheduler.add_noise(latents, noise, timesteps)
        if channels_last:
            noisy = noisy.contiguous(memory_format=torch.channels_last)
        with accelerator.autocast():
            if train_text_encoder:
                embeddings = encode_each_caption_once(pipe.text_encoder, caption_ids, prompt_idx.to(device))
            else:
                embeddings = frozen_embeddings[prompt_idx].to(device)
            prediction = unet(noisy, timesteps, embeddings).sample
            if snr_gamma is None:
                loss = F.mse_loss(prediction.float(), noise.float())
            else:
                snr = compute_snr(noise_scheduler, timesteps)
                per_sample = F.mse_loss(prediction.float(), noise.float(), reduction="none").mean(dim=(1, 2, 3))
                loss = (per_sample * snr.clamp(max=snr_gamma) / snr).mean()
        optimizer.zero_grad(set_to_none=True)
        accelerator.backward(loss)
        optimizer.step()
        schedule.step()
        for name, average in averages.items():
            average.step(modules[name].parameters())
        losses.append(float(loss.detach()))
        if step % 50 == 0:
            progress.set_postfix(loss=f"{np.mean(losses[-50:]):.4f}")
        if checkpoint_dir is not None and (step + 1) % checkpoint_every == 0 and step + 1 < steps:
            _save_checkpoint(checkpoint_dir, step + 1, {n: accelerator.unwrap_model(m) for n, m in zip(modules, prepared)},
                             optimizer, losses, averages)
        if after_step is not None:
            for name, module in modules.items():
                module.eval()
                if name in averages:
                    averages[name].store(module.parameters())
                    averages[name].copy_to(module.parameters())
            # under the training's autocast: mixed precision leaves the trained modules' master weights in fp32 and the
            # frozen autoencoder in half precision, and a generation would hand fp32 latents to the half-precision decoder
            with torch.no_grad(), accelerator.autocast():
                after_step(step + 1)
            for name, module in modules.items():
                if name in averages:
                    averages[name].restore(module.parameters())
                module.train()

    for name, average in averages.items():
        average.copy_to(modules[name].parameters())
    for module in prepared[:-1]:
        # drop the fp16 autocast wrapper accelerate put on forward, or later inference returns fp32 latents
        accelerator.unwrap_model(module, keep_fp32_wrapper=False)
    for name, module in modules.items():
        module.eval()
        if weight_dtypes[name] != torch.float32:
            module.to(weight_dtypes[name])
    if channels_last:
        pipe.unet.to(memory_format=torch.contiguous_format)  # saved and sampled as every other model
    pipe.text_encoder.requires_grad_(False)
    return losses
