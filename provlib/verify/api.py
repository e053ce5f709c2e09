"""The one library call behind ``python -m provlib verify`` and notebook 08, and the zoo's exports for trying it."""
from __future__ import annotations

from pathlib import Path

from provlib.core.errors import ParameterError
from provlib.core.models import save_pipeline
from provlib.verify.attribution import verify_attribution
from provlib.verify.keyfile import load_key_file
from provlib.verify.lora import export_lora
from provlib.verify.report import trainprove_html, watermark_html, write_files, write_report
from provlib.verify.suspects import SUSPECT_KINDS, open_public_base, open_suspect
from provlib.verify.trainprove import CLASSIFIER_KINDS, open_classifier, verify_trainprove
from provlib.verify.watermark import verify_watermark


def queries_needed(manifest: dict) -> int:
    """Images a text-to-image verification asks for: every prompt set and reference set (the discriminator's keys
    when they differ)."""
    prompt_lists = [*(manifest.get("prompt_sets") or [manifest["prompts"]]), *(manifest.get("reference_sets") or [])]
    disc = manifest.get("discriminator")
    if disc and disc["prompts"] != manifest["prompts"]:
        prompt_lists = [*prompt_lists, disc["prompts"]]
    return sum(map(len, prompt_lists)) * manifest["images_per_prompt"]


def verify_suspect(keys: str | Path, suspect_kind: str, suspect: str, out_dir: str | Path, *, base: str | None = None,
                   key_sha256: str | None = None, query_budget: int | None = None, timeout: float = 30.0,
                   retries: int = 3, backoff: float = 1.0, seed: int | None = None, licensee_seeds: dict | None = None,
                   reference_seeds: dict | None = None, show_progress: bool = True) -> dict:
    """Verify one suspect against the owner's key file; writes ``verdict.json`` and ``report.html`` to ``out_dir``.

    The key file says which question is asked: ``attribution`` or ``watermark`` (a text-to-image suspect of
    ``SUSPECT_KINDS``), or ``trainprove`` (a classifier of ``CLASSIFIER_KINDS``). ``seed`` (attribution) and
    ``licensee_seeds`` / ``reference_seeds`` (watermark) replace the key file's query seeds, to re-ask a zoo model what its notebook asked.
    An endpoint's answers are cached under ``out_dir/endpoint-cache``: re-running the same call after an interruption
    (or with a larger ``query_budget``) asks only what is still unanswered.
    """
    key_file = load_key_file(keys, expected_sha256=key_sha256)
    kinds = {"attribution": SUSPECT_KINDS, "watermark": SUSPECT_KINDS, "trainprove": CLASSIFIER_KINDS}[key_file.question]
    if suspect_kind not in kinds:
        raise ParameterError("suspect_kind", f"one of {sorted(kinds)} for a {key_file.question} key file", suspect_kind)
    out_dir = Path(out_dir)
    remote = suspect_kind.endswith("endpoint")
    options = dict(timeout=timeout, retries=retries, backoff=backoff, query_budget=query_budget,
                   cache_dir=out_dir / "endpoint-cache") if remote else {}
    if key_file.question == "trainprove":
        record = verify_trainprove(key_file, open_classifier(suspect_kind, suspect, **options), show_progress=show_progress)
        paths = write_files(record, out_dir, trainprove_html)
        return {**record, "report": str(paths["html"]), "record": str(paths["json"])}
    if query_budget is not None and not remote:
        if query_budget < queries_needed(key_file.manifest):
            raise ParameterError("query_budget", f"at least the {queries_needed(key_file.manifest)} images the key file "
                                 "asks for", query_budget)
    model = open_suspect(suspect_kind, suspect, base=base, **options)
    if key_file.question == "watermark":
        # an image-only key file's test is paired on the public base (the LoRA's base, or the one given as ``base``)
        base_model = open_public_base(base) if base and key_file.manifest.get("reference") == "base" else None
        record, answers = verify_watermark(key_file, model, base_model=base_model, seeds=licensee_seeds,
                                           reference_seeds=reference_seeds, show_progress=show_progress)
        paths = write_files(record, out_dir, watermark_html, {"answers": answers})
        return {**record, "report": str(paths["html"]), "record": str(paths["json"])}
    record, evidence = verify_attribution(key_file, model, seed=seed, show_progress=show_progress)
    paths = write_report(record, evidence, out_dir, key_file.manifest["prompts"])
    return {**record, "report": str(paths["html"]), "record": str(paths["json"])}


def export_zoo_suspect(zoo, model_id: str, out_dir: str | Path, as_: str = "pipeline", rank: int = 64) -> dict:
    """Write a zoo suspect the way models are published: a pipeline folder, or its base plus a LoRA adapter."""
    specs = {s.model_id: s for s in zoo.suspect_specs()}
    if model_id not in specs:
        raise ParameterError("model_id", f"a suspect of this preset, e.g. {sorted(specs)[:3]}", model_id)
    spec, out_dir = specs[model_id], Path(out_dir)
    tuned = zoo.load_suspect(spec)
    if as_ == "pipeline":
        save_pipeline(tuned, out_dir)
        return {"pipeline": str(out_dir), "spec": spec}
    if as_ == "lora":
        base = zoo.load(zoo.base_location(spec.base))
        save_pipeline(base, out_dir / "base")
        record = export_lora(base, tuned, out_dir / "lora", rank=rank)
        return {"base": str(out_dir / "base"), "lora": str(out_dir / "lora"), "export": record, "spec": spec}
    raise ParameterError("as", "'pipeline' or 'lora'", as_)
