"""Procedural captioned scenes: the offline stand-in for CelebA-Dialog (faces) and CC3M (object scenes).

A caption fixes the *described* attributes; every image also has *undescribed* instance details
(exact position, shades, skin tone, texture phase) drawn from the image's own seed. Those details are
what a model can only get right by memorizing a particular training image, which is the signal the
attribution method relies on.

Fine details alone are too little to copy: two real images with one caption then differ by little more than
the autoencoder's own error, and an innocent model's caption-average already lies near any of them. With
``identity_grid = g > 0`` every image also carries coarse undescribed content, as a photo's composition or a
face's identity is not in its caption: the background is a g x g grid of cells whose colours come from the
image's seed alone (faces: any colour; object scenes: the described background colour, each cell shifted
by up to ``SCENE_CELL_SHIFT``). At 32 px a 4 x 4 grid has 8-pixel cells, two latent pixels of the 4x
autoencoder, so it survives encoding.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageDraw

SUPERSAMPLE = 4  # draw at 4x and downsample so edges are anti-aliased at 32 px

HAIR_COLOURS = {"black": (25, 20, 20), "brown": (110, 65, 30), "blond": (225, 190, 90), "gray": (150, 150, 150)}
SKIN_TONES = [(245, 205, 170), (225, 180, 140), (190, 140, 100), (140, 95, 65)]
OBJECT_COLOURS = {
    "red": (220, 40, 40), "green": (40, 170, 60), "blue": (40, 80, 220),
    "yellow": (235, 210, 40), "purple": (140, 50, 180), "orange": (240, 130, 30),
}
SHAPES = ("circle", "square", "triangle", "diamond", "cross", "ring")
SIZES = ("small", "big")
POSITIONS = {"left": (0.27, 0.5), "right": (0.73, 0.5), "top": (0.5, 0.27), "bottom": (0.5, 0.73), "center": (0.5, 0.5)}
TEXTURES = ("plain", "striped", "dotted", "checkered")
BACKGROUNDS = {"gray": (128, 128, 128), "white": (235, 235, 235), "dark": (40, 40, 50)}
SCENE_CELL_SHIFT = 70   # per-channel shift of an object scene's grid cells around the described background colour
FACE_CELL_RANGE = (40, 225)  # a face background cell's channel values (any colour: the caption names none)


@dataclass(frozen=True)
class FaceAttributes:
    smiling: bool
    hair: str
    bangs: bool
    glasses: bool
    beard: bool

    def caption(self) -> str:
        extras = [w for flag, w in ((self.bangs, "bangs"), (self.glasses, "glasses"), (self.beard, "a beard")) if flag]
        text = f"a {'smiling' if self.smiling else 'serious'} face with {self.hair} hair"
        return text + "".join(f" and {extra}" for extra in extras)


@dataclass(frozen=True)
class SceneObject:
    size: str
    colour: str
    shape: str
    position: str

    def phrase(self) -> str:
        where = "in the center" if self.position == "center" else f"on the {self.position}"
        return f"a {self.size} {self.colour} {self.shape} {where}"


@dataclass(frozen=True)
class SceneAttributes:
    objects: tuple[SceneObject, ...]
    texture: str
    background: str

    def caption(self) -> str:
        return " and ".join(o.phrase() for o in self.objects) + f" on a {self.texture} {self.background} background"


def all_face_attributes() -> list[FaceAttributes]:
    """The whole face caption space (64 captions), like CelebA-Dialog's small attribute vocabulary."""
    return [
        FaceAttributes(smiling, hair, bangs, glasses, beard)
        for smiling in (True, False) for hair in HAIR_COLOURS
        for bangs in (False, True) for glasses in (False, True) for beard in (False, True)
    ]


def random_scene_attributes(rng: np.random.Generator, max_objects: int = 2) -> SceneAttributes:
    n_objects = int(rng.integers(1, max_objects + 1))
    positions = rng.choice(list(POSITIONS), size=n_objects, replace=False)
    objects = tuple(
        SceneObject(str(rng.choice(SIZES)), str(rng.choice(list(OBJECT_COLOURS))), str(rng.choice(SHAPES)), str(p))
        for p in positions
    )
    return SceneAttributes(objects, str(rng.choice(TEXTURES)), str(rng.choice(list(BACKGROUNDS))))


def vocabulary() -> list[str]:
    """Every word any caption can contain; the word-level tokenizer is built from it."""
    words = {"a", "face", "with", "hair", "and", "bangs", "glasses", "beard", "smiling", "serious",
             "on", "the", "in", "center", "background"}
    words |= set(HAIR_COLOURS) | set(OBJECT_COLOURS) | set(SHAPES) | set(SIZES) | set(POSITIONS)
    words |= set(TEXTURES) | set(BACKGROUNDS)
    return sorted(words)


def _jitter(rng: np.random.Generator, colour, amount: int):
    return tuple(int(np.clip(c + rng.integers(-amount, amount + 1), 0, 255)) for c in colour)


def _cell_grid(draw: ImageDraw.ImageDraw, size: int, cells: int, colour_of_cell) -> None:
    """Fill the canvas with a cells x cells grid, each cell coloured by ``colour_of_cell()`` (the undescribed content)."""
    edges = np.linspace(0, size, cells + 1).round().astype(int)
    for top, bottom in zip(edges[:-1], edges[1:]):
        for left, right in zip(edges[:-1], edges[1:]):
            draw.rectangle([int(left), int(top), int(right) - 1, int(bottom) - 1], fill=colour_of_cell())


def _textured_background(draw: ImageDraw.ImageDraw, size: int, texture: str, base, rng: np.random.Generator,
                         identity_grid: int = 0):
    draw.rectangle([0, 0, size, size], fill=base)
    if identity_grid:
        _cell_grid(draw, size, identity_grid, lambda: _jitter(rng, base, SCENE_CELL_SHIFT))
    accent = tuple(int(c * 0.75 + 30) for c in base) if sum(base) < 300 else tuple(int(c * 0.8) for c in base)
    period = size // int(rng.integers(5, 8))
    phase = int(rng.integers(0, period))
    if texture == "striped":
        for x in range(-period + phase, size, period):
            draw.rectangle([x, 0, x + period // 2, size], fill=accent)
    elif texture == "dotted":
        r = max(2, period // 5)
        for y in range(phase, size, period):
            for x in range(phase, size, period):
                draw.ellipse([x - r, y - r, x + r, y + r], fill=accent)
    elif texture == "checkered":
        for y in range(0, size, period):
            for x in range(0, size, period):
                if ((x + y) // period) % 2:
                    draw.rectangle([x + phase, y, x + phase + period, y + period], fill=accent)


def _draw_shape(draw: ImageDraw.ImageDraw, shape: str, cx: float, cy: float, r: float, colour, rotation: float):
    if shape == "circle":
        draw.ellipse([cx - r, cy - r, cx + r, cy + r], fill=colour)
    elif shape == "ring":
        draw.ellipse([cx - r, cy - r, cx + r, cy + r], outline=colour, width=max(2, int(r * 0.4)))
    elif shape == "cross":
        w = r * 0.35
        draw.rectangle([cx - r, cy - w, cx + r, cy + w], fill=colour)
        draw.rectangle([cx - w, cy - r, cx + w, cy + r], fill=colour)
    else:
        corners = {"square": 4, "diamond": 4, "triangle": 3}[shape]
        offset = {"square": np.pi / 4, "diamond": 0.0, "triangle": -np.pi / 2}[shape] + rotation
        angles = offset + 2 * np.pi * np.arange(corners) / corners
        radius = r * (1.3 if shape == "square" else 1.15)
        draw.polygon([(cx + radius * np.cos(a), cy + radius * np.sin(a)) for a in angles], fill=colour)


def render_scene(attrs: SceneAttributes, seed: int, resolution: int, identity_grid: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    size = resolution * SUPERSAMPLE
    img = Image.new("RGB", (size, size))
    draw = ImageDraw.Draw(img)
    _textured_background(draw, size, attrs.texture, _jitter(rng, BACKGROUNDS[attrs.background], 25), rng, identity_grid)
    for obj in attrs.objects:
        fx, fy = POSITIONS[obj.position]
        cx = (fx + rng.uniform(-0.07, 0.07)) * size
        cy = (fy + rng.uniform(-0.07, 0.07)) * size
        r = size * (0.2 if obj.size == "big" else 0.11) * rng.uniform(0.85, 1.15)
        _draw_shape(draw, obj.shape, cx, cy, r, _jitter(rng, OBJECT_COLOURS[obj.colour], 30), rng.uniform(-0.4, 0.4))
    return np.asarray(img.resize((resolution, resolution), Image.LANCZOS))


def render_face(attrs: FaceAttributes, seed: int, resolution: int, identity_grid: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    size = resolution * SUPERSAMPLE
    background = tuple(int(v) for v in rng.integers(60, 230, size=3))
    img = Image.new("RGB", (size, size), background)
    draw = ImageDraw.Draw(img)
    if identity_grid:
        _cell_grid(draw, size, identity_grid, lambda: tuple(int(v) for v in rng.integers(*FACE_CELL_RANGE, size=3)))
    cx = size * (0.5 + rng.uniform(-0.06, 0.06))
    cy = size * (0.54 + rng.uniform(-0.05, 0.05))
    rx, ry = size * rng.uniform(0.26, 0.32), size * rng.uniform(0.32, 0.38)
    skin = _jitter(rng, SKIN_TONES[int(rng.integers(len(SKIN_TONES)))], 12)
    hair = _jitter(rng, HAIR_COLOURS[attrs.hair], 15)
    # hair behind the head, then the head, then the fringe over the forehead
    draw.ellipse([cx - rx * 1.12, cy - ry * 1.12, cx + rx * 1.12, cy + ry * 0.6], fill=hair)
    draw.ellipse([cx - rx, cy - ry, cx + rx, cy + ry], fill=skin)
    if attrs.bangs:
        draw.chord([cx - rx, cy - ry * 1.05, cx + rx, cy - ry * 0.05], 180, 360, fill=hair)
    if attrs.beard:
        draw.chord([cx - rx, cy - ry * 0.2, cx + rx, cy + ry], 0, 180, fill=_jitter(rng, hair, 10))
    eye_dx, eye_y = rx * rng.uniform(0.35, 0.45), cy - ry * 0.12
    eye_r = size * 0.035
    for ex in (cx - eye_dx, cx + eye_dx):
        draw.ellipse([ex - eye_r, eye_y - eye_r, ex + eye_r, eye_y + eye_r], fill=(20, 20, 30))
        if attrs.glasses:
            g = eye_r * 2.6
            draw.ellipse([ex - g, eye_y - g, ex + g, eye_y + g], outline=(15, 15, 15), width=max(2, size // 40))
    if attrs.glasses:
        draw.line([cx - eye_dx + eye_r * 2.6, eye_y, cx + eye_dx - eye_r * 2.6, eye_y], fill=(15, 15, 15), width=max(2, size // 50))
    mouth_y, mouth_w = cy + ry * 0.45, rx * 0.45
    lip = (150, 30, 40)
    if attrs.smiling:
        draw.chord([cx - mouth_w, mouth_y - ry * 0.2, cx + mouth_w, mouth_y + ry * 0.15], 0, 180, fill=lip)
    else:
        draw.line([cx - mouth_w * 0.8, mouth_y, cx + mouth_w * 0.8, mouth_y], fill=lip, width=max(2, size // 40))
    return np.asarray(img.resize((resolution, resolution), Image.LANCZOS))
