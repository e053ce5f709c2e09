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

from provlib.attribution.calibration import key_distances, key_sets, model_confs, shadow_selection
from provlib.attribution.descriptor import load_descriptor, save_descriptor
from provlib.attribution.discriminator import Discriminator, DiscriminatorConfig, feature_vector, per_key_distances
from provlib.attribution.distance import EmbeddingSpace, PixelSpace
from provlib.attribution.instance import best_key_distances, conf_from_distances
from provlib.attribution.statistical import feature_matrix, labels_of, per_key_table
from provlib.core.errors import ParameterError
from provlib.core.results import read_table
from provlib.core.store import derive_seed
from provlib.verify.keyfile import KeyFile, load_key_file, save_key_file
from provlib.verify.suspects import Sampler

STRATEGY = "strategy12"
DECISION_THRESHOLD = 0.5  # notebook 05's default: P(infringing) at or above which its discriminator calls a suspect


def shadow_thresholds(zoo) -> dict:
    """The row of notebook 03's ``delta0`` table it selected (same preset, seed, N and k), as a dict."""
    return shadow_selection(zoo.p)[1].to_dict()


def empirical_p_value(conf: float, innocent_confs) -> float:
    """(1 + #innocent models with conf >= this conf) / (1 + #innocent models): the rank p-value, valid when the
    suspect, were it innocent, is exchangeable with the shadow innocents; its resolution is 1 / (1 + n)."""
    innocent = np.asarray(list(innocent_confs), dtype=float)
    return float((1 + (innocent >= conf).sum()) / (1 + innocent.size))


def discriminator_evidence(zoo, source: str) -> tuple[dict, dict, object]:
    """What scoring a suspect with notebook 05's chosen discriminator needs, fixed with the keys: its configuration,
    the shadow models' feature vectors and labels it is fitted on (refitted at verification with the same seed: no
    pickled model), and its own key set with the source's and the reference models' generations at those keys."""
    p = zoo.p
    table1 = read_table("table1_discriminator", p, "05_discriminator", same=("attribution.key_count",
                                                                             "attribution.query_images"))
    row = table1.iloc[0]
    config = DiscriminatorConfig(row.feature_space, row.feature_set, row.classifier, row.scope)
    space = zoo.feature_space(config.feature_space)
    # the keys notebook 05 fitted on: those of the reference bases notebook 03 chose
    reference = shadow_thresholds(zoo).get("reference_bases")
    keys = {s: key_sets(zoo, s, space, strategies=(STRATEGY,), reference_bases=reference)[STRATEGY] for s in p.source_names}
    shadow = [s for s in zoo.suspect_specs() if s.split == "shadow" and (config.scope == "pooled" or s.source == source)]
    zoo.build_answers(shadow)
    features, meta = feature_matrix(per_key_table(zoo, shadow, keys, space, desc="discriminator's shadow models"),
                                    config.feature_set)
    own = keys[zoo.source(source).name]
    probe, index = zoo.candidate_probe(own.source), own.candidate_index
    settings = {**vars(config), "seed": p.seed, "threshold": DECISION_THRESHOLD, "prompts": list(own.prompts),
                "prompt_numbers": [int(c) for c in index], "training_sources": meta.target.tolist()}
    arrays = {"disc_features": features, "disc_labels": labels_of(meta).astype(np.int64), "disc_key_images": own.images,
              "disc_source_images": probe.source_images[index], "disc_reference_images": probe.reference_images[index]}
    return settings, arrays, space


def discriminator_score(key_file: KeyFile, suspect, answers_for, seed: int, sampler, show_progress: bool) -> dict:
    """P(infringing) of notebook 05's discriminator for the suspect (its key prompts asked unless the instance keys
    are the same prompts), refitted on the stored shadow features."""
    d, a, m = key_file.manifest["discriminator"], key_file.arrays, key_file.manifest
    same = d["prompts"] == m["prompts"] and d["prompt_numbers"] == m["prompt_numbers"]
    answers = answers_for if same else suspect.answer(d["prompts"], d["prompt_numbers"], m["images_per_prompt"], seed,
                                                      sampler, show_progress=show_progress)
    space = key_file_space(key_file, d["feature_space"])
    table = per_key_distances(answers, a["disc_key_images"], a["disc_source_images"], a["disc_reference_images"], space)
    config = DiscriminatorConfig(d["feature_space"], d["feature_set"], d["classifier"], d["scope"])
    model = Discriminator(config, seed=d["seed"]).fit(a["disc_features"], a["disc_labels"], np.asarray(d["training_sources"]))
    score = float(model.score(feature_vector(table, d["feature_set"])[None], np.asarray([m["source"]]))[0])
    return {"score": score, "threshold": d["threshold"], "infringing": score >= d["threshold"], "config": vars(config),
            "extra_queries": 0 if same else int(answers.shape[0] * answers.shape[1])}


def prepare_attribution_keys(zoo, source: str, folder: str | Path, thresholds: dict | None = None,
                             discriminator: bool | None = None, overwrite: bool = False) -> KeyFile:
    """The owner's attribution key file for ``source``: with notebook 03's thresholds for this preset and seed, or
    ``thresholds`` as ``calibrate`` returns them (feature_space, delta0, conf_threshold, rule) plus
    ``conf_false_positive_rate`` (and ``reference_bases``, the preset's if absent). With notebook 05's discriminator
    (``discriminator_evidence``): always if ``discriminator`` is True, never if False, and if None when 05 has run for
    this preset and seed (the key file then says why it has none)."""
    p = zoo.p
    chosen = shadow_thresholds(zoo) if thresholds is None else thresholds
    space_name = chosen["feature_space"]
    space = zoo.feature_space(space_name)
    reference = chosen.get("reference_bases") or p.attribution.reference_bases
    keys = key_sets(zoo, source, space, strategies=(STRATEGY,), reference_bases=reference)[STRATEGY]
    shadow_innocents = [s for s in zoo.suspect_specs() if s.source == zoo.source(source).name and s.split == "shadow"
                        and s.rho == 0.0]
    if not shadow_innocents:
        raise ParameterError("source", "a source with shadow innocent models in this preset", source)
    zoo.build_answers(shadow_innocents)
    distances = key_distances(zoo, shadow_innocents, {keys.source: {STRATEGY: keys}}, space, desc="shadow innocents")
    innocent_confs = model_confs(distances, float(chosen["delta0"])).conf.tolist()
    settings = {
        "source": keys.source, "preset": p.name, "seed": p.seed, "strategy": STRATEGY, "feature_space": space_name,
        "reference_bases": reference, "detection_statistic": p.attribution.detection_statistic,
        "combined_key_image": p.attribution.combined_key_image, "key_candidate_draw": p.attribution.key_candidate_draw,
        "delta0": float(chosen["delta0"]), "conf_threshold": float(chosen["conf_threshold"]),
        "conf_false_positive_rate": float(chosen["conf_false_positive_rate"]), "threshold_rule": chosen["rule"],
        "conf_level_rule": str(chosen.get("conf_level_rule", "empirical")),
        "prompts": list(keys.prompts), "prompt_numbers": [int(c) for c in keys.candidate_index],
        "images_per_prompt": p.attribution.query_images, "query_seed": derive_seed(p.seed, "verify-query", keys.source),
        "sampler": Sampler(p.sampling.inference_steps, p.sampling.guidance_scale, p.world.resolution,
                           p.sampling.batch_size).as_dict(),
        "shadow_innocent_models": [s.model_id for s in shadow_innocents], "shadow_innocent_confs": innocent_confs,
    }
    arrays, spaces = {"key_images": keys.images}, [space]
    if discriminator is not False:
        try:
            settings["discriminator"], disc_arrays, disc_space = discriminator_evidence(zoo, source)
            arrays.update(disc_arrays)
            spaces.append(disc_space)
        except ParameterError as missing:
            if discriminator:
                raise
            settings["discriminator_note"] = f"no discriminator: {missing}"
    with tempfile.TemporaryDirectory() as tmp:
        folders = {}
        embedding = next((s for s in spaces if s.name == "embedding"), None)
        if embedding is not None:  # the feature space travels with the keys: a verifier needs the same descriptor
            save_descriptor(embedding.descriptor, Path(tmp) / "descriptor")
            folders["descriptor"] = Path(tmp) / "descriptor"
        return save_key_file(folder, "attribution", settings, arrays, folders, overwrite=overwrite)


def key_file_space(key_file: KeyFile, name: str | None = None):
    if (name or key_file.manifest["feature_space"]) == "embedding":
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
    discriminator = (discriminator_score(key_file, suspect, answers, seed, sampler, show_progress)
                     if "discriminator" in m else None)
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
        "query_seed": seed, "discriminator": discriminator,
        "matched_keys": [{"key": i, "prompt": m["prompts"][i], "distance": float(distances[i])}
                         for i in np.flatnonzero(attributed)],
    }
    return record, {"key_images": key_images, "answers": answers, "distances": distances, "space": space}
