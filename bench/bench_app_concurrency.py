"""How the demo should serve concurrent `/predict` requests: in-process images/s of three ways to score N uploads.

- one at a time: one `Detector.score_images([image])` after another (a `/predict` concurrency of 1);
- concurrent: the same single-image calls from `--concurrency` threads at once (what `PREDICT_CONCURRENCY` does);
- pooled: the uploads gathered into batches of up to `--concurrency` images, scored one batch after another (what
  pooling concurrent requests into shared batches would do, without the wait to fill a batch).

The three run interleaved, every order in turn, for `--rounds` rounds after a warm-up. Without `--model`, a
random-weight PiN-CLIP of `--shape` is scored: weights do not change the cost. torch keeps its default thread count,
as the app does.

    python bench/bench_app_concurrency.py [--model PATH] [--shape vit-b-16] [--images 16] [--concurrency 8]
"""

from __future__ import annotations

import argparse
import sys
from concurrent.futures import ThreadPoolExecutor

import numpy as np
from PIL import Image

from common import (
    CACHE_DIR, load_average, machine_facts, min_max, positive_int, random_clip, saved_pinclip, time_interleaved,
)
from inference import Detector  # noqa: E402  (common puts the repository on the path)


def uploads(count: int, size: int) -> list[Image.Image]:
    """`count` random RGB images of the model's input size (the app scores the centre crop of any upload)."""
    rng = np.random.default_rng(0)
    return [Image.fromarray(rng.integers(0, 256, (size, size, 3), dtype=np.uint8)) for _ in range(count)]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", help="model folder (default: a random-weight PiN-CLIP of --shape)")
    parser.add_argument("--shape", default="vit-b-16", help="CLIP shape of the random model (default: %(default)s)")
    parser.add_argument("--images", type=positive_int, default=16, help="uploads scored per way and round")
    parser.add_argument("--concurrency", type=positive_int, default=8, help="threads, and the largest pooled batch")
    parser.add_argument("--rounds", type=positive_int, default=3)
    args = parser.parse_args(argv)
    model = args.model or saved_pinclip(random_clip(args.shape), CACHE_DIR / f"pinclip-{args.shape}")
    detector = Detector.load(model, device="cpu")
    images = uploads(args.images, detector.model.config.image_size)

    def one_at_a_time() -> None:
        for image in images:
            detector.score_images([image])

    def concurrent() -> None:
        with ThreadPoolExecutor(args.concurrency) as pool:
            list(pool.map(lambda image: detector.score_images([image]), images))

    def pooled() -> None:
        for start in range(0, len(images), args.concurrency):
            detector.score_images(images[start:start + args.concurrency])

    timings = time_interleaved({"one at a time": one_at_a_time, "concurrent": concurrent, "pooled": pooled},
                               rounds=args.rounds)
    for key, value in machine_facts().items():
        print(f"{key}: {value}")
    print(f"model: {args.model or f'random-weight PiN-CLIP ({args.shape})'}; {args.images} images of "
          f"{detector.model.config.image_size} px, {args.rounds} interleaved rounds after a warm-up")
    for name, seconds in timings.seconds.items():
        print(f"{name}: {min_max([args.images / s for s in seconds])} images/s "
              f"(median {args.images / timings.median(name):.2f})")
    print(f"concurrent ÷ one at a time: {1 / timings.ratio('concurrent', 'one at a time'):.2f}×; "
          f"concurrent ÷ pooled: {1 / timings.ratio('concurrent', 'pooled'):.2f}× (medians of per-round ratios)")
    print(f"load average after the run: {load_average()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
