"""The command line shared by the owner-side pilots and checks in ``tools/``.

Each takes ``--preset`` (a preset name), ``--set KEY=VALUE`` (repeatable: a preset field, its value read as YAML,
as papermill's ``-y`` reads it), ``--name`` (its table's name) and ``--out`` (the folder its table and the table's
meta file go to, ``provlib.core.results.write_pilot_table``). Kept apart from ``provlib.cli`` so a pilot runs
without papermill (e.g. on a many-core machine that has only the library).
"""
from __future__ import annotations

import argparse

import yaml

from provlib.core.errors import ParameterError


def parse_assignment(text: str) -> tuple[str, object]:
    """``key=value`` -> (key, value), the value read as YAML (numbers, lists, dicts, true/false), as papermill's -y."""
    key, sep, value = text.partition("=")
    if not sep or not key.strip():
        raise ParameterError("-p", "key=value, e.g. -p suspect_steps=800", text)
    return key.strip(), yaml.safe_load(value)


def pilot_parser(doc: str, name: str) -> argparse.ArgumentParser:
    """A parser with the shared options; ``name`` is the default table name."""
    parser = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--preset", default="cpu", help="the preset to start from (smoke: a quick check)")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="a preset field (YAML value), e.g. --set suspect_steps=500; repeatable")
    parser.add_argument("--name", default=name, help="the table's name under --out")
    parser.add_argument("--out", default="data/pilots", help="the folder the table and its meta file go to")
    return parser


def preset_overrides(args: argparse.Namespace) -> dict:
    """The ``--set`` assignments as preset keyword arguments."""
    return dict(parse_assignment(a) for a in args.set)
