"""Shared pieces of the benchmark suite: interleaved timing, cached random CLIP checkpoints, machine facts.

Every speed figure is a ratio of two things timed in the same process, interleaved A, B, B, A, A, B ... after a
warm-up, and summarised by the median of the per-round ratios. Other processes on a shared machine slow A and B
alike within a round, so the per-round ratio cancels most of that load; the rounds go through every order of the
functions in turn (A, B then B, A; six orders for three), so that over each whole cycle of orders each one runs right
after each other one as often as the other way round (cache, allocator and thermal effects).
"""

from __future__ import annotations

import argparse
import contextlib
import itertools
import math
import os
import platform
import shutil
import statistics
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
if str(REPO_ROOT) not in sys.path:  # the benchmarks import the model files from the repository root
    sys.path.insert(0, str(REPO_ROOT))
os.environ.setdefault("HF_HUB_OFFLINE", "1")  # checkpoints are local folders; never reach for the Hub

import torch  # noqa: E402

# torch's own intra-op thread count, read before `run_all.py --threads` changes it (not os.cpu_count(): a process
# pinned to fewer cores gets fewer)
TORCH_DEFAULT_THREADS = torch.get_num_threads()

# Random checkpoints are large (ViT-L/14: ~1.7 GB) and slow to initialise: keep them between runs.
CACHE_DIR = Path(os.environ.get("PINCLIP_BENCH_CACHE", REPO_ROOT / ".cache" / "bench"))
MODEL_CODE = ("modeling_pinclip.py", "configuration_pinclip.py")  # what a saved PiN-CLIP carries as remote code


@dataclass
class Figure:
    """One row of `bench/results.md`: a measured value against its target."""

    name: str
    setup: str
    value: str
    target: str
    passed: bool | None  # None: informational, or not measured
    details: list[str] = field(default_factory=list)


@dataclass
class Timings:
    """Seconds per call of each timed function, one entry per round, in round order: wall-clock `seconds` and the
    process's CPU seconds (`time.process_time`, all threads of this process, none of its child processes)."""

    seconds: dict[str, list[float]]
    cpu_seconds: dict[str, list[float]] = field(default_factory=dict)

    def median(self, name: str) -> float:
        return statistics.median(self.seconds[name])

    def ratio(self, numerator: str, denominator: str) -> float:
        """Median over rounds of time(numerator) / time(denominator) within the same round."""
        pairs = zip(self.seconds[numerator], self.seconds[denominator])
        return statistics.median(a / b for a, b in pairs)

    def ratios(self, numerator: str, denominator: str) -> list[float]:
        return [a / b for a, b in zip(self.seconds[numerator], self.seconds[denominator])]

    def cpu_ratios(self, numerator: str, denominator: str) -> list[float]:
        """Per-round ratios of CPU seconds: the work each call did. Time the machine's other tenants take from this
        process moves wall-clock ratios but not these (contention for caches and memory still moves both)."""
        return [a / b for a, b in zip(self.cpu_seconds[numerator], self.cpu_seconds[denominator])]


def time_interleaved(functions: dict[str, Callable[[], object]], rounds: int, warmup: int = 1) -> Timings:
    """Time each function once per round, the rounds cycling through every order of them, after `warmup` untimed
    rounds."""
    names = list(functions)
    for _ in range(warmup):
        for name in names:
            functions[name]()
    seconds: dict[str, list[float]] = {name: [] for name in names}
    cpu_seconds: dict[str, list[float]] = {name: [] for name in names}
    orders = list(itertools.permutations(names))
    for round_index in range(rounds):
        for name in orders[round_index % len(orders)]:
            start, cpu_start = time.perf_counter(), time.process_time()
            functions[name]()
            seconds[name].append(time.perf_counter() - start)
            cpu_seconds[name].append(time.process_time() - cpu_start)
    return Timings(seconds, cpu_seconds)


@contextlib.contextmanager
def torch_threads(count: int | None) -> Iterator[None]:
    """Run the block with `count` intra-op threads (None: leave torch's setting alone), then restore it."""
    before = torch.get_num_threads()
    if count is not None:
        torch.set_num_threads(count)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def judged(value: float, target: float, decimals: int, at_most: bool = False) -> tuple[float, bool]:
    """`value` rounded to `decimals` the conservative way (up against an at-most target, down against an at-least
    one) and whether that rounded value meets `target`: the figure printed and its verdict always agree (judged
    unrounded, 0.9696 printed as 0.970 failed a 0.97 target)."""
    scaled = round(value * 10**decimals, 6)  # float noise first: 0.97 × 1000 is 969.999...
    shown = (math.ceil(scaled) if at_most else math.floor(scaled)) / 10**decimals
    return shown, shown <= target if at_most else shown >= target


def positive_int(text: str) -> int:
    """An argparse type: a count of at least 1 (0 rounds, images or clients gave a traceback, or another figure)."""
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def thread_setting(count: int) -> str:
    """`1 torch thread` / `2 torch threads`: the setting a figure was measured under, in its setup."""
    return f"{count} torch thread{'s' * (count != 1)}"


def min_max(values: list[float]) -> str:
    """`min–max` of a list of ratios, to show how much the machine's load moved them."""
    return f"{min(values):.3f}–{max(values):.3f}"


def process_alive(pid: str) -> bool:
    """Whether the process of that id (a string from a folder name) still runs on this machine."""
    if not pid.isdigit():
        return False
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's
        return True
    return True


def cached_folder(folder: Path, write: Callable[[Path], object]) -> Path:
    """`folder`, written by `write(path)` unless it exists: into a folder beside it first, renamed into place once
    whole, so a run killed while writing (a 1.7 GB ViT-L checkpoint) leaves no half-written folder later runs reuse."""
    if folder.is_dir():
        return folder
    for left in folder.parent.glob(f"{folder.name}.partial-*"):  # a killed run's (out of memory, say): never reused
        if not process_alive(left.name.rsplit("-", 1)[1]):
            shutil.rmtree(left, ignore_errors=True)
    partial = folder.with_name(f"{folder.name}.partial-{os.getpid()}")
    shutil.rmtree(partial, ignore_errors=True)
    try:
        write(partial)
        os.replace(partial, folder)
    finally:
        shutil.rmtree(partial, ignore_errors=True)
    return folder


def random_clip(shape: str, seed: int = 0) -> Path:
    """A cached random-weight CLIP checkpoint folder (`clip_checkpoints.write_random_clip`) of the given shape."""
    from clip_checkpoints import write_random_clip

    return cached_folder(CACHE_DIR / f"clip-{shape}-seed{seed}",
                         lambda folder: write_random_clip(folder, shape=shape, seed=seed))


def saved_pinclip(clip_dir: Path, out_dir: Path, **config: object) -> Path:
    """`out_dir` holding a PiN-CLIP (weights, remote code, image processor) built from the CLIP checkpoint
    `clip_dir` with `config` overrides; built once per version of the model code and kept.

    Rebuilt when its copy of the remote code differs from the repository's: `pipeline(..., trust_remote_code=True)`
    runs the copy, `Detector.load` the repository's class, so a stale copy would time two versions against each other.
    """
    from modeling_pinclip import PinClipForImageClassification

    current = all((out_dir / name).is_file() and (out_dir / name).read_bytes() == (REPO_ROOT / name).read_bytes()
                  for name in MODEL_CODE)
    if not current:
        shutil.rmtree(out_dir, ignore_errors=True)
    return cached_folder(out_dir, lambda folder: PinClipForImageClassification.from_clip(str(clip_dir), **config)
                         .save_pretrained(folder))


def machine_facts() -> dict[str, str]:
    """CPU model, cores, library versions and thread settings, for the header of the results."""
    import transformers

    cpu = platform.processor() or "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    env_names = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE")
    env = ", ".join(f"{name}={os.environ[name]}" for name in env_names if name in os.environ) or "none set"
    return {
        "CPU": f"{cpu} ({os.cpu_count()} logical cores visible)",
        "Python": platform.python_version(),
        "torch": f"{torch.__version__} (BLAS: {'MKL' if torch.backends.mkl.is_available() else 'other'}, "
        f"oneDNN: {torch.backends.mkldnn.is_available()})",
        "transformers": transformers.__version__,
        "threads": f"torch intra-op {torch.get_num_threads()}, inter-op {torch.get_num_interop_threads()}",
        "thread/BLAS environment": env,
    }


def load_average() -> str:
    """The 1-minute load average, to show how busy the machine was while a figure was measured."""
    try:
        return f"{os.getloadavg()[0]:.1f}"
    except OSError:
        return "n/a"
