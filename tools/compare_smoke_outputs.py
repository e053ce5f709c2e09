"""Run every notebook at the ``smoke`` preset into temporary folders and compare its CSV tables with a reference set.

    python tools/compare_smoke_outputs.py --save REF_DIR     # record the tables of this checkout
    python tools/compare_smoke_outputs.py --compare REF_DIR  # exit 1 unless every table is byte-identical

The smoke run is deterministic (fixed seeds, one process), so a refactor that keeps behaviour keeps every byte.
Workbook run history (``workbook_runs.csv``) holds wall times and is left out.
"""
from __future__ import annotations

import argparse
import filecmp
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SKIP = {"workbook_runs.csv"}


def run_smoke(work: Path) -> Path:
    env = {**os.environ, "PROVLIB_RESULTS_DIR": str(work / "results"), "PROVLIB_FIGURES_DIR": str(work / "figures"),
           "PROVLIB_CACHE_DIR": str(work / "cache")}
    subprocess.run([sys.executable, "-m", "provlib", "run", "--preset", "smoke", "--output-dir", str(work / "notebooks")],
                   cwd=REPO, env=env, check=True)
    return work / "results"


def tables(folder: Path) -> dict[str, Path]:
    return {p.name: p for p in sorted(folder.glob("*.csv")) if p.name not in SKIP}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    group = parser.add_mutually_exclusive_group(required=True)
    group.add_argument("--save", type=Path, help="folder to write this checkout's smoke tables to")
    group.add_argument("--compare", type=Path, help="folder of reference smoke tables")
    parser.add_argument("--results", type=Path, help="compare an existing smoke results folder instead of running")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        results = args.results or run_smoke(Path(tmp))
        found = tables(results)
        if args.save:
            args.save.mkdir(parents=True, exist_ok=True)
            for name, path in found.items():
                shutil.copy2(path, args.save / name)
            print(f"saved {len(found)} tables to {args.save}")
            return 0
        reference = tables(args.compare)
        missing, extra = sorted(set(reference) - set(found)), sorted(set(found) - set(reference))
        differ = [n for n in sorted(set(reference) & set(found)) if not filecmp.cmp(reference[n], found[n], shallow=False)]
        for label, names in (("missing", missing), ("new", extra), ("different", differ)):
            for name in names:
                print(f"{label}: {name}")
        same = len(set(reference) & set(found)) - len(differ)
        print(f"{same} of {len(reference)} reference tables byte-identical")
        return 0 if not (missing or extra or differ) else 1


if __name__ == "__main__":
    sys.exit(main())
