"""Batched, seeded generation: every image has its own recorded seed, so any single image can be re-made."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from diffusers import StableDiffusionPipeline

from provlib.core.data import CaptionedImageSet
from provlib.core.progress import tqdm


@dataclass
class Generations:
    images: np.ndarray        # uint8 [n, H, W, 3]
    prompts: list[str]        # the prompt of each image
    seeds: list[int]          # the generator seed of each image
    prompt_index: np.ndarray  # which input prompt each image answers

    def as_dataset(self, id_prefix: str) -> CaptionedImageSet:
        return CaptionedImageSet(self.images, list(self.prompts), [f"{id_prefix}/{i}" for i in range(len(self.prompts))])


def image_seed(seed: int, prompt_number: int, repeat: int) -> int:
    return int(np.random.SeedSequence([seed, prompt_number, repeat]).generate_state(1)[0] % (2**31))


@torch.no_grad()
def generate(pipe: StableDiffusionPipeline, prompts: list[str], *, images_per_prompt: int = 1, seed: int = 0,
             batch_size: int = 32, num_inference_steps: int = 20, guidance_scale: float = 3.0, resolution: int | None = None,
             desc: str = "generate", show_progress: bool = True, image_seeds=None) -> Generations:
    """Generate ``images_per_prompt`` images for every prompt; image j of prompt i uses seed ``image_seed(seed, i, j)``,
    or ``image_seeds[i * images_per_prompt + j]`` when those are given (a verifier re-asking a subset of a prompt
    list with the seeds the whole list had)."""
    if images_per_prompt < 1:
        raise ValueError("images_per_prompt must be >= 1")
    jobs = [(i, j) for i in range(len(prompts)) for j in range(images_per_prompt)]
    if image_seeds is not None and len(image_seeds) != len(jobs):
        raise ValueError(f"image_seeds must give one seed per image ({len(jobs)}), got {len(image_seeds)}")
    seeds = [image_seed(seed, i, j) for i, j in jobs] if image_seeds is None else [int(s) for s in image_seeds]
    resolution = resolution or pipe.unet.config.sample_size * pipe.vae_scale_factor
    pipe.set_progress_bar_config(disable=True)
    device = pipe.unet.device
    out = []
    for start in tqdm(range(0, len(jobs), batch_size), desc=desc, disable=not show_progress, mininterval=5):
        chunk = range(start, min(start + batch_size, len(jobs)))
        generators = [torch.Generator(device="cpu").manual_seed(seeds[k]) for k in chunk]
        # latents drawn on the CPU from each image's own generator: identical images on CPU and CUDA
        shape = (1, pipe.unet.config.in_channels, resolution // pipe.vae_scale_factor, resolution // pipe.vae_scale_factor)
        latents = torch.cat([torch.randn(shape, generator=g) for g in generators]).to(device, pipe.unet.dtype)
        result = pipe([prompts[jobs[k][0]] for k in chunk], height=resolution, width=resolution, latents=latents,
                      num_inference_steps=num_inference_steps, guidance_scale=guidance_scale, output_type="np",
                      generator=generators)
        out.append((np.clip(result.images, 0, 1) * 255).round().astype(np.uint8))
    return Generations(np.concatenate(out), [prompts[i] for i, _ in jobs], seeds, np.array([i for i, _ in jobs]))


@torch.no_grad()
def regenerate(pipe: StableDiffusionPipeline, images: np.ndarray, prompts: list[str], *, strength: float, seed: int = 0,
               batch_size: int = 32, num_inference_steps: int = 20, guidance_scale: float = 3.0,
               desc: str = "regenerate", show_progress: bool = True) -> np.ndarray:
    """Noise each image to ``strength`` of the diffusion and denoise it back with its prompt (img2img through
    diffusers' ``StableDiffusionImg2ImgPipeline`` on the same components): the regeneration removal attack
    against image watermarks. Returns uint8 images shaped like ``images``."""
    from diffusers import StableDiffusionImg2ImgPipeline

    if not 0.0 < strength <= 1.0:
        raise ValueError("strength must be in (0, 1]")
    # the workbook's pipelines carry no safety checker on purpose (tiny or the owner's own models): say so, or diffusers
    # warns in every notebook cell that regenerates
    img2img = StableDiffusionImg2ImgPipeline(**pipe.components, requires_safety_checker=False)
    img2img.set_progress_bar_config(disable=True)
    out = []
    for start in tqdm(range(0, len(images), batch_size), desc=desc, disable=not show_progress, mininterval=5):
        chunk = np.asarray(images[start:start + batch_size], dtype=np.float32) / 255.0
        generators = [torch.Generator(device="cpu").manual_seed(image_seed(seed, start + k, 0)) for k in range(len(chunk))]
        result = img2img(prompts[start:start + len(chunk)], image=torch.from_numpy(chunk).permute(0, 3, 1, 2),
                         strength=strength, num_inference_steps=num_inference_steps, guidance_scale=guidance_scale,
                         output_type="np", generator=generators)
        out.append((np.clip(result.images, 0, 1) * 255).round().astype(np.uint8))
    return np.concatenate(out)
