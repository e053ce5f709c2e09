"""Text-to-image pipelines: tiny ones built offline at CPU scale, real Stable Diffusion at paper scale.

Both are ``diffusers.StableDiffusionPipeline`` objects saved with safetensors, so every later step
(fine-tuning, generation, attribution) runs the same code on either.
"""
from __future__ import annotations

import warnings
from pathlib import Path

import torch
from diffusers import (
    AutoencoderKL,
    DDIMScheduler,
    StableDiffusionPipeline,
    UNet2DConditionModel,
)
from diffusers.utils import logging as diffusers_logging
from tokenizers import Tokenizer, pre_tokenizers, processors
from tokenizers import models as tok_models
from transformers import CLIPTextConfig, CLIPTextModel, PreTrainedTokenizerFast
from transformers.utils import logging as transformers_logging

from provlib.core.errors import ParameterError
from provlib.core.paths import HUB_ID

SPECIAL_TOKENS = ["<pad>", "<bos>", "<eos>", "<unk>"]
MAX_CAPTION_TOKENS = 24
LATENT_CHANNELS = 8


def vae_widths(first: int) -> tuple[int, ...]:
    """The autoencoder's block widths for a first block of ``first`` channels (the default: 16)."""
    return (first, 2 * first, 2 * first, 2 * first)


# The two "pre-trained" families differ in size and text encoder, as SD-v1 (CLIP ViT-L) and
# SD-v2 (OpenCLIP ViT-H) do; seeds differ too.
TINY_ARCHITECTURES = {
    "v1": dict(unet_channels=(32, 64), text_width=64, text_layers=2, attention_head_dim=8),
    "v2": dict(unet_channels=(48, 96), text_width=96, text_layers=3, attention_head_dim=16),
}
# diffusers renames `torch_dtype` to `dtype`; we keep the name older releases understand
warnings.filterwarnings("ignore", message=".*torch_dtype.*deprecated", category=FutureWarning)


def build_word_tokenizer(vocabulary: list[str], max_length: int = MAX_CAPTION_TOKENS) -> PreTrainedTokenizerFast:
    """A word-level tokenizer over the caption vocabulary (saved with the pipeline, no hub needed)."""
    vocab = {token: i for i, token in enumerate(SPECIAL_TOKENS + sorted(set(vocabulary)))}
    backend = Tokenizer(tok_models.WordLevel(vocab, unk_token="<unk>"))
    backend.pre_tokenizer = pre_tokenizers.Whitespace()
    backend.post_processor = processors.TemplateProcessing(
        single="<bos> $A <eos>", special_tokens=[("<bos>", vocab["<bos>"]), ("<eos>", vocab["<eos>"])]
    )
    return PreTrainedTokenizerFast(tokenizer_object=backend, bos_token="<bos>", eos_token="<eos>",
                                   pad_token="<pad>", unk_token="<unk>", model_max_length=max_length)


def build_tiny_vae(resolution: int, seed: int = 0, latent_channels: int = LATENT_CHANNELS, downsampling: int = 4,
                   widths: tuple[int, ...] = vae_widths(16)) -> AutoencoderKL:
    """A KL autoencoder with ``latent_channels`` (default 8) that downsamples ``downsampling`` (4 or 8) times.

    SD's VAE downsamples 8x into 4 channels. At 32 px, 4x keeps an 8x8 latent (fine detail legible); 8x, as SD
    does, leaves a 4x4 latent: coarse content only, but a quarter of the UNet's work and of the dimensions a model
    must fit to memorize an image. 8 channels keep faces and textures legible (measured on the workbook's scenes).
    Its reconstruction error bounds how closely any generation can copy an image (docs/decisions.md, "An 8×
    autoencoder trained 2000 steps").
    """
    if downsampling not in (4, 8):
        raise ParameterError("vae_downsampling", "4 or 8", downsampling)
    blocks = 3 if downsampling == 4 else 4
    torch.manual_seed(seed)
    return AutoencoderKL(
        in_channels=3, out_channels=3, latent_channels=latent_channels, sample_size=resolution, layers_per_block=1,
        down_block_types=("DownEncoderBlock2D",) * blocks, up_block_types=("UpDecoderBlock2D",) * blocks,
        block_out_channels=tuple(widths)[:blocks], norm_num_groups=8,
    )


def default_scheduler() -> DDIMScheduler:
    """Stable Diffusion's noise schedule with a DDIM sampler."""
    return DDIMScheduler(num_train_timesteps=1000, beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear",
                         clip_sample=False, set_alpha_to_one=False, steps_offset=1, prediction_type="epsilon")


def build_tiny_pipeline(architecture: str, vocabulary: list[str], vae: AutoencoderKL, seed: int,
                        unet_width: int | None = None) -> StableDiffusionPipeline:
    """A tiny text-to-image pipeline of one ``TINY_ARCHITECTURES`` family; ``unet_width`` (the first block's
    channels, the second has twice as many) replaces the family's UNet width."""
    if architecture not in TINY_ARCHITECTURES:
        raise ParameterError("architecture", f"one of {sorted(TINY_ARCHITECTURES)}", architecture)
    arch = dict(TINY_ARCHITECTURES[architecture])
    if unet_width is not None:
        arch["unet_channels"] = (unet_width, 2 * unet_width)
    torch.manual_seed(seed)
    tokenizer = build_word_tokenizer(vocabulary)
    text_encoder = CLIPTextModel(CLIPTextConfig(
        vocab_size=len(tokenizer), hidden_size=arch["text_width"], intermediate_size=2 * arch["text_width"],
        num_hidden_layers=arch["text_layers"], num_attention_heads=2, max_position_embeddings=MAX_CAPTION_TOKENS,
        projection_dim=arch["text_width"], pad_token_id=tokenizer.pad_token_id, bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
    ))
    latent_size = vae.config.sample_size // 2 ** (len(vae.config.block_out_channels) - 1)
    unet = UNet2DConditionModel(
        sample_size=latent_size, in_channels=vae.config.latent_channels, out_channels=vae.config.latent_channels, layers_per_block=1,
        block_out_channels=arch["unet_channels"], down_block_types=("CrossAttnDownBlock2D", "DownBlock2D"),
        up_block_types=("UpBlock2D", "CrossAttnUpBlock2D"), cross_attention_dim=arch["text_width"],
        attention_head_dim=arch["attention_head_dim"], norm_num_groups=8,
    )
    return StableDiffusionPipeline(vae=vae, text_encoder=text_encoder, tokenizer=tokenizer, unet=unet,
                                   scheduler=default_scheduler(), safety_checker=None, feature_extractor=None,
                                   requires_safety_checker=False)


def save_pipeline(pipe: StableDiffusionPipeline, directory: str | Path) -> None:
    pipe.save_pretrained(directory, safe_serialization=True)


WEIGHTED_COMPONENTS = ("unet", "vae", "text_encoder")


def check_safetensors_folder(folder: Path, parameter: str) -> None:
    """A local pipeline folder must carry safetensors weights for each model component (pickles are never loaded)."""
    for component in WEIGHTED_COMPONENTS:
        sub = folder / component
        if sub.is_dir() and not any(sub.glob("*.safetensors")):
            raise ParameterError(parameter, f"safetensors weights in {sub} (only .safetensors files are loaded; convert "
                                 "a .bin/.ckpt checkpoint with diffusers' conversion scripts)", str(folder))


def load_pipeline(location: str | Path, device: str = "cpu", dtype: str = "float32", allow_download: bool = False,
                  parameter: str = "checkpoint") -> StableDiffusionPipeline:
    """Load a pipeline from a local folder (safetensors only) or, if allowed, a hub id.

    Tiny workbook pipelines and real Stable Diffusion checkpoints go through this same call.
    """
    location = str(location)
    local = Path(location).expanduser()
    if local.is_dir():
        if not (local / "model_index.json").is_file():
            raise ParameterError(parameter, "a diffusers pipeline folder containing model_index.json", location)
        source, local_only = str(local), True
    elif allow_download and HUB_ID.match(location):
        source, local_only = location, False
    else:
        hint = " (or a hub id with allow_download=True)" if HUB_ID.match(location) else ""
        raise ParameterError(parameter, f"an existing local pipeline folder{hint}", location)
    if local.is_dir():
        check_safetensors_folder(local, parameter)
    if device == "cuda" and not torch.cuda.is_available():
        raise ParameterError("device", "'cpu' on a machine without CUDA", device)
    verbosity = diffusers_logging.get_verbosity()
    # tiny pipelines carry a word-level tokenizer; silence the type notice and per-component load bars
    diffusers_logging.set_verbosity_error()
    diffusers_logging.disable_progress_bar()
    transformers_logging.disable_progress_bar()
    try:
        pipe = StableDiffusionPipeline.from_pretrained(
            source, torch_dtype=getattr(torch, dtype), use_safetensors=True, local_files_only=local_only,
            safety_checker=None, requires_safety_checker=False,
        )
    except (OSError, ValueError) as error:  # diffusers' own message goes along; the parameter is named first
        raise ParameterError(parameter, f"a loadable Stable Diffusion pipeline (safetensors weights): {error}",
                             location) from error
    finally:
        diffusers_logging.set_verbosity(verbosity)
    pipe.set_progress_bar_config(disable=True)
    return pipe.to(device)


def latent_scale(pipe: StableDiffusionPipeline) -> float:
    return float(pipe.vae.config.scaling_factor)
