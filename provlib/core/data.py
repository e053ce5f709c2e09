"""Captioned image sets: procedural domains at CPU scale, a user's image folder at paper scale.

Every domain (the analogue of one dataset) has a caption list and two disjoint image splits:
``private`` (what a source model is trained on: the owner's data) and ``real`` (the pool of real,
non-generated data a suspect mixes with generated images).
"""
from __future__ import annotations

import csv
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from provlib.core import scenes
from provlib.core.errors import ParameterError

# name -> (what it stands for, kind of scenes)
DOMAINS = {
    "generic": "broad web-like pre-training data (faces and object scenes): the LAION analogue",
    "faces": "attribute-captioned faces with a 64-caption vocabulary: the CelebA-Dialog analogue",
    "scenes": "object scenes with varied captions: the CC3M analogue",
}
# "licensed": the dataset an owner licenses out with marks (notebook 06), its own draw of a domain
SPLITS = ("private", "real", "licensed")


@dataclass
class CaptionedImageSet:
    """Images as uint8 [n, H, W, 3] with one caption each; ``ids`` name each image's origin."""

    images: np.ndarray
    captions: list[str]
    ids: list[str]

    def __post_init__(self):
        if not (len(self.images) == len(self.captions) == len(self.ids)):
            raise ValueError("images, captions and ids must have the same length")

    def __len__(self) -> int:
        return len(self.captions)

    def subset(self, indices) -> "CaptionedImageSet":
        indices = [int(i) for i in indices]
        return CaptionedImageSet(self.images[indices], [self.captions[i] for i in indices], [self.ids[i] for i in indices])

    def with_duplicates(self, indices, copies: int) -> "CaptionedImageSet":
        """This set with the images at ``indices`` appearing ``copies`` times in all (appended at the end)."""
        return CaptionedImageSet.concat([self, self.subset(list(indices) * (copies - 1))]) if len(indices) else self

    @staticmethod
    def concat(parts: list["CaptionedImageSet"]) -> "CaptionedImageSet":
        return CaptionedImageSet(
            np.concatenate([p.images for p in parts]), sum((p.captions for p in parts), []), sum((p.ids for p in parts), [])
        )

    def save(self, directory: Path) -> None:
        """Plain files only (npy + json), so loading never unpickles anything."""
        directory.mkdir(parents=True, exist_ok=True)
        np.save(directory / "images.npy", self.images, allow_pickle=False)
        (directory / "captions.json").write_text(json.dumps({"captions": self.captions, "ids": self.ids}))

    @staticmethod
    def load(directory: Path) -> "CaptionedImageSet":
        meta = json.loads((Path(directory) / "captions.json").read_text())
        return CaptionedImageSet(np.load(Path(directory) / "images.npy", allow_pickle=False), meta["captions"], meta["ids"])


def _domain_caption_list(domain: str, size: int, seed: int) -> list:
    """The domain's fixed caption list (attribute objects), deterministic from the seed."""
    rng = np.random.default_rng([seed, 1])
    if domain == "faces":
        return scenes.all_face_attributes()
    if domain == "scenes":
        return [scenes.random_scene_attributes(rng, max_objects=2) for _ in range(size)]
    if domain == "generic":
        faces = scenes.all_face_attributes()
        n_faces = size // 4  # a quarter faces, the rest object scenes of up to 2 objects
        return [faces[i] for i in rng.integers(0, len(faces), n_faces)] + [
            scenes.random_scene_attributes(rng, max_objects=2) for _ in range(size - n_faces)
        ]
    raise ParameterError("domain", f"one of {sorted(DOMAINS)}", domain)


def _render(attrs, seed: int, resolution: int, identity_grid: int) -> np.ndarray:
    if isinstance(attrs, scenes.FaceAttributes):
        return scenes.render_face(attrs, seed, resolution, identity_grid)
    return scenes.render_scene(attrs, seed, resolution, identity_grid)


def procedural_domain(domain: str, split: str, n_images: int, resolution: int, seed: int,
                      caption_list_size: int = 400, identity_grid: int = 0) -> CaptionedImageSet:
    """Render ``n_images`` of a domain's split. Splits never share an image: each image's seed encodes its split.

    ``identity_grid`` > 0 gives every image a coarse undescribed background grid (see ``provlib.core.scenes``).
    """
    if split not in SPLITS:
        raise ParameterError("split", f"one of {SPLITS}", split)
    if n_images < 1:
        raise ParameterError("n_images", "a positive integer", n_images)
    caption_list = _domain_caption_list(domain, caption_list_size, seed)
    domain_code = sorted(DOMAINS).index(domain)
    split_code = SPLITS.index(split)
    rng = np.random.default_rng([seed, domain_code, split_code])
    if split == "private":
        # the owner's set uses each caption once before any repeats, so a caption names one training
        # image where the list allows it (as in CC3M); the real pool draws captions independently
        picks = np.resize(rng.permutation(len(caption_list)), n_images)
    else:
        picks = rng.integers(0, len(caption_list), n_images)
    images, captions, ids = [], [], []
    for i, pick in enumerate(picks):
        image_seed = int(np.random.SeedSequence([seed, domain_code, split_code, i]).generate_state(1)[0])
        images.append(_render(caption_list[pick], image_seed, resolution, identity_grid))
        captions.append(caption_list[pick].caption())
        ids.append(f"{domain}/{split}/{i}")
    return CaptionedImageSet(np.stack(images), captions, ids)


def load_image(path: Path, resolution: int) -> np.ndarray:
    """Read one image as RGB uint8 at ``resolution`` (centre crop to square, then resize)."""
    try:
        with Image.open(path) as img:
            img = img.convert("RGB")
    except (FileNotFoundError, UnidentifiedImageError, OSError) as exc:
        raise ParameterError("image file", "a readable image", str(path)) from exc
    side = min(img.size)
    left, top = (img.width - side) // 2, (img.height - side) // 2
    img = img.crop((left, top, left + side, top + side)).resize((resolution, resolution), Image.BICUBIC)
    return np.asarray(img)


def read_caption_file(path: Path) -> list[tuple[str, str]]:
    """(file_name, caption) rows from ``captions.csv`` or ``metadata.jsonl`` (the diffusers imagefolder layout)."""
    path = Path(path)
    rows = []
    if path.is_file() and not path.read_bytes().strip():
        raise ParameterError("caption file", f"a non-empty {path.name} (this one is empty)", str(path))
    try:
        if path.suffix == ".csv":
            with path.open(newline="", encoding="utf-8") as handle:
                reader = csv.DictReader(handle)
                missing = {"file_name", "caption"} - set(reader.fieldnames or [])
                if missing:
                    raise ParameterError("caption file", f"CSV columns file_name and caption in {path}", reader.fieldnames)
                for line_number, r in enumerate(reader, 2):
                    caption = (r["caption"] or "").strip()
                    if not r["file_name"] or not caption:
                        raise ParameterError("caption file", f"a file_name and a non-empty caption on line {line_number} of "
                                             f"{path}", {k: r[k] for k in ("file_name", "caption")})
                    rows.append((r["file_name"], caption))
        elif path.suffix == ".jsonl":
            for line_number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
                if line.strip():
                    record = json.loads(line)
                    caption = record.get("text", record.get("caption"))
                    if not record.get("file_name") or not isinstance(caption, str) or not caption.strip():
                        raise ParameterError("caption file", f"'file_name' and 'text' on line {line_number} of {path}", record)
                    rows.append((record["file_name"], caption))
        else:
            raise ParameterError("caption file", "a .csv or .jsonl file", str(path))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError, csv.Error) as exc:
        raise ParameterError("caption file", "a readable UTF-8 captions.csv or metadata.jsonl", str(path)) from exc
    if not rows:
        raise ParameterError("caption file", "at least one (file_name, caption) row", str(path))
    return rows


def folder_dataset(directory: str | Path, resolution: int, limit: int | None = None) -> CaptionedImageSet:
    """A user's image folder with ``captions.csv`` (file_name, caption) or ``metadata.jsonl`` (file_name, text)."""
    directory = Path(directory)
    if not directory.is_dir():
        raise ParameterError("dataset directory", "an existing folder of images with captions.csv or metadata.jsonl", str(directory))
    caption_files = [directory / n for n in ("captions.csv", "metadata.jsonl") if (directory / n).exists()]
    if not caption_files:
        raise ParameterError("caption file", f"captions.csv or metadata.jsonl inside {directory}")
    rows = read_caption_file(caption_files[0])[:limit]
    images = [load_image(directory / name, resolution) for name, _ in rows]
    return CaptionedImageSet(np.stack(images), [c for _, c in rows], [f"{directory.name}/{n}" for n, _ in rows])


def split_folder_dataset(data: CaptionedImageSet, split: str, n_private: int, n_real: int, seed: int) -> CaptionedImageSet:
    """Disjoint private/real splits of a user's folder, by a seeded permutation."""
    if n_private + n_real > len(data):
        raise ParameterError("n_private + n_real", f"at most the folder's {len(data)} images", n_private + n_real)
    order = np.random.default_rng(seed).permutation(len(data))
    chosen = order[:n_private] if split == "private" else order[n_private:n_private + n_real]
    return data.subset(chosen)
