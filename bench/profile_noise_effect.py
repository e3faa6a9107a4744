"""How much the training noise still moves a trained detector's decisions (bench/NOTES.md §5).

For each saved PiN-CLIP folder: the image embeddings of MiniGenImage validation images, the classifier's logit
margin (fake − real) on them, and how far one draw of the model's own training noise (`pin`: its generator's μ + σz;
`random` and `none`: N(0, s²I), s = `random_noise_std`; times each embedding's RMS with `noise_scale="feature_rms"`)
shifts that margin, over several draws. If the shift is small against the margin, the noise no longer changes what
the classifier learns from: the backbone has outgrown it, or the generator has shrunk it.

    python bench/profile_noise_effect.py outputs/ablation-minigenimage/pin-seed0 \
        outputs/ablation-minigenimage/none-seed0
"""

from __future__ import annotations

import argparse
import statistics
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import datasets  # noqa: E402
from common import positive_int  # noqa: E402
from transformers import AutoImageProcessor  # noqa: E402

from datasets_scripts.minigenimage import build_minigenimage  # noqa: E402
from image_io import load_rgb_image  # noqa: E402
from modeling_pinclip import PinClipForImageClassification  # noqa: E402
from preprocessing import Preprocessing  # noqa: E402


def validation_pixels(model_dir: str, images: int, seed: int) -> torch.Tensor:
    """`images` validation rows of MiniGenImage, drawn with `seed`, preprocessed with the model's own processor."""
    split = build_minigenimage(show_progress=False)["validation"].cast_column("image", datasets.Image(decode=False))
    rows = split.shuffle(seed=seed).select(range(min(images, len(split))))
    preprocessing = Preprocessing(AutoImageProcessor.from_pretrained(model_dir))
    return preprocessing([load_rgb_image(value) for value in rows["image"]])


@torch.no_grad()
def noise_effect(
    model: PinClipForImageClassification, pixels: torch.Tensor, draws: int = 8, seed: int = 0, batch_size: int = 64
) -> dict[str, float]:
    """Medians over images (and draws) of the embedding's norm and RMS, |margin| and |margin shift|; the mean shift
    towards the clean decision (positive: the noise pushes each image further to the side it is already on, as a
    learned μ that helps the classifier does); the share of (image, draw) pairs whose decision the noise flips.
    The model's mode, its `inference_noise` and the global RNG are left as they were."""

    def forward(noise: str) -> tuple[torch.Tensor, torch.Tensor]:
        model.config.inference_noise = noise
        outputs = [model(batch) for batch in pixels.split(batch_size)]
        return torch.cat([o.logits for o in outputs]), torch.cat([o.image_embeds for o in outputs])

    was_training, setting = model.training, model.config.inference_noise
    model.eval()
    try:
        with torch.random.fork_rng():
            torch.manual_seed(seed)
            logits, embeds = forward("none")
            margin = logits[:, 1] - logits[:, 0]
            shifts, towards, flips = [], [], 0
            for _ in range(draws):
                noisy, _ = forward("sample")
                noisy_margin = noisy[:, 1] - noisy[:, 0]
                shifts.extend((noisy_margin - margin).abs().tolist())
                towards.extend(((noisy_margin - margin) * margin.sign()).tolist())
                flips += int(((noisy_margin > 0) != (margin > 0)).sum())
    finally:
        model.config.inference_noise = setting
        model.train(was_training)
    return {
        "embedding_norm": statistics.median(embeds.norm(dim=-1).tolist()),
        "embedding_rms": statistics.median(embeds.pow(2).mean(dim=-1).sqrt().tolist()),
        "margin": statistics.median(margin.abs().tolist()),
        "shift": statistics.median(shifts),
        "towards": statistics.mean(towards),
        "flipped": flips / (draws * len(margin)),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("model_dirs", nargs="+", help="saved PiN-CLIP folders (train.py's output_dir)")
    parser.add_argument("--images", type=positive_int, default=512, help="validation images (drawn at random with --seed)")
    parser.add_argument("--draws", type=positive_int, default=8, help="noise draws per image")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    missing = [path for path in args.model_dirs if not (Path(path) / "config.json").is_file()]
    if missing:
        parser.error(f"not a saved model folder (no config.json): {', '.join(missing)}")
    print("| model | noise | ‖v‖ | RMS(v) | \\|margin\\| | \\|shift\\| by the noise | shift ÷ margin "
          "| mean shift towards the decision | decisions flipped |")
    print("|---|---|---|---|---|---|---|---|---|")
    for model_dir in args.model_dirs:
        model = PinClipForImageClassification.from_pretrained(model_dir)
        config = model.config
        noise = f"{config.noise_mode}, s = {config.random_noise_std:g}, {config.noise_scale}"
        row = noise_effect(model, validation_pixels(model_dir, args.images, args.seed), args.draws, args.seed)
        print(f"| {model_dir} | {noise} | {row['embedding_norm']:.1f} | {row['embedding_rms']:.2f} "
              f"| {row['margin']:.2f} | {row['shift']:.3f} | {row['shift'] / row['margin']:.3f} "
              f"| {row['towards']:+.3f} | {100 * row['flipped']:.2f} % |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
