"""The task model of TrainProVe: a small CNN image classifier, the same code for shadow and suspect models.

The defender calls ``predict`` on a label-only suspect (labels out, nothing else) and ``logits`` where the suspect
returns its output vector (what TrainProVe-Ent and -Sim need).
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from safetensors.torch import load_file, save_file
from torch import nn

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


def _augment(batch: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    """Random horizontal flips and shifts of up to 2 px: standard small-image augmentation."""
    flip = torch.rand(len(batch), generator=gen) < 0.5
    batch = torch.where(flip[:, None, None, None], batch.flip(-1), batch)
    dx, dy = (int(v) for v in torch.randint(-2, 3, (2,), generator=gen))
    return torch.roll(F.pad(batch, (2, 2, 2, 2), mode="replicate"), shifts=(dy, dx), dims=(-2, -1))[..., 2:-2, 2:-2]


def train_classifier(images: np.ndarray, labels: np.ndarray, n_classes: int, *, epochs: int, seed: int,
                     batch_size: int = 64, lr: float = 2e-3, device: str = "cpu") -> tuple[SmallCNN, list[float]]:
    """Train a SmallCNN with Adam and cosine decay; every shuffle and augmentation draw is seeded (on the CPU)."""
    torch.manual_seed(seed)
    model = SmallCNN(n_classes).to(device)
    x, y = images_to_tensor(images), torch.as_tensor(labels, dtype=torch.long)
    steps_per_epoch = max(1, int(np.ceil(len(x) / batch_size)))
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=epochs * steps_per_epoch)
    losses = []
    model.train()
    for epoch in range(epochs):
        gen = step_generator(seed, epoch)
        order = torch.randperm(len(x), generator=gen)
        for start in range(0, len(x), batch_size):
            idx = order[start:start + batch_size]
            loss = F.cross_entropy(model(_augment(x[idx], gen).to(device)), y[idx].to(device))
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


def save_classifier(model: SmallCNN, directory: Path, extra: dict | None = None) -> None:
    save_file(model.state_dict(), str(Path(directory) / "classifier.safetensors"))
    (Path(directory) / "classifier.json").write_text(json.dumps({"n_classes": model.n_classes, "width": model.width,
                                                                 **(extra or {})}))


def load_classifier(directory: Path) -> SmallCNN:
    meta = json.loads((Path(directory) / "classifier.json").read_text())
    model = SmallCNN(meta["n_classes"], meta["width"])
    model.load_state_dict(load_file(str(Path(directory) / "classifier.safetensors")))
    return model.eval()
