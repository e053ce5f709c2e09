"""The owner's evidence, fixed before any suspect is seen: a key file with a content hash and a creation time.

A verification is only defensible if the key samples, the feature space and the decision levels were chosen
before the suspect was queried; otherwise an owner could pick keys that a given suspect happens to reproduce.
``save_key_file`` writes a folder once (``manifest.json`` with the settings, arrays in ``arrays.safetensors``,
optional model folders such as the copy descriptor) and records a SHA-256 over all of it and the time it was made.
``load_key_file`` recomputes the hash and refuses a folder edited since; every report carries the hash, so a
third party can check that the report and the key file the owner published beforehand are the same evidence.
Arrays are stored with safetensors, never pickled.
"""
from __future__ import annotations

import datetime
import hashlib
import json
import os
import shutil
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from safetensors.numpy import load_file, save_file

from provlib.core.errors import ParameterError

FORMAT = "provlib-key-file"
VERSION = 1
MANIFEST, ARRAYS = "manifest.json", "arrays.safetensors"
QUESTIONS = ("attribution", "trainprove", "watermark")


@dataclass
class KeyFile:
    folder: Path
    manifest: dict                       # the settings; ``question`` says which verification it is for
    arrays: dict = field(repr=False)     # name -> numpy array (key images, ...)
    sha256: str = ""
    created: str = ""

    @property
    def question(self) -> str:
        return self.manifest["question"]

    def subfolder(self, name: str) -> Path:
        """A model folder saved with the key file (e.g. the copy descriptor of the embedding space)."""
        path = self.folder / "folders" / name
        if not path.is_dir():
            raise ParameterError("key_file", f"a key file holding the folder '{name}'", str(self.folder))
        return path


def _content_files(folder: Path) -> list[Path]:
    """Every file the hash covers: all of the folder except the manifest's own hash fields (kept in the manifest)."""
    return sorted(p for p in folder.rglob("*") if p.is_file() and p.name != MANIFEST)


def content_hash(folder: Path, manifest: dict) -> str:
    """SHA-256 over the manifest (without its hash) and every other file's relative path and bytes."""
    digest = hashlib.sha256()
    settings = {k: v for k, v in manifest.items() if k != "sha256"}
    digest.update(json.dumps(settings, sort_keys=True, default=str).encode())
    for path in _content_files(folder):
        digest.update(str(path.relative_to(folder).as_posix()).encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()


def save_key_file(folder: str | Path, question: str, settings: dict, arrays: dict[str, np.ndarray],
                  folders: dict[str, str | Path] | None = None, overwrite: bool = False) -> KeyFile:
    """Write a key file once, atomically: a temporary sibling folder renamed into place when complete.

    ``settings`` must be JSON-serializable; ``folders`` are copied in (read-only evidence such as a descriptor).
    An existing key file is never replaced unless ``overwrite``: its hash may already have been published.
    """
    if question not in QUESTIONS:
        raise ParameterError("question", f"one of {QUESTIONS}", question)
    folder = Path(folder)
    if folder.exists() and not overwrite:
        raise ParameterError("key_file", "a folder that does not exist yet (a key file is written once; pass "
                             "overwrite=True to replace one whose hash was never published)", str(folder))
    folder.parent.mkdir(parents=True, exist_ok=True)
    tmp = folder.parent / f".tmp-{folder.name}-{uuid.uuid4().hex[:8]}"
    tmp.mkdir()
    try:
        save_file({name: np.ascontiguousarray(a) for name, a in arrays.items()}, str(tmp / ARRAYS))
        for name, source in (folders or {}).items():
            shutil.copytree(source, tmp / "folders" / name)
        created = datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")
        manifest = {"format": FORMAT, "version": VERSION, "question": question, "created": created, **settings}
        json.dumps(manifest)  # fails here, naming nothing half-written, if a setting is not JSON
        manifest["sha256"] = content_hash(tmp, manifest)
        (tmp / MANIFEST).write_text(json.dumps(manifest, indent=1, sort_keys=True))
        if folder.exists():
            shutil.rmtree(folder)
        os.replace(tmp, folder)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return load_key_file(folder)


def load_key_file(folder: str | Path, question: str | None = None, expected_sha256: str | None = None) -> KeyFile:
    """Read a key file and check its hash (and, if given, that it is the published one and answers ``question``)."""
    folder = Path(folder)
    path = folder / MANIFEST
    if not path.is_file():
        raise ParameterError("key_file", f"a key file folder holding {MANIFEST} (made by save_key_file)", str(folder))
    try:
        manifest = json.loads(path.read_text())
    except json.JSONDecodeError as error:
        raise ParameterError("key_file", f"a readable {MANIFEST} ({error})", str(folder)) from None
    if manifest.get("format") != FORMAT:
        raise ParameterError("key_file", f"a {FORMAT} manifest", manifest.get("format"))
    recorded, actual = manifest.get("sha256", ""), content_hash(folder, manifest)
    if recorded != actual:
        raise ParameterError("key_file", f"a key file unchanged since it was made (recorded sha256 {recorded[:16]}…, "
                             f"its content now hashes to {actual[:16]}…: it was edited after it was made)", str(folder))
    if expected_sha256 and not actual.startswith(expected_sha256.lower()):
        raise ParameterError("key_sha256", f"the published hash of this key file ({actual[:16]}…)", expected_sha256)
    if question is not None and manifest["question"] != question:
        raise ParameterError("key_file", f"a key file for the '{question}' question", manifest["question"])
    arrays = load_file(str(folder / ARRAYS)) if (folder / ARRAYS).is_file() else {}
    return KeyFile(folder, manifest, arrays, actual, manifest.get("created", ""))
