"""A verification's record on disk: ``verdict.json`` (machine-readable), ``report.html`` (readable, with images) and
``answers.safetensors`` (the suspect's images and each key's distance).

Both are written atomically. The HTML embeds its images (base64 PNG), so it can be mailed or archived as one file.
"""
from __future__ import annotations

import datetime
import html
import json
from pathlib import Path

import numpy as np
from safetensors.numpy import load_file

from provlib.core.store import atomic_save_arrays, atomic_write_text
from provlib.verify.endpoint import encode_png


def _img(image: np.ndarray, side: int = 96) -> str:
    return (f'<img src="data:image/png;base64,{encode_png(image)}" width="{side}" height="{side}" '
            'style="image-rendering: pixelated">')


def best_answers(evidence: dict) -> np.ndarray:
    """For every key, the suspect's answer nearest to the key image (what the distance was measured on)."""
    space, answers, keys = evidence["space"], evidence["answers"], evidence["key_images"]
    picks = [int(space.pairwise(space.features(a), space.features(k[None]))[:, 0].argmin()) for a, k in zip(answers, keys)]
    return np.stack([a[i] for a, i in zip(answers, picks)])


def discriminator_line(record: dict) -> str:
    d = record.get("discriminator")
    if not d:
        return "Statistical level: no discriminator in this key file."
    return (f"Statistical level (notebook 05's discriminator, {html.escape(d['config']['classifier'])} on "
            f"{html.escape(d['config']['feature_set'])} {html.escape(d['config']['feature_space'])} features): "
            f"P(infringing) = {d['score']:.3f}, {'at or above' if d['infringing'] else 'below'} its threshold {d['threshold']:g}.")


def attribution_html(record: dict, evidence: dict, shown: int = 24) -> str:
    order = np.argsort(evidence["distances"])[:shown]  # the closest pairs first: the evidence a reader checks
    nearest = best_answers(evidence)
    rows = "".join(
        f"<tr><td>{i}</td><td>{html.escape(record_prompt)}</td><td>{_img(evidence['key_images'][i])}</td>"
        f"<td>{_img(nearest[i])}</td><td>{evidence['distances'][i]:.3f}</td>"
        f"<td>{'yes' if evidence['distances'][i] < record['delta0'] else 'no'}</td></tr>"
        for i, record_prompt in ((int(i), record["prompts_by_key"][int(i)]) for i in order))
    summary = {k: record[k] for k in ("verdict", "conf", "conf_threshold", "p_value_vs_shadow_innocents",
                                      "n_shadow_innocents", "delta0", "feature_space", "keys", "keys_attributed",
                                      "queries_spent", "key_file_sha256")}
    facts = "".join(f"<tr><th>{html.escape(k)}</th><td>{html.escape(str(v))}</td></tr>" for k, v in summary.items())
    return f"""<!doctype html><html><head><meta charset="utf-8"><title>Verification: {html.escape(record['source'])}</title>
<style>body{{font-family:sans-serif;max-width:60em;margin:2em auto}}td,th{{padding:.2em .6em;text-align:left}}</style></head><body>
<h1>Was this suspect trained on data from <code>{html.escape(record['source'])}</code>?</h1>
<p><b>{html.escape(record['verdict'])}</b>: conf = {record['conf']:.3f} (share of the {record['keys']} key samples the
suspect reproduced within δ0 = {record['delta0']:.3f}, {record['feature_space']} space) against the decision level
{record['conf_threshold']:.3f} chosen on shadow models; empirical p-value against {record['n_shadow_innocents']} shadow
innocent models: {record['p_value_vs_shadow_innocents']:.3f}.</p>
<p>{discriminator_line(record)}</p>
<p>Suspect: {html.escape(record['suspect']['description'])} ({html.escape(record['suspect']['kind'])}).
Key file sha256 <code>{record['key_file_sha256']}</code>, made {html.escape(record['key_file_created'])}, before the
suspect was queried. Verified {html.escape(record['verified_at'])}.</p>
<table>{facts}</table>
<h2>Key samples and the suspect's nearest answer (closest first)</h2>
<table><tr><th>key</th><th>prompt</th><th>key image</th><th>suspect's answer</th><th>distance</th><th>&lt; δ0</th></tr>
{rows}</table></body></html>"""


def trainprove_html(record: dict) -> str:
    rows = "".join(
        f"<tr><td>{html.escape(rule)}</td>" + ("<td colspan=4>" + html.escape(r["why"]) + "</td></tr>" if not r["applies"] else
                                              f"<td>{'verified' if r['verified'] else 'outlier'}</td><td>{r['statistic']:.3f}</td>"
                                              f"<td>{r['critical']:.3f}</td><td>{r['p_value']:.4f}</td></tr>")
        for rule, r in record["rules"].items())
    return f"""<!doctype html><html><head><meta charset="utf-8"><title>TrainProVe: {html.escape(record['defender'])}</title>
<style>body{{font-family:sans-serif;max-width:60em;margin:2em auto}}td,th{{padding:.2em .6em;text-align:left}}</style></head><body>
<h1>Was this classifier trained on images from <code>{html.escape(record['defender'])}</code>?</h1>
<p><b>{html.escape(record['verdict'])}</b> (TrainProVe's one-sided Grubbs test on accuracy over {record['n_batches']}
batches of the defender's fresh images, α = {record['alpha']}, {html.escape(record['quantile'])} quantile; the
suspect's accuracy {record['accuracy']:.3f}). Suspect: {html.escape(record['suspect']['description'])}.
Key file sha256 <code>{record['key_file_sha256']}</code>, made {html.escape(record['key_file_created'])}.
Verified {html.escape(record['verified_at'])}; {record['queries_spent']} images classified.</p>
<table><tr><th>rule</th><th>decision</th><th>G</th><th>critical value</th><th>p-value</th></tr>{rows}</table></body></html>"""


def watermark_html(record: dict) -> str:
    rows = "".join(f"<tr><td>{r['licensee']}</td><td>{html.escape(str(r['trigger']))}</td><td>{r['p_value']:.2g}</td>"
                   f"<td>{'yes' if r['detected'] else 'no'}</td><td>{r['matches']}</td></tr>" for r in record["licensees"])
    return f"""<!doctype html><html><head><meta charset="utf-8"><title>Dataset watermark</title>
<style>body{{font-family:sans-serif;max-width:60em;margin:2em auto}}td,th{{padding:.2em .6em;text-align:left}}</style></head><body>
<h1>Was this model fine-tuned on a licensed copy of my dataset?</h1>
<p><b>{html.escape(record['verdict'])}</b> (named: {html.escape(record['named_licensee'])}; each licensee's secret message
tested on the suspect's answers to that licensee's prompts, {html.escape(record['strategy'])} strategy, marked share
{record['fraction']:g}, α = {record['alpha']}). Suspect: {html.escape(record['suspect']['description'])}. Key file
sha256 <code>{record['key_file_sha256']}</code>, made {html.escape(record['key_file_created'])}. Verified
{html.escape(record['verified_at'])}; {record['queries_spent']} images obtained.</p>
<table><tr><th>licensee</th><th>trigger</th><th>p-value</th><th>detected</th><th>bits matched</th></tr>{rows}</table></body></html>"""


def write_files(record: dict, out_dir: str | Path, page, arrays: dict | None = None) -> dict[str, Path]:
    """``verdict.json``, ``report.html`` (``page(record)``) and, if given, ``answers.safetensors`` under ``out_dir``."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    record = {**record, "verified_at": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")}
    paths = {"json": out_dir / "verdict.json", "html": out_dir / "report.html"}
    if arrays:
        # the suspect's answers kept with the verdict: the evidence a third party re-scores
        paths["answers"] = out_dir / "answers.safetensors"
        atomic_save_arrays(paths["answers"], arrays)
    atomic_write_text(paths["json"], json.dumps(record, indent=1, default=float))
    atomic_write_text(paths["html"], page(record))
    return paths


def write_report(record: dict, evidence: dict, out_dir: str | Path, prompts: list[str]) -> dict[str, Path]:
    """An attribution verdict's files: the record, the key/answer pairs page, the answers and distances."""
    return write_files(record, out_dir, lambda r: attribution_html({**r, "prompts_by_key": prompts}, evidence),
                       {"answers": evidence["answers"], "distances": np.asarray(evidence["distances"])})


def read_evidence(report_dir: str | Path) -> dict:
    """The answers and per-key distances a verification kept beside its ``verdict.json``."""
    return load_file(str(Path(report_dir) / "answers.safetensors"))
