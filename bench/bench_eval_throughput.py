"""Evaluation throughput: images/s of the batched DataLoader scoring path (`inference.Detector.scan`, the path of
`predict.py` and evaluation) ÷ images/s of a per-image `pipeline("image-classification")` loop, on one folder.

Both read the same files from disk and do decode + preprocess + model; both load their saved detector once,
outside the timing. The folder holds 64×64 and 512×512 images, half PNG and half JPEG, with photo-like content
(a smooth random field plus sensor-like noise) so that decoding costs what it costs on real photos. The
scan's DataLoader workers are started inside the timed region, as they are on every real scan.

    python bench/bench_eval_throughput.py [--quick] [--shape vit-b-16]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
from PIL import Image

from common import CACHE_DIR, Figure, load_average, random_clip, spread, time_interleaved

TARGET = 3.0
SIZES = (64, 512)
FORMATS = ("png", "jpg")


def photo_like(size: int, rng: np.random.Generator) -> Image.Image:
    """A smooth random colour field plus pixel noise: compresses like a photo, unlike pure noise or flat colour."""
    coarse = rng.integers(0, 256, (max(size // 32, 2), max(size // 32, 2), 3), dtype=np.uint8)
    smooth = np.asarray(Image.fromarray(coarse).resize((size, size), Image.Resampling.BICUBIC), dtype=np.int16)
    noisy = smooth + rng.normal(0, 6, smooth.shape).astype(np.int16)
    return Image.fromarray(np.clip(noisy, 0, 255).astype(np.uint8))


def image_folder(folder: Path, per_kind: int) -> list[Path]:
    """`per_kind` images of each size × format in `folder` (written once), interleaved so batches mix them."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    paths = []
    for index in range(per_kind):
        for size in SIZES:
            for fmt in FORMATS:
                path = folder / f"{index:03d}-{size}.{fmt}"
                if not path.is_file():
                    photo_like(size, rng).save(path, quality=90) if fmt == "jpg" else photo_like(size, rng).save(path)
                paths.append(path)
    return paths


def saved_detector(shape: str) -> Path:
    """A saved PiN-CLIP detector (weights, remote code, image processor) built from a random CLIP of `shape`."""
    from modeling_pinclip import PinClipForImageClassification

    out_dir = CACHE_DIR / f"pinclip-{shape}-detector"
    if not (out_dir / "config.json").is_file():
        PinClipForImageClassification.from_clip(str(random_clip(shape))).save_pretrained(out_dir)
    return out_dir


def run(quick: bool = False, shape: str | None = None, batch_size: int = 32, num_workers: int = 2) -> list[Figure]:
    """Measure the scan ÷ pipeline-loop throughput ratio with a detector of `shape` (default: ViT-B/16)."""
    from transformers import pipeline

    from inference import Detector

    shape = shape or ("tiny" if quick else "vit-b-16")
    per_kind, rounds = (2, 3) if quick else (16, 4)
    model_dir = saved_detector(shape)
    paths = image_folder(CACHE_DIR / "eval-images", per_kind)
    detector = Detector.load(model_dir, device="cpu")
    classifier = pipeline("image-classification", model=str(model_dir), trust_remote_code=True, device="cpu")

    def scan() -> None:
        results = list(detector.scan(paths, batch_size=batch_size, num_workers=num_workers))
        if any(result.error for result in results):
            raise RuntimeError(f"scan failed on some files: {[r.error for r in results if r.error][:3]}")

    def pipeline_loop() -> None:
        for path in paths:
            classifier(str(path))

    timings = time_interleaved({"scan": scan, "pipeline": pipeline_loop}, rounds=rounds, warmup=1)
    ratio = timings.ratio("pipeline", "scan")  # images/s ratio = inverse time ratio
    count = len(paths)
    return [
        Figure(
            name=f"evaluation throughput ({shape})",
            setup=f"{count} files ({', '.join(f'{s}×{s}' for s in SIZES)} × PNG/JPEG), {shape} detector, "
            f"decode + preprocess + model; `Detector.scan` (batch {batch_size}, {num_workers} DataLoader workers) "
            "÷ per-image `pipeline` loop, images/s",
            value=f"{ratio:.2f}×",
            target=f"≥ {TARGET:.0f}×",
            passed=ratio >= TARGET,
            details=[
                f"median images/s: scan {count / timings.median('scan'):.1f}, pipeline loop "
                f"{count / timings.median('pipeline'):.1f} (per-round ratios {spread(timings.ratios('pipeline', 'scan'))}; "
                f"{rounds} interleaved rounds after 1 warm-up; 1-min load average at the end: {load_average()})",
            ],
        )
    ]


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="tiny detector, few files and rounds: checks that it runs")
    parser.add_argument("--shape", help="CLIP shape of the detector (clip_checkpoints.CLIP_SHAPES)")
    parser.add_argument("--batch_size", type=int, default=32)
    parser.add_argument("--num_workers", type=int, default=2)
    args = parser.parse_args()
    for figure in run(args.quick, args.shape, args.batch_size, args.num_workers):
        print(figure)
