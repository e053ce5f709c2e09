"""The command line: ``python -m provlib run --preset cpu`` executes the numbered notebooks headless with papermill.

Executed copies go to ``outputs/notebooks/<preset>/`` (git-ignored). Wall time, peak memory (summed
over the kernel and its worker processes, sampled every second) and how many finished artifacts the
cache held at the start (0 = cold) are appended to ``data/results/workbook_runs.csv``, so the README's
figures come from a real run.
"""
from __future__ import annotations

import argparse
import datetime
import os
import threading
import time
from pathlib import Path

import pandas as pd
import papermill
import psutil

from provlib.core.paths import REPO_ROOT, cache_dir, results_dir
from provlib.core.store import MARKER, atomic_write_text
from provlib.presets import PRESETS

NOTEBOOK_DIR = REPO_ROOT / "notebooks"


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


def notebooks(only: list[str] | None = None) -> list[Path]:
    found = sorted(NOTEBOOK_DIR.glob("[0-9][0-9]_*.ipynb"))
    if only:
        found = [nb for nb in found if nb.name[:2] in only]
    return found


def run(preset: str, only: list[str] | None = None, output_dir: Path | None = None, log: bool = True,
        parameters: dict | None = None) -> pd.DataFrame:
    if preset not in PRESETS:
        raise SystemExit(f"--preset: expected one of {sorted(PRESETS)}, got {preset!r}")
    output_dir = Path(output_dir or REPO_ROOT / "outputs" / "notebooks" / preset)
    output_dir.mkdir(parents=True, exist_ok=True)
    rows = []
    for notebook in notebooks(only):
        print(f"== {notebook.name} (preset={preset})", flush=True)
        cached = len(list((cache_dir() / "artifacts").glob("*/*/" + MARKER)))
        start = time.time()
        with PeakMemory() as memory:
            papermill.execute_notebook(str(notebook), str(output_dir / notebook.name), cwd=str(NOTEBOOK_DIR),
                                       parameters={"preset": preset, **(parameters or {})}, progress_bar=False,
                                       log_output=log, kernel_name="python3")
        rows.append({"notebook": notebook.name, "preset": preset, "seconds": round(time.time() - start, 1),
                     "peak_rss_gib": round(memory.peak / 2**30, 2), "cpus": os.cpu_count(),
                     "cached_artifacts_at_start": cached,
                     "finished": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")})
        print(f"   {rows[-1]['seconds']} s, peak {rows[-1]['peak_rss_gib']} GiB", flush=True)
    table = pd.DataFrame(rows)
    # a history: every run is kept, so a cold run's cost stays on record after warm re-runs
    runs_file = results_dir() / "workbook_runs.csv"
    history = pd.concat([pd.read_csv(runs_file), table], ignore_index=True) if runs_file.exists() else table
    atomic_write_text(runs_file, history.to_csv(index=False))
    return table


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m provlib", description="provenance-workbook's command line.")
    commands = parser.add_subparsers(dest="command", required=True)
    run_parser = commands.add_parser(
        "run", help="execute the numbered notebooks headless with papermill",
        description=f"Execute the numbered notebooks with papermill. Presets: {', '.join(sorted(PRESETS))}. "
                    f"Notebooks: {', '.join(nb.name for nb in notebooks())}.")
    run_parser.add_argument("--preset", default="cpu", help=f"one of {sorted(PRESETS)} (default: cpu)")
    run_parser.add_argument("--only", default="", help="comma-separated notebook numbers, e.g. 01,02")
    run_parser.add_argument("--output-dir", default=None, help="where executed notebooks go")
    return parser


def main(argv: list[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    if args.command == "run":
        run(args.preset, [x.strip() for x in args.only.split(",") if x.strip()] or None, args.output_dir)


if __name__ == "__main__":
    main()
