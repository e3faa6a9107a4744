"""When each training run left chance, and where its loss ended (README, "Results on MiniGenImage").

A tiny CLIP trained from random weights sits at chance loss for hundreds of steps before it learns, and a seed that
starts late can end underfit: its low test accuracy is then a failed optimisation, not a property of its noise mode.
This reads the `train_log.jsonl` of each run folder (what `train.py` writes) and prints, per run, the first logged
step whose clean loss (the cross-entropy on clean features, which every noise mode logs; the total `loss` of `pin`
and `random` adds the noisy term) falls below `--fraction` of the first logged one, its mean over the last `--tail`
logged steps, and the run's accuracy on its training family and its unseen families from `metrics.json` (unseen as
`ablation.py` counts them).

    python bench/training_onset.py outputs/ablation-minigenimage/*-seed*
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from ablation import unseen_mean, unseen_subsets  # noqa: E402
from common import positive_int  # noqa: E402


@dataclass
class Onset:
    """One run's learning onset and its end of training."""

    run: str
    onset_step: int | None  # None: the loss never fell below the fraction
    final_loss: float
    training_family_acc: float | None
    unseen_acc: float | None


def training_onset(run_dir: str | Path, fraction: float = 0.8, tail: int = 10) -> Onset:
    """The first logged step whose clean loss is below `fraction` × the first logged one, and the last `tail` steps'
    mean."""
    run_dir = Path(run_dir)
    log = run_dir / "train_log.jsonl"
    if not log.is_file():
        raise FileNotFoundError(f"{run_dir} holds no train_log.jsonl: not a train.py output folder")
    rows = [json.loads(line) for line in log.read_text().splitlines()]
    # The clean cross-entropy: `loss` adds λ × the noisy one under `pin` and `random` (twice the chance level at the
    # start), so only the clean term compares runs of different modes. Logs from before it was logged have `loss`.
    key = "clean_loss" if any("clean_loss" in row for row in rows) else "loss"
    losses = [(row["step"], row[key]) for row in rows if key in row]
    if not losses:
        raise ValueError(f"{log} logs no training loss")
    first = losses[0][1]
    onset = next((step for step, loss in losses if loss < fraction * first), None)
    final = statistics.fmean(loss for _, loss in losses[-tail:])
    training_acc = unseen = None
    metrics_path = run_dir / "metrics.json"
    if metrics_path.is_file():
        metrics = json.loads(metrics_path.read_text())
        unseen_names = unseen_subsets(metrics)  # as the ablation counts them
        if unseen_names is not None:
            unseen = unseen_mean(metrics)
            seen = [s["acc"] for name, s in metrics["subsets"].items() if name not in unseen_names]
            training_acc = statistics.fmean(seen) if seen else None
    return Onset(str(run_dir), onset, final, training_acc, unseen)


def _percent(value: float | None) -> str:
    return "–" if value is None else f"{100 * value:.1f}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("runs", nargs="+", help="train.py output folders")
    parser.add_argument("--fraction", type=float, default=0.8, help="onset: loss below this fraction of the first")
    # at least 1: losses[-0:] is the whole log, a negative tail all but its start, another figure than named
    parser.add_argument("--tail", type=positive_int, default=10, help="logged steps averaged for the final loss")
    args = parser.parse_args(argv)
    print("| run | leaves chance at step | final clean loss | training family acc | unseen-family acc |")
    print("|---|---|---|---|---|")
    for run in args.runs:
        try:
            onset = training_onset(run, args.fraction, args.tail)
        except (FileNotFoundError, ValueError) as error:
            parser.error(str(error))
        step = "never" if onset.onset_step is None else f"{onset.onset_step:,}"
        print(f"| {onset.run} | {step} | {onset.final_loss:.3f} | {_percent(onset.training_family_acc)} | "
              f"{_percent(onset.unseen_acc)} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
