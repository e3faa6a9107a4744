"""Where the evaluation-throughput benchmark's time goes, and what parallel loading can gain on this machine.

Uses the 512-file reference folder and the default (`tiny-64`) detector of `bench_eval_throughput.py`, one torch
thread, and prints:

1. per file kind (size × format): milliseconds per image to decode (`load_rgb_image`), to preprocess with the
   saved image processor (what the `pipeline` loop does), to preprocess as `Detector.scan` does (its per-image
   step plus its share of the per-batch step) and to run the model (batch 32);
2. wall-clock and CPU milliseconds per image of four ways to score the whole folder: the per-image `pipeline`
   loop, `Detector.scan` in-process, `Detector.scan` with 2 DataLoader worker processes, and the same work with
   2 decoding threads in the main process (Pillow and NumPy release the GIL while they decode and normalise);
3. the ratio the ≥ 3× target asks for, and its bound: loop CPU per image ÷ (in-process scan CPU per image ÷ cores);
4. what starting the DataLoader workers costs per scan (a 2-file scan with and without them);
5. whether the cores slow each other down: CPU per image of decoding the folder alone, and in each of two
   processes decoding it at the same time.

    python bench/profile_eval_decoding.py [--rounds 3]

The numbers behind bench/NOTES.md §2.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from multiprocessing import get_context
from pathlib import Path
from typing import TYPE_CHECKING

import torch

from bench_eval_throughput import DEFAULT_SHAPE, FORMATS, SIZES, cpu_time, image_folder, saved_detector
from common import CACHE_DIR, load_average, positive_int

if TYPE_CHECKING:
    from transformers import Pipeline

    from inference import Detector

BATCH_SIZE = 32
PARALLEL = 2  # DataLoader workers or decoding threads


def per_call_ms(function: Callable[[object], object], inputs: list, rounds: int) -> float:
    """Fastest over `rounds` of the mean milliseconds per input (the fastest round is the least disturbed one)."""
    best = float("inf")
    for _ in range(rounds):
        start = time.perf_counter()
        for value in inputs:
            function(value)
        best = min(best, time.perf_counter() - start)
    return 1000 * best / len(inputs)


def stage_costs(detector: Detector, paths: list[Path], rounds: int) -> None:
    from image_io import load_rgb_image

    crop = detector.processor.crop_size
    batch = torch.randn(BATCH_SIZE, 3, crop["height"], crop["width"])
    model_ms = per_call_ms(lambda _: detector.fake_probabilities(batch), [None] * 5, rounds) / BATCH_SIZE
    processor = detector.processor

    def processor_preprocessing(image) -> None:  # what the `pipeline` loop runs
        processor(images=image, return_tensors="pt")

    def scan_preprocessing(image) -> None:
        # Both of the scan's steps on a batch of one: an upper bound of the per-batch step's share.
        detector.preprocessing([image])

    print(f"| file kind | files | decode ms | preprocess ms: processor | preprocess ms: scan | model ms (batch "
          f"{BATCH_SIZE}) |\n|---|---|---|---|---|---|")
    for size in SIZES:
        for fmt in FORMATS:
            kind = [path for path in paths if path.name.endswith(f"-{size}.{fmt}")]
            images = [load_rgb_image(path) for path in kind]
            decode = per_call_ms(load_rgb_image, kind, rounds)
            whole = per_call_ms(processor_preprocessing, images, rounds)
            scan = per_call_ms(scan_preprocessing, images, rounds)
            print(f"| {size}×{size} {fmt.upper()} | {len(kind)} | {decode:.3f} | {whole:.3f} | {scan:.3f} | "
                  f"{model_ms:.3f} |")


def threaded_scan(detector: Detector, paths: list[Path]) -> None:
    """`Detector.scan`'s work with the DataLoader replaced by a pool of decoding threads (same dataset and collate)."""
    from inference import _ImageFiles, _stack_readable

    files = _ImageFiles(paths, detector.preprocessing)
    batches = [range(start, min(start + BATCH_SIZE, len(paths))) for start in range(0, len(paths), BATCH_SIZE)]
    with ThreadPoolExecutor(PARALLEL) as pool:
        for _, stacked in pool.map(lambda batch: _stack_readable([files[i] for i in batch]), batches):
            detector.fake_probabilities(detector.preprocessing.per_batch(stacked))


def loader_costs(detector: Detector, classifier: Pipeline, paths: list[Path], rounds: int) -> None:
    ways = {
        "per-image `pipeline` loop": lambda: [classifier(str(path)) for path in paths],
        "`Detector.scan`, in-process": lambda: list(detector.scan(paths, BATCH_SIZE, num_workers=0)),
        f"`Detector.scan`, {PARALLEL} DataLoader workers": lambda: list(detector.scan(paths, BATCH_SIZE, PARALLEL)),
        f"{PARALLEL} decoding threads": lambda: threaded_scan(detector, paths),
    }
    wall: dict[str, list[float]] = {name: [] for name in ways}
    cpu: dict[str, list[float]] = {name: [] for name in ways}
    for name, run in ways.items():  # one warm-up each, then rounds interleaved
        run()
    for round_index in range(rounds):
        for name in ways if round_index % 2 == 0 else reversed(list(ways)):
            cpu_before, wall_before = cpu_time(), time.perf_counter()
            ways[name]()
            wall[name].append(1000 * (time.perf_counter() - wall_before) / len(paths))
            cpu[name].append(1000 * (cpu_time() - cpu_before) / len(paths))
    loop = list(ways)[0]
    print(f"\n| way ({len(paths)} files, median of {rounds} rounds) | wall ms/image | CPU ms/image | images/s "
          "÷ loop |\n|---|---|---|---|")
    for name in ways:
        ratio = statistics.median(w_loop / w for w_loop, w in zip(wall[loop], wall[name]))
        print(f"| {name} | {statistics.median(wall[name]):.2f} | {statistics.median(cpu[name]):.2f} | {ratio:.2f}× |")
    cores = os.cpu_count() or 1
    in_process = statistics.median(cpu[list(ways)[1]])
    bound = statistics.median(cpu[loop]) / (in_process / cores)
    print(f"\nbound with {cores} cores and no loading overhead: loop CPU {statistics.median(cpu[loop]):.2f} ms ÷ "
          f"(in-process scan CPU {in_process:.2f} ms ÷ {cores}) = {bound:.2f}×; 1-min load average {load_average()}")


def worker_start_up(detector: Detector, paths: list[Path], rounds: int) -> None:
    for workers in (0, PARALLEL):
        wall, cpu = [], []
        for _ in range(rounds + 1):
            cpu_before, wall_before = cpu_time(), time.perf_counter()
            list(detector.scan(paths[:2], BATCH_SIZE, workers))
            wall.append(1000 * (time.perf_counter() - wall_before))
            cpu.append(1000 * (cpu_time() - cpu_before))
        print(f"\n2-file scan with {workers} DataLoader workers: {statistics.median(wall[1:]):.1f} ms wall, "
              f"{statistics.median(cpu[1:]):.1f} ms CPU (median of {rounds} after 1 warm-up)", end="")
    print()


def decoding_cpu_ms(paths: list[Path]) -> float:
    """CPU milliseconds per image of decoding `paths` in this process (module level: runs in a process pool)."""
    from image_io import load_rgb_image

    start = time.process_time()
    for path in paths:
        load_rgb_image(path)
    return 1000 * (time.process_time() - start) / len(paths)


def parallel_contention(paths: list[Path], rounds: int) -> None:
    with get_context("fork").Pool(PARALLEL) as pool:
        for _ in range(rounds):
            alone = decoding_cpu_ms(paths)
            together = pool.map(decoding_cpu_ms, [paths] * PARALLEL)
            print(f"decoding CPU ms per image: alone {alone:.3f}, {PARALLEL} processes at once "
                  f"{' / '.join(f'{ms:.3f}' for ms in together)}")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=positive_int, default=3)
    rounds = parser.parse_args(argv).rounds
    from transformers import pipeline

    from inference import Detector

    torch.set_num_threads(1)
    paths = image_folder(CACHE_DIR / "eval-images", per_kind=128)
    model_dir = saved_detector(DEFAULT_SHAPE)
    detector = Detector.load(model_dir, device="cpu")
    classifier = pipeline("image-classification", model=str(model_dir), trust_remote_code=True, device="cpu")
    stage_costs(detector, paths, rounds)
    loader_costs(detector, classifier, paths, rounds)
    worker_start_up(detector, paths, rounds)
    parallel_contention(paths, rounds)


if __name__ == "__main__":
    main()
