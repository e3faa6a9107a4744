"""Detection: the noise-mode ablation (MiniGenImage, mean accuracy over the generator families absent from training,
`pin` vs `random` vs `none`, 3 seeds, mean ± std). Target: `pin` best, by at least 2 points over `none`.

Training three modes × three seeds takes far longer than the speed figures, so this benchmark does not train: it
reads the JSON summary that `python ablation.py` writes, and says how to produce it when it is missing.
Detection defaults are chosen on the validation split, never here.

    python bench/bench_detection.py [--ablation PATH]
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

from common import REPO_ROOT, Figure

MODES = ("pin", "random", "none")
MARGIN_POINTS = 2.0
# Where `python ablation.py` writes its summary by default; PINCLIP_ABLATION_JSON points elsewhere.
DEFAULT_ABLATION_JSON = REPO_ROOT / "outputs" / "ablation-minigenimage" / "ablation.json"
COMMAND = "python ablation.py --ablation_seeds 3"


def unseen_accuracy(summary: dict) -> dict[str, dict]:
    """Each noise mode's unseen-family accuracy `{"mean", "std", "values"}` (fractions), from `ablation.py`'s JSON."""
    accuracy = summary["accuracy"]
    missing = [mode for mode in MODES if not (accuracy.get(mode) or {}).get("unseen")]
    if missing:
        raise ValueError(f"the ablation summary has no unseen-family accuracy for {', '.join(missing)}: rerun `{COMMAND}`")
    return {mode: accuracy[mode]["unseen"] for mode in MODES}


def run(quick: bool = False, ablation: Path | None = None) -> list[Figure]:
    """The detection figure from the ablation summary (`quick` changes nothing: it only reads a file)."""
    path = Path(ablation or os.environ.get("PINCLIP_ABLATION_JSON", DEFAULT_ABLATION_JSON))
    setup = "MiniGenImage unseen-family mean acc, `pin` vs `random` vs `none`, mean ± std over seeds"
    target = f"`pin` best, ≥ {MARGIN_POINTS:.0f} points over `none`"
    # Relative to the repository where possible: results.md is committed and must not carry this machine's paths.
    shown = path.relative_to(REPO_ROOT) if path.is_relative_to(REPO_ROOT) else path
    if not path.is_file():
        return [Figure("detection", setup, f"not measured: no {shown}", target, None,
                       [f"write it with `{COMMAND}` (pin/random/none × 3 seeds on MiniGenImage, ≈ 20 min on 2 cores), "
                        "or point PINCLIP_ABLATION_JSON at its summary, then rerun"])]
    unseen = unseen_accuracy(json.loads(path.read_text()))
    means = {mode: 100 * stats["mean"] for mode, stats in unseen.items()}
    margin = means["pin"] - means["none"]
    passed = means["pin"] == max(means.values()) and margin >= MARGIN_POINTS
    seeds = {len(stats["values"]) for stats in unseen.values()}
    return [
        Figure(
            name="detection",
            setup=f"{setup} ({'/'.join(map(str, sorted(seeds)))} seeds)",
            value=", ".join(f"{mode} {means[mode]:.1f} ± {100 * unseen[mode]['std']:.1f}" for mode in MODES)
            + f" (pin − none = {margin:+.1f})",
            target=target,
            passed=passed,
            details=[f"read from {shown}",
                     *(f"{mode}: {', '.join(f'{100 * v:.1f}' for v in unseen[mode]['values'])}" for mode in MODES)],
        )
    ]


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--ablation", type=Path, help=f"ablation summary JSON (default {DEFAULT_ABLATION_JSON})")
    for figure in run(ablation=parser.parse_args().ablation):
        print(figure)
