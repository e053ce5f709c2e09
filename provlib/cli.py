"""The command line: ``python -m provlib run --preset cpu`` executes the numbered notebooks headless with papermill.

``-p key=value`` (repeatable) and ``--parameters FILE.yaml`` set preset fields (flat or dotted names, see
``provlib.presets``) or a notebook's own parameters; everything is validated before the first notebook starts.
Executed copies go to ``outputs/<preset>/notebooks/`` (git-ignored); results and figures go where the preset's run
writes them (``data/results/`` and ``figures/`` for ``cpu`` only, ``outputs/<preset>/`` otherwise) or under
``--output-dir``. Wall time, peak memory (summed over the kernel and its worker processes, sampled every second)
and how many finished artifacts the cache held at the start (0 = cold) are appended to ``workbook_runs.csv``, so
the README's figures come from a real run. Headless, every cell start and the long loops' progress are printed
with the elapsed time.
"""
from __future__ import annotations

import argparse
import ast
import contextlib
import datetime
import logging
import os
import threading
import time
from pathlib import Path

import nbformat
import pandas as pd
import papermill
import psutil
import yaml

from provlib.core.errors import ParameterError
from provlib.core.paths import REPO_ROOT, cache_dir, outputs_dir, results_dir
from provlib.core.store import MARKER, atomic_write_text
from provlib.presets import PRESETS, load_preset, resolve_name
from provlib.verify import commands as verify_commands

NOTEBOOK_DIR = REPO_ROOT / "notebooks"
TRAINPROVE_NOTEBOOKS = {"07"}  # the others read the attribution inputs (data folders, base checkpoints)


class PeakMemory:
    """Peak of the summed RSS of this process's descendants (the kernel and its workers)."""

    def __init__(self, interval: float = 1.0):
        self.interval, self.peak, self._stop = interval, 0, threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self):
        me = psutil.Process()
        while not self._stop.is_set():
            total = 0
            for child in me.children(recursive=True):
                try:
                    total += child.memory_info().rss
                except psutil.Error:
                    pass
            self.peak = max(self.peak, total)
            self._stop.wait(self.interval)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()


def parse_assignment(text: str) -> tuple[str, object]:
    """``key=value`` -> (key, value), the value read as YAML (numbers, lists, dicts, true/false), as papermill's -y."""
    key, sep, value = text.partition("=")
    if not sep or not key.strip():
        raise ParameterError("-p", "key=value, e.g. -p suspect_steps=800", text)
    return key.strip(), yaml.safe_load(value)


def notebooks(only: list[str] | None = None) -> list[Path]:
    found = sorted(NOTEBOOK_DIR.glob("[0-9][0-9]_*.ipynb"))
    if only:
        found = [nb for nb in found if nb.name[:2] in only]
    return found


def notebook_parameters(notebook: Path) -> dict:
    """The names and defaults of a notebook's ``parameters`` cell: what ``-p`` may set besides preset fields."""
    cell = next(c for c in nbformat.read(notebook, as_version=4).cells if "parameters" in c.metadata.get("tags", []))
    found = {}
    for node in ast.parse(cell.source).body:
        if isinstance(node, ast.Assign):
            for target in node.targets:
                if isinstance(target, ast.Name):
                    found[target.id] = ast.literal_eval(node.value)
    return found


def plan(preset: str, selected: list[Path], parameters: dict | None) -> tuple[dict, dict[str, dict]]:
    """Split ``parameters`` into preset overrides and each notebook's own parameters, and validate both up front.

    Returns (overrides, papermill parameters per notebook name). Raises ``ParameterError`` naming the first
    parameter that no preset field and no selected notebook takes, or a value the preset refuses.
    """
    if preset not in PRESETS:
        raise ParameterError("preset", f"one of {sorted(PRESETS)}", preset)
    parameters = dict(parameters or {})
    overrides = dict(parameters.pop("overrides", None) or {})
    declared = {nb.name: notebook_parameters(nb) for nb in selected}
    for key in list(parameters):
        if key == "preset":
            raise ParameterError("preset", "given with --preset, not as -p preset=...", parameters[key])
        if any(key in names for names in declared.values()):
            continue
        try:
            resolve_name(key)
        except ParameterError:
            known = sorted({n for names in declared.values() for n in names} - {"preset", "overrides"})
            raise ParameterError(key, f"a preset field (see provlib.presets.FLAT_NAMES) or a parameter of the selected "
                                 f"notebooks, one of {known}") from None
        overrides[key] = parameters.pop(key)
    if preset == "sd-rehearsal":
        # imported here: it loads the model stack, which other presets' planning does not need
        from provlib.rehearsal import rehearsal_inputs
        overrides = {**rehearsal_inputs(cache_dir() / "rehearsal-inputs"), **overrides}
    numbers = {nb.name[:2] for nb in selected}
    if numbers - TRAINPROVE_NOTEBOOKS:
        load_preset(preset, inputs_for="attribution", **overrides)
    if numbers & TRAINPROVE_NOTEBOOKS:
        load_preset(preset, inputs_for="trainprove", **overrides)
    per_notebook = {nb.name: {"preset": preset, "overrides": overrides,
                              **{k: v for k, v in parameters.items() if k in declared[nb.name]}} for nb in selected}
    return overrides, per_notebook


class ElapsedFormatter(logging.Formatter):
    """Log lines prefixed with the time since the notebook started (``[12:34]``)."""

    def __init__(self):
        super().__init__("%(message)s")
        self.start = time.time()

    def format(self, record):
        minutes, seconds = divmod(int(record.created - self.start), 60)
        return f"[{minutes:02d}:{seconds:02d}] " + super().format(record).rstrip()


@contextlib.contextmanager
def environment(**values: str):
    """Set environment variables for the notebooks' kernels, restoring the previous ones afterwards."""
    saved = {var: os.environ.get(var) for var in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for var, value in saved.items():
            if value is None:
                os.environ.pop(var, None)
            else:
                os.environ[var] = value


@contextlib.contextmanager
def headless_logging(enabled: bool):
    """Print papermill's cell starts and the kernel's output (progress bars included) while a notebook runs."""
    if not enabled:
        yield
        return
    logger, handler = logging.getLogger("papermill"), logging.StreamHandler()
    handler.setFormatter(ElapsedFormatter())
    previous = (logger.level, logger.propagate)
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    logger.propagate = False
    try:
        with environment(PROVLIB_HEADLESS="1"):
            yield
    finally:
        logger.removeHandler(handler)
        logger.setLevel(previous[0])
        logger.propagate = previous[1]


DIRECTORY_VARIABLES = ("PROVLIB_CACHE_DIR", "PROVLIB_RESULTS_DIR", "PROVLIB_FIGURES_DIR")


@contextlib.contextmanager
def redirected_outputs(output_dir: Path | None):
    """With ``--output-dir``, results and figures go to ``<dir>/results`` and ``<dir>/figures``.

    Every directory the kernels read from the environment is made absolute here: a kernel runs in ``notebooks/``, so
    a relative ``PROVLIB_CACHE_DIR=data/cache/x`` would otherwise name an empty cache under ``notebooks/``.
    """
    values = {var: str(Path(os.environ[var]).resolve()) for var in DIRECTORY_VARIABLES if os.environ.get(var)}
    if output_dir is not None:
        values.update(PROVLIB_RESULTS_DIR=str(Path(output_dir).resolve() / "results"),
                      PROVLIB_FIGURES_DIR=str(Path(output_dir).resolve() / "figures"))
    with environment(**values):
        yield


def run(preset: str, only: list[str] | None = None, output_dir: Path | None = None, log: bool = True,
        parameters: dict | None = None) -> pd.DataFrame:
    """Execute the selected notebooks in order; ``parameters`` are preset fields and notebook parameters."""
    selected = notebooks(only)
    if only and len(selected) != len(set(only)):
        raise ParameterError("only", f"notebook numbers among {[nb.name[:2] for nb in notebooks()]}", only)
    _, per_notebook = plan(preset, selected, parameters)
    executed_dir = Path(output_dir) / "notebooks" if output_dir else outputs_dir(preset) / "notebooks"
    executed_dir.mkdir(parents=True, exist_ok=True)
    rows = []
    run_started = datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")
    processor = cpu_model()
    with redirected_outputs(output_dir), headless_logging(log):
        for notebook in selected:
            print(f"== {notebook.name} (preset={preset}) started {datetime.datetime.now():%H:%M:%S}", flush=True)
            cached = len(list((cache_dir() / "artifacts").glob("*/*/" + MARKER)))
            start = time.time()
            with PeakMemory() as memory:
                papermill.execute_notebook(str(notebook), str(executed_dir / notebook.name), cwd=str(NOTEBOOK_DIR),
                                           parameters=per_notebook[notebook.name], progress_bar=False,
                                           log_output=log, kernel_name="python3")
            rows.append({"notebook": notebook.name, "preset": preset, "seconds": round(time.time() - start, 1),
                         "peak_rss_gib": round(memory.peak / 2**30, 2), "cpus": os.cpu_count(),
                         "finished": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
                         "cached_artifacts_at_start": cached, "run_started": run_started,
                         "cpu_model": processor})
            print(f"   {rows[-1]['seconds']} s, peak {rows[-1]['peak_rss_gib']} GiB", flush=True)
            # recorded as each notebook ends: a run stopped or crashed later keeps the cost of what it finished
            record_run(results_dir(preset) / "workbook_runs.csv", rows[-1])
    return pd.DataFrame(rows)


def cpu_model() -> str:
    """The processor's name and vector width: costs and results compare only on one kind (torch picks kernels by it)."""
    import torch

    name = "unknown"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                name = line.split(":", 1)[1].strip()
                break
    return f"{name} ({torch.backends.cpu.get_cpu_capability()})"


def record_run(runs_file: Path, row: dict) -> None:
    """Append one notebook's cost to ``workbook_runs.csv``: every run is kept, so a cold run's cost stays on record
    after warm re-runs (the report takes, per notebook, the run that started with the fewest cached artifacts)."""
    table = pd.DataFrame([row])
    history = pd.concat([pd.read_csv(runs_file), table], ignore_index=True) if runs_file.exists() else table
    atomic_write_text(runs_file, history.to_csv(index=False))


def read_parameter_file(path: str) -> dict:
    try:
        loaded = yaml.safe_load(Path(path).read_text())
    except (OSError, yaml.YAMLError) as error:
        raise ParameterError("--parameters", "a readable YAML file of key: value pairs", path) from error
    if not isinstance(loaded, dict):
        raise ParameterError("--parameters", "a YAML mapping of key: value pairs", path)
    return loaded


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m provlib", description="provenance-workbook's command line.")
    commands = parser.add_subparsers(dest="command", required=True)
    run_parser = commands.add_parser(
        "run", help="execute the numbered notebooks headless with papermill",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Execute the numbered notebooks with papermill.\n\n"
                    f"presets:   {', '.join(sorted(PRESETS))}\n"
                    f"notebooks: {', '.join(nb.name for nb in notebooks())}\n\n"
                    "example (paper scale):\n"
                    "  python -m provlib run --preset sd -p dataset_dirs='{faces: /data/celeba, scenes: /data/cc3m}' \\\n"
                    "      -p base_checkpoints='{v1: /models/sd-v1-5, v2: /models/sd-2-1}' --only 01,02,03,04,05")
    run_parser.add_argument("--preset", default="cpu", help=f"one of {sorted(PRESETS)} (default: cpu)")
    run_parser.add_argument("--only", default="", help="comma-separated notebook numbers, e.g. 01,02")
    run_parser.add_argument("-p", "--set", dest="assignments", action="append", default=[], metavar="KEY=VALUE",
                            help="a preset field (flat or dotted name) or a notebook parameter; YAML value; repeatable")
    run_parser.add_argument("--parameters", default=None, metavar="FILE.yaml",
                            help="a YAML file of the same key: value pairs (-p wins on a clash)")
    run_parser.add_argument("--output-dir", default=None,
                            help="write executed notebooks, results and figures under this folder")
    run_parser.add_argument("--quiet", action="store_true", help="print one line per notebook, not its progress")
    report_parser = commands.add_parser(
        "report", help="render docs/results.md, docs/replications.md and the README's results from data/results/")
    report_parser.add_argument("--check", action="store_true",
                               help="write nothing; exit 1 when a document differs from what the tables give")
    report_parser.add_argument("--html", default=None, metavar="EXECUTED_DIR",
                               help="also write each executed notebook of this folder as HTML into docs/notebooks/")
    replicate_parser = commands.add_parser(
        "replicate", help="score another run's tables (another seed) against the headline targets into "
                          "data/results/replications.csv, then re-render docs/replications.md")
    replicate_parser.add_argument("--results", required=True, help="that run's results folder")
    replicate_parser.add_argument("--name", required=True, help="a short name for that run, e.g. cpu-seed1")
    time_parser = commands.add_parser(
        "time-tests", help="run the test suite and record its wall time in data/results/test_runs.csv")
    time_parser.add_argument("pytest_args", nargs="*",
                             help='arguments for pytest (default: -m "not extended", what `make test` runs)')
    verify_commands.add_commands(commands)
    return parser


def time_tests(pytest_args: list[str]) -> int:
    """Run pytest in a subprocess; record wall time and the pass count (the README's test cost is rendered from it)."""
    import re
    import subprocess
    import sys

    start = time.time()
    pytest_args = pytest_args or ["-m", "not extended"]  # what `make test` runs
    done = subprocess.run([sys.executable, "-m", "pytest", *pytest_args], cwd=REPO_ROOT, capture_output=True,
                          text=True)
    seconds = round(time.time() - start, 1)
    print(done.stdout[-4000:], done.stderr[-2000:], sep="\n")
    summary = done.stdout.strip().splitlines()[-1] if done.stdout.strip() else ""
    passed = re.search(r"(\d+) passed", summary)
    if done.returncode == 0 and passed:
        runs_file = results_dir() / "test_runs.csv"
        row = pd.DataFrame([{"command": "pytest " + " ".join(pytest_args), "seconds": seconds,
                             "passed": int(passed.group(1)), "cpus": os.cpu_count(), "cpu_model": cpu_model(),
                             "finished": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")}])
        atomic_write_text(runs_file, row.to_csv(index=False))  # the latest passing run only
        from provlib import report
        report.render()  # the README's test time is rendered from that table
    print(f"pytest: {seconds} s, exit {done.returncode}")
    return done.returncode


def main(argv: list[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    if args.command == "run":
        try:
            parameters = read_parameter_file(args.parameters) if args.parameters else {}
            parameters.update(dict(parse_assignment(a) for a in args.assignments))
            only = [x.strip() for x in args.only.split(",") if x.strip()] or None
            run(args.preset, only, Path(args.output_dir) if args.output_dir else None, log=not args.quiet,
                parameters=parameters)
        except ParameterError as error:
            raise SystemExit(f"python -m provlib run: {error}") from None
    elif args.command == "report":
        from provlib import report
        try:
            if args.html:
                for path in report.export_html(Path(args.html)):
                    print(f"wrote {path.relative_to(REPO_ROOT)}")
            changed = report.render(check=args.check)
        except ParameterError as error:
            raise SystemExit(f"python -m provlib report: {error}") from None
        for path in changed:
            print(f"{'differs from the tables' if args.check else 'wrote'}: {path.relative_to(REPO_ROOT)}")
        if args.check and changed:
            raise SystemExit(1)
    elif args.command == "replicate":
        from provlib import report
        try:
            scored = report.replicate(Path(args.results), args.name)
            report.render()
        except ParameterError as error:
            raise SystemExit(f"python -m provlib replicate: {error}") from None
        print(scored[scored.run == args.name].to_string(index=False))
    elif args.command == "time-tests":
        raise SystemExit(time_tests(args.pytest_args))
    else:
        try:
            verify_commands.dispatch(args, parse_assignment)
        except ParameterError as error:
            raise SystemExit(f"python -m provlib {args.command}: {error}") from None


if __name__ == "__main__":
    main()
