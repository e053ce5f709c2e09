"""The task models of TrainProVe: small image classifiers of five families, each trained by a recipe of its own.

The defender calls ``predict`` on a label-only suspect (labels out, nothing else) and ``logits`` where the suspect
returns its output vector (what TrainProVe-Ent and -Sim need).
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from safetensors.torch import load_file, save_file
from torch import nn

from provlib.core.errors import ParameterError
from provlib.core.train import images_to_tensor, step_generator


class SmallCNN(nn.Module):
    """Three conv blocks and a linear head: enough for 32 px objects, small enough to train in seconds."""

    def __init__(self, n_classes: int, width: int = 32):
        super().__init__()
        self.n_classes, self.width = n_classes, width

        def block(c_in, c_out):
            return nn.Sequential(nn.Conv2d(c_in, c_out, 3, padding=1), nn.BatchNorm2d(c_out), nn.ReLU(),
                                 nn.Conv2d(c_out, c_out, 3, padding=1), nn.BatchNorm2d(c_out), nn.ReLU())

        self.features = nn.Sequential(block(3, width), nn.MaxPool2d(2), block(width, 2 * width), nn.MaxPool2d(2),
                                      block(2 * width, 4 * width), nn.AdaptiveAvgPool2d(1), nn.Flatten())
        self.head = nn.Linear(4 * width, n_classes)

    def forward(self, x):
        return self.head(self.features(x))


class _Residual(nn.Module):
    def __init__(self, c_in: int, c_out: int, stride: int):
        super().__init__()
        self.body = nn.Sequential(nn.Conv2d(c_in, c_out, 3, stride, 1, bias=False), nn.BatchNorm2d(c_out), nn.ReLU(),
                                  nn.Conv2d(c_out, c_out, 3, 1, 1, bias=False), nn.BatchNorm2d(c_out))
        self.skip = nn.Identity() if stride == 1 and c_in == c_out else nn.Sequential(
            nn.Conv2d(c_in, c_out, 1, stride, bias=False), nn.BatchNorm2d(c_out))

    def forward(self, x):
        return F.relu(self.body(x) + self.skip(x))


class SmallResNet(nn.Module):
    """A ResNet in miniature (a stem and three residual stages), the paper's suspects' family at 32 px."""

    def __init__(self, n_classes: int, width: int = 16):
        super().__init__()
        self.n_classes, self.width = n_classes, width
        self.features = nn.Sequential(nn.Conv2d(3, width, 3, 1, 1, bias=False), nn.BatchNorm2d(width), nn.ReLU(),
                                      _Residual(width, width, 1), _Residual(width, 2 * width, 2),
                                      _Residual(2 * width, 4 * width, 2), nn.AdaptiveAvgPool2d(1), nn.Flatten())
        self.head = nn.Linear(4 * width, n_classes)

    def forward(self, x):
        return self.head(self.features(x))


class MLP(nn.Module):
    """A two-hidden-layer perceptron on the 16 px image: no convolution, another inductive bias entirely."""

    def __init__(self, n_classes: int, width: int = 256):
        super().__init__()
        self.n_classes, self.width = n_classes, width
        self.net = nn.Sequential(nn.AdaptiveAvgPool2d(16), nn.Flatten(), nn.Linear(3 * 16 * 16, width), nn.ReLU(),
                                 nn.Dropout(0.1), nn.Linear(width, width), nn.ReLU(), nn.Linear(width, n_classes))

    def forward(self, x):
        return self.net(x)


class _ConvNeXtBlock(nn.Module):
    """Depthwise 7x7 convolution, LayerNorm, an inverted bottleneck MLP and a residual (Liu et al., arXiv 2201.03545)."""

    def __init__(self, channels: int):
        super().__init__()
        self.depthwise = nn.Conv2d(channels, channels, 7, padding=3, groups=channels)
        self.norm = nn.LayerNorm(channels)
        self.mlp = nn.Sequential(nn.Linear(channels, 4 * channels), nn.GELU(), nn.Linear(4 * channels, channels))

    def forward(self, x):
        y = self.mlp(self.norm(self.depthwise(x).permute(0, 2, 3, 1))).permute(0, 3, 1, 2)
        return x + y


class SmallConvNeXt(nn.Module):
    """A ConvNeXt in miniature (patchify stem, two stages of two blocks): the authors' suspects include ConvNeXt."""

    def __init__(self, n_classes: int, width: int = 32):
        super().__init__()
        self.n_classes, self.width = n_classes, width
        self.stem = nn.Conv2d(3, width, 2, stride=2)
        self.stage1 = nn.Sequential(_ConvNeXtBlock(width), _ConvNeXtBlock(width))
        self.down = nn.Conv2d(width, 2 * width, 2, stride=2)
        self.stage2 = nn.Sequential(_ConvNeXtBlock(2 * width), _ConvNeXtBlock(2 * width))
        self.norm = nn.LayerNorm(2 * width)
        self.head = nn.Linear(2 * width, n_classes)

    def forward(self, x):
        x = self.stage2(self.down(self.stage1(self.stem(x))))
        return self.head(self.norm(x.mean(dim=(2, 3))))


class TinyViT(nn.Module):
    """A vision transformer in miniature (4 px patches, 4 layers): the authors' suspects include ViT-T/S/B."""

    def __init__(self, n_classes: int, width: int = 64, patch: int = 4, depth: int = 4, resolution: int = 32):
        super().__init__()
        self.n_classes, self.width = n_classes, width
        self.patchify = nn.Conv2d(3, width, patch, stride=patch)
        self.cls = nn.Parameter(torch.zeros(1, 1, width))
        self.position = nn.Parameter(torch.randn(1, (resolution // patch) ** 2 + 1, width) * 0.02)
        layer = nn.TransformerEncoderLayer(width, nhead=4, dim_feedforward=2 * width, dropout=0.0, activation="gelu",
                                           batch_first=True, norm_first=True)
        self.encoder = nn.TransformerEncoder(layer, depth, enable_nested_tensor=False)
        self.norm = nn.LayerNorm(width)
        self.head = nn.Linear(width, n_classes)

    def forward(self, x):
        grid = self.patchify(x)
        tokens = grid.flatten(2).transpose(1, 2)
        position = self.position[:, 1:]
        side = int(round(position.shape[1] ** 0.5))
        if grid.shape[-2:] != (side, side):  # another input size: resample the position grid, as ViTs do
            position = F.interpolate(position.transpose(1, 2).reshape(1, -1, side, side), size=grid.shape[-2:],
                                     mode="bicubic", align_corners=False).flatten(2).transpose(1, 2)
        tokens = torch.cat([(self.cls + self.position[:, :1]).expand(len(tokens), -1, -1), tokens + position], dim=1)
        return self.head(self.norm(self.encoder(tokens)[:, 0]))


ARCHITECTURES = {"cnn": SmallCNN, "resnet": SmallResNet, "mlp": MLP, "convnext": SmallConvNeXt, "vit": TinyViT}
LOSSES = ("ce", "focal")


@dataclass(frozen=True)
class Recipe:
    """How a classifier is trained; the shadow keeps the default, a suspect draws its own (``draw_recipe``)."""
    architecture: str = "cnn"
    lr: float = 2e-3
    weight_decay: float = 0.0
    batch_size: int = 64
    loss: str = "ce"      # "focal": cross-entropy weighted by (1 - p_true)^2 (Lin et al., arXiv 1708.02002)


def draw_recipe(seed: int, architecture: str, lrs, weight_decays, batch_sizes, losses) -> Recipe:
    """A suspect's recipe: the given architecture, the rest drawn uniformly from each grid (its training is not the
    shadow's, as a real suspect's would not be)."""
    rng = np.random.default_rng(seed)

    def pick(options):
        options = list(options)
        return options[int(rng.integers(len(options)))]
    return Recipe(architecture, float(pick(lrs)), float(pick(weight_decays)), int(pick(batch_sizes)), pick(losses))


def _loss(name: str, logits_: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    ce = F.cross_entropy(logits_, target, reduction="none")
    if name == "focal":
        ce = (1 - torch.exp(-ce)) ** 2 * ce
    return ce.mean()


def _augment(batch: torch.Tensor, gen: torch.Generator, flips: bool = True) -> torch.Tensor:
    """Random horizontal flips (unless ``flips`` is off) and shifts of up to 2 px: standard small-image augmentation."""
    flip = (torch.rand(len(batch), generator=gen) < 0.5) & flips  # drawn either way: the shifts stay the same
    batch = torch.where(flip[:, None, None, None], batch.flip(-1), batch)
    dx, dy = (int(v) for v in torch.randint(-2, 3, (2,), generator=gen))
    return torch.roll(F.pad(batch, (2, 2, 2, 2), mode="replicate"), shifts=(dy, dx), dims=(-2, -1))[..., 2:-2, 2:-2]


def train_classifier(images: np.ndarray, labels: np.ndarray, n_classes: int, *, epochs: int, seed: int,
                     recipe: Recipe = Recipe(), device: str = "cpu", flips: bool = True) -> tuple[nn.Module, list[float]]:
    """Train a classifier by ``recipe`` with AdamW and cosine decay; every shuffle and augmentation draw is seeded.

    ``flips=False`` leaves out the horizontal flips, for a task where left and right differ (which generator lit
    the image from which side)."""
    if recipe.architecture not in ARCHITECTURES or recipe.loss not in LOSSES:
        raise ParameterError("recipe", f"an architecture of {sorted(ARCHITECTURES)} and a loss of {LOSSES}", recipe)
    torch.manual_seed(seed)
    model = ARCHITECTURES[recipe.architecture](n_classes).to(device)
    x, y = images_to_tensor(images), torch.as_tensor(labels, dtype=torch.long)
    batch_size = recipe.batch_size
    steps_per_epoch = max(1, int(np.ceil(len(x) / batch_size)))
    optimizer = torch.optim.AdamW(model.parameters(), lr=recipe.lr, weight_decay=recipe.weight_decay)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=epochs * steps_per_epoch)
    losses = []
    model.train()
    for epoch in range(epochs):
        gen = step_generator(seed, epoch)
        order = torch.randperm(len(x), generator=gen)
        for start in range(0, len(x), batch_size):
            idx = order[start:start + batch_size]
            loss = _loss(recipe.loss, model(_augment(x[idx], gen, flips).to(device)), y[idx].to(device))
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            schedule.step()
            losses.append(float(loss.detach()))
    model.eval()
    return model.cpu(), losses


@torch.no_grad()
def logits(model: nn.Module, images: np.ndarray, batch_size: int = 256) -> np.ndarray:
    """The classifier's output vectors [images, classes] (float32)."""
    x = images_to_tensor(images)
    return np.concatenate([model(x[i:i + batch_size]).float().numpy() for i in range(0, len(x), batch_size)])


def predict(model: nn.Module, images: np.ndarray, batch_size: int = 256) -> np.ndarray:
    """Predicted class indices: all a label-only suspect shows the defender."""
    return logits(model, images, batch_size).argmax(1)


def save_classifier(model: nn.Module, directory: Path, extra: dict | None = None) -> None:
    architecture = next(name for name, cls in ARCHITECTURES.items() if type(model) is cls)
    save_file(model.state_dict(), str(Path(directory) / "classifier.safetensors"))
    (Path(directory) / "classifier.json").write_text(json.dumps(
        {"architecture": architecture, "n_classes": model.n_classes, "width": model.width, **(extra or {})}))


def load_classifier(directory: Path) -> nn.Module:
    meta = json.loads((Path(directory) / "classifier.json").read_text())
    model = ARCHITECTURES[meta.get("architecture", "cnn")](meta["n_classes"], meta["width"])
    model.load_state_dict(load_file(str(Path(directory) / "classifier.safetensors")))
    return model.eval()
