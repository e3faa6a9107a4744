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
    """Copy the report files of each folder below `outputs` to the same place below `results`, a folder's reports
    together: its earlier copies go first, so no copy of one run stands beside another run's. A run still training
    (a `train_log.jsonl` without its `metrics.json`) is left out, its earlier copies kept. Returns the copies, sorted."""
    # every run folder, also one whose reports are gone (a rerun's); not results/ itself, which no run writes to, so
    # a README.md describing results/ stays
    folders: dict[Path, list[Path]] = {}
    for source in sorted(outputs.rglob("*")):
        relative = source.relative_to(outputs)
        if set(relative.parts) & set(NOT_RUNS):
            continue
        if source.is_dir():
            folders.setdefault(relative, [])
        elif source.name in REPORT_FILES and source.is_file():
            folders.setdefault(relative.parent, []).append(source)
    copied = []
    for folder, sources in sorted(folders.items()):
        names = {source.name for source in sources}
        if "train_log.jsonl" in names and "metrics.json" not in names:
            print(f"{outputs / folder}: still training (no metrics.json), its earlier copies kept")
            continue
        target_folder = results / folder
        for name in REPORT_FILES:  # reports this folder no longer has are an earlier run's
            (target_folder / name).unlink(missing_ok=True)
        if not sources:
            continue
        target_folder.mkdir(parents=True, exist_ok=True)
        for source in sources:
            shutil.copyfile(source, target_folder / source.name)
            copied.append(target_folder / source.name)
    return sorted(copied)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.parse_args()  # no options: `--help` prints this and copies nothing
    copies = collect()
    print(f"{len(copies)} report files copied to {REPO_ROOT / 'results'}")
