"""Artifact cache keyed by a hash of the config that produced each artifact, and the seeds derived from configs.

An artifact is a directory ``<root>/<kind>/<hash>``. It is built in a temporary sibling directory and
renamed into place only after its builder returned and a ``_config.json`` marker was written, so a
killed run never leaves a partial artifact under a final name; the next run rebuilds it from scratch
(or from the builder's own training checkpoints under ``work_dir``). A changed config changes the hash,
so a stale artifact is never reused.
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import uuid
from pathlib import Path
from typing import Callable

import numpy as np

MARKER = "_config.json"


def config_hash(config: dict) -> str:
    blob = json.dumps(config, sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def levers_on(**levers) -> dict:
    """The levers of a config that are on (neither None, False nor 0), to merge into a cache key.

    A lever added to the workbook enters keys only when it is on, so every artifact built before it existed keeps
    its key and stays cached.
    """
    return {name: value for name, value in levers.items() if value not in (None, False, 0)}


class ArtifactStore:
    def __init__(self, root: str | Path):
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)

    def path(self, kind: str, config: dict) -> Path:
        return self.root / kind / config_hash(config)

    def exists(self, kind: str, config: dict) -> bool:
        return (self.path(kind, config) / MARKER).is_file()

    def work_dir(self, kind: str, config: dict) -> Path:
        """A scratch folder that survives crashes (training checkpoints live here) and is removed on success."""
        path = self.root / "_work" / kind / config_hash(config)
        path.mkdir(parents=True, exist_ok=True)
        return path

    def get_or_build(self, kind: str, config: dict, build: Callable[[Path], None]) -> Path:
        """Return the artifact's directory, calling ``build(tmp_dir)`` only if it is not complete yet."""
        final = self.path(kind, config)
        if (final / MARKER).is_file():
            return final
        final.parent.mkdir(parents=True, exist_ok=True)
        tmp = final.parent / f".tmp-{final.name}-{uuid.uuid4().hex[:8]}"
        tmp.mkdir()
        try:
            build(tmp)
            (tmp / MARKER).write_text(json.dumps(config, sort_keys=True, indent=1, default=str))
            if final.exists():  # a partial directory without marker can only come from outside tools; drop it
                if (final / MARKER).is_file():  # another worker finished the same artifact first
                    shutil.rmtree(tmp)
                    return final
                shutil.rmtree(final)
            os.replace(tmp, final)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        shutil.rmtree(self.root / "_work" / kind / final.name, ignore_errors=True)
        return final

    def clean_stale_temporaries(self) -> int:
        """Remove temp dirs left by killed runs; returns how many were removed."""
        stale = list(self.root.glob("*/.tmp-*"))
        for path in stale:
            shutil.rmtree(path, ignore_errors=True)
        return len(stale)


def atomic_write_text(path: str | Path, text: str) -> None:
    """Write a result file so a reader never sees half of it."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}.tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def atomic_save_arrays(path: str | Path, arrays: dict) -> None:
    """Write numpy arrays as one safetensors file so a reader never sees half of it."""
    from safetensors.numpy import save_file

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}.tmp")
    save_file({name: np.ascontiguousarray(a) for name, a in arrays.items()}, str(tmp))
    os.replace(tmp, path)


def derive_seed(*parts) -> int:
    """A stable 31-bit seed from any mix of ints and strings (every seed in the workbook is derived this way)."""
    digest = config_hash({"parts": [str(p) for p in parts]})
    return int(digest[:8], 16) % (2**31)
