"""Give a random CLIP vision tower pretrained, content-level features, offline, so that MiniGenImage can test
PiN-CLIP in the setting the paper uses it: fine-tuning a *pretrained* backbone.

The default run trains a random tiny CLIP from scratch; there are then no general features for the noise to
keep the fine-tuning from overwriting. This script trains the vision tower and its projection to tell which of
MiniGenImage's bundled photographs a real crop comes from: a content task, like the semantic pretraining of CLIP,
that carries no real/fake signal (MiniGenImage's fakes are content-matched to its reals). It samples crops only
from the tiles of MiniGenImage's *train* pool (the same tile assignment as the benchmark build), so no
validation or test pixels are seen, and saves the CLIP checkpoint with the pretrained vision weights (text tower
as it was), ready for `train.py --model_name_or_path`.

    python pretrain_backbone.py                                   # → outputs/pretrained-clip-tiny-64
    python ablation.py --model_name_or_path outputs/pretrained-clip-tiny-64 --lora_r 6 --output_dir outputs/ablation-pretrained-lora
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shlex
import shutil
import sys
import time
from pathlib import Path

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F
from transformers import CLIPModel, get_scheduler
from transformers.image_utils import OPENAI_CLIP_MEAN, OPENAI_CLIP_STD

from clip_checkpoints import CLIP_SHAPES, write_random_clip
from datasets_scripts.minigenimage import (
    CROP_SIZE, Box, Photo, assign_tiles, load_photos, sample_crops, staging_folder, tile_pools_digest,
)
from training_args import learning_rate_problem

# CLIP's normalisation: the same mean/std the saved image processors apply.
CLIP_MEAN = torch.tensor(OPENAI_CLIP_MEAN).view(1, 3, 1, 1)
CLIP_STD = torch.tensor(OPENAI_CLIP_STD).view(1, 3, 1, 1)
SUMMARY_NAME = "pretraining.json"  # written last: a folder with it holds a finished pretraining


class PhotoClassifier(nn.Module):
    """CLIP image embedding (vision tower + projection) → which photograph; the head is thrown away afterwards."""

    def __init__(self, clip: CLIPModel, num_photos: int):
        super().__init__()
        self.vision_model = clip.vision_model
        self.visual_projection = clip.visual_projection
        self.head = nn.Linear(clip.config.projection_dim, num_photos)

    def forward(self, pixel_values: torch.Tensor) -> torch.Tensor:
        pooled = self.vision_model(pixel_values=pixel_values).pooler_output
        return self.head(self.visual_projection(pooled))


def photo_crops(
    photos: list[Photo], pool: list[Box], count: int, crop_size: int, rng: np.random.Generator
) -> tuple[torch.Tensor, torch.Tensor]:
    """`count` normalised crops from the tiles of `pool` and the index of the photograph each comes from."""
    crops, boxes = sample_crops(photos, pool, count, crop_size, rng)
    index_of = {photo.name: index for index, photo in enumerate(photos)}
    labels = torch.tensor([index_of[box[0]] for box in boxes])
    pixels = torch.from_numpy(crops).permute(0, 3, 1, 2).float().div(255.0)
    return (pixels - CLIP_MEAN) / CLIP_STD, labels


@torch.no_grad()
def accuracy(model: PhotoClassifier, pixels: torch.Tensor, labels: torch.Tensor) -> float:
    model.eval()
    predictions = torch.cat([model(batch).argmax(-1) for batch in pixels.split(256)])
    model.train()
    return (predictions == labels).float().mean().item()


def pretrain(args: argparse.Namespace) -> dict:
    """Pretrain, save the CLIP checkpoint in `args.output_dir`, and return the summary written next to it."""
    started = time.time()
    output_dir = Path(args.output_dir)
    check_output_dir(output_dir)
    photos = load_photos()
    # The benchmark's own tile pools (its crop size and seed, whatever the model's input size): train tiles only
    # for training, validation tiles only to report how well the content task is learned.
    pools = assign_tiles(photos, CROP_SIZE, args.minigenimage_seed)
    tile = pools["train"][0][3]
    crop_size = CLIP_SHAPES[args.shape]["image_size"]
    if crop_size > tile:
        raise ValueError(
            f"--shape {args.shape} takes {crop_size}-px images, larger than MiniGenImage's {tile}-px tiles: its crops "
            "would reach into validation and test tiles"
        )
    # Built beside the output and renamed into place at the end: an interrupted run leaves no random CLIP that
    # `train.py --model_name_or_path` would take for a pretrained one.
    staging = staging_folder(output_dir)
    try:
        summary = _pretrain_into(staging, args, photos, pools, crop_size, started)
        shutil.rmtree(output_dir, ignore_errors=True)  # an earlier pretraining output (check_output_dir)
        os.replace(staging, output_dir)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return summary


def check_tile_record(backbone: str | os.PathLike, minigenimage_seed: int, source: str | None = None,
                      crop_size: int = CROP_SIZE) -> None:
    """`ValueError` when `backbone` is a pretraining output of this script whose summary records another MiniGenImage
    tile assignment than that of the build of `minigenimage_seed` and `crop_size` (the build that `source` names,
    `--minigenimage_seed` by default): that build's validation and test crops come partly from tiles the backbone was
    pretrained on. Nothing to compare for another backbone, or a pretraining that predates the record."""
    summary = Path(backbone) / SUMMARY_NAME
    recorded = json.loads(summary.read_text()).get("minigenimage") if summary.is_file() else None
    if recorded is None:
        return
    if recorded["tile_pools"] != tile_pools_digest(assign_tiles(load_photos(), crop_size, minigenimage_seed)):
        raise ValueError(
            f"{backbone} was pretrained on the training tiles of MiniGenImage seed {recorded['seed']} at crop size "
            f"{CROP_SIZE}, which {source or f'--minigenimage_seed {minigenimage_seed}'} deals out to its validation "
            f"and test splits too: pretrain with `python pretrain_backbone.py --minigenimage_seed {minigenimage_seed}`"
            f" and use builds of crop size {CROP_SIZE}, or use a MiniGenImage build of seed {recorded['seed']} and "
            f"crop size {CROP_SIZE}"
        )


def check_output_dir(output_dir: Path) -> None:
    """Refuse an output folder that holds anything but an earlier output of this script (its pretraining.json), or
    the working folder (the output is built beside and renamed onto its folder: it cannot be the one we stand in)."""
    here = Path.cwd().resolve()
    if output_dir.resolve() in (here, *here.parents):
        raise FileExistsError(f"--output_dir {output_dir} holds the current folder: name a folder of its own, e.g. "
                              "outputs/pretrained-clip")
    if output_dir.exists() and (
        not output_dir.is_dir() or (any(output_dir.iterdir()) and not (output_dir / SUMMARY_NAME).is_file())
    ):
        raise FileExistsError(
            f"--output_dir {output_dir} holds something other than an earlier pretrain_backbone.py output: "
            "choose a new or empty folder; nothing in it was changed"
        )


def _pretrain_into(
    output_dir: Path, args: argparse.Namespace, photos: list[Photo], pools: dict[str, list[Box]], crop_size: int,
    started: float,
) -> dict:
    """Write the random CLIP into `output_dir`, pretrain it there and save it with its summary."""
    write_random_clip(output_dir, shape=args.shape, seed=args.seed)
    clip = CLIPModel.from_pretrained(output_dir)
    rng = np.random.default_rng(args.seed)
    torch.manual_seed(args.seed)
    held_out = photo_crops(photos, pools["validation"], 1024, crop_size, rng)

    model = PhotoClassifier(clip, len(photos))
    optimizer = torch.optim.AdamW(model.parameters(), lr=args.learning_rate, weight_decay=0.05)
    steps_per_epoch = math.ceil(args.crops_per_epoch / args.batch_size)
    total_steps = args.epochs * steps_per_epoch
    scheduler = get_scheduler("cosine", optimizer, num_warmup_steps=total_steps // 20, num_training_steps=total_steps)
    history = []
    for epoch in range(args.epochs):
        pixels, labels = photo_crops(photos, pools["train"], args.crops_per_epoch, crop_size, rng)
        flip = torch.rand(len(pixels)) < 0.5
        pixels[flip] = pixels[flip].flip(-1)
        order = torch.randperm(len(pixels))
        losses = []
        for step in range(steps_per_epoch):
            batch = order[step * args.batch_size : (step + 1) * args.batch_size]
            loss = F.cross_entropy(model(pixels[batch]), labels[batch])
            if not torch.isfinite(loss):  # else a backbone of NaN weights is saved, and train.py blames its own lr
                raise ValueError(f"the pretraining loss is {loss.item()} at epoch {epoch + 1}, step {step + 1}: lower "
                                 f"--learning_rate ({args.learning_rate:g}); nothing was saved")
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            optimizer.step()
            scheduler.step()
            optimizer.zero_grad()
            losses.append(loss.item())
        history.append({"epoch": epoch + 1, "loss": float(np.mean(losses)), "held_out_acc": accuracy(model, *held_out)})
        print(f"epoch {epoch + 1}/{args.epochs}: loss {history[-1]['loss']:.3f}, "
              f"photo accuracy on validation-pool crops {100 * history[-1]['held_out_acc']:.1f} %")

    clip.save_pretrained(output_dir)  # the vision tower and projection were trained in place
    summary = {
        "command": shlex.join(["python", "pretrain_backbone.py", *args.argv]),
        "task": f"which of {len(photos)} photographs a {crop_size}×{crop_size} crop comes from (train-pool tiles)",
        "chance_acc": 1 / len(photos),
        # whose training tiles it saw: train.py refuses it for a MiniGenImage build that deals the tiles otherwise
        "minigenimage": {"seed": args.minigenimage_seed, "tile_pools": tile_pools_digest(pools)},
        "held_out_acc": history[-1]["held_out_acc"],
        "history": history,
        "seconds": round(time.time() - started, 1),
    }
    (output_dir / SUMMARY_NAME).write_text(json.dumps(summary, indent=2) + "\n")
    return summary


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """The command line (`sys.argv[1:]` by default); the arguments are kept for the summary's `command`."""
    argv = sys.argv[1:] if argv is None else list(argv)
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--output_dir", default=None, help="default: outputs/pretrained-clip-SHAPE")
    parser.add_argument("--shape", default="tiny-64", choices=sorted(CLIP_SHAPES),
                        help="random CLIP shape; its input must fit MiniGenImage's tiles (tiny, tiny-64)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--minigenimage_seed", type=int, default=0, help="must match the benchmark build's seed")
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--crops_per_epoch", type=int, default=8192)
    parser.add_argument("--batch_size", type=int, default=64)
    parser.add_argument("--learning_rate", type=float, default=1e-3)
    args = parser.parse_args(argv)
    for name in ("epochs", "crops_per_epoch", "batch_size"):
        if getattr(args, name) < 1:
            parser.error(f"--{name} must be at least 1, got {getattr(args, name)}")
    if lr_problem := learning_rate_problem(args.learning_rate):
        parser.error(f"--learning_rate {lr_problem}, got {args.learning_rate}")
    for name in ("seed", "minigenimage_seed"):  # numpy's and torch's seed range, checked before any file is written
        if not 0 <= getattr(args, name) < 2**32:
            parser.error(f"--{name} must be in [0, 2**32), got {getattr(args, name)}")
    args.output_dir = args.output_dir or f"outputs/pretrained-clip-{args.shape}"
    try:
        check_output_dir(Path(args.output_dir))
    except FileExistsError as error:
        parser.error(str(error))
    args.argv = argv
    return args


if __name__ == "__main__":
    try:
        result = pretrain(parse_args())
    except ValueError as error:  # a shape whose input is larger than the benchmark's tiles
        print(f"pretrain_backbone.py: error: {error}", file=sys.stderr)
        sys.exit(2)
    print(json.dumps({k: v for k, v in result.items() if k != "history"}, indent=2))
