"""The rendered documents: ``docs/results.md``, ``docs/replications.md``, the README's blocks, notebook HTML."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from provlib.core.errors import ParameterError
from provlib.core.paths import REPO_ROOT
from provlib.core.store import atomic_write_text
from provlib.report.headline import (TARGETS, chosen_operating_point, cold_costs, discriminator_summary,  # noqa: F401
                                     instance_conf, instance_decisions, instance_gap, minutes, naming_counts,
                                     score_targets, test_cost, trainprove_rule, watermark_row)
from provlib.report.tables import Tables, markdown_table, mean_ci, rate, rates, selected, t_interval

README_BEGIN = "<!-- results:begin: rendered by `python -m provlib report` from data/results/; do not edit -->"
README_END = "<!-- results:end -->"
NOTEBOOK_HTML = "notebooks/{}.html"  # relative to docs/
# the committed run's headline figures shown in docs/results.md, per notebook (figures/<name>.png, where present)
FIGURES_SHOWN = {"01": ["01_memorization", "01_copy_curve"], "02": ["02_suspect_losses"],
                 "03": ["03_key_distance_histograms", "03_conf_vs_delta0"], "04": ["04_conf_vs_rho", "04_conf_vs_n"],
                 "05": ["05_roc", "05_source_confusion"], "06": ["06_detection_vs_fraction", "06_robustness"],
                 "07": ["07_verification_matrix", "07_rules_compared"], "08": ["08_verify_conf"]}

# ---------------------------------------------------------------------------------------------------------------
# documents


def readme_block(t: Tables) -> str:
    """The README's headline table (between README_BEGIN and README_END)."""
    gap = instance_gap(t)
    decisions = instance_decisions(t).set_index("rho")
    disc = discriminator_summary(t)
    named = naming_counts(t)
    lines = ["| Question | Method (notebook) | Result on held-out test models, 95 % interval |", "| --- | --- | --- |"]
    smallest = gap["rho"]
    lines.append(f"| Did a suspect fine-tune on a share ρ of my model's generations? | instance-level attribution, "
                 f"Strategy 1+2 keys ([04]({docs_link(t, '04_instance_attribution')})) | infringing called at "
                 f"ρ = {smallest:g}: {rate(decisions.loc[smallest].called, decisions.loc[smallest].n_models)}; "
                 f"innocent (model, source) listings called: "
                 f"{rate(decisions.loc[0.0].called, decisions.loc[0.0].n_models)}; conf gap "
                 f"{mean_ci(gap['gap'], gap['interval'])} |")
    lines.append(f"| Same, by a trained classifier | statistical-level attribution, Table 1 "
                 f"([05]({docs_link(t, '05_discriminator')})) | mean AUC {disc['auc']:.2f} over {disc['n_sources']} "
                 f"sources, {disc['n_test_models']} test models each ({disc['n_innocent']} innocent); "
                 f"(model, source) listings called right: {rate(disc['listings_right'], disc['listings'])} |")
    lines.append(f"| Which of my models was the source? | naming the source ([05]({docs_link(t, '05_discriminator')})) "
                 f"| {rate(*named)} |")
    trigger, image = watermark_row(t, "trigger", 0.02), watermark_row(t, "image", 0.02)
    fpr = trigger if trigger is not None else image
    if fpr is not None:
        marked = "; ".join(f"{name} mark: {rate(row.tpr * row.n_models, row.n_models)}"
                            for name, row in (("trigger", trigger), ("image-only", image)) if row is not None)
        lines.append(f"| Did a fine-tune use my dataset (2 % of it marked)? | dataset watermark "
                     f"([06]({docs_link(t, '06_watermarks')})) | detected, {marked}; clean tests flagged: "
                     f"{rate(fpr.fpr * fpr.n_clean_tests, fpr.n_clean_tests)} |")
    tracing = watermark_row(t, "trigger", 0.02, "leak_tracing")
    if tracing is not None:
        lines.append(f"| Which licensee leaked it? | per-licensee messages ([06]({docs_link(t, '06_watermarks')})) "
                     f"| right licensee named: {rate(tracing.accuracy * tracing.n_models, tracing.n_models)} |")
    if t.has("trainprove_rules"):
        g = trainprove_rule(t)
        lines.append(f"| Did a suspect classifier train on my generator's images? | TrainProVe, Grubbs' test "
                     f"([07]({docs_link(t, '07_trainprove')})) | accuracy {rate(g.accuracy * g.pairs, g.pairs)}; "
                     f"TPR {rate(g.tpr * g.n_positive, g.n_positive)}; "
                     f"FPR {rate(g.fpr * g.n_negative, g.n_negative)} |")
    if t.has("verify_verdicts"):
        v = t["verify_verdicts"]
        lines.append(f"| The same verdict for a suspect served as files or over HTTP? | `python -m provlib verify` "
                     f"([08]({docs_link(t, '08_verify_a_suspect')})) | verdicts equal to notebook 04's: "
                     f"{rate(v.agrees_with_04.astype(bool).sum(), len(v))} |")
    return "\n".join(lines)


def docs_link(t: Tables, notebook: str, from_readme: bool = True) -> str:
    """The executed notebook's HTML when docs/notebooks/ has it, else the notebook itself."""
    if (t.root / "docs" / NOTEBOOK_HTML.format(notebook)).exists():
        return ("docs/" if from_readme else "") + NOTEBOOK_HTML.format(notebook)
    return ("" if from_readme else "../") + f"notebooks/{notebook}.ipynb"


def cost_block(t: Tables) -> str:
    """The cold cost of ``make workbook`` and the time of ``make test`` as measured (README)."""
    cold = cold_costs(t)
    machines = ", ".join(sorted(set(cold.cpu_model)))
    parts = [f"`make workbook` from an empty cache, the sum of each notebook's cold run: {minutes(cold.seconds.sum())} "
             f"({', '.join(f'{r.notebook[:2]} {minutes(r.seconds)}' for r in cold.itertuples())}), "
             f"peak memory {cold.peak_rss_gib.max():.1f} GiB, {int(cold.cpus.max())} cores, {machines}."]
    tests = test_cost(t)
    if tests is not None:
        parts.append(f"`make test` with the environment built: {minutes(tests.seconds)}, {int(tests.passed)} tests "
                     f"passed, {int(tests.cpus)} cores{', ' + tests.cpu_model if 'cpu_model' in tests else ''}.")
    return " ".join(parts)


def _section(t: Tables, title: str, anchor_notebook: str, text: str, *tables: str) -> str:
    anchor = anchor_notebook.replace("_", "-")  # a stable link target: docs/decisions.md links here
    link = docs_link(t, anchor_notebook, False)
    body = [f'<a id="{anchor}"></a>', "", f"## {title}", "", f"Notebook: [{anchor_notebook}]({link}).", "",
            text.strip(), ""]
    for table in tables:
        body += [table, ""]
    for figure in FIGURES_SHOWN.get(anchor_notebook[:2], []):
        if (t.root / "figures" / f"{figure}.png").exists():
            body += [f"![{figure}](../figures/{figure}.png)", ""]
    return "\n".join(body)


def _decision_rates(frame: pd.DataFrame, label: str, shown_as: str) -> pd.DataFrame:
    """Accuracy over the pairs, TPR and FPR of TrainProVe's decisions, each as a rate with its interval."""
    return pd.DataFrame({shown_as: frame[label], "accuracy": rates(frame, "accuracy", "pairs"),
                         "TPR": rates(frame, "tpr", "n_positive"), "FPR": rates(frame, "fpr", "n_negative")})


def results_markdown(t: Tables) -> str:
    """``docs/results.md``: one section per notebook with its headline tables."""
    out = ["# Results of the committed `cpu` run", "",
           f"Rendered by `python -m provlib report` from `data/results/` (seed {t.seed()}). Rates carry their counts "
           "and an exact (Clopper-Pearson) 95 % interval; means a t-interval. Design choices and their evidence: "
           "[decisions](decisions.md). Other seeds: [replications](replications.md).", "",
           "## Cost", "", cost_block(t), "",
           markdown_table(cold_costs(t).rename(columns={"seconds": "seconds (cold)", "peak_rss_gib": "peak GiB",
                                                        "cached_artifacts_at_start": "artifacts cached at its start",
                                                        "cpu_model": "CPU"}), 1),
           "", "## Targets", "", markdown_table(score_targets(t), 3), ""]

    # 01
    models = t["source_models"]
    memo = t["source_memorization"].pivot_table(index="source", columns="group", values="copy_rate")
    memo.columns = [f"copy rate: {c}" for c in memo.columns]
    out.append(_section(t, "01 Source models", "01_source_models",
                        "The source models, what they were fine-tuned on, and how often their generations copy a "
                        "training image (closer than the nearest 5 % of held-out real images).",
                        markdown_table(models), markdown_table(memo.reset_index(), 2)))

    # 02
    manifest = t["suspect_manifest"]
    counts = manifest.assign(kind=np.where(manifest.rho > 0, "infringing", "innocent")).groupby(
        ["split", "kind", "rho"]).model_id.nunique().rename("models").reset_index()
    out.append(_section(t, "02 Suspect models", "02_suspect_models",
                        "Suspects fine-tuned on a share ρ of a source's generations (infringing) or on real images "
                        "only (innocent, ρ = 0); shadow suspects are the owner's own and make every choice, test "
                        "suspects are only scored.", markdown_table(counts)))

    # 03
    point = t["delta0"]
    table2 = t["delta0_table2"]
    out.append(_section(t, "03 δ0 and the conf level", "03_delta0_threshold",
                        "δ0 and the conf level are chosen on shadow suspects only; the selected row is used by "
                        "notebooks 04 and 08. Table 2 analogue: the share of key samples per distance bin for one "
                        "infringing (ρ = 1) and one innocent suspect per source.",
                        markdown_table(point[["feature_space", "reference_bases", "delta0", "conf_threshold", "rule",
                                              "conf_level_rule", "shadow_conf_infringing", "shadow_conf_innocent",
                                              "n_shadow_infringing", "n_shadow_innocent", "selected"]]),
                        markdown_table(table2[table2.feature_space == chosen_operating_point(t).feature_space]
                                       .drop(columns=["feature_space", "model_id"]), 2)))

    # 04
    sel = instance_conf(t).reset_index()
    conf_rows = []
    for row in sel.itertuples():
        lo, hi = t_interval(row.mean_conf, row.std_conf, int(row.n_models))
        conf_rows.append({"keys": row.method, "rho": row.rho, "mean conf": row.mean_conf, "95 % interval":
                          f"[{lo:.2f}, {hi:.2f}]" if np.isfinite(lo) else "", "models": int(row.n_models)})
    decisions = instance_decisions(t)
    decided = pd.DataFrame({"rho": decisions.rho,
                            "called infringing": [rate(k, n) for k, n in zip(decisions.called, decisions.n_models)]})
    gap = instance_gap(t)
    by_n = t["instance_conf_by_n"]
    by_n = selected(by_n).pivot_table(index=["method", "rho"], columns="n_keys",
                                                                   values="mean_conf")
    by_n.columns = [f"N={c}" for c in by_n.columns]
    wm = t["instance_conf_with_watermark"] if t.has("instance_conf_with_watermark") else None
    tables = [markdown_table(pd.DataFrame(conf_rows), 3),
              f"Decisions at the level chosen in 03 (test suspects, {int(chosen_operating_point(t).query_images)} "
              "answers per key):", markdown_table(decided),
              "Figure 7 analogue, mean conf by number of keys N:", markdown_table(by_n.reset_index(), 3)]
    if wm is not None:
        tables += ["Baseline 1 (a watermark stamped in the source's generations) beside the key samples:",
                   markdown_table(wm.pivot_table(index="method", columns="rho", values="mean_conf").reset_index()
                                  .rename(columns=lambda c: f"rho={c:g}" if isinstance(c, float) else c), 3)]
    out.append(_section(t, "04 Instance-level attribution", "04_instance_attribution",
                        f"Mean conf (the share of key samples a suspect reproduces within δ0) on test suspects. "
                        f"Gap between Strategy 1+2 at ρ = {gap['rho']:g} and innocent suspects: "
                        f"{mean_ci(gap['gap'], gap['interval'])} ({gap['n_infringing']} infringing and "
                        f"{gap['n_innocent']} innocent listings).", *tables))

    # 05
    table1 = t["table1_discriminator"]
    t1 = pd.DataFrame({"source": table1.source, "AUC": table1.auc,
                       "AUC 95 % (bootstrap)": [f"[{a:.2f}, {b:.2f}]" for a, b in zip(table1.auc_lo, table1.auc_hi)],
                       "test models called right": rates(table1, "accuracy", "n_test_models"),
                       "TPR@10%FPR": table1.tpr_at_10fpr,
                       "test infringing": table1.n_test_infringing, "test innocent": table1.n_test_innocent,
                       "shadow models": table1.n_shadow_models})
    named = naming_counts(t)
    naming_rules = t["source_naming_rules"]
    out.append(_section(t, "05 Statistical-level attribution and naming the source", "05_discriminator",
                        f"Table 1 analogue: a discriminator trained on shadow suspects scores the test suspects. "
                        f"Source named right on test suspects: {rate(*named)}.",
                        markdown_table(t1, 2), markdown_table(t["source_attribution_confusion"]),
                        "Naming rules (chosen on shadow suspects):", markdown_table(naming_rules, 3)))

    # 06
    if t.has("dataset_watermark_detection"):
        det = t["dataset_watermark_detection"]
        det_rows = pd.DataFrame({
            "scheme": det.scheme, "strategy": det.strategy, "marked share": det.fraction,
            "marked fine-tunes detected": rates(det, "tpr", "n_models"),
            "clean tests flagged": rates(det, "fpr", "n_clean_tests")})
        trace = t["leak_tracing"]
        trace_rows = pd.DataFrame({
            "strategy": trace.strategy, "marked share": trace.fraction,
            "right licensee named": rates(trace, "accuracy", "n_models"),
            "wrong licensee": trace.named_wrong_licensee, "none named": trace.named_none})
        robust = t["watermark_robustness"]
        robust = robust[robust["transform"] != "none"]
        robust_rows = pd.DataFrame({
            "transform": robust["transform"], "applied to": robust.applied_to, "strategy": robust.strategy,
            "marked share": robust.fraction,
            "detected": rates(robust, "tpr", "n_models")})
        out.append(_section(t, "06 Dataset watermarks", "06_watermarks",
                            "A licensee fine-tunes on the owner's dataset with a share of it marked; the owner "
                            "queries the fine-tune and tests for the mark (and for which licensee's mark it is).",
                            markdown_table(det_rows, 2), "Leak tracing:", markdown_table(trace_rows, 2),
                            "Robustness (attacks on the answers or on the training images):",
                            markdown_table(robust_rows, 2), "Image quality of the marks:",
                            markdown_table(t["watermark_quality"][["use", "scheme", "images", "psnr_db", "ssim",
                                                                   "n_images"]], 3)))

    # 07
    if t.has("trainprove_rules"):
        rules = t["trainprove_rules"]
        tables = [markdown_table(_decision_rates(rules, "rule_name", "rule"))]
        if t.has("trainprove_by_family"):
            fam = t["trainprove_by_family"]
            fam = fam[fam.rule == "grubbs"]
            tables += ["Grubbs' test by suspect architecture:",
                       markdown_table(_decision_rates(fam, "architecture", "architecture"))]
        out.append(_section(t, "07 TrainProVe", "07_trainprove",
                            "Does a suspect classifier's accuracy on the defender's generated images stand out from "
                            "its accuracy on other generators' images (Grubbs' test, one-sided, α = 0.05)? Each "
                            "(suspect, defender) pair is one decision.", *tables))

    # 08
    if t.has("verify_verdicts"):
        v = t["verify_verdicts"]
        agree = v.groupby("kind").agg(suspects=("model_id", "count"),
                                      agree=("agrees_with_04", lambda s: int(s.astype(bool).sum())))
        agree["verdicts equal to notebook 04's"] = [rate(r.agree, r.suspects) for r in agree.itertuples()]
        tables = [markdown_table(agree.reset_index()[["kind", "verdicts equal to notebook 04's"]])]
        for name, column, notebook in (("verify_watermark_verdicts", "agrees_with_06", "06"),
                                       ("verify_trainprove_verdicts", "agrees_with_07", "07")):
            if t.has(name):
                frame = t[name]
                tables.append(f"{name.replace('_', ' ')}: equal to notebook {notebook}'s: "
                              f"{rate(frame[column].astype(bool).sum(), len(frame))}")
        out.append(_section(t, "08 Verify a suspect", "08_verify_a_suspect",
                            "Test suspects exported as a pipeline folder, a LoRA adapter and an HTTP endpoint, then "
                            "verified by `python -m provlib verify` with the owner's key file.", *tables))
    return "\n".join(out).rstrip() + "\n"


def replications_markdown(t: Tables) -> str:
    out = ["# Replications", "",
           "Rendered by `python -m provlib report` from `data/results/replications.csv`. Each row is one target "
           "scored on a run made with another seed or on another kind of CPU by "
           "`python -m provlib replicate --results <that run's results folder> --name <a name>`; the committed "
           "run is seed "
           f"{t.seed()}. No choice of the workbook was made on these runs.", ""]
    if not t.has("replications"):
        return "\n".join(out + ["No replication recorded yet.", ""])
    table = t["replications"]
    if "cpu" not in table:
        table = table.assign(cpu="not recorded")
    summary = table.groupby(["seed", "run", "cpu"]).met.agg(["sum", "count"]).reset_index()
    summary["targets met"] = [f"{int(s)}/{int(c)}" for s, c in zip(summary["sum"], summary["count"])]
    out += [markdown_table(summary[["seed", "run", "cpu", "targets met"]]), "",
            markdown_table(table[["seed", "run", "target", "bar", "value", "met"]], 3), ""]
    return "\n".join(out)


def replace_block(text: str, block: str, begin: str = README_BEGIN, end: str = README_END) -> str:
    if begin not in text or end not in text:
        raise ParameterError("README.md", f"the markers {begin!r} and {end!r} around the results block", "missing")
    head, rest = text.split(begin, 1)
    _, tail = rest.split(end, 1)
    return f"{head}{begin}\n{block}\n{end}{tail}"


def quick_block(t: Tables) -> str:
    cold = cold_costs(t, preset="quick")
    if cold.empty:
        return "No cold `quick` run is recorded in `data/results/workbook_runs.csv`."
    return (f"From an empty cache it took {minutes(cold.seconds.sum())} (notebooks "
            f"{', '.join(n[:2] for n in cold.notebook)}; {', '.join(sorted(set(cold.cpu_model)))}).")


def readme_rendered(t: Tables, readme_text: str) -> str:
    text = replace_block(readme_text, readme_block(t))
    text = replace_block(text, cost_block(t), "<!-- cost:begin -->", "<!-- cost:end -->")
    return replace_block(text, quick_block(t), "<!-- quick:begin -->", "<!-- quick:end -->")


def render(results: Path | None = None, root: Path | None = None, check: bool = False) -> list[Path]:
    """Write (or with ``check`` compare) docs/results.md, docs/replications.md and the README blocks.

    Returns the documents that differ from what the tables give (with ``check``) or that were rewritten.
    """
    root = Path(root or REPO_ROOT)
    t = Tables(results or root / "data" / "results", root=root)
    readme = root / "README.md"
    wanted = {root / "docs" / "results.md": results_markdown(t),
              root / "docs" / "replications.md": replications_markdown(t),
              readme: readme_rendered(t, readme.read_text())}
    changed = [path for path, text in wanted.items() if not path.exists() or path.read_text() != text]
    if not check:
        for path in changed:
            path.parent.mkdir(parents=True, exist_ok=True)
            atomic_write_text(path, wanted[path])
    return changed


def replicate(results: Path, run_name: str, into: Path | None = None) -> pd.DataFrame:
    """Score another run's tables against TARGETS and add (or replace) its rows in replications.csv."""
    t = Tables(results)
    seed = t.seed()
    scored = score_targets(t)
    if scored.empty:
        raise ParameterError("--results", "a results folder holding at least one headline table", str(results))
    cpus = sorted(set(t["workbook_runs"].get("cpu_model", pd.Series(dtype=str)).dropna())) if t.has("workbook_runs") else []
    scored.insert(0, "cpu", ", ".join(cpus) or "not recorded")
    scored.insert(0, "run", run_name)
    scored.insert(0, "seed", seed)
    into = Path(into or REPO_ROOT / "data" / "results" / "replications.csv")
    if into.exists():
        kept = pd.read_csv(into)
        scored = pd.concat([kept[kept.run != run_name], scored], ignore_index=True)
    atomic_write_text(into, scored.to_csv(index=False))
    return scored


def export_html(executed_dir: Path, out_dir: Path | None = None) -> list[Path]:
    """Executed notebooks as standalone HTML (figures embedded), for readers who browse the repository."""
    import nbformat
    from nbconvert import HTMLExporter

    executed_dir = Path(executed_dir)
    out_dir = Path(out_dir or REPO_ROOT / "docs" / "notebooks")
    found = sorted(executed_dir.glob("[0-9][0-9]_*.ipynb"))
    if not found:
        raise ParameterError("--html", "a folder of executed notebooks (outputs/cpu/notebooks after `make workbook`)",
                             str(executed_dir))
    exporter = HTMLExporter(template_name="lab")
    exporter.exclude_input_prompt = exporter.exclude_output_prompt = True
    written = []
    for path in found:
        notebook = nbformat.read(path, as_version=4)
        body, _ = exporter.from_notebook_node(notebook)
        target = out_dir / f"{path.stem}.html"
        target.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_text(target, body)
        written.append(target)
    return written
