"""Where a training step's time goes, `pin` against `none`: operator calls, wall time and, on a GPU, kernel time.

The accelerator benchmark (bench/gpu.sh) found the `pin` ÷ `none` training step of ViT-L/14 at 1.08× and 1.16× in
two runs of the same code on an H200, though the noise generator's arithmetic is tiny next to the backbone's. One
explanation is a step bound by the host: if the GPU idles while Python, autograd and autocast dispatch each operator,
every operator the noise branch adds costs its dispatch time, however small its kernel. This script measures that:
for the step of `bench/bench_gpu.py` (bf16 autocast, LoRA r=6 on q/k/v, AdamW) per noise mode, it counts the
operator calls of one step (`torch.profiler`), times steps interleaved, and on CUDA sums the kernel time of one step:
kernel time ÷ wall time is the share of the step the GPU was busy (well under 1: host-bound).

    python bench/profile_training_step.py                                  # tiny CLIP on this CPU (1 thread)
    python bench/profile_training_step.py --device cuda --shape vit-l-14 --batch 32   # on the accelerator
"""

from __future__ import annotations

import argparse
import statistics
from pathlib import Path

import torch
from torch.autograd import DeviceType
from torch.profiler import ProfilerActivity, profile

from bench_gpu import Settings, training_steps
from clip_checkpoints import CLIP_SHAPES
from common import positive_int, random_clip, time_interleaved


def profiled_step(step, device: torch.device) -> tuple[int, float]:
    """Operator calls (`aten::` events, nested ones included) and kernel milliseconds of one call of `step`."""
    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if device.type == "cuda" else [])
    with profile(activities=activities) as prof:
        step()
    events = prof.key_averages()
    calls = sum(event.count for event in events if event.key.startswith("aten::"))
    # Only the device's own events (kernels, copies, memsets): an operator's device time repeats its kernels'.
    kernel_us = sum(event.self_device_time_total for event in events if event.device_type == DeviceType.CUDA)
    return calls, kernel_us / 1000


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cpu", help="cpu (default) or cuda")
    parser.add_argument("--shape", default="tiny", choices=sorted(CLIP_SHAPES), help="random CLIP shape")
    parser.add_argument("--batch", type=positive_int, default=8)
    parser.add_argument("--rounds", type=positive_int, default=20)
    args = parser.parse_args(argv)
    device = torch.device(args.device)
    if device.type == "cpu":
        torch.set_num_threads(1)  # as the CPU suite measures (bench/NOTES.md §1)
    torch.manual_seed(0)
    settings = Settings(shape=args.shape, train_batch=args.batch, infer_batch=args.batch, deploy_batch=args.batch,
                        matmul_size=0, rounds=args.rounds, calls_per_round=1)
    clip_dir: Path = random_clip(args.shape)
    steps = training_steps(clip_dir, settings, device, lora=True)
    timings = time_interleaved(steps, rounds=args.rounds, warmup=2)
    print(f"{args.shape}, batch {args.batch}, bf16 autocast, LoRA r=6, AdamW, on {device}; "
          f"median of {args.rounds} interleaved steps\n")
    print("| noise mode | operator calls per step | wall ms per step | kernel ms per step | GPU busy |")
    print("|---|---|---|---|---|")
    for mode, step in steps.items():
        calls, kernel_ms = profiled_step(step, device)
        wall_ms = 1000 * statistics.median(timings.seconds[mode])
        busy = f"{kernel_ms / wall_ms:.2f}" if device.type == "cuda" else "–"
        kernel = f"{kernel_ms:.1f}" if device.type == "cuda" else "–"
        print(f"| {mode} | {calls:,} | {wall_ms:.2f} | {kernel} | {busy} |")
    print(f"\n`pin` ÷ `none` wall time: {timings.ratio('pin', 'none'):.3f}× (median of the per-round ratios)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
