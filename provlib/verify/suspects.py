"""Suspects found in the wild, of three kinds, behind one call: ``answer(prompts, ...) -> images``.

- ``pipeline``: a diffusers pipeline folder (safetensors weights only, as every model the workbook loads);
- ``lora``: a public base pipeline plus a LoRA adapter in safetensors, loaded the way diffusers loads LoRA weights
  (``load_lora_weights``, through peft), which is how most Stable Diffusion fine-tunes are published;
- ``endpoint`` / ``callable``: a black box that maps prompts to images (``provlib.verify.endpoint``).

Every kind is asked the same way: prompt i's image j is drawn with seed ``image_seed(seed, n_i, j)`` where n_i is
the prompt's number in the owner's candidate list, so a zoo suspect asked its keys gets exactly the images notebook
04 scored (an endpoint receives these seeds and may ignore them). Answers are uint8 [P, k, H, W, 3]; answers of
another size than the key images are resized to it (the feature spaces compare at 32 px anyway).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np

from provlib.core.errors import ParameterError
from provlib.core.generate import generate
from provlib.core.models import load_pipeline
from provlib.verify.asking import Sampler, fit_answers, image_seeds
from provlib.verify.endpoint import EndpointSuspect

SUSPECT_KINDS = {
    "pipeline": "a diffusers pipeline folder with safetensors weights (model_index.json, unet/, vae/, text_encoder/)",
    "lora": "a LoRA adapter folder or .safetensors file, applied to the pipeline given as --base",
    "endpoint": "an HTTP endpoint: POST JSON {prompt, seeds, ...} -> PNG images (JSON base64 list or an image body)",
}


@dataclass
class PipelineSuspect:
    """A suspect the owner holds as a diffusers pipeline (a folder, or a base with a LoRA adapter)."""
    pipe: object
    kind: str
    description: str
    queries_spent: int = 0
    details: dict = field(default_factory=dict)

    def answer(self, prompts: list[str], prompt_numbers, images_per_prompt: int, seed: int, sampler: Sampler,
               show_progress: bool = True) -> np.ndarray:
        seeds = [s for prompt_seeds in image_seeds(seed, prompt_numbers, images_per_prompt) for s in prompt_seeds]
        out = generate(self.pipe, list(prompts), images_per_prompt=images_per_prompt, image_seeds=seeds,
                       batch_size=sampler.batch_size,
                       num_inference_steps=sampler.num_inference_steps, guidance_scale=sampler.guidance_scale,
                       resolution=sampler.resolution, desc=f"query {self.kind} suspect", show_progress=show_progress)
        self.queries_spent += len(out.images)
        return out.images.reshape(len(prompts), images_per_prompt, *out.images.shape[1:])


@dataclass
class CallableSuspect:
    """A black box given as a Python function ``fn(prompt, seeds) -> list of images`` (one per seed)."""
    fn: Callable
    description: str = "a Python callable"
    kind: str = "callable"
    query_budget: int | None = None
    queries_spent: int = 0
    details: dict = field(default_factory=dict)

    def answer(self, prompts: list[str], prompt_numbers, images_per_prompt: int, seed: int, sampler: Sampler,
               show_progress: bool = True) -> np.ndarray:
        seeds = image_seeds(seed, prompt_numbers, images_per_prompt)
        answers = []
        for prompt, prompt_seeds in zip(prompts, seeds):
            if self.query_budget is not None and self.queries_spent + len(prompt_seeds) > self.query_budget:
                raise ParameterError("query_budget", f"a budget covering {len(prompts) * images_per_prompt} queries",
                                     self.query_budget)
            answers.append(fit_answers(self.fn(prompt, prompt_seeds), images_per_prompt, sampler.resolution))
            self.queries_spent += len(prompt_seeds)
        return np.stack(answers)


def check_lora_adapter(adapter: str | Path) -> tuple[Path, str | None]:
    """(folder, weight file name) of a LoRA adapter in safetensors; anything else is refused before loading."""
    path = Path(adapter).expanduser()
    if path.is_file():
        if path.suffix != ".safetensors":
            raise ParameterError("lora", "a LoRA adapter in safetensors (.safetensors; pickled .bin/.pt are never loaded)",
                                 str(path))
        return path.parent, path.name
    if path.is_dir():
        files = sorted(path.glob("*.safetensors"))
        if not files:
            raise ParameterError("lora", "a folder holding a LoRA adapter .safetensors file", str(path))
        preferred = [f for f in files if f.name == "pytorch_lora_weights.safetensors"]
        return path, (preferred or files)[0].name
    raise ParameterError("lora", "an existing LoRA adapter file or folder", str(path))


def lora_modules(module) -> int:
    """How many layers of a model carry a loaded LoRA adapter (peft's ``lora_A``)."""
    return sum(1 for name, _ in module.named_modules() if name.endswith("lora_A"))


def load_lora_suspect(base: str | Path, adapter: str | Path, device: str = "cpu", dtype: str = "float32") -> PipelineSuspect:
    """The base pipeline with a LoRA adapter applied through diffusers' ``load_lora_weights`` (peft)."""
    folder, weight_name = check_lora_adapter(adapter)
    pipe = load_pipeline(base, device=device, dtype=dtype, parameter="base")
    try:
        pipe.load_lora_weights(str(folder), weight_name=weight_name)
    except ImportError as error:
        raise ParameterError("lora", f"peft installed to load LoRA adapters ({error})", str(adapter)) from None
    except (RuntimeError, ValueError, KeyError) as error:  # shape mismatches: an adapter made for another base
        raise ParameterError("lora", f"a LoRA adapter made for this base ({str(error).splitlines()[0][:300]})",
                             str(adapter)) from None
    loaded = {"unet": lora_modules(pipe.unet), "text_encoder": lora_modules(pipe.text_encoder)}
    if not any(loaded.values()):
        # diffusers only warns when no adapter key names a layer of this base: refuse instead of verifying the base
        raise ParameterError("lora", "a LoRA adapter whose layers name this base's layers (none matched)", str(adapter))
    return PipelineSuspect(pipe, "lora", f"{Path(base).name} + LoRA {Path(adapter).name}",
                           details={"base": str(base), "adapter": str(adapter), "lora_layers": loaded})


def open_public_base(location: str, device: str = "cpu", dtype: str = "float32") -> PipelineSuspect:
    """The public base a suspect was fine-tuned from, asked as a reference (an image-only watermark test)."""
    pipe = load_pipeline(location, device=device, dtype=dtype, parameter="base")
    return PipelineSuspect(pipe, "base", f"public base {location}", details={"folder": str(location)})


def open_suspect(kind: str, location: str, *, base: str | None = None, device: str = "cpu", dtype: str = "float32",
                 **endpoint_options):
    """A suspect of ``kind`` (one of ``SUSPECT_KINDS``) at ``location``."""
    if kind == "pipeline":
        pipe = load_pipeline(location, device=device, dtype=dtype, parameter="suspect")
        return PipelineSuspect(pipe, "pipeline", f"pipeline folder {location}", details={"folder": str(location)})
    if kind == "lora":
        if not base:
            raise ParameterError("base", "the base pipeline folder the LoRA adapter was trained on", base)
        return load_lora_suspect(base, location, device=device, dtype=dtype)
    if kind == "endpoint":
        return EndpointSuspect(location, **endpoint_options)
    raise ParameterError("suspect_kind", f"one of {sorted(SUSPECT_KINDS)}", kind)
