"""Instance-level attribution of a suspect found in the wild: prepare the evidence once, then verify any suspect.

``prepare_attribution_keys`` writes the owner's key file from the zoo, before any suspect is seen: the source's
Strategy 1+2 key samples (prompts, key images, their numbers in the candidate list), the feature space notebook 03
selected (with the copy descriptor when it is the embedding space), δ0 and the conf decision level notebook 03
chose on shadow models, and the shadow innocent models' conf on these keys (the null distribution of the
empirical p-value). ``verify_attribution`` asks a suspect the key prompts (k images each, within a query budget),
computes each key's reconstruction distance and conf (Eq. 6), and decides against the recorded level.
"""
from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np

from provlib.attribution.calibration import key_distances, key_sets, model_confs
from provlib.attribution.descriptor import load_descriptor, save_descriptor
from provlib.attribution.distance import EmbeddingSpace, PixelSpace
from provlib.attribution.instance import best_key_distances, conf_from_distances
from provlib.core.errors import ParameterError
from provlib.core.results import read_table
from provlib.core.store import derive_seed
from provlib.verify.keyfile import KeyFile, load_key_file, save_key_file
from provlib.verify.suspects import Sampler

STRATEGY = "strategy12"


def shadow_thresholds(zoo) -> dict:
    """The row of notebook 03's ``delta0`` table it selected (same preset, seed, N and k), as a dict."""
    table = read_table("delta0", zoo.p, "03_delta0_threshold", same=("attribution.key_count", "attribution.query_images"))
    return table[table.selected].iloc[0].to_dict()


def empirical_p_value(conf: float, innocent_confs) -> float:
    """(1 + #innocent models with conf >= this conf) / (1 + #innocent models): the rank p-value, valid when the
    suspect, were it innocent, is exchangeable with the shadow innocents; its resolution is 1 / (1 + n)."""
    innocent = np.asarray(list(innocent_confs), dtype=float)
    return float((1 + (innocent >= conf).sum()) / (1 + innocent.size))


def prepare_attribution_keys(zoo, source: str, folder: str | Path, thresholds: dict | None = None,
                             overwrite: bool = False) -> KeyFile:
    """The owner's attribution key file for ``source``: with notebook 03's thresholds for this preset and seed, or
    ``thresholds`` as ``calibrate`` returns them (feature_space, delta0, conf_threshold, rule) plus
    ``conf_false_positive_rate``."""
    p = zoo.p
    chosen = shadow_thresholds(zoo) if thresholds is None else thresholds
    space_name = chosen["feature_space"]
    space = zoo.feature_space(space_name)
    keys = key_sets(zoo, source, space, strategies=(STRATEGY,))[STRATEGY]
    shadow_innocents = [s for s in zoo.suspect_specs() if s.source == zoo.source(source).name and s.split == "shadow"
                        and s.rho == 0.0]
    if not shadow_innocents:
        raise ParameterError("source", "a source with shadow innocent models in this preset", source)
    zoo.build_answers(shadow_innocents)
    distances = key_distances(zoo, shadow_innocents, {keys.source: {STRATEGY: keys}}, space, desc="shadow innocents")
    innocent_confs = model_confs(distances, float(chosen["delta0"])).conf.tolist()
    settings = {
        "source": keys.source, "preset": p.name, "seed": p.seed, "strategy": STRATEGY, "feature_space": space_name,
        "delta0": float(chosen["delta0"]), "conf_threshold": float(chosen["conf_threshold"]),
        "conf_false_positive_rate": float(chosen["conf_false_positive_rate"]), "threshold_rule": chosen["rule"],
        "prompts": list(keys.prompts), "prompt_numbers": [int(c) for c in keys.candidate_index],
        "images_per_prompt": p.attribution.query_images, "query_seed": derive_seed(p.seed, "verify-query", keys.source),
        "sampler": Sampler(p.sampling.inference_steps, p.sampling.guidance_scale, p.world.resolution,
                           p.sampling.batch_size).as_dict(),
        "shadow_innocent_models": [s.model_id for s in shadow_innocents], "shadow_innocent_confs": innocent_confs,
    }
    with tempfile.TemporaryDirectory() as tmp:
        folders = {}
        if space_name == "embedding":  # the feature space travels with the keys: a verifier needs the same descriptor
            save_descriptor(space.descriptor, Path(tmp) / "descriptor")
            folders["descriptor"] = Path(tmp) / "descriptor"
        return save_key_file(folder, "attribution", settings, {"key_images": keys.images}, folders, overwrite=overwrite)


def key_file_space(key_file: KeyFile):
    if key_file.manifest["feature_space"] == "embedding":
        return EmbeddingSpace(load_descriptor(key_file.subfolder("descriptor")))
    return PixelSpace()


def verify_attribution(key_file: KeyFile | str | Path, suspect, *, seed: int | None = None,
                       show_progress: bool = True) -> tuple[dict, dict]:
    """Ask ``suspect`` the key prompts and decide. Returns (record, evidence): the JSON-ready verdict and the arrays
    behind it (key images, the suspect's answers, per-key distances) for the report.

    ``seed`` (default: the key file's query seed, fixed before the suspect was seen) draws the images asked for.
    """
    if not isinstance(key_file, KeyFile):
        key_file = load_key_file(key_file, question="attribution")
    m = key_file.manifest
    sampler = Sampler(**m["sampler"])
    seed = m["query_seed"] if seed is None else int(seed)
    answers = suspect.answer(m["prompts"], m["prompt_numbers"], m["images_per_prompt"], seed, sampler,
                             show_progress=show_progress)
    space = key_file_space(key_file)
    key_images = key_file.arrays["key_images"]
    distances = best_key_distances(answers, key_images, space)
    conf = conf_from_distances(distances, m["delta0"])
    infringing = conf > m["conf_threshold"]
    attributed = distances < m["delta0"]
    record = {
        "question": "attribution", "key_file_sha256": key_file.sha256, "key_file_created": key_file.created,
        "source": m["source"], "suspect": {"kind": suspect.kind, "description": suspect.description,
                                           **getattr(suspect, "details", {})},
        "verdict": "infringing" if infringing else "not shown to be infringing",
        "conf": conf, "conf_threshold": m["conf_threshold"], "delta0": m["delta0"], "feature_space": m["feature_space"],
        "p_value_vs_shadow_innocents": empirical_p_value(conf, m["shadow_innocent_confs"]),
        "n_shadow_innocents": len(m["shadow_innocent_confs"]),
        "keys": len(m["prompts"]), "keys_attributed": int(attributed.sum()), "images_per_prompt": m["images_per_prompt"],
        "queries": int(answers.shape[0] * answers.shape[1]), "queries_spent": int(suspect.queries_spent),
        "query_seed": seed,
        "matched_keys": [{"key": i, "prompt": m["prompts"][i], "distance": float(distances[i])}
                         for i in np.flatnonzero(attributed)],
    }
    return record, {"key_images": key_images, "answers": answers, "distances": distances, "space": space}
