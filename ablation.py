"""The paper's noise ablation in one command: train every `--noise_mode` over several seeds, one table.

    python ablation.py --ablation_seeds 3 [any train.py argument ...]

Each run is `train.py` with `--noise_mode MODE --seed SEED --output_dir OUT/MODE-seedSEED`; the table gives, per test
subset, for the mean over all test subsets and for the mean over the generator families absent from training (the
cross-family figure the method is about), the accuracy as mean ± std over seeds, and the validation mean accuracy,
the only number used to choose settings. Written to OUT/ablation.md and OUT/ablation.json (`bench/bench_detection.py`
reads the latter).

A run that finished is kept: rerunning the same command (after a crash, or with more `--ablation_seeds`) trains only
the runs whose folder lacks a finished run of the same settings (`ablation_run.json` beside its `metrics.json`: the
parsed `train.py` arguments, so a config file's contents count and `--x=1` equals `--x 1`, the files of a local
`--model_name_or_path` folder, so a backbone written again is a new run, the MiniGenImage version the run reads, so
runs on an earlier build of the benchmark are trained again, the process count and mixed precision its metrics.json
records, so runs of another `accelerate launch` layout are trained again, and the hash of the `metrics.json` the run wrote, so a
folder trained into since, or left without metrics, is trained again); delete a run's folder to train it again.
The summary files are removed before any training and written at the end: they never describe other runs.
A run that crashed after saving checkpoints (`--checkpointing_steps`) continues from them when
`--resume_from_checkpoint latest` is passed through; otherwise `train.py` refuses to start over on top of them, and it
refuses to continue them with other settings (delete the run's folder to train it anew). Local data folders are not
fingerprinted: after changing their files, delete the runs trained on them.
"""

import argparse
import hashlib
import json
import math
import os
import re
import shlex
import sys
from pathlib import Path

import numpy as np
import torch
from accelerate import Accelerator
from accelerate.state import AcceleratorState

import train
from configuration_pinclip import NOISE_MODES
from reporting import generator_family
from training_args import changed_settings, flag_name, minigenimage_version, parse_arguments, run_settings

RUN_RECORD = "ablation_run.json"  # the settings of a finished run
# train.py arguments the ablation sets for every run itself (also refused as `--noise-mode`, which train.py accepts)
OWN_TRAIN_ARGUMENTS = ("--noise_mode", "--seed", "--output_dir")
# train.py arguments that make no sense for a set of runs: evaluation alone trains nothing (one model's scores would
# fill every column), and one Hub repository would receive every run in turn, keeping only the last.
REFUSED_TRAIN_ARGUMENTS = {
    "--eval_only": "evaluates one model: there are no modes and seeds to compare (use train.py --eval_only)",
    "--push_to_hub": "would upload every run to one repository; push the run you choose with hub_push.py",
    "--hub_model_id": "would upload every run to one repository; push the run you choose with hub_push.py",
}
# Where a run is written and how it gets done (continued from a checkpoint or not), not what it trains.
NOT_WHAT_IS_TRAINED = ("output_dir", "resume_from_checkpoint")


def mean_std(values: list[float]) -> dict:
    """Mean and sample standard deviation (ddof=1; None for one seed, where it is undefined) of per-seed values,
    which are kept."""
    std = float(np.std(values, ddof=1)) if len(values) > 1 else None
    return {"mean": float(np.mean(values)), "std": std, "values": values}


def std_points(std: float | None) -> str:
    """A sample std (a fraction) in points, or "–" where one seed leaves it undefined."""
    return "–" if std is None else f"{100 * std:.1f}"


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
            cells.append(f"{100 * stats['mean']:.1f} ± {std_points(stats['std'])}" if stats else "–")
        lines.append(f"| {row} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def welch_t(a: list[float], b: list[float]) -> float | None:
    """Welch's t statistic of mean(a) − mean(b): the difference in units of its standard error, each side with its
    own variance. None with fewer than two values a side, or no spread at all."""
    if len(a) < 2 or len(b) < 2:
        return None
    error = math.sqrt(np.var(a, ddof=1) / len(a) + np.var(b, ddof=1) / len(b))
    return float((np.mean(a) - np.mean(b)) / error) if error > 0 else None


def mode_differences(summary: dict) -> list[dict]:
    """Each pair of modes (in the summary's order): the difference of their unseen-family and validation means and its
    Welch t, so that a gap can be read against the seed-to-seed spread."""
    modes, differences = list(summary), []
    for index, first in enumerate(modes):
        for second in modes[index + 1:]:
            entry = {"modes": [first, second]}
            for key in ("unseen", "validation"):
                a, b = summary[first][key], summary[second][key]
                entry[key] = None if not (a and b) else {
                    "difference": a["mean"] - b["mean"], "welch_t": welch_t(a["values"], b["values"])}
            differences.append(entry)
    return differences


def differences_text(differences: list[dict]) -> str:
    """Markdown lines: `pin` − `none`: unseen families +1.8 points (Welch t 1.20), validation −0.8 points (...)."""
    lines = []
    for entry in differences:
        parts = []
        for key, title in (("unseen", "unseen families"), ("validation", "validation")):
            if entry[key]:
                t = entry[key]["welch_t"]
                points = round(100 * entry[key]["difference"], 1) + 0.0  # + 0.0: no "-0.0"
                parts.append(f"{title} {points:+.1f} points"
                             + (f" (Welch t {t:.2f})" if t is not None else ""))
        if parts:
            lines.append(f"- `{entry['modes'][0]}` − `{entry['modes'][1]}`: " + ", ".join(parts))
    return "\n".join(lines) + "\n\n" if lines else ""


def unseen_subsets(metrics: dict) -> list[str] | None:
    """The test subsets whose generator family was not in the training data (None when the run records none)."""
    seen = {generator_family(generator) for generator in (metrics.get("training") or {}).get("generators") or []}
    return [name for name in metrics["subsets"] if generator_family(name) not in seen] if seen else None


def unseen_mean(metrics: dict) -> float | None:
    """Mean accuracy over the `unseen_subsets`."""
    unseen = unseen_subsets(metrics)
    return float(np.mean([metrics["subsets"][name]["acc"] for name in unseen])) if unseen else None


def default_output_dir(train_args: list[str]) -> Path:
    """`outputs/ablation-<data>`, named after the training data, so that ablations on two datasets (two presets,
    say) never write into one folder and replace each other's runs; a local folder's name is followed by a short hash
    of its absolute path, as two folders may share a name (`a/train` and `b/train`)."""
    _, data_args, _ = parse_arguments(train_args)
    name = train.training_data(data_args)  # as the model card names it
    slug = re.sub(r"[^A-Za-z0-9._-]+", "-", name).strip("-") or "data"
    local = data_args.train_dir or (data_args.dataset_name if not train.trains_on_minigenimage(data_args) else None)
    if local and Path(local).exists():
        slug += "-" + hashlib.sha256(str(Path(local).resolve()).encode()).hexdigest()[:8]
    if train.trains_on_minigenimage(data_args):  # other builds are other data: a reduced ablation or another seed's
        slug += "-reduced" * data_args.minigenimage_reduced  # must not replace the full seed-0 ablation's runs
        slug += f"-seed{data_args.minigenimage_seed}" * (data_args.minigenimage_seed != 0)
    return Path("outputs") / ("ablation-" + slug.lower())


def what_is_trained(run_args: list[str]) -> dict:
    """A run's settings: its parsed train.py arguments (config files read) without `NOT_WHAT_IS_TRAINED`, and the
    files of a local `--model_name_or_path` folder (`training_args.run_settings`)."""
    return run_settings(parse_arguments(run_args), leave_out=NOT_WHAT_IS_TRAINED)


def finished_record(run_dir: Path, settings: dict) -> dict:
    """What `RUN_RECORD` holds for a run that has just finished in `run_dir` with `settings`."""
    metrics = hashlib.sha256((run_dir / "metrics.json").read_bytes()).hexdigest()
    return {"settings": settings, "metrics_sha256": metrics}


def launch_layout() -> dict:
    """The process count and mixed precision each run gets from `accelerate launch` (a plain `python`: 1, "no"),
    as train.py records them under `training` in metrics.json: another layout trains with another global batch or
    arithmetic."""
    accelerator = Accelerator()
    layout = {"processes": accelerator.num_processes, "mixed_precision": str(accelerator.mixed_precision)}
    AcceleratorState._reset_state(reset_partial_state=True)  # each run builds its own Accelerator
    return layout


def is_finished(run_dir: Path, settings: dict, layout: dict) -> bool:
    """Whether `run_dir` holds the finished run of `settings` under this launch `layout`: its record, the very
    metrics.json it wrote, and the layout that metrics.json records."""
    record_file = run_dir / RUN_RECORD
    if not record_file.is_file() or not (run_dir / "metrics.json").is_file():
        return False
    try:  # a record or metrics file cut short (a full disk) is a run to train again, not an error
        record = json.loads(record_file.read_text())
        if not isinstance(record, dict) or set(record) != {"settings", "metrics_sha256"}:  # older record: unverifiable
            return False
        trained = json.loads((run_dir / "metrics.json").read_text()).get("training", {})
        if any(trained.get(key) != value for key, value in layout.items()):
            return False
        return (record == finished_record(run_dir, record["settings"])
                and not changed_settings(record["settings"], settings))
    except (OSError, ValueError, AttributeError, TypeError):
        return False


def write_record(run_dir: Path, settings: dict) -> None:
    """`RUN_RECORD` for the run just finished, written beside and renamed in: a write cut short leaves none (one
    partial file per process: under `accelerate launch` every process writes the same record)."""
    partial = run_dir / f".{RUN_RECORD}.{os.getpid()}.partial"
    partial.write_text(json.dumps(finished_record(run_dir, settings)) + "\n")
    partial.replace(run_dir / RUN_RECORD)


def setting(arguments: tuple, flag: str) -> object:
    """The value of train.py's `flag` in parsed arguments (`parse_arguments`' three groups)."""
    return next(getattr(group, flag[2:]) for group in arguments if hasattr(group, flag[2:]))


def argument_parser() -> argparse.ArgumentParser:
    """The ablation's own arguments; `parse_known_args` leaves the train.py arguments of every run."""
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0],
        allow_abbrev=False,  # `--mode pin` is train.py's --noise_mode misspelt, not --modes; train.py has none either
        epilog="Any other argument goes to every train.py run (see `python train.py --help`), except --noise_mode, "
        "--seed and --output_dir, which the ablation sets.",
    )
    parser.add_argument("--ablation_seeds", type=int, default=3, help="seeds 0 .. N-1 for every mode")
    parser.add_argument("--modes", nargs="+", default=list(NOISE_MODES), choices=NOISE_MODES)
    parser.add_argument("--output_dir", default=None,
                        help="default: outputs/ablation-<training data name> (outputs/ablation-minigenimage)")
    return parser


def refuse(parser: argparse.ArgumentParser, named: dict[str, str]) -> None:
    """Stop (status 2) when `named` ({flag: how it was given}) holds a train.py argument the ablation refuses or sets
    itself."""
    refused = [f"{given}: {why}" for flag, why in REFUSED_TRAIN_ARGUMENTS.items() if (given := named.get(flag))]
    if refused:
        parser.error("; ".join(refused))
    ignored = [given for flag in OWN_TRAIN_ARGUMENTS if (given := named.get(flag))]
    if ignored:
        parser.error(f"{', '.join(ignored)}: the ablation sets {', '.join(OWN_TRAIN_ARGUMENTS)} of every run itself "
                     "(use --modes, --ablation_seeds and --output_dir)")


def main(argv: list[str] | None = None) -> dict:
    parser = argument_parser()
    own, train_args = parser.parse_known_args(argv)
    if own.ablation_seeds < 1:
        parser.error(f"--ablation_seeds must be at least 1, got {own.ablation_seeds}")
    if len(set(own.modes)) < len(own.modes):
        parser.error(f"--modes names a mode twice: {' '.join(own.modes)}")
    refuse(parser, {flag_name(token): token for token in train_args if token.startswith("--")})
    # What a config file sets too: its eval_only would fill every column with one model's scores.
    given, defaults = parse_arguments(train_args, check=False), parse_arguments([], check=False)
    refuse(parser, {flag: f"{flag} (set by the config file)" for flag in (*REFUSED_TRAIN_ARGUMENTS, *OWN_TRAIN_ARGUMENTS)
                    if setting(given, flag) != setting(defaults, flag)})
    parse_arguments(train_args)  # every run's arguments checked: a misspelt flag stops here, before anything is removed
    out = Path(own.output_dir) if own.output_dir else default_output_dir(train_args)
    if out.exists() and not out.is_dir():
        parser.error(f"--output_dir {out} is a file: name a folder for the runs")
    for summary_file in (out / "ablation.json", out / "ablation.md"):  # written again at the end, for these runs
        summary_file.unlink(missing_ok=True)
    runs: dict[str, list[dict]] = {}
    version = minigenimage_version(parse_arguments(train_args)[1])  # every run reads the same data
    layout = launch_layout()
    for mode in own.modes:
        for seed in range(own.ablation_seeds):
            run_dir = out / f"{mode}-seed{seed}"
            run_args = train_args + ["--noise_mode", mode, "--seed", str(seed), "--output_dir", str(run_dir)]
            settings = what_is_trained(run_args)
            if is_finished(run_dir, settings, layout):
                print(f"{run_dir}: finished earlier with the same arguments, kept")
            else:
                # The record stays until train.py replaces the run: a refusal before then (another run's checkpoints
                # in the folder) leaves the finished run as it was, and once training starts train.py removes the
                # run's metrics.json, which the record no longer matches.
                train.main(run_args)
                AcceleratorState._reset_state(reset_partial_state=True)  # the next run builds a fresh Accelerator
                write_record(run_dir, settings)  # once metrics.json is written
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
            "unseen_subsets": unseen_subsets(results[0]),
            "validation": mean_std(validation) if validation else None,
        }
    table = ablation_table(summary)
    # under `accelerate launch` one process writes and prints the summary (a PartialState built after the runs' reset
    # would no longer know the launch: the process group is what still does)
    if torch.distributed.is_initialized() and torch.distributed.get_rank() != 0:
        return summary
    command = "python ablation.py " + shlex.join(sys.argv[1:] if argv is None else argv)
    out.mkdir(parents=True, exist_ok=True)
    differences = mode_differences(summary)
    (out / "ablation.json").write_text(
        json.dumps({"command": command, "minigenimage_version": version, "launch": layout, "accuracy": summary,
                    "differences": differences}, indent=2) + "\n"
    )
    unseen = next(iter(summary.values()))["unseen_subsets"]
    listed = f"Unseen families: {', '.join(unseen)}.\n\n" if unseen else ""
    notes = [f"MiniGenImage {version}"] if version else []
    if layout != {"processes": 1, "mixed_precision": "no"}:
        notes.append(f"{layout['processes']} process(es), mixed precision {layout['mixed_precision']}")
    data = f" ({'; '.join(notes)})" if notes else ""
    (out / "ablation.md").write_text(
        f"Accuracy (%), mean ± sample std (n − 1) over {own.ablation_seeds} seed{'s' * (own.ablation_seeds != 1)}"
        f"{data}\n\n"
        f"{table}\n{listed}{differences_text(differences)}`{command}`\n"
    )
    print(table)
    return summary


if __name__ == "__main__":
    try:
        main()
    except (ValueError, FileNotFoundError) as error:  # a run's data or arguments cannot work: as train.py says it
        print(f"ablation.py: error: {error}", file=sys.stderr)
        sys.exit(2)
    train.end_processes()
