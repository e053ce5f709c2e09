"""The dataset watermark for a suspect text-to-image model found in the wild: which licensee's copy did it learn from?

``prepare_watermark_keys`` writes the dataset owner's key file: the decoder of the dataset mark (its keyed patterns
at the images' size, the amplitude and the calibration offset on the owner's unmarked dataset, so no zoo is needed to
decode), every licensee's secret message, and the prompts the owner asks for each licensee (the captions of the
images it marked in that licensee's copy, with its trigger for the trigger strategy). ``verify_watermark`` asks the
suspect each licensee's prompts, runs notebook 06's exact test per licensee (``provlib.watermark.detect``) and names
the licensee whose mark is found, "none", or (never silently one) several. The test's reference is notebook 06's:
for the trigger strategy the suspect's answers to the same captions without the trigger; for the image-only strategy
the public base the suspect was fine-tuned from (``base_model``), asked the same captions with the same seeds.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from provlib.core.errors import ParameterError
from provlib.core.store import derive_seed
from provlib.verify.asking import Sampler
from provlib.verify.keyfile import KeyFile, load_key_file, save_key_file
from provlib.watermark.detect import detect, named_licensee, trace_leak
from provlib.watermark.schemes import WatermarkScheme


class StoredPatternScheme(WatermarkScheme):
    """A pattern-scheme decoder from its stored patterns [n_bits, H*W*3], amplitude and calibration offset."""

    name = "pattern"

    def __init__(self, patterns: np.ndarray, amplitude: float, offset: np.ndarray, resolution: int):
        super().__init__(n_bits=len(patterns))
        self.stored, self.stored_amplitude, self.resolution = np.asarray(patterns, float), float(amplitude), int(resolution)
        self.offset = np.asarray(offset, dtype=float)

    def _correlate(self, images: np.ndarray) -> np.ndarray:
        if images.shape[1:3] != (self.resolution, self.resolution):  # a suspect answering at another size
            images = np.stack([np.asarray(Image.fromarray(im).resize((self.resolution,) * 2, Image.BICUBIC)) for im in images])
        return images.reshape(len(images), -1).astype(np.float64) @ self.stored.T / self.stored_amplitude


def save_watermark_keys(folder: str | Path, scheme: WatermarkScheme, resolution: int, messages: np.ndarray,
                        prompt_sets: list[list[str]], settings: dict, overwrite: bool = False,
                        reference_sets: list[list[str]] | None = None) -> KeyFile:
    """A watermark key file from the owner's calibrated pattern scheme, the licensees' messages and their prompts
    (and, for the paired test, each licensee's reference prompts: the same captions without its trigger)."""
    messages = np.asarray(messages, dtype=np.uint8)
    if len(messages) != len(prompt_sets) or not all(prompt_sets):
        raise ParameterError("prompt_sets", f"a non-empty prompt list for each of the {len(messages)} licensees",
                             [len(p) for p in prompt_sets])
    if reference_sets is not None and (len(reference_sets) != len(prompt_sets) or not all(reference_sets)):
        raise ParameterError("reference_sets", f"a non-empty reference prompt list for each of the {len(messages)} licensees",
                             [len(p) for p in reference_sets])
    arrays = {"patterns": scheme.patterns(resolution, resolution), "offset": np.asarray(scheme.offset, dtype=float),
              "amplitude": np.array([scheme.amplitude(resolution, resolution)]), "messages": messages}
    return save_key_file(folder, "watermark", {**settings, "resolution": int(resolution), "licensees": len(messages),
                                               "prompt_sets": [list(p) for p in prompt_sets],
                                               "reference_sets": [list(p) for p in reference_sets] if reference_sets else None},
                          arrays, overwrite=overwrite)


def prepare_watermark_keys(zoo, folder: str | Path, strategy: str | None = None, fraction: float | None = None,
                           overwrite: bool = False) -> KeyFile:
    """The dataset owner's key file for its licensees' copies marked at share ``fraction`` with ``strategy``."""
    p, wm = zoo.p, zoo.p.watermark
    strategy = strategy or ("trigger" if "trigger" in wm.strategies else wm.strategies[0])
    fraction = wm.focus_fraction if fraction is None else float(fraction)
    licensees = range(wm.licensees)
    names = [zoo.licensee_prompt_set(strategy, i, fraction) for i in licensees]
    prompt_sets = [zoo.prompts(name) for name in names]
    references = [zoo.reference_prompt_set(name) for name in names]
    references = references if all(references) else None  # the same-model pairing: trigger prompts only
    settings = {"preset": p.name, "seed": p.seed, "strategy": strategy, "fraction": fraction, "triggers": zoo.triggers(),
                "alpha": wm.alpha, "statistic": wm.statistic, "images_per_prompt": wm.query_images,
                "query_seed": derive_seed(p.seed, "verify-wm-query"),
                "sampler": Sampler(p.sampling.inference_steps, p.sampling.guidance_scale, p.world.resolution,
                                   p.sampling.batch_size).as_dict(),
                "prompt_set_names": names, "reference_set_names": references,
                # the image-only test is paired on the suspect's public base (``provlib.watermark.queries``)
                "reference": "suspect" if references else "base"}
    return save_watermark_keys(folder, zoo.owner_scheme("pattern"), p.world.resolution,
                               np.stack([zoo.licensee_message(i) for i in licensees]), prompt_sets, settings, overwrite,
                               reference_sets=[zoo.prompts(name) for name in references] if references else None)


def export_zoo_licensee(zoo, model_id: str, out_dir: str | Path) -> dict:
    """Write a model fine-tuned on a (licensed or clean) copy in notebook 06 as a pipeline folder, and the public base
    it was fine-tuned from beside it (``<out_dir>-base``: an image-only key file's test asks it, ``verify --base``)."""
    from provlib.core.models import save_pipeline

    specs = {s.model_id: s for s in zoo.licensee_specs()}
    if model_id not in specs:
        raise ParameterError("model_id", f"a fine-tune of notebook 06's plan, e.g. {sorted(specs)[:3]}", model_id)
    spec, out_dir = specs[model_id], Path(out_dir)
    save_pipeline(zoo.load_fine_tuned(spec.base, zoo.licensee_location(spec)), out_dir)
    base_dir = out_dir.with_name(out_dir.name + "-base")
    save_pipeline(zoo.load(zoo.base_location(spec.base)), base_dir)
    return {"pipeline": str(out_dir), "base": str(base_dir), "spec": spec}


def verify_watermark(key_file: KeyFile | str | Path, suspect, *, base_model=None, seeds: dict | None = None,
                     reference_seeds: dict | None = None, show_progress: bool = True) -> tuple[dict, np.ndarray]:
    """Ask ``suspect`` every licensee's prompts (and its reference prompts, or ``base_model`` the same prompts with
    the same seeds for an image-only key file) and test each licensee's message on its answers.

    ``seeds`` / ``reference_seeds`` (licensee -> seed) replace the key file's query seeds (notebook 08 passes notebook
    06's to compare). Returns the record and the answers [licensees, P, k, H, W, 3] (the trigger prompts').
    """
    if not isinstance(key_file, KeyFile):
        key_file = load_key_file(key_file, question="watermark")
    m, arrays = key_file.manifest, key_file.arrays
    scheme = StoredPatternScheme(arrays["patterns"], float(arrays["amplitude"][0]), arrays["offset"], m["resolution"])
    sampler, k = Sampler(**m["sampler"]), m["images_per_prompt"]
    on_base = m.get("reference") == "base"
    if on_base and base_model is None:
        raise ParameterError("base", "the public base pipeline folder the suspect was fine-tuned from (an image-only "
                             "watermark key file's test is paired on that base's answers)", base_model)
    detections, answers = {}, []
    references = m.get("reference_sets") or [None] * len(m["prompt_sets"])
    for licensee, (prompts, reference_prompts) in enumerate(zip(m["prompt_sets"], references)):
        seed = (seeds or {}).get(licensee, derive_seed(m["query_seed"], licensee))
        images = suspect.answer(prompts, range(len(prompts)), k, seed, sampler, show_progress=show_progress)
        answers.append(images)
        reference = None
        if reference_prompts:
            reference_seed = (reference_seeds or {}).get(licensee, derive_seed(m["query_seed"], licensee, "reference"))
            reference = suspect.answer(reference_prompts, range(len(reference_prompts)), k, reference_seed, sampler,
                                       show_progress=show_progress)
            reference = reference.reshape(-1, *reference.shape[2:])
        elif on_base:
            reference = base_model.answer(prompts, range(len(prompts)), k, seed, sampler, show_progress=show_progress)
            reference = reference.reshape(-1, *reference.shape[2:])
        detections[licensee] = detect(scheme, images.reshape(-1, *images.shape[2:]), arrays["messages"][licensee],
                                      m["alpha"], m["statistic"], reference=reference)
    named = named_licensee(trace_leak(detections))
    record = {"question": "watermark", "key_file_sha256": key_file.sha256, "key_file_created": key_file.created,
              "suspect": {"kind": suspect.kind, "description": suspect.description, **getattr(suspect, "details", {})},
              "verdict": ("no licensee's mark found" if named == "none" else f"trained on the copy of licensee {named}"
                          if not named.startswith("several") else f"marks of {named[len('several: '):]} found"),
              "named_licensee": named, "strategy": m["strategy"], "fraction": m["fraction"], "alpha": m["alpha"],
              "calibration": "paired" if m.get("reference_sets") else "base-paired" if on_base else "dataset",
              "licensees": [{"licensee": i, "trigger": m["triggers"][i], "p_value": d.p_value, "detected": bool(d.detected),
                             "score": d.score, "matches": d.matches, "image_bit_accuracy": d.image_bit_accuracy}
                            for i, d in detections.items()],
              "queries_spent": int(suspect.queries_spent)}
    return record, np.stack(answers)
