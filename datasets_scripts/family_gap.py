"""Show the generalisation gap MiniGenImage exists for.

Trains a small CNN on the `train` split (one generator family) and prints its accuracy on the
validation split and on every `test_<family>` split.  A good benchmark shows high accuracy on the
train family and clearly lower accuracy on unseen families.

    python datasets_scripts/family_gap.py [--seed 0] [--epochs 10] [--reduced]

`--seed` seeds both the benchmark build and the CNN: another seed builds (and caches) another MiniGenImage.
"""

from __future__ import annotations

import argparse
import sys
import time

import datasets
import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

if __package__:
    from .minigenimage import DEFAULT_TRAIN_FAMILY, FAMILIES, build_minigenimage
else:
    from minigenimage import DEFAULT_TRAIN_FAMILY, FAMILIES, build_minigenimage


def to_arrays(ds: datasets.Dataset) -> tuple[torch.Tensor, torch.Tensor, list[str]]:
    """Decode a split to (N, 3, H, W) floats in [-1, 1], labels and generator names."""
    pixels = np.stack([np.asarray(im.convert("RGB")) for im in ds["image"]])
    x = torch.from_numpy(pixels).permute(0, 3, 1, 2).float().div(127.5).sub(1.0)
    return x, torch.tensor(ds["label"]), list(ds["generator"])


class SmallDetector(nn.Module):
    """No pooling before the third layer: generator fingerprints live in the highest frequencies."""

    def __init__(self, width: int = 16) -> None:
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(3, width, 3, padding=1),
            nn.ReLU(),
            nn.Conv2d(width, width, 3, padding=1),
            nn.ReLU(),
            nn.Conv2d(width, 2 * width, 3, stride=2, padding=1),
            nn.ReLU(),
            nn.Conv2d(2 * width, 2 * width, 3, stride=2, padding=1),
            nn.ReLU(),
        )
        self.head = nn.Linear(2 * width, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # high-pass residual input, as forensic detectors use: content is suppressed, artifacts kept
        residual = x - F.avg_pool2d(x, 3, stride=1, padding=1, count_include_pad=False)
        return self.head(self.features(residual * 4).mean(dim=(2, 3)))


def train_detector(x: torch.Tensor, y: torch.Tensor, epochs: int, seed: int, batch_size: int = 64) -> nn.Module:
    torch.manual_seed(seed)
    model = SmallDetector()
    optimiser = torch.optim.Adam(model.parameters(), lr=1e-3)
    for _ in range(epochs):
        for idx in torch.randperm(len(x)).split(batch_size):
            batch = x[idx]
            # random flips keep the detector from memorising crop content
            if torch.rand(()) < 0.5:
                batch = batch.flip(3)
            loss = F.cross_entropy(model(batch), y[idx])
            optimiser.zero_grad()
            loss.backward()
            optimiser.step()
    return model.eval()


@torch.no_grad()
def accuracy(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> tuple[float, float, float]:
    """(accuracy, real accuracy, fake accuracy) at the argmax decision."""
    pred = torch.cat([model(b).argmax(1) for b in x.split(256)])
    correct = pred == y
    return correct.float().mean().item(), correct[y == 0].float().mean().item(), correct[y == 1].float().mean().item()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seed", type=int, default=0,
                        help="seed of both the MiniGenImage build (another seed is another benchmark) and the CNN")
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--reduced", action="store_true")
    parser.add_argument("--cache_dir", default=None)
    args = parser.parse_args(argv)
    torch.set_num_threads(1)  # see minigenimage.BUILD_THREADS: one thread is faster on a shared 2-core box
    start = time.perf_counter()
    dsd = build_minigenimage(seed=args.seed, reduced=args.reduced, cache_dir=args.cache_dir)
    x, y, _ = to_arrays(dsd["train"])
    model = train_detector(x, y, args.epochs, args.seed)
    print(f"detector trained on '{DEFAULT_TRAIN_FAMILY}' ({len(x)} images, {args.epochs} epochs)")
    print(f"{'split':<22}{'acc':>7}{'real':>7}{'fake':>7}")
    vx, vy, vgen = to_arrays(dsd["validation"])
    for generator in sorted(set(vgen)):
        mask = torch.tensor([g == generator for g in vgen])
        print(f"{'validation/' + generator:<22}" + "".join(f"{v:7.3f}" for v in accuracy(model, vx[mask], vy[mask])))
    unseen = []
    for family in FAMILIES:
        tx, ty, _ = to_arrays(dsd[f"test_{family}"])
        acc = accuracy(model, tx, ty)
        if family != DEFAULT_TRAIN_FAMILY:
            unseen.append(acc[0])
        print(f"{'test_' + family:<22}" + "".join(f"{v:7.3f}" for v in acc))
    print(f"mean accuracy on unseen test families: {np.mean(unseen):.3f}  ({time.perf_counter() - start:.0f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
