"""A CPU rehearsal of the paper-scale path: tiny local stand-ins for every input the ``sd`` preset reads.

The ``sd-rehearsal`` preset runs the exact ``sd`` code path (folder datasets read from ``captions.csv`` and
``metadata.jsonl``, base checkpoints and the four TrainProVe generators loaded from pipeline folders through
``from_pretrained`` with safetensors, real class images from class folders), on the CPU at 32 px with sizes like
``smoke``. ``rehearsal_inputs(root)`` writes those inputs once, from the ``smoke`` preset's tiny models and
procedural data, and returns the overrides that point the preset at them; ``python -m provlib run --preset
sd-rehearsal`` calls it by itself.
"""
from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path

import numpy as np
from PIL import Image

from provlib.core.data import procedural_domain
from provlib.core.store import atomic_write_text
from provlib.core.zoo import Zoo
from provlib.presets import load_preset
from provlib.trainprove.generators import (
    REAL,
    attribute_weights,
    object_attributes,
    render_objects,
)
from provlib.trainprove.zoo import TrainProVeZoo

READY = "rehearsal-inputs.json"
IMAGES_PER_DOMAIN = 64      # enough for the rehearsal's private + real splits
REAL_IMAGES_PER_CLASS = 12  # both halves (suspects' pool, defender's test) need tp_pool/test_per_class images


def _write_folder(folder: Path, domain: str, seed: int, layout: str) -> None:
    """Procedural images of a domain as PNG files with a ``captions.csv`` or ``metadata.jsonl`` (the two layouts)."""
    data = procedural_domain(domain, "real", IMAGES_PER_DOMAIN, 32, seed)
    folder.mkdir(parents=True, exist_ok=True)
    names = [f"{i:04d}.png" for i in range(len(data))]
    for name, image in zip(names, data.images):
        Image.fromarray(image).save(folder / name)
    if layout == "csv":
        with (folder / "captions.csv").open("w", newline="", encoding="utf-8") as handle:
            writer = csv.writer(handle)
            writer.writerow(["file_name", "caption"])
            writer.writerows(zip(names, data.captions))
    else:
        lines = [json.dumps({"file_name": n, "text": c}) for n, c in zip(names, data.captions)]
        (folder / "metadata.jsonl").write_text("\n".join(lines) + "\n", encoding="utf-8")


def _copy_pipeline(source: str, target: Path) -> str:
    if not (target / "model_index.json").is_file():
        partial = target.with_name(target.name + ".partial")  # renamed into place whole, so a killed copy is redone
        shutil.rmtree(partial, ignore_errors=True)
        shutil.copytree(source, partial, ignore=shutil.ignore_patterns("_config.json", "losses.json"))
        shutil.rmtree(target, ignore_errors=True)
        partial.rename(target)
    return str(target)


def rehearsal_inputs(root: str | Path, cache_root: str | Path | None = None) -> dict:
    """Build (once) and return the overrides of the ``sd-rehearsal`` preset: data folders, checkpoints, class images."""
    root = Path(root)
    ready = root / READY
    if ready.is_file():
        return json.loads(ready.read_text())
    smoke = load_preset("smoke")
    zoo = Zoo(smoke, cache_root, show_progress=False)
    tp_zoo = TrainProVeZoo(smoke, cache_root, show_progress=False)
    overrides = {
        "dataset_dirs": {},
        "base_checkpoints": {b: _copy_pipeline(zoo.base_location(b), root / "checkpoints" / b)
                             for b in smoke.models.base_names},
        "tp_checkpoints": {g: _copy_pipeline(tp_zoo.generator_location(g), root / "generators" / g)
                           for g in tp_zoo.generators},
        "tp_real_dir": str(root / "real-classes"),
    }
    for k, (domain, layout) in enumerate((("faces", "csv"), ("scenes", "jsonl"))):
        _write_folder(root / "data" / domain, domain, seed=100 + k, layout=layout)
        overrides["dataset_dirs"][domain] = str(root / "data" / domain)
    attributes = object_attributes(smoke.trainprove.sizes)
    data, labels = render_objects(list(smoke.trainprove.classes), REAL_IMAGES_PER_CLASS,
                                  attribute_weights(REAL, 1.0, 0, attributes), seed=7, resolution=32,
                                  template=smoke.trainprove.prompt_template, attributes=attributes)
    for i, (image, label) in enumerate(zip(data.images, np.asarray(labels))):
        folder = root / "real-classes" / smoke.trainprove.classes[label]
        folder.mkdir(parents=True, exist_ok=True)
        Image.fromarray(image).save(folder / f"{i:04d}.png")
    atomic_write_text(ready, json.dumps(overrides, indent=1))
    return overrides
