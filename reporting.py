"""Reports of an evaluation: metrics.json, Markdown tables, plots and the model card.

Tables follow AIGIBench: one row per test subset (generator) with ACC, R.Acc, F.Acc, AP and AUC in percent, and a
mean row. Every number in a table is read from the metrics dictionaries written to metrics.json.
"""

import json
import math
import re
import shlex
from collections.abc import Iterable
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only, never a window: training runs on headless machines
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from huggingface_hub import EvalResult, ModelCard, ModelCardData  # noqa: E402
from sklearn.metrics import roc_curve  # noqa: E402
from transformers import PreTrainedConfig  # noqa: E402

from inference import display_name  # noqa: E402

METRIC_KEYS = ("acc", "r_acc", "f_acc", "ap", "auc")
METRIC_TITLES = {"acc": "Acc", "r_acc": "R.Acc", "f_acc": "F.Acc", "ap": "AP", "auc": "AUC"}
MODEL_INDEX_TYPES = {"acc": "accuracy", "r_acc": "accuracy", "f_acc": "accuracy", "ap": "average_precision", "auc": "roc_auc"}


def mean_metrics(subsets: dict[str, dict]) -> dict:
    """Unweighted mean of each metric over the subsets that define it (as benchmark tables average)."""
    mean = {}
    for key in METRIC_KEYS:
        values = [m[key] for m in subsets.values() if m.get(key) is not None]
        mean[key] = float(np.mean(values)) if values else None
    mean["n"] = int(sum(m["n"] for m in subsets.values()))
    return mean


def percent(value: float | None) -> str:
    return "–" if value is None or (isinstance(value, float) and math.isnan(value)) else f"{100 * value:.1f}"


def generator_family(name: object) -> str:
    """A generator's name as compared between training data and test subsets: case, spaces and punctuation left
    out (AIGIBench's training data says `progan`, its test folder `ProGAN`; a numeric column records numbers). Letters
    of any script count (an ASCII-only rule made every Chinese name "", one family); a name of punctuation alone is
    itself."""
    folded = str(name).casefold()
    return re.sub(r"[\W_]", "", folded) or folded


def markdown_cell(text: object) -> str:
    """`text` as one Markdown table cell: a `|` in a subset name split the row, shifting every number under the wrong
    heading; `*`, backticks and brackets would format or link (`_` is left: GitHub emphasises no underscore inside a
    word, and generator names are full of them)."""
    return re.sub(r"([\\|*`\[\]<>])", r"\\\1", str(text))


def plot_label(text: object) -> str:
    """`text` as matplotlib shows it literally: `$...$` is parsed as math (a bad expression failed the run after the
    model was saved), and a legend leaves out labels starting with `_`."""
    label = str(text).replace("$", r"\$")
    return "\u200b" + label if label.startswith("_") else label


def results_table(metrics: dict, training_generators: Iterable | None = None) -> str:
    """Markdown table of `{"subsets": ..., "mean": ...}`: one row per subset and a mean row; a subset of a family
    in `training_generators` (the run's training data) is marked "(training family)": not an unseen generator."""
    seen = {generator_family(generator) for generator in training_generators or ()}
    header = "| subset | " + " | ".join(METRIC_TITLES[k] for k in METRIC_KEYS) + " | images |"
    lines = [header, "|---" * (len(METRIC_KEYS) + 2) + "|"]
    for name, values in metrics["subsets"].items():
        mark = " (training family)" if generator_family(name) in seen else ""
        lines.append(f"| {markdown_cell(name)}{mark} | {' | '.join(percent(values.get(k)) for k in METRIC_KEYS)} | "
                     f"{values['n']} |")
    mean = metrics["mean"]
    lines.append(f"| **mean** | {' | '.join(percent(mean.get(k)) for k in METRIC_KEYS)} | {mean['n']} |")
    return "\n".join(lines) + "\n"


def robustness_table(conditions: dict[str, dict]) -> str:
    """Markdown table: one row per degradation (clean first), accuracy per subset, mean Acc and mean AP."""
    subsets = list(next(iter(conditions.values()))["subsets"])
    lines = [
        "| condition | " + " | ".join(map(markdown_cell, subsets)) + " | mean Acc | mean AP |",
        "|---" * (len(subsets) + 3) + "|",
    ]
    for condition, metrics in conditions.items():
        cells = " | ".join(percent(metrics["subsets"][s]["acc"]) for s in subsets)
        lines.append(f"| {condition} | {cells} | {percent(metrics['mean']['acc'])} | {percent(metrics['mean']['ap'])} |")
    return "\n".join(lines) + "\n"


def write_json(path: Path, payload: dict) -> None:
    path.write_text(json.dumps(payload, indent=2, sort_keys=False) + "\n")


# ------------------------------------------------------------------------------------------------- plots
def plot_accuracy_bars(metrics: dict, path: Path, title: str) -> None:
    """Grouped bars of Acc / R.Acc / F.Acc per subset, mean last."""
    rows = list(metrics["subsets"].items()) + [("mean", metrics["mean"])]
    x = np.arange(len(rows))
    fig, ax = plt.subplots(figsize=(max(6, 1.1 * len(rows) + 2), 4))
    for offset, key in zip((-0.27, 0, 0.27), ("acc", "r_acc", "f_acc")):
        # an undefined value (R.Acc of a subset without reals) is no bar, not a 0 % one
        values = [np.nan if m.get(key) is None else 100 * m[key] for _, m in rows]
        ax.bar(x + offset, values, width=0.27, label=METRIC_TITLES[key])
    ax.set_xticks(x, [plot_label(name) for name, _ in rows], rotation=30, ha="right")
    ax.set_ylim(0, 100)
    ax.axhline(50, color="grey", linewidth=0.8, linestyle="--")  # chance level
    ax.set_ylabel("accuracy (%)")
    ax.set_title(title)
    ax.legend(loc="upper left", bbox_to_anchor=(1.0, 1.0))  # beside the axes: inside, it hid the mean's low bars
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def plot_roc_curves(predictions: dict[str, dict], path: Path, title: str) -> None:
    """One ROC curve per subset that holds both classes (`predictions[name]` has `labels` and `scores`)."""
    fig, ax = plt.subplots(figsize=(5.5, 5))
    drawn = 0
    for name, outputs in predictions.items():
        labels = np.asarray(outputs["labels"])
        if labels.min(initial=1) == labels.max(initial=0):
            continue  # single-class subset: no ROC curve
        fpr, tpr, _ = roc_curve(labels, outputs["scores"])
        ax.plot(fpr, tpr, label=plot_label(name))
        drawn += 1
    ax.plot([0, 1], [0, 1], color="grey", linewidth=0.8, linestyle="--")
    ax.set_xlabel("false positive rate (reals called fake)")
    ax.set_ylabel("true positive rate (fakes caught)")
    ax.set_title(title)
    if drawn:
        ax.legend(loc="lower right", fontsize="small")
    else:  # an empty plot would read as a failure to draw
        ax.text(0.5, 0.5, "no subset holds both classes:\nno ROC curve", ha="center", va="center")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def plot_robustness(conditions: dict[str, dict], path: Path) -> None:
    """Mean accuracy against JPEG quality and against blur σ, clean accuracy as a reference line."""
    fig, (ax_jpeg, ax_blur) = plt.subplots(1, 2, figsize=(9, 3.8), sharey=True)
    clean = conditions.get("clean")
    for ax, prefix, label in ((ax_jpeg, "jpeg_q", "JPEG quality"), (ax_blur, "blur_s", "blur σ")):
        points = [(float(name[len(prefix):]), m["mean"]["acc"]) for name, m in conditions.items() if name.startswith(prefix)]
        if points:
            xs, ys = zip(*points)
            ax.plot(xs, [100 * y for y in ys], marker="o")
        if clean:
            ax.axhline(100 * clean["mean"]["acc"], color="green", linestyle=":", label="clean")
            ax.legend()
        ax.set_xlabel(label)
        ax.set_ylim(0, 100)
    ax_jpeg.invert_xaxis()  # stronger compression to the right, like stronger blur
    ax_jpeg.set_ylabel("mean accuracy (%)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


# --------------------------------------------------------------------------------------------- model card
def eval_results(metrics: dict, dataset_name: str, dataset_type: str) -> list[EvalResult]:
    """`model-index` entries: every metric of every subset, and the means."""
    results = []
    rows = list(metrics["subsets"].items()) + [("mean", metrics["mean"])]
    for subset, values in rows:
        for key in METRIC_KEYS:
            if values.get(key) is None:
                continue
            results.append(
                EvalResult(
                    task_type="image-classification",
                    task_name="AI-generated image detection",
                    dataset_type=dataset_type,
                    dataset_name=dataset_name,
                    dataset_split=subset,
                    metric_type=MODEL_INDEX_TYPES[key],
                    metric_name=f"{METRIC_TITLES[key]} ({subset})",
                    metric_value=round(float(values[key]), 4),
                )
            )
    return results


CARD_TEMPLATE = """---
{{ card_data }}
---

# {{ model_name }}

A PiN-CLIP detector of AI-generated images (positive-incentive noise for CLIP, Yan et al. 2025, arXiv 2511.16136):
CLIP vision tower, a linear real/fake head and, in training, {{ training_noise }}. Labels: `0 = real`, `1 = fake`.

## Usage

```python
from transformers import pipeline

detector = pipeline("image-classification", model="{{ repo_id }}", trust_remote_code=True)
detector("image.png")
```

{{ preprocessing }}, centre crop (zero padding) to {{ image_size }} px, CLIP mean/std; the saved image processor
records it.

## Training

- backbone: {{ backbone }}{{ lora_note }}
- data: {{ training_data }}, split `{{ train_split }}`{{ benchmark_version }}
- noise: {{ noise_settings }}
- {{ hyperparameters }}

## Results ({{ dataset_name }})

{{ results_table }}
{{ extra }}
Reproduce with:

```bash
{{ command }}
```

Weights identical to the last bit also need the same `hardware` and `torch` as listed under Training.
"""


# What the card's first paragraph says training added, per `noise_mode`: an ablation's `none` and `random` runs get
# cards too, and must not claim the learned noise they were trained without.
TRAINING_NOISE = {
    "pin": "learned feature-space noise",
    "random": "fixed Gaussian feature-space noise with no generator (the `random` row of the method's ablation)",
    "none": "no noise: plain fine-tuning (the `none` row of the method's ablation)",
}


def noise_settings(config: PreTrainedConfig) -> str:
    """The card's noise line: the settings that shaped training under `config.noise_mode`, none for `none`."""
    if config.noise_mode == "none":
        return "`none` (no noise in training)"
    return (f"`{config.noise_mode}` (injection `{config.noise_injection}`, λ = {config.noise_loss_weight}, "
            f"s = {config.random_noise_std}, scale `{config.noise_scale}`)")


def public_command(command: str) -> str:
    """`command` as the model card shows it: every absolute or home-relative path (also in `--flag=PATH`) by its last
    component, so that no user name or machine layout is published; relative paths and Hub ids stay."""
    def public(token: str) -> str:
        flag, equals, value = token.partition("=") if token.startswith("--") else ("", "", token)
        if value.startswith(("/", "~")):
            value = Path(value).name or value
        return flag + equals + value

    return shlex.join(public(token) for token in shlex.split(command))


def write_model_card(
    output_dir: Path,
    metrics: dict,
    config: PreTrainedConfig,
    dataset_name: str,
    dataset_type: str,
    training: dict,
    command: str,
    repo_id: str | None = None,
    extra: str = "",
    training_dataset_id: str | None = None,
) -> ModelCard:
    """Write `README.md` (model card with `model-index` results) into `output_dir` and return it.

    The front matter names the base model and the training data as Hub ids (`base_model`, `datasets`), which the
    Hub links to their pages: a local backbone folder, or training data that is no Hub dataset, is named in the text
    only (`training["data"]`), so no local path or non-existent id is published.
    """
    model_name = repo_id.split("/")[-1] if repo_id else display_name(str(output_dir))  # `.` named by the folder
    backbone = str(config.clip_name_or_path)
    # from_clip records a local folder by its name (no "/"); models saved before that, by their path
    local_backbone = "/" not in backbone or Path(backbone).is_dir()
    card_data = ModelCardData(
        model_name=model_name,
        license="apache-2.0",
        library_name="transformers",
        pipeline_tag="image-classification",
        tags=["pinclip", "ai-generated-image-detection", "clip", "image-forensics"],
        base_model=None if local_backbone else backbone,
        datasets=[training_dataset_id] if training_dataset_id else None,
        eval_results=eval_results(metrics, dataset_name, dataset_type),
    )
    lora = f", LoRA r={config.lora_r} α={config.lora_alpha} on {', '.join(config.lora_target_modules)} (merged)"
    card = ModelCard.from_template(
        card_data,
        template_str=CARD_TEMPLATE,
        model_name=model_name,
        repo_id=repo_id or display_name(str(output_dir)),
        image_size=config.image_size,
        preprocessing="Preprocessing resizes the short side to the crop size" if config.resize_images
        else "Preprocessing is forensic: no resize",
        backbone=f"`{display_name(backbone)}`" + (" (a local folder)" if local_backbone else ""),
        lora_note=lora if config.lora_r else " (fully fine-tuned)",
        dataset_name=dataset_name,
        training_data=training.get("data") or dataset_name,
        benchmark_version=(f"\n- MiniGenImage version: {training['minigenimage_version']}"
                           if training.get("minigenimage_version") else ""),
        train_split=training.get("train_split", "train"),
        training_noise=TRAINING_NOISE[config.noise_mode],
        noise_settings=noise_settings(config),
        hyperparameters=", ".join(f"{k} = {v}" for k, v in training.items()
                                  if k not in ("data", "train_split", "minigenimage_version")),
        results_table=results_table(metrics, training.get("generators")),
        extra=extra,
        command=public_command(command),
    )
    card.save(output_dir / "README.md")
    return card
