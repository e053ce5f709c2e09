"""Content fingerprints of input folders (datasets, checkpoints), so an edited input never reuses a stale artifact.

A folder's fingerprint hashes every file's relative path, size and modification time, plus the bytes of the small
files that say what a folder *is* (caption files, JSON configs such as ``model_index.json``) and the header of every
safetensors file (tensor names, shapes, dtypes and offsets). Adding, removing or rewriting any file changes it;
reading it costs one ``stat`` per file and a few small reads, never a pass over the weights or the images.
"""
from __future__ import annotations

import hashlib
import os
import struct
from pathlib import Path

CONTENT_HASHED = {".csv", ".jsonl", ".json", ".txt", ".yaml", ".yml"}
SMALL_FILE = 1 << 20  # metadata files above 1 MiB are identified by size and time only


def _safetensors_header(path: Path) -> bytes:
    with path.open("rb") as handle:
        prefix = handle.read(8)
        if len(prefix) < 8:
            return prefix
        (length,) = struct.unpack("<Q", prefix)
        return handle.read(min(length, 16 << 20))


def folder_fingerprint(folder: str | Path) -> str:
    """A short hash of what ``folder`` holds (see module doc); a path that is not a folder hashes its name only."""
    folder = Path(folder).expanduser()
    digest = hashlib.sha256()
    if not folder.is_dir():
        digest.update(f"not-a-folder:{folder}".encode())
        return digest.hexdigest()[:16]
    for root, dirs, files in os.walk(folder):
        dirs.sort()
        for name in sorted(files):
            path = Path(root) / name
            stat = path.stat()
            digest.update(f"{path.relative_to(folder).as_posix()}\0{stat.st_size}\0{stat.st_mtime_ns}\0".encode())
            if path.suffix in CONTENT_HASHED and stat.st_size <= SMALL_FILE:
                digest.update(path.read_bytes())
            elif path.suffix == ".safetensors":
                digest.update(_safetensors_header(path))
    return digest.hexdigest()[:16]


class Fingerprints:
    """Fingerprints of the folders one zoo reads, each computed once per zoo (a zoo is one notebook run's view of
    its inputs; a new zoo, as every notebook's first cell builds, sees any edit made since)."""

    def __init__(self):
        self._known: dict[str, str] = {}

    def __call__(self, folder: str | Path) -> str:
        key = str(Path(folder).expanduser())
        if key not in self._known:
            self._known[key] = folder_fingerprint(key)
        return self._known[key]
