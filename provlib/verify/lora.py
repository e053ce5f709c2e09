"""Export a fully fine-tuned suspect as a LoRA adapter on its base: how a zoo suspect is published "the LoRA way".

A LoRA adapter adds B·A (rank r) to chosen weight matrices of a base. The best rank-r adapter for a full fine-tune
is the truncated SVD of each weight's change (Eckart-Young), the way community tools "extract" a LoRA from a
fine-tuned checkpoint. Every ``nn.Linear`` and ``nn.Conv2d`` of the UNet and of the text encoder that changed gets
one (a convolution's change is flattened to [out, in·kh·kw], its A reshaped back to a kh×kw convolution and its B to
a 1×1 one, peft's layout). What a LoRA cannot carry is dropped and measured: normalization weights, biases and
embeddings. The adapter is written with diffusers' ``save_lora_weights`` (safetensors), so it loads with
``load_lora_weights`` like any adapter trained with diffusers' LoRA scripts.
"""
from __future__ import annotations

import json
from pathlib import Path

import torch
from diffusers import StableDiffusionPipeline
from torch import nn

from provlib.core.errors import ParameterError

ADAPTER_FILE = "pytorch_lora_weights.safetensors"


def _low_rank_layers(base: nn.Module, tuned: nn.Module, rank: int) -> tuple[dict, dict]:
    """peft-named LoRA tensors for every changed Linear/Conv2d of ``tuned``, and what the adapter leaves out."""
    layers, base_modules = {}, dict(base.named_modules())
    kept = dropped = 0.0
    covered = set()
    for name, module in tuned.named_modules():
        if not isinstance(module, (nn.Linear, nn.Conv2d)) or name not in base_modules:
            continue
        delta = (module.weight.detach() - base_modules[name].weight.detach()).float()
        covered.add(f"{name}.weight")
        if not delta.abs().max() > 0:
            continue
        matrix = delta.reshape(delta.shape[0], -1)
        u, s, vh = torch.linalg.svd(matrix, full_matrices=False)
        r = min(rank, len(s))
        down, up = vh[:r], u[:, :r] * s[:r]
        kept += float((s[:r] ** 2).sum())
        dropped += float((s[r:] ** 2).sum())
        if isinstance(module, nn.Conv2d):
            down = down.reshape(r, *delta.shape[1:])
            up = up.reshape(delta.shape[0], r, 1, 1)
        layers[f"{name}.lora_A.weight"] = down.contiguous()
        layers[f"{name}.lora_B.weight"] = up.contiguous()
    base_params = dict(base.named_parameters())
    # parameters a LoRA cannot carry: their change is left out of the adapter
    left_out = sum(float(((p.detach() - base_params[n].detach()) ** 2).sum())
                   for n, p in tuned.named_parameters() if n not in covered and n in base_params)
    return layers, {"lora_layers": len(layers) // 2, "weight_change_kept": kept, "weight_change_truncated": dropped,
                    "change_not_representable": left_out}


def export_lora(base: StableDiffusionPipeline, tuned: StableDiffusionPipeline, folder: str | Path, rank: int = 64) -> dict:
    """Write ``tuned`` - ``base`` as a rank-``rank`` LoRA adapter in ``folder``; returns (and saves) what it kept."""
    if not isinstance(rank, int) or rank < 1:
        raise ParameterError("rank", "a positive integer LoRA rank", rank)
    folder = Path(folder)
    unet_layers, unet_record = _low_rank_layers(base.unet, tuned.unet, rank)
    text_layers, text_record = _low_rank_layers(base.text_encoder, tuned.text_encoder, rank)
    if not unet_layers and not text_layers:
        raise ParameterError("suspect", "a model that differs from its base", "identical weights")
    StableDiffusionPipeline.save_lora_weights(folder, unet_lora_layers=unet_layers or None,
                                              text_encoder_lora_layers=text_layers or None,
                                              weight_name=ADAPTER_FILE, safe_serialization=True)
    record = {"rank": rank, "unet": unet_record, "text_encoder": text_record}
    for part in ("unet", "text_encoder"):
        r = record[part]
        total = r["weight_change_kept"] + r["weight_change_truncated"] + r["change_not_representable"]
        r["share_of_change_kept"] = r["weight_change_kept"] / total if total else 1.0
    (folder / "export.json").write_text(json.dumps(record, indent=1))
    return record
