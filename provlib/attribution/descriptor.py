"""A small copy-detection descriptor trained offline in the workbook (the embedding feature space).

SSCD (Pizzi et al., CVPR 2022), the descriptor image-copy studies of diffusion models use, is a
network trained contrastively (SimCLR's NT-Xent loss) so that an image and its augmented copies map
close together and different images map apart. SSCD's weights cannot be fetched offline, so the
workbook trains the same kind of model at its own scale: a four-layer CNN, NT-Xent over two augmented
views (random resized crop, flip, colour jitter, blur, noise), on the *generic pre-training images
only*, so it has never seen a source's private data or any suspect's training set.

Distances are cosine distances between L2-normalised descriptors, mapped to [0, 1] by (1 - cos) / 2.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from safetensors.torch import load_file, save_file
from torch import nn

from provlib.core.images import to_compare_space
from provlib.core.progress import tqdm
from provlib.core.train import step_generator

DESCRIPTOR_SIDE = 32  # images are resized to this side before embedding, as the pixel space does


class CopyDescriptor(nn.Module):
    def __init__(self, width: int = 32, dim: int = 128):
        super().__init__()
        self.config = {"width": width, "dim": dim}
        w = width
        self.features = nn.Sequential(
            nn.Conv2d(3, w, 3, padding=1), nn.GroupNorm(8, w), nn.SiLU(),
            nn.Conv2d(w, 2 * w, 3, stride=2, padding=1), nn.GroupNorm(8, 2 * w), nn.SiLU(),
            nn.Conv2d(2 * w, 4 * w, 3, stride=2, padding=1), nn.GroupNorm(8, 4 * w), nn.SiLU(),
            nn.Conv2d(4 * w, 4 * w, 3, stride=2, padding=1), nn.GroupNorm(8, 4 * w), nn.SiLU(),
        )
        # keep a coarse spatial layout (4x4 after 3 stride-2 layers at 32 px): copies share layout
        self.head = nn.Linear(4 * w * 16, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.features(x)
        h = F.adaptive_avg_pool2d(h, 4).flatten(1)
        return F.normalize(self.head(h), dim=1)


def _to_tensor(images: np.ndarray) -> torch.Tensor:
    flat = to_compare_space(images, DESCRIPTOR_SIDE)
    return torch.from_numpy(flat.reshape(len(flat), DESCRIPTOR_SIDE, DESCRIPTOR_SIDE, 3)).permute(0, 3, 1, 2) * 2 - 1


def augment(x: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    """Random resized crop (scale 0.6-1), horizontal flip, colour jitter, blur and noise, all seeded."""
    n = len(x)
    rand = lambda *shape: torch.rand(*shape, generator=gen)  # noqa: E731
    scale = 0.775 + 0.225 * rand(n)                 # crop side as a share of the image side
    shift = (1 - scale)[:, None] * (rand(n, 2) * 2 - 1)
    flip = torch.where(rand(n) < 0.5, -1.0, 1.0)
    theta = torch.zeros(n, 2, 3)
    theta[:, 0, 0], theta[:, 1, 1] = scale * flip, scale
    theta[:, :, 2] = shift
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    x = F.grid_sample(x, grid, mode="bilinear", padding_mode="reflection", align_corners=False)
    x = x * (0.8 + 0.4 * rand(n, 1, 1, 1)) + 0.2 * (rand(n, 3, 1, 1) - 0.5)   # contrast, colour shift
    blur = rand(n) < 0.3
    if blur.any():
        kernel = torch.tensor([1.0, 2.0, 1.0])
        kernel = (kernel[:, None] * kernel[None, :] / 16).expand(3, 1, 3, 3)
        x[blur] = F.conv2d(F.pad(x[blur], (1, 1, 1, 1), mode="reflect"), kernel, groups=3)
    x = x + 0.05 * rand(n, 1, 1, 1) * torch.randn(x.shape, generator=gen)
    return x.clamp(-1, 1)


def nt_xent(z1: torch.Tensor, z2: torch.Tensor, temperature: float) -> torch.Tensor:
    """SimCLR's loss: each view must pick its partner out of the 2n - 1 other views."""
    z = torch.cat([z1, z2])
    logits = z @ z.T / temperature
    logits.fill_diagonal_(float("-inf"))
    n = len(z1)
    targets = torch.cat([torch.arange(n, 2 * n), torch.arange(0, n)])
    return F.cross_entropy(logits, targets)


def train_descriptor(images: np.ndarray, steps: int, batch_size: int = 128, lr: float = 2e-3, seed: int = 0,
                     temperature: float = 0.1, show_progress: bool = True) -> tuple[CopyDescriptor, list[float]]:
    torch.manual_seed(seed)
    model = CopyDescriptor()
    data = _to_tensor(images)
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=1e-4)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, steps)
    losses = []
    for step in tqdm(range(steps), desc="train copy descriptor", disable=not show_progress, mininterval=5):
        gen = step_generator(seed, step)
        batch = data[torch.randperm(len(data), generator=gen)[:batch_size]]
        loss = nt_xent(model(augment(batch, gen)), model(augment(batch, gen)), temperature)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        schedule.step()
        losses.append(float(loss.detach()))
    return model.eval(), losses


def save_descriptor(model: CopyDescriptor, folder: Path) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    save_file(model.state_dict(), folder / "descriptor.safetensors")
    (folder / "descriptor.json").write_text(json.dumps(model.config))


def load_descriptor(folder: str | Path) -> CopyDescriptor:
    folder = Path(folder)
    model = CopyDescriptor(**json.loads((folder / "descriptor.json").read_text()))
    model.load_state_dict(load_file(folder / "descriptor.safetensors"))
    return model.eval()


@torch.no_grad()
def embed(model: CopyDescriptor, images: np.ndarray, batch_size: int = 512) -> np.ndarray:
    """uint8 [n, H, W, 3] -> unit-norm float32 [n, dim]."""
    data = _to_tensor(images)
    return torch.cat([model(data[i:i + batch_size]) for i in range(0, len(data), batch_size)]).numpy()
