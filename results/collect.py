"""Copy the reports of every run under outputs/ into results/, at the same relative paths, for the repository.

outputs/ is not committed (weights, plots, checkpoints); these text files are what the README's figures are read
from, so a fresh clone can check them (and `bench/bench_detection.py` reads the ablation summaries from here when
outputs/ has none). Run it after rerunning what the README cites:

    python results/collect.py            # outputs/ → results/ (replaces the copies of runs found in outputs/)
"""

import argparse
import shutil
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
# What train.py (metrics, table, model card, per-step log), ablation.py and pretrain_backbone.py write as reports.
REPORT_FILES = ("metrics.json", "results.md", "README.md", "train_log.jsonl", "ablation.json", "ablation.md",
                "pretraining.json")
# Folders inside a run that are not runs: the backbone a run started from, resumable training states.
NOT_RUNS = ("random-clip", "checkpoints")


def collect(outputs: Path = REPO_ROOT / "outputs", results: Path = REPO_ROOT / "results") -> list[Path]:
    """Copy each report file below `outputs` to the same place below `results`; returns the copies, sorted."""
    copied = []
    for source in sorted(outputs.rglob("*")):
        relative = source.relative_to(outputs)
        if source.name in REPORT_FILES and source.is_file() and not set(relative.parts) & set(NOT_RUNS):
            target = results / relative
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(source, target)
            copied.append(target)
    return copied


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.parse_args()  # no options: `--help` prints this and copies nothing
    copies = collect()
    print(f"{len(copies)} report files copied to {REPO_ROOT / 'results'}")
