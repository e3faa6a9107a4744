"""The paper's noise ablation in one command: train every `--noise_mode` over several seeds, one table.

    python ablation.py --ablation_seeds 3 [any train.py argument ...]

Each run is `train.py` with `--noise_mode MODE --seed SEED --output_dir OUT/MODE-seedSEED`; the table gives, per test
subset, for the mean over all test subsets and for the mean over the generator families absent from training (the
cross-family figure the method is about), the accuracy as mean ± std over seeds, and the validation mean accuracy,
the only number used to choose settings. Written to OUT/ablation.md and OUT/ablation.json (`bench/bench_detection.py`
reads the latter).

A run that finished is kept: rerunning the same command (after a crash, or with more `--ablation_seeds`) trains only
the runs whose folder lacks a finished run of the same `train.py` arguments (`ablation_run.json` beside its
`metrics.json`); delete a run's folder to train it again. A run that crashed after saving checkpoints
(`--checkpointing_steps`) continues from them when `--resume_from_checkpoint latest` is passed through; otherwise
`train.py` refuses to start over on top of them.
"""

import argparse
import json
import sys
from pathlib import Path

import numpy as np
from accelerate.state import AcceleratorState

import train
from configuration_pinclip import NOISE_MODES

RUN_RECORD = "ablation_run.json"  # the train.py arguments of a finished run


def mean_std(values: list[float]) -> dict:
    """Mean and sample standard deviation (ddof=1; 0 for one seed) of per-seed values, which are kept."""
    std = float(np.std(values, ddof=1)) if len(values) > 1 else 0.0
    return {"mean": float(np.mean(values)), "std": std, "values": values}


def ablation_table(summary: dict) -> str:
    """Markdown: one row per test subset, then the test, unseen-family and validation means; a column per mode."""
    modes = list(summary)
    rows = list(next(iter(summary.values()))["subsets"]) + ["**test mean**", "**unseen-family mean**", "validation mean"]
    lines = ["| subset | " + " | ".join(modes) + " |", "|---" * (len(modes) + 1) + "|"]
    for row in rows:
        key = {"**test mean**": "mean", "**unseen-family mean**": "unseen", "validation mean": "validation"}.get(row)
        cells = []
        for mode in modes:
            stats = summary[mode][key] if key else summary[mode]["subsets"][row]
            cells.append(f"{100 * stats['mean']:.1f} ± {100 * stats['std']:.1f}" if stats else "–")
        lines.append(f"| {row} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def unseen_mean(metrics: dict) -> float | None:
    """Mean accuracy over the test subsets whose generator family was not in the training data."""
    seen = set((metrics.get("training") or {}).get("generators") or [])
    unseen = [result["acc"] for name, result in metrics["subsets"].items() if name not in seen]
    return float(np.mean(unseen)) if seen and unseen else None


def what_is_trained(run_args: list[str]) -> list[str]:
    """A run's train.py arguments without `--resume_from_checkpoint X` (or `=X`), which changes how a run gets done,
    not what."""
    kept, skip_value = [], False
    for token in run_args:
        if skip_value:
            skip_value = False
        elif token == "--resume_from_checkpoint":
            skip_value = True
        elif not token.startswith("--resume_from_checkpoint="):
            kept.append(token)
    return kept


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--ablation_seeds", type=int, default=3, help="seeds 0 .. N-1 for every mode")
    parser.add_argument("--modes", nargs="+", default=list(NOISE_MODES), choices=NOISE_MODES)
    parser.add_argument("--output_dir", default="outputs/ablation-minigenimage")
    own, train_args = parser.parse_known_args(argv)
    if own.ablation_seeds < 1:
        parser.error(f"--ablation_seeds must be at least 1, got {own.ablation_seeds}")
    out = Path(own.output_dir)
    runs: dict[str, list[dict]] = {}
    for mode in own.modes:
        for seed in range(own.ablation_seeds):
            run_dir = out / f"{mode}-seed{seed}"
            run_args = train_args + ["--noise_mode", mode, "--seed", str(seed), "--output_dir", str(run_dir)]
            record = run_dir / RUN_RECORD
            if record.is_file() and json.loads(record.read_text()) == what_is_trained(run_args):
                print(f"{run_dir}: finished earlier with the same arguments, kept")
            else:
                record.unlink(missing_ok=True)
                train.main(run_args)
                AcceleratorState._reset_state(reset_partial_state=True)  # the next run builds a fresh Accelerator
                record.write_text(json.dumps(what_is_trained(run_args)) + "\n")  # once metrics.json is written
            runs.setdefault(mode, []).append(json.loads((run_dir / "metrics.json").read_text()))
    summary = {}
    for mode, results in runs.items():
        subsets = list(results[0]["subsets"])
        validation = [r["validation"]["mean"]["acc"] for r in results if r.get("validation")]
        unseen = [value for value in map(unseen_mean, results) if value is not None]
        summary[mode] = {
            "subsets": {s: mean_std([r["subsets"][s]["acc"] for r in results]) for s in subsets},
            "mean": mean_std([r["mean"]["acc"] for r in results]),
            "unseen": mean_std(unseen) if len(unseen) == len(results) else None,
            "validation": mean_std(validation) if validation else None,
        }
    command = "python ablation.py " + " ".join(sys.argv[1:] if argv is None else argv)
    table = ablation_table(summary)
    out.mkdir(parents=True, exist_ok=True)
    (out / "ablation.json").write_text(json.dumps({"command": command, "accuracy": summary}, indent=2) + "\n")
    (out / "ablation.md").write_text(f"Accuracy (%), mean ± std over {own.ablation_seeds} seeds\n\n{table}\n`{command}`\n")
    print(table)
    return summary


if __name__ == "__main__":
    main()
