"""Watermark study tables: Baseline 1 per suspect, and dataset-watermark detection, leak tracing and robustness.

Every decision is ``watermark_detect.detect`` (the preset's ``wm_statistic``, exact test at ``wm_alpha``): no
threshold is fitted on any model, so every fine-tuned model can be used for
evaluation. The clean fine-tunes give the false-positive rate: each is tested against every licensee's
message (and trigger) under every scheme and strategy.
"""
from __future__ import annotations

import numpy as np
import pandas as pd
from scipy.stats import binomtest

from provlib.core.progress import tqdm
from provlib.watermark.detect import detect, named_licensee, prompt_p_values, trace_leak, watermark_conf
from provlib.watermark.schemes import image_quality
from provlib.watermark.transforms import apply_transform
from provlib.watermark.zoo import LicenseeSpec, WatermarkZoo


def rate_with_ci(successes: int, trials: int, level: float = 0.95) -> dict:
    """A rate with its exact (Clopper-Pearson) confidence interval."""
    if trials == 0:
        return {"rate": np.nan, "lo": np.nan, "hi": np.nan}
    interval = binomtest(int(successes), int(trials)).proportion_ci(level, method="exact")
    return {"rate": successes / trials, "lo": float(interval.low), "hi": float(interval.high)}


# ---- what marking costs and what a VAE leaves ----------------------------------------------------------
def scheme_survival(zoo: WatermarkZoo, images: np.ndarray, owner: str = "survival-check") -> pd.DataFrame:
    """Per scheme: image quality of the mark, and how much of it each base's VAE round trip keeps.

    Measured on the owner's own clean images only (no suspect): it tells which scheme a latent-diffusion model
    could reproduce at all.
    """
    message = zoo.message(owner)
    rows = []
    for name in zoo.p.watermark.schemes:
        scheme = zoo.scheme(name).calibrated(images)
        marked = scheme.encode(images, message)
        quality = image_quality(images, marked)
        stages = {"marked": marked, **{f"after {base} VAE": zoo.vae_round_trip(marked, base) for base in zoo.p.models.base_names},
                  "unmarked": images}
        for stage, stage_images in stages.items():
            found = detect(scheme, stage_images, message, zoo.p.watermark.alpha, zoo.p.watermark.statistic)
            rows.append({"scheme": name, "stage": stage, "image_bit_accuracy": found.image_bit_accuracy,
                         "pooled_matches": found.matches, "pooled_score": found.score, "pooled_p_value": found.p_value,
                         "n_images": found.n_images,
                         "psnr_db": quality["psnr_db"], "ssim": quality["ssim"]})
    return pd.DataFrame(rows)


# ---- Baseline 1 -----------------------------------------------------------------------------------------
def baseline1_table(zoo: WatermarkZoo, specs, n_values: list[int]) -> pd.DataFrame:
    """One row per (suspect, N): conf (share of the N prompts whose k answers carry the source's message at
    ``wm_key_alpha``) and the model-level test (``wm_statistic``, at ``wm_alpha``) on all N x k answers, with the
    binomial test on the bits alongside."""
    p = zoo.p
    schemes = {}
    rows = []
    for spec in tqdm(specs, desc="Baseline 1: decode suspects", disable=not zoo.show_progress, mininterval=5):
        if spec.source not in schemes:
            schemes[spec.source] = zoo.source_scheme(spec.source)
        scheme, message = schemes[spec.source], zoo.message(spec.source)
        order = zoo.baseline_prompt_order(spec.source)
        answers = zoo.suspect_answers(spec)[order[:max(n_values)]]
        prompt_p = prompt_p_values(scheme, answers, message, p.watermark.statistic)
        for n in sorted({min(n, len(answers)) for n in n_values}):
            found = detect(scheme, answers[:n].reshape(-1, *answers.shape[2:]), message, p.watermark.alpha, p.watermark.statistic)
            rows.append({"model_id": spec.model_id, "source": spec.source, "rho": spec.rho, "split": spec.split,
                         "n_keys": n, "conf": watermark_conf(prompt_p[:n], p.watermark.key_alpha), "score": found.score,
                         "matches": found.matches, "p_value": found.p_value, "detected": found.detected,
                         "bits_p_value": found.bits_p_value, "image_bit_accuracy": found.image_bit_accuracy,
                         "queries": n * answers.shape[1]})
    return pd.DataFrame(rows)


# ---- dataset watermarking -------------------------------------------------------------------------------
def licensee_detections(zoo: WatermarkZoo, specs: list[LicenseeSpec], transform: str = "none") -> pd.DataFrame:
    """One row per (model, scheme, strategy, tested licensee): is that licensee's mark in the model's images?

    A marked model is tested under its own scheme and strategy against every licensee (its own is the true
    positive, the others are what leak tracing must reject); a clean model under every scheme and strategy.
    ``transform`` is applied to the generations before decoding (robustness to post-processing).
    """
    p = zoo.p
    schemes = {name: zoo.owner_scheme(name) for name in zoo.mark_schemes}
    messages = {i: zoo.licensee_message(i) for i in range(p.watermark.licensees)}
    rows = []
    for spec in tqdm(specs, desc=f"decode fine-tunes ({transform})", disable=not zoo.show_progress, mininterval=5):
        tests = ([(spec.scheme, spec.strategy, spec.fraction)] if not spec.is_clean else
                 [(s, t, r) for s in zoo.mark_schemes for t in p.watermark.strategies for r in zoo.clean_fractions()])

        def processed(images):  # the reference gets the answers' post-processing, so the pair stays comparable
            if images is None or transform == "none":
                return images
            return apply_transform(images, transform, seed=spec.seed, parameter="wm_robustness")

        answers, references = {}, {}
        for scheme_name, strategy, query_fraction in tests:
            for licensee, message in messages.items():
                prompt_set = zoo.licensee_prompt_set(strategy, licensee, query_fraction)
                if prompt_set not in answers:
                    answers[prompt_set] = processed(zoo.licensee_answers(spec, prompt_set))
                    references[prompt_set] = processed(zoo.reference_answers(spec, prompt_set))
                reference = zoo.reference_name(prompt_set)
                found = detect(schemes[scheme_name], answers[prompt_set], message, p.watermark.alpha, p.watermark.statistic,
                               reference=references[prompt_set])
                rows.append({"model_id": spec.model_id, "scheme": scheme_name, "strategy": strategy,
                             "fraction": spec.fraction, "query_fraction": query_fraction, "prompt_set": prompt_set,
                             "laundering": spec.laundering, "base": spec.base,
                             "true_licensee": spec.licensee, "tested_licensee": licensee, "marked": not spec.is_clean,
                             "transform": transform, "reference_prompt_set": reference, "score": found.score, "matches": found.matches, "p_value": found.p_value,
                             "detected": found.detected, "bits_p_value": found.bits_p_value, "alpha": found.alpha,
                             "image_bit_accuracy": found.image_bit_accuracy})
    table = pd.DataFrame(rows)
    table["own_mark"] = table.marked & (table.true_licensee == table.tested_licensee)
    return table


def _clean_tests(detections: pd.DataFrame, scheme: str, strategy: str, fraction: float | None = None) -> pd.DataFrame:
    """The false-positive tests of a (scheme, strategy): every clean fine-tune against every licensee's mark, asked
    the prompts of share ``fraction`` where clean models were asked those (else every share they were asked)."""
    clean = detections[~detections.marked & (detections.scheme == scheme) & (detections.strategy == strategy)]
    if fraction is not None and "query_fraction" in clean and np.isclose(clean.query_fraction, fraction).any():
        clean = clean[np.isclose(clean.query_fraction, fraction)]
    return clean


def detection_summary(detections: pd.DataFrame) -> pd.DataFrame:
    """TPR per (scheme, strategy, r) on the models' own marks; FPR per (scheme, strategy) on the clean fine-tunes."""
    rows = []
    own = detections[detections.own_mark & (detections.laundering == "none")]  # laundered copies: see ``laundering_summary``
    for (scheme, strategy, fraction), group in own.groupby(["scheme", "strategy", "fraction"]):
        negatives = _clean_tests(detections, scheme, strategy, fraction)
        tpr = rate_with_ci(int(group.detected.sum()), len(group))
        fpr = rate_with_ci(int(negatives.detected.sum()), len(negatives))
        # the owner asks a model about every licensee's mark: a clean model is a false positive if any is found
        flagged = negatives.groupby("model_id").detected.any()
        fpr_models = rate_with_ci(int(flagged.sum()), len(flagged))
        rows.append({"scheme": scheme, "strategy": strategy, "fraction": fraction, "tpr": tpr["rate"],
                     "tpr_lo": tpr["lo"], "tpr_hi": tpr["hi"], "fpr": fpr["rate"], "fpr_lo": fpr["lo"],
                     "fpr_hi": fpr["hi"], "fpr_models": fpr_models["rate"], "fpr_models_hi": fpr_models["hi"],
                     # the binomial test on the bits at the same level, for comparison with the decisive statistic
                     "tpr_bits": float((group.bits_p_value <= group.alpha).mean()),
                     "fpr_bits": float((negatives.bits_p_value <= negatives.alpha).mean()) if len(negatives) else np.nan,
                     "n_models": len(group), "n_clean_tests": len(negatives),
                     "n_clean_models": negatives.model_id.nunique(),
                     "mean_score": float(group.score.mean()), "mean_matches": float(group.matches.mean()),
                     "mean_image_bit_accuracy": float(group.image_bit_accuracy.mean())})
    return pd.DataFrame(rows)


def detection_by_base(detections: pd.DataFrame) -> pd.DataFrame:
    """Transferability: ``detection_summary`` apart for the fine-tunes of each base (marked and clean alike)."""
    parts = [detection_summary(group).assign(base=base) for base, group in detections.groupby("base")]
    return pd.concat(parts, ignore_index=True) if parts else pd.DataFrame()


def laundering_summary(detections: pd.DataFrame) -> pd.DataFrame:
    """TPR of the models fine-tuned on copies the licensee transformed first, per transform (FPR: clean fine-tunes)."""
    rows = []
    laundered = detections[detections.own_mark & (detections.laundering != "none")]
    for (scheme, strategy, fraction, laundering), group in laundered.groupby(["scheme", "strategy", "fraction", "laundering"]):
        negatives = _clean_tests(detections, scheme, strategy, fraction)
        tpr = rate_with_ci(int(group.detected.sum()), len(group))
        rows.append({"scheme": scheme, "strategy": strategy, "fraction": fraction, "transform": laundering,
                     "applied_to": "dataset before fine-tuning", "tpr": tpr["rate"], "tpr_lo": tpr["lo"], "tpr_hi": tpr["hi"],
                     "fpr": float(negatives.detected.mean()) if len(negatives) else np.nan, "n_models": len(group)})
    return pd.DataFrame(rows)


def traced_licensees(detections: pd.DataFrame) -> pd.DataFrame:
    """Per marked model: the licensee leak tracing names (``none`` when no mark is detected)."""
    rows = []
    marked = detections[detections.marked & (detections.laundering == "none")]
    for (model_id, scheme, strategy, fraction), group in marked.groupby(["model_id", "scheme", "strategy", "fraction"]):
        named = trace_leak({row.tested_licensee: row for row in group.itertuples()})
        true = int(group.true_licensee.iloc[0])
        rows.append({"model_id": model_id, "scheme": scheme, "strategy": strategy, "fraction": fraction,
                     "base": group.base.iloc[0], "true_licensee": true, "named": named_licensee(named),
                     "correct": [int(who) for who in named] == [true]})
    return pd.DataFrame(rows)


def leak_tracing_summary(traced: pd.DataFrame) -> pd.DataFrame:
    """Accuracy of naming the leaking licensee per (scheme, strategy, r), with wrong names and misses apart."""
    rows = []
    for (scheme, strategy, fraction), group in traced.groupby(["scheme", "strategy", "fraction"]):
        accuracy = rate_with_ci(int(group.correct.sum()), len(group))
        rows.append({"scheme": scheme, "strategy": strategy, "fraction": fraction, "accuracy": accuracy["rate"],
                     "accuracy_lo": accuracy["lo"], "accuracy_hi": accuracy["hi"], "n_models": len(group),
                     "named_wrong_licensee": int(((group.named != "none") & ~group.named.str.startswith("several")
                                                  & ~group.correct).sum()),
                     "named_several": int(group.named.str.startswith("several").sum()),
                     "named_none": int((group.named == "none").sum())})
    return pd.DataFrame(rows)


def marking_quality(zoo: WatermarkZoo) -> pd.DataFrame:
    """PSNR / SSIM of marked vs clean images: each scheme as a stamp (Baseline 1, ``wm_pattern_strength``) on the
    licensed dataset and on a source's generations, and the dataset mark (``wm_mark_*``) on the licensed dataset."""
    rows = []
    sets = {f"licensed dataset ({zoo.p.watermark.domain})": zoo.licensed_dataset().images}
    fine_tuned = zoo.p.fine_tuned_source_names or zoo.p.source_names
    sets[f"{fine_tuned[0]} generations"] = zoo.source_generations(fine_tuned[0])[0].images
    marks = [("stamp", name, zoo.scheme(name)) for name in zoo.p.watermark.schemes]
    marks += [("dataset mark", name, zoo.mark_scheme(name)) for name in zoo.mark_schemes]
    for use, name, scheme in marks:
        for label, images in sets.items():
            if use == "dataset mark" and not label.startswith("licensed"):
                continue  # the dataset mark is applied to licensed images only
            quality = image_quality(images, scheme.encode(images, zoo.message("quality-check")))
            rows.append({"use": use, "scheme": name, "images": label, **quality, **scheme.describe()})
    return pd.DataFrame(rows)
