"""Run the whole benchmark suite and write `bench/results.md`: the machine, then every figure with its target.

    python bench/run_all.py            # full run, about 9 minutes on 2 cores; writes bench/results.md
    python bench/run_all.py --quick    # smoke run on tiny models (under a minute); writes .cache/bench/results-quick.md
    python bench/run_all.py --only inference,size
    python bench/run_all.py --threads 0   # torch's default threads (one per core): for a machine nobody else uses

Exit status: 2 when a benchmark crashed (its row holds the error), else 1 when a full run misses a target, else 0
(a --quick smoke run's numbers mean nothing, so only a crash fails it).

The figures and their setups are described in each `bench/bench_*.py`; how they are measured in `common.py`.
"""

from __future__ import annotations

import argparse
import datetime
import gc
import os
import shlex
import sys
import time
import traceback
from collections.abc import Callable
from pathlib import Path

import torch

from common import CACHE_DIR, Figure, load_average, machine_facts

import bench_detection
import bench_eval_throughput
import bench_inference
import bench_size_memory
import bench_train_step

# name → run function, in the order of the README's table.
BENCHES: dict[str, Callable[..., list[Figure]]] = {
    "train": bench_train_step.run,
    "inference": bench_inference.run,
    "size": bench_size_memory.run,
    "eval": bench_eval_throughput.run,
    "detection": bench_detection.run,
}
BENCH_DIR = Path(__file__).resolve().parent
DEFAULT_OUTPUT = BENCH_DIR / "results.md"
QUICK_OUTPUT = CACHE_DIR / "results-quick.md"
CRASHED = "(crashed)"  # the setup of a benchmark's row when it raised
PARTIAL_OUTPUT = CACHE_DIR / "results-partial.md"  # an --only run: never replaces the full suite's results.md


def run_bench(name: str, quick: bool) -> list[Figure]:
    """One benchmark's figures; a crash becomes a failed row with the error, so the others still run."""
    started = time.perf_counter()
    try:
        figures = BENCHES[name](quick=quick)
    except Exception as error:  # noqa: BLE001 - one broken benchmark must not hide the others' results
        traceback.print_exc()
        figures = [Figure(name=name, setup=CRASHED, value=f"error: {type(error).__name__}: {error}",
                          target="", passed=False)]
    gc.collect()  # the next benchmark should not share the machine with this one's models
    print(f"[{name}] done in {time.perf_counter() - started:.0f} s", flush=True)
    return figures


def table_cell(text: str) -> str:
    """Text that stays in its Markdown table cell (an error message may hold '|' or line breaks)."""
    return " ".join(str(text).split()).replace("|", "\\|")


def verdict(passed: bool | None) -> str:
    return {True: "pass", False: "**FAIL**", None: "–"}[passed]


def markdown(figures: list[Figure], command: str, quick: bool, seconds: float, output: Path) -> str:
    """The results file written to `output` by `command`: header with the machine, one table row per figure, then
    each figure's details."""
    stamp = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    # links that resolve from wherever the file is written (.cache/bench/ for an --only run)
    bench_dir = Path(os.path.relpath(BENCH_DIR, output.resolve().parent)).as_posix()
    lines = [
        "# PiN-CLIP benchmark results",
        "",
        f"Written by `{command}` on {stamp} in {seconds / 60:.1f} min"
        + (" — **quick smoke run on tiny models: the numbers mean nothing**" if quick else "") + ".",
        f"How each figure is measured: [bench/README.md]({bench_dir}/README.md); profiling findings: "
        f"[bench/NOTES.md]({bench_dir}/NOTES.md).",
        "",
        "## Machine",
        "",
        *(f"- {key}: {value}" for key, value in machine_facts().items()),
        f"- 1-minute load average at the end: {load_average()} (other processes share this machine; every speed "
        "figure is a ratio of interleaved measurements in one process, see README)",
        "",
        "## Figures",
        "",
        "| figure | setup | value | target | result |",
        "|---|---|---|---|---|",
        *("| " + " | ".join(map(table_cell, (f.name, f.setup, f.value, f.target, verdict(f.passed)))) + " |"
          for f in figures),
        "",
        "## Details",
        "",
    ]
    for figure in figures:
        lines += [f"**{figure.name}**", "", *(f"- {line}" for line in figure.details or ["(none)"]), ""]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="tiny models, few rounds: a smoke run")
    parser.add_argument("--threads", type=int, default=1,
                        help="torch intra-op threads for every figure (default 1: on a shared machine a thread per "
                        "core stalls whenever another process holds a core, see bench/NOTES.md; 0: torch's default)")
    parser.add_argument("--only", help=f"comma-separated subset of {','.join(BENCHES)}")
    parser.add_argument("--output", type=Path, help="results file (default bench/results.md; with --only "
                        ".cache/bench/results-partial.md, else with --quick .cache/bench/results-quick.md)")
    args = parser.parse_args(argv)
    names = args.only.split(",") if args.only else list(BENCHES)
    unknown = sorted(set(names) - set(BENCHES))
    if unknown:
        parser.error(f"unknown benchmark(s) {unknown}; choose from {list(BENCHES)}")
    output = args.output or (PARTIAL_OUTPUT if args.only else QUICK_OUTPUT if args.quick else DEFAULT_OUTPUT)
    if args.threads > 0:
        torch.set_num_threads(args.threads)
    started = time.perf_counter()
    figures = [figure for name in names for figure in run_bench(name, args.quick)]
    command = shlex.join(["python", "bench/run_all.py", *(sys.argv[1:] if argv is None else argv)])
    text = markdown(figures, command, args.quick, time.perf_counter() - started, output)
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(text)
    print(text)
    print(f"written to {output}")
    if any(figure.setup == CRASHED for figure in figures):
        return 2
    # a smoke run's numbers mean nothing: only a crash fails it
    return 0 if args.quick or all(f.passed is not False for f in figures) else 1


if __name__ == "__main__":
    sys.exit(main())
