"""TrainProVe for a suspect classifier found in the wild: was it trained on my generator's images?

``prepare_trainprove_keys`` writes the defender's key file before any suspect is seen: its fresh labelled validation
images from its own generator, their split into the Grubbs batches, the shadow classifier's per-batch scores for
every rule (the reference samples), α and the quantile. ``verify_trainprove`` asks the suspect to classify those
images and runs the published one-sided Grubbs test (``provlib.trainprove.grubbs``) for each rule the suspect admits:
a label-only suspect admits the accuracy rule alone; one that returns logits admits Ent and Sim too.

Suspect classifiers: a folder with ``classifier.json`` (architecture, ``n_classes``, ``width``, optionally
``classes``) and ``classifier.safetensors``, the workbook's format; a Python callable; or an HTTP endpoint
(``POST {"images": [base64 PNG]}`` → ``{"labels": [...]}`` or ``{"logits": [[...]]}``).
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np

from provlib.core.errors import ParameterError
from provlib.trainprove.classifier import load_classifier, logits
from provlib.trainprove.grubbs import SCORES, batch_scores, grubbs_test
from provlib.trainprove.study import GrubbsSetup
from provlib.verify.endpoint import CachedEndpoint, encode_png
from provlib.verify.keyfile import KeyFile, load_key_file, save_key_file

CLASSIFIER_KINDS = {"classifier": "a folder with classifier.json and classifier.safetensors",
                    "classifier-endpoint": "an HTTP endpoint: POST {images: [base64 PNG]} -> {labels} or {logits}"}


def save_trainprove_keys(folder: str | Path, defender: str, images: np.ndarray, labels: np.ndarray,
                         shadow_outputs: np.ndarray, classes: list[str], split: list[np.ndarray], alpha: float,
                         quantile: str, extra: dict | None = None, overwrite: bool = False) -> KeyFile:
    """A TrainProVe key file from the defender's labelled images, its shadow's outputs on them and their batches."""
    labels = np.asarray(labels).astype(np.int64)
    batch_of = np.full(len(labels), -1, dtype=np.int32)
    for number, members in enumerate(split):
        batch_of[members] = number
    if (batch_of < 0).any():
        raise ParameterError("split", "batches that cover every validation image", int((batch_of < 0).sum()))
    settings = {"defender": defender, "classes": list(classes), "alpha": float(alpha), "quantile": quantile,
                "n_batches": len(split), **(extra or {}),
                "reference_scores": {rule: batch_scores(rule, shadow_outputs, labels, split).tolist() for rule in SCORES}}
    return save_key_file(folder, "trainprove", settings, {"images": images, "labels": labels, "batch": batch_of},
                         overwrite=overwrite)


def prepare_trainprove_keys(zoo, defender: str, folder: str | Path, overwrite: bool = False) -> KeyFile:
    """The defender's TrainProVe key file for its generator ``defender`` (a generator of the TrainProVe zoo)."""
    p, tp = zoo.p, zoo.p.trainprove
    if defender not in zoo.generators:
        raise ParameterError("defender", f"one of {zoo.generators}", defender)
    test = zoo.images(defender, "test")
    split = GrubbsSetup(tp.grubbs_batches, tp.grubbs_quantile, p.seed).split(len(test.labels), defender)
    shadow_logits = logits(zoo.classifier(zoo.shadow_spec(defender)), test.images)
    return save_trainprove_keys(folder, defender, test.images, test.labels, shadow_logits, list(zoo.classes), split,
                                tp.alpha, tp.grubbs_quantile, {"preset": p.name, "seed": p.seed}, overwrite)


@dataclass
class ClassifierFolderSuspect:
    """A classifier in the workbook's safetensors format; returns logits."""
    folder: str
    kind: str = "classifier"
    queries_spent: int = 0

    def __post_init__(self):
        folder = Path(self.folder)
        if not (folder / "classifier.json").is_file() or not (folder / "classifier.safetensors").is_file():
            raise ParameterError("suspect", "a classifier folder with classifier.json and classifier.safetensors", self.folder)
        self.meta = json.loads((folder / "classifier.json").read_text())
        if "n_classes" not in self.meta or "width" not in self.meta:
            raise ParameterError("suspect", "classifier.json with n_classes and width", self.meta)
        try:
            self.model = load_classifier(folder)
        except (KeyError, RuntimeError) as error:
            raise ParameterError("suspect", f"a classifier of a known architecture ({str(error).splitlines()[0][:200]})",
                                 self.folder) from None
        self.description = f"classifier folder {self.folder} ({self.meta.get('architecture', 'cnn')})"
        self.details = {"folder": str(self.folder), "architecture": self.meta.get("architecture", "cnn")}

    def classify(self, images: np.ndarray, show_progress: bool = True) -> np.ndarray:
        self.queries_spent += len(images)
        return logits(self.model, images)


@dataclass
class CallableClassifier:
    """A black-box classifier given as ``fn(images uint8 [n, H, W, 3]) -> labels [n] or logits [n, classes]``."""
    fn: Callable
    description: str = "a Python callable classifier"
    kind: str = "callable"
    queries_spent: int = 0
    details: dict = field(default_factory=dict)

    def classify(self, images: np.ndarray, show_progress: bool = True) -> np.ndarray:
        self.queries_spent += len(images)
        return np.asarray(self.fn(images))


@dataclass
class ClassifierEndpoint(CachedEndpoint):
    """A hosted classifier: images sent in batches, each batch's answer cached."""
    batch_size: int = 64
    kind: str = "classifier-endpoint"

    def __post_init__(self):
        super().__post_init__()
        self.description = f"classifier endpoint {self.url}"

    def _answer(self, response, n: int) -> np.ndarray:
        payload = self.json(response, "JSON {\"labels\": [...]} or {\"logits\": [[...]]}")
        for key in ("logits", "labels"):
            if isinstance(payload, dict) and isinstance(payload.get(key), list):
                out = np.asarray(payload[key], dtype=float if key == "logits" else None)
                if len(out) != n or (key == "logits" and out.ndim != 2):
                    raise ParameterError("suspect", f"{n} {key} (one per image sent)", f"{len(out)} {key}")
                return out
        raise ParameterError("suspect", "JSON with a 'labels' or a 'logits' list", str(payload)[:120])

    def classify(self, images: np.ndarray, show_progress: bool = True) -> np.ndarray:
        chunks = [images[i:i + self.batch_size] for i in range(0, len(images), self.batch_size)]
        requests_ = [{"images": [encode_png(image) for image in chunk]} for chunk in chunks]
        answers = self.ask_cached(requests_, [len(c) for c in chunks], "answer",
                                  lambda response, i: self._answer(response, len(chunks[i])), show_progress)
        if len({a.ndim for a in answers}) != 1:
            raise ParameterError("suspect", "the same kind of answer (labels or logits) for every batch", None)
        return np.concatenate(answers)


def export_zoo_classifier(zoo, model_id: str, out_dir: str | Path) -> dict:
    """Write a TrainProVe zoo classifier (suspect or shadow) in the workbook's safetensors format, with its classes."""
    from provlib.trainprove.classifier import save_classifier

    specs = {s.model_id: s for s in zoo.classifier_specs()}
    if model_id not in specs:
        raise ParameterError("model_id", f"a classifier of this preset, e.g. {sorted(specs)[:3]}", model_id)
    Path(out_dir).mkdir(parents=True, exist_ok=True)
    save_classifier(zoo.classifier(specs[model_id]), Path(out_dir), extra={"classes": list(zoo.classes)})
    return {"classifier": str(out_dir), "spec": specs[model_id]}


def open_classifier(kind: str, location: str, **endpoint_options):
    if kind == "classifier":
        return ClassifierFolderSuspect(location)
    if kind == "classifier-endpoint":
        return ClassifierEndpoint(location, **endpoint_options)
    raise ParameterError("suspect_kind", f"one of {sorted(CLASSIFIER_KINDS)}", kind)


def check_outputs(outputs: np.ndarray, n_images: int, classes: list[str]) -> np.ndarray:
    outputs = np.asarray(outputs)
    if len(outputs) != n_images or outputs.ndim not in (1, 2):
        raise ParameterError("suspect", f"{n_images} labels or an [{n_images}, {len(classes)}] array of logits",
                             outputs.shape)
    if outputs.ndim == 2 and outputs.shape[1] != len(classes):
        raise ParameterError("suspect", f"logits over the defender's {len(classes)} classes {classes}", outputs.shape)
    if outputs.ndim == 1 and not np.isin(outputs, np.arange(len(classes))).all():
        raise ParameterError("suspect", f"labels as class indices 0..{len(classes) - 1} ({classes})",
                             sorted(set(outputs.tolist()))[:8])
    return outputs


def verify_trainprove(key_file: KeyFile | str | Path, suspect, show_progress: bool = True) -> dict:
    """Classify the defender's images with ``suspect`` and test every rule it admits; the accuracy rule decides."""
    if not isinstance(key_file, KeyFile):
        key_file = load_key_file(key_file, question="trainprove")
    m, arrays = key_file.manifest, key_file.arrays
    named = getattr(suspect, "meta", {}).get("classes")
    if named is not None and list(named) != list(m["classes"]):  # its class indices would not mean the defender's
        raise ParameterError("suspect", f"a classifier over the defender's classes in its order {m['classes']}", named)
    outputs = check_outputs(suspect.classify(arrays["images"], show_progress=show_progress), len(arrays["labels"]),
                            m["classes"])
    split = [np.flatnonzero(arrays["batch"] == b) for b in range(m["n_batches"])]
    rules = {}
    for rule, score in SCORES.items():
        if score.needs_logits and outputs.ndim == 1:
            rules[rule] = {"applies": False, "why": "needs the suspect's logits; a label-only suspect admits accuracy alone"}
            continue
        v = grubbs_test(np.asarray(m["reference_scores"][rule]), batch_scores(rule, outputs, arrays["labels"], split),
                        score.worse, m["alpha"], m["quantile"])
        rules[rule] = {"applies": True, "verified": bool(v.verified), "statistic": v.statistic, "critical": v.critical,
                       "p_value": v.p_value, "suspect_score": v.suspect_score, "shadow_mean": v.shadow_mean,
                       "shadow_sd": v.shadow_sd}
    verified = rules["grubbs"]["verified"]
    return {"question": "trainprove", "key_file_sha256": key_file.sha256, "key_file_created": key_file.created,
            "defender": m["defender"], "suspect": {"kind": suspect.kind, "description": suspect.description,
                                                   **getattr(suspect, "details", {})},
            "verdict": "trained on the defender's generated data" if verified else "not trained on the defender's data",
            "rules": rules, "alpha": m["alpha"], "quantile": m["quantile"], "n_batches": m["n_batches"],
            "accuracy": float((np.asarray(outputs if outputs.ndim == 1 else outputs.argmax(1)) == arrays["labels"]).mean()),
            "queries_spent": int(suspect.queries_spent), "label_only": bool(outputs.ndim == 1)}
