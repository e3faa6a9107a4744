"""Train and evaluate PiN-CLIP detectors of AI-generated images with Accelerate.

    python train.py                                   # embedded default run: MiniGenImage, tiny random CLIP
    accelerate launch train.py configs/genimage.yaml  # the paper's GenImage protocol (ViT-L/14 + LoRA)
    python train.py --eval_only --model_name_or_path DIR --eval_dir FOLDER --output_dir OUT

One linear loop, in the style of transformers' `run_image_classification_no_trainer.py`: arguments → data → model →
optimizer/scheduler → `accelerator.prepare` → (resume) → train with gradient accumulation and checkpoints → save the
model (LoRA merged, image processor, remote code) → evaluate the saved model on every test subset → metrics.json,
tables, plots, model card → optional Hub upload. Only the main process writes files.
"""

import functools
import json
import logging
import math
import shlex
import shutil
import sys
import time
from argparse import ArgumentTypeError
from collections.abc import Callable
from pathlib import Path

import datasets
import evaluate
import numpy as np
import torch
from accelerate import Accelerator, DataLoaderConfiguration, DistributedType, PartialState
from accelerate.utils import gather_object, set_seed
from accelerate.utils.constants import (
    OPTIMIZER_NAME, RNG_STATE_NAME, SAFE_WEIGHTS_NAME, SCHEDULER_NAME, WEIGHTS_NAME,
)
from PIL import Image
from torch.utils.data import DataLoader
from tqdm.auto import tqdm
from transformers import get_scheduler
from transformers.hf_argparser import string_to_bool

import reporting
from clip_checkpoints import write_random_clip
from corruptions import robustness_grid
from detection_data import Collator, EvalImages, TrainImages, check_images, distinct_values, load_detection_data
from hub_push import create_model_repo, push_folder
from image_io import ImageLoadError
from inference import DEFAULT_THRESHOLD, Detector, display_name
from modeling_pinclip import PinClipForImageClassification, PinClipOutput
from pretrain_backbone import check_tile_record
from training_args import (
    CHECKPOINT_PREFIX, MINIGENIMAGE, RESUMABLE_CHANGES, DataArguments, ModelArguments, TrainingArguments,
    changed_settings, data_seed, expand_config, flag_name, ignored_by_eval_only, minigenimage_builds_read,
    minigenimage_version, parse_arguments, run_settings, split_config, unread_data_arguments,
)

REPO_ROOT = Path(__file__).resolve().parent
logger = logging.getLogger(__name__)
METRIC_PATH = REPO_ROOT / "metrics" / "detection_metric"
PROGRESS_FILE = "progress.json"  # counters of the training loop, beside accelerate's state in a checkpoint
SETTINGS_FILE = "run_settings.json"  # the settings of the run that saved a checkpoint (`check_same_run`)
# The model outputs averaged into each train_log.jsonl record (those a model gives: the noise terms need noise).
LOGGED_OUTPUTS = ("loss", "clean_loss", "noise_loss", "kl_loss", "noise_mu_norm", "noise_sigma_mean")
# What a finished run leaves in its --output_dir beside its log, checkpoints and backbone: the model and its reports.
RUN_OUTPUTS = (
    "config.json", "preprocessor_config.json", "configuration_pinclip.py", "modeling_pinclip.py", "*.safetensors",
    "*.safetensors.index.json", "README.md", "metrics.json", "results.md", "robustness.*", "plots",
)


# ------------------------------------------------------------------------------------------------ model
def backbone_path(model_args: ModelArguments, args: TrainingArguments, accelerator: Accelerator) -> str:
    """The CLIP checkpoint to start from; without one, a random CLIP that the main process writes for this run."""
    if model_args.model_name_or_path:
        return model_args.model_name_or_path
    folder = Path(args.output_dir) / "random-clip"
    with accelerator.main_process_first():
        if accelerator.is_main_process:
            # Written anew by every run (a rerun or resume in the same folder too), never reused: building it draws
            # from the global RNG that the head and noise generator are initialised from next, so a run that skipped
            # it would start from other weights than a run into a fresh folder.
            shutil.rmtree(folder, ignore_errors=True)
            write_random_clip(folder, shape=model_args.random_clip_shape, seed=args.seed)
    return str(folder)


def load_detector(name_or_path: str, trust_remote_code: bool, device: torch.device) -> Detector:
    """A saved detector (PiN-CLIP or any image classifier) as the scanner and the demo load it: its image processor,
    how its logits give P(fake) and its decision threshold."""
    try:
        return Detector.load(name_or_path, device=device, trust_remote_code=trust_remote_code)
    except OSError as error:  # not a model folder, or a Hub id that cannot be fetched: say which, without a traceback
        raise ValueError(f"cannot load the detector {name_or_path} ({error})") from error


def remove_earlier_run(output_dir: Path) -> list[str]:
    """Delete the model and reports of an earlier run from `output_dir` (one holding a PiN-CLIP config), so that
    should this run stop before writing its own, the earlier run's reports are not left beside this run's log (or
    weights) as if they described it. Returns the names removed; a folder of anything else is left alone."""
    config = output_dir / "config.json"
    try:
        if json.loads(config.read_text()).get("model_type") != PinClipForImageClassification.config_class.model_type:
            return []
    except (OSError, ValueError, AttributeError):  # no config, or not a model's
        return []
    removed = sorted({path for pattern in RUN_OUTPUTS for path in output_dir.glob(pattern)})
    for path in removed:
        if path.is_dir():
            shutil.rmtree(path)
        else:
            path.unlink()
    return [path.name for path in removed]


def distinct_images(batch_index: int, images_per_batch: int, dataset_size: int) -> int:
    """How many distinct images loader batch `batch_index` holds over all processes: several processes pad an
    epoch's last batch with repeats (accelerate's even_batches), which gather_for_metrics cannot drop here (no
    remainder is known for a sampler of our own)."""
    return min(images_per_batch, dataset_size - batch_index * images_per_batch)


class LogWindow:
    """The per-micro-batch values of `LOGGED_OUTPUTS` since the last train_log.jsonl record.

    They stay on the device until a record or a checkpoint reads them: reading a device tensor waits for the step
    that computed it (and averaging over processes is a collective), so reading once per record instead of once
    per step lets the host queue the next steps while the accelerator runs this one. The values read are those a
    per-step read gives: each step's vector averaged over processes, in step order.
    """

    def __init__(self, values: dict[str, list[float]] | None = None):
        self.values = {name: list(history) for name, history in (values or {}).items()}
        self.names: list[str] = []
        self.pending: list[torch.Tensor] = []

    def add(self, outputs: PinClipOutput) -> None:
        """Keep this micro-batch's values (those the model gave; the noise terms need noise), without reading them."""
        if not self.names:
            self.names = [name for name in LOGGED_OUTPUTS if getattr(outputs, name) is not None]
        self.pending.append(torch.stack([getattr(outputs, name).detach().float() for name in self.names]))

    def read(self, accelerator: Accelerator) -> dict[str, list[float]]:
        """Every value kept so far, by name, each averaged over processes (one reduction for all); every process
        must call this at the same step."""
        if self.pending:
            steps = accelerator.reduce(torch.stack(self.pending), "mean").tolist()
            for name, history in zip(self.names, zip(*steps)):
                self.values.setdefault(name, []).extend(history)
            self.pending = []
        return self.values

    def mean_and_clear(self, accelerator: Accelerator) -> dict[str, float]:
        """The window's mean per name, then an empty window."""
        means = {name: float(np.mean(history)) for name, history in self.read(accelerator).items()}
        self.values = {}
        return means


def make_optimizer(model: torch.nn.Module, args: TrainingArguments) -> torch.optim.Optimizer:
    """Adam (the authors') or AdamW over the trainable parameters; no decay on biases and norms."""
    trainable = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
    if args.optimizer == "adam":
        return torch.optim.Adam([p for _, p in trainable], lr=args.learning_rate)
    decay = [p for n, p in trainable if p.ndim >= 2]
    no_decay = [p for n, p in trainable if p.ndim < 2]
    groups = [{"params": decay, "weight_decay": args.weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
    return torch.optim.AdamW(groups, lr=args.learning_rate)


# ------------------------------------------------------------------------------------------- checkpoints
def checkpoint_step(path: Path) -> int:
    return int(path.name[len(CHECKPOINT_PREFIX):])


def list_checkpoints(output_dir: Path) -> list[Path]:
    """Complete checkpoints, oldest first (an interrupted save is a `.tmp` folder and never listed)."""
    folder = output_dir / "checkpoints"
    found = [p for p in folder.glob(f"{CHECKPOINT_PREFIX}*") if p.is_dir() and p.name[len(CHECKPOINT_PREFIX):].isdigit()]
    return sorted(found, key=checkpoint_step)


def save_checkpoint(
    accelerator: Accelerator, output_dir: Path, step: int, keep: int, progress: dict, settings: dict
) -> None:
    """`accelerator.save_state` (plus `progress`, the loop's own counters, and the run's `settings`) into a temporary
    folder renamed when complete, so a kill mid-save leaves the previous checkpoint as `latest`; then drop the
    oldest beyond `keep`."""
    final = output_dir / "checkpoints" / f"{CHECKPOINT_PREFIX}{step}"
    staging = final.with_name(final.name + ".tmp")
    if accelerator.is_main_process and staging.exists():  # left by a save that was killed
        shutil.rmtree(staging)
    accelerator.wait_for_everyone()
    accelerator.save_state(str(staging))
    accelerator.wait_for_everyone()
    if accelerator.is_main_process:
        (staging / PROGRESS_FILE).write_text(json.dumps(progress))
        (staging / SETTINGS_FILE).write_text(json.dumps(settings))
        staging.replace(final)  # never there already: a start-over is refused, a resume drops the later ones
        for old in list_checkpoints(output_dir)[:-keep] if keep > 0 else []:
            shutil.rmtree(old)
    accelerator.wait_for_everyone()


def restore_checkpoint(accelerator: Accelerator, checkpoint: Path, output_dir: Path) -> tuple[int, int, dict]:
    """Load `checkpoint` (model, optimizer, scheduler, sampler and every RNG) and the loop's counters saved with it,
    and remove the checkpoints saved after it (they belong to the run being abandoned). Returns the completed steps,
    the images seen and the per-step values not logged yet."""
    accelerator.load_state(str(checkpoint))
    saved = json.loads((checkpoint / PROGRESS_FILE).read_text())  # there: check_same_run refuses a checkpoint without
    completed_steps, images_seen, unlogged = checkpoint_step(checkpoint), saved["images_seen"], saved.get("window", {})
    if accelerator.is_main_process:
        for later in [found for found in list_checkpoints(output_dir) if checkpoint_step(found) > completed_steps]:
            shutil.rmtree(later)
            accelerator.print(f"removed {later}: a later checkpoint of the run resumed from {checkpoint.name}")
    accelerator.wait_for_everyone()
    accelerator.print(f"resumed from {checkpoint} at step {completed_steps}")
    return completed_steps, images_seen, unlogged


def log_records_until(log_path: Path, step: int) -> list[dict]:
    """The records of `train_log.jsonl` up to `step`; a line the kill cut short is not a record."""
    records = []
    for line in log_path.read_text().splitlines() if log_path.is_file() else []:
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError:
            continue
    return [record for record in records if record.get("step", step + 1) <= step]


def resolve_checkpoint(value: str, output_dir: Path) -> Path | None:
    """`latest` → the newest complete checkpoint in OUTPUT_DIR/checkpoints (None if there is none yet)."""
    if value != "latest":
        return Path(value)
    found = list_checkpoints(output_dir)
    return found[-1] if found else None


def check_same_run(checkpoint: Path, settings: dict) -> None:
    """Refuse to continue a checkpoint that lacks a file or was saved with other settings than `settings`
    (`training_args.RESUMABLE_CHANGES` may differ): it would report one run's weights as another's."""
    # the settings first: the files needed depend on them (a random state per process), and a checkpoint of one
    # process resumed on two lacked "random_states_1.pkl" where the cause is the process count
    if (checkpoint / SETTINGS_FILE).is_file():
        saved = json.loads((checkpoint / SETTINGS_FILE).read_text())
        # a setting made resumable since the checkpoint was written (the MiniGenImage cache folder) compares not
        saved = {name: value for name, value in saved.items() if name not in RESUMABLE_CHANGES}
        changes = changed_settings(saved, settings)
        if changes:
            raise ValueError(
                f"{checkpoint} was saved by a run with other settings ({'; '.join(changes)}): resume it with the same "
                "ones, or start over in another --output_dir (or after removing its checkpoints)"
            )
    # every file save_checkpoint writes: without one, the resume is silently not exact (random states), records
    # wrong counts (progress) or settings it did not use (run_settings), or fails naming another file (weights)
    needed = [SETTINGS_FILE, PROGRESS_FILE, f"{OPTIMIZER_NAME}.bin", f"{SCHEDULER_NAME}.bin",
              *(f"{RNG_STATE_NAME}_{rank}.pkl" for rank in range(settings["processes"]))]
    missing = [name for name in needed if not (checkpoint / name).is_file()]
    if not any((checkpoint / name).is_file() for name in (SAFE_WEIGHTS_NAME, WEIGHTS_NAME)):
        missing.append(SAFE_WEIGHTS_NAME)
    if missing:
        raise ValueError(f"{checkpoint} lacks {', '.join(missing)}: it cannot resume this run exactly; resume another "
                         "checkpoint, or start over in another --output_dir (or after removing its checkpoints)")


# -------------------------------------------------------------------------------------------- evaluation
@functools.cache
def detection_metric() -> evaluate.EvaluationModule:
    """The local detection metric module (works offline, unlike `evaluate.load("accuracy")`)."""
    return evaluate.load(str(METRIC_PATH), keep_in_memory=True)


def row_noise_seeds(rows: torch.Tensor, seed: int) -> torch.Tensor:
    """The seed of each test image's noise (`inference_noise="sample"`): the run's seed and the image's row, so an
    image gets the same draw whatever batch or process scores it, and in every robustness condition. Mixed into 32
    bits by NumPy's SeedSequence: torch's CPU generator reads only a seed's low 32 bits."""
    return torch.tensor([int(np.random.SeedSequence([seed, row]).generate_state(1)[0]) for row in rows.tolist()],
                        dtype=torch.long)


@torch.no_grad()
def score_dataset(
    detector: Detector,
    dataset: datasets.Dataset,
    accelerator: Accelerator,
    image_column: str,
    batch_size: int,
    corruption: Callable[[Image.Image], Image.Image] | None = None,
    desc: str = "evaluating",
    seed: int = 0,
) -> dict[str, list]:
    """Labels and P(fake) of every image, sharded over processes and gathered so each image counts once; `seed`
    seeds the test noise of a model that samples it (`row_noise_seeds`)."""
    loader = DataLoader(
        EvalImages(dataset, image_column, corruption, name=f"subset {desc!r}"), batch_size=batch_size,
        collate_fn=Collator(detector.processor)
    )
    loader = accelerator.prepare_data_loader(loader)
    sampled_noise = getattr(detector.model.config, "inference_noise", "none") == "sample"
    labels, scores = [], []
    for batch in tqdm(loader, desc=desc, leave=False, disable=not accelerator.is_local_main_process):
        noise_seeds = row_noise_seeds(batch["rows"], seed) if sampled_noise else None
        fake_probability = detector.fake_probabilities(batch["pixel_values"], noise_seeds)
        gathered_scores, gathered_labels = accelerator.gather_for_metrics((fake_probability, batch["labels"]))
        scores += gathered_scores.cpu().tolist()
        labels += gathered_labels.cpu().tolist()
    return {"labels": labels, "scores": scores}


def score_subsets(
    detector: Detector,
    subsets: dict[str, datasets.Dataset],
    accelerator: Accelerator,
    image_column: str,
    batch_size: int,
    corruption: Callable[[Image.Image], Image.Image] | None = None,
    seed: int = 0,
) -> tuple[dict, dict]:
    """`({"subsets": {name: metrics}, "mean": metrics}, {name: {"labels", "scores"}})` over every subset."""
    metric = detection_metric()
    results, outputs = {}, {}
    for name, dataset in subsets.items():
        out = score_dataset(detector, dataset, accelerator, image_column, batch_size, corruption, name, seed)
        # decided as the scanner and the demo decide: the model's own threshold (PiN-CLIP: 0.5, never tuned on test)
        predictions = [int(score >= detector.threshold) for score in out["scores"]]
        result = metric.compute(predictions=predictions, references=out["labels"], scores=out["scores"])
        results[name] = {key: value for key, value in result.items() if key != "note" or value}
        outputs[name] = out
    return {"subsets": results, "mean": reporting.mean_metrics(results)}, outputs


def evaluate_detector(
    detector: Detector, test: dict[str, datasets.Dataset], accelerator: Accelerator, image_column: str, batch_size: int,
    robustness: bool, seed: int,
) -> tuple[dict, dict, dict | None]:
    """The test metrics, every image's label and score, and with `robustness` the metrics per condition: clean
    (the test metrics) and every JPEG / blur level. `--inference_noise sample` draws each image's noise from `seed`
    and its row: the same after training as in an `--eval_only` run of the saved model, on any number of processes
    and at any batch size."""
    metrics, outputs = score_subsets(detector, test, accelerator, image_column, batch_size, seed=seed)
    if not robustness:
        return metrics, outputs, None
    grid = {name: score_subsets(detector, test, accelerator, image_column, batch_size, corruption, seed)[0]
            for name, corruption in robustness_grid().items()}
    return metrics, outputs, {"clean": metrics, **grid}


def write_evaluation(
    output_dir: Path, metrics: dict, outputs: dict, robustness: dict | None, title: str, extra: dict | None = None
) -> None:
    """metrics.json, results.md, plots/ (and robustness.json/.md/.png) — main process only."""
    plots = output_dir / "plots"
    plots.mkdir(parents=True, exist_ok=True)
    reporting.write_json(output_dir / "metrics.json", {**metrics, **(extra or {})})
    training_generators = (extra or {}).get("training", {}).get("generators")
    (output_dir / "results.md").write_text(f"## {title}\n\n" + reporting.results_table(metrics, training_generators))
    reporting.plot_accuracy_bars(metrics, plots / "accuracy_per_generator.png", title)
    reporting.plot_roc_curves(outputs, plots / "roc_curves.png", title)
    if robustness:
        reporting.write_json(output_dir / "robustness.json", robustness)
        (output_dir / "robustness.md").write_text(reporting.robustness_table(robustness))
        reporting.plot_robustness(robustness, plots / "robustness.png")
    else:  # an earlier run's grid in this folder would pass for this model's (and be uploaded with it)
        for stale in (output_dir / "robustness.json", output_dir / "robustness.md", plots / "robustness.png"):
            stale.unlink(missing_ok=True)


def dataset_title(data_args: DataArguments) -> str:
    if data_args.eval_dir:
        return f"folder {display_name(data_args.eval_dir)}"  # `.` named by the folder
    name = data_args.dataset_name or MINIGENIMAGE
    if name != MINIGENIMAGE:
        return display_name(name)
    return "MiniGenImage" + (" (reduced)" if data_args.minigenimage_reduced else "")


def trains_on_minigenimage(data_args: DataArguments) -> bool:
    return (data_args.train_dir or data_args.dataset_name or MINIGENIMAGE) == MINIGENIMAGE


def training_data(data_args: DataArguments) -> str:
    """The training data as the model card and metrics.json name it: a Hub dataset id, MiniGenImage, or a local
    folder by its name."""
    return "MiniGenImage" if trains_on_minigenimage(data_args) else display_name(data_args.train_dir or data_args.dataset_name)


def make_scheduler(optimizer: torch.optim.Optimizer, args: TrainingArguments, max_steps: int,
                   processes: int) -> torch.optim.lr_scheduler.LRScheduler:
    """The learning-rate schedule of `max_steps` optimizer steps, for Accelerate to step once per process per
    optimizer step: sized in those units, or it would run `processes` times too fast. inverse_sqrt's timescale is in
    steps too (transformers takes the warm-up for it, or 10,000 steps without one), so it is scaled alike."""
    warmup_steps = int(args.warmup_ratio * max_steps)
    return get_scheduler(
        args.lr_scheduler_type,
        optimizer,
        num_warmup_steps=warmup_steps * processes,
        num_training_steps=max_steps * processes,
        scheduler_specific_kwargs={"timescale": (warmup_steps or 10_000) * processes}
        if args.lr_scheduler_type == "inverse_sqrt" else None,
    )


def training_generators(train_data: datasets.Dataset, generator_column: str) -> list | None:
    """The generator families of the training rows, sorted (every other test subset is an unseen generator); rows
    without one (reals that carry no generator) name no family. None when the data has no generator column."""
    if generator_column not in train_data.column_names:
        return None
    return sorted(value for value in distinct_values(train_data, generator_column) if value is not None)


def hub_training_dataset(data_args: DataArguments) -> str | None:
    """The training data's Hub dataset id, for the card's `datasets` (the Hub links each entry to a dataset page);
    None for MiniGenImage, built locally, and for a folder on disk."""
    name = data_args.dataset_name
    if data_args.train_dir or not name or name == MINIGENIMAGE or Path(name).exists():
        return None
    return name


def summary(metrics: dict, output_dir: Path, seconds: float, training_generators: list | None = None) -> str:
    return (
        "\n" + reporting.results_table(metrics, training_generators)
        + f"\nmean accuracy {reporting.percent(metrics['mean']['acc'])} %, mean AP {reporting.percent(metrics['mean']['ap'])} %"
        + f"\noutputs in {output_dir} ({seconds:.0f} s)\n"
    )


def run_eval_only(
    model_args: ModelArguments, data_args: DataArguments, args: TrainingArguments, accelerator: Accelerator, started: float
) -> dict:
    """Evaluate a saved detector (local folder or Hub id) on the test subsets and write the reports."""
    ignored = ignored_by_eval_only(model_args, args)
    if ignored and accelerator.is_main_process:  # a config file's training settings, or an --inference_noise
        logger.warning(f"--eval_only evaluates {model_args.model_name_or_path} as its config.json describes it; "
                       f"ignored: {', '.join(ignored)} (to evaluate with noise, set the saved model's inference_noise)")
    data = load_detection_data(data_args, need_train=False, seed=args.seed)
    if accelerator.num_processes > 1:  # one process stopping alone mid-evaluation leaves the others a gloo/NCCL
        check_evaluation_images(accelerator, {"test": data.test}, data_args.image_column)  # error, not the reason
    # not prepare_model: its autocast would score another model than the saved one
    detector = load_detector(model_args.model_name_or_path, model_args.trust_remote_code, accelerator.device)
    metrics, outputs, robustness = evaluate_detector(
        detector, data.test, accelerator, data_args.image_column, args.per_device_eval_batch_size, args.robustness,
        args.seed,
    )
    output_dir = Path(args.output_dir)
    if accelerator.is_main_process:
        output_dir.mkdir(parents=True, exist_ok=True)
        decided = "" if detector.threshold == DEFAULT_THRESHOLD else f" (decisions at its threshold {detector.threshold:g})"
        title = f"{model_args.model_name_or_path} on {dataset_title(data_args)}{decided}"
        write_evaluation(output_dir, metrics, outputs, robustness, title,
                         {"model": model_args.model_name_or_path, "threshold": detector.threshold,
                          "minigenimage_version": minigenimage_version(data_args, training=False)})
        accelerator.print(summary(metrics, output_dir, time.time() - started))
    return metrics


# ----------------------------------------------------------------------------------------------- main
def stop_together(accelerator: Accelerator, problems: list[str], error: type[Exception]) -> None:
    """Raise `error` with the first of every process's `problems` on every process (a collective: all call it). A
    process that stopped alone would leave the others to fail at their next collective with a connection error
    instead of the reason."""
    problems = gather_object(problems) if accelerator.num_processes > 1 else problems
    if problems:
        raise error(problems[0])


def check_evaluation_images(accelerator: Accelerator, kinds: dict[str, dict[str, datasets.Dataset]],
                            image_column: str) -> None:
    """Open every image of the subsets of each kind ("validation", "test"), each process its share, and stop every
    process together with the first that cannot be read (`stop_together`)."""
    unreadable = []
    for kind, subsets in kinds.items():
        try:
            check_images(subsets, image_column, kind, accelerator.process_index, accelerator.num_processes)
        except ImageLoadError as error:
            unreadable.append(str(error))
            break
    stop_together(accelerator, unreadable, ImageLoadError)


# What the card's command leaves out, each with whether it takes a value (or, a switch, may take a true/false word):
# where the run resumed from, and where it uploaded to (anyone else's rerun would train, then fail to upload; the
# owner's would replace the published model).
NOT_REPEATED = {"--resume_from_checkpoint": True, "--hub_model_id": True, "--push_to_hub": False,
                "--hub_private_repo": False}


def is_switch_word(token: str) -> bool:
    """Whether HfArgumentParser reads `token` as a switch's value (`--push_to_hub true`)."""
    try:
        string_to_bool(token)
    except ArgumentTypeError:
        return False
    return True


def without_unrepeated(arguments: list[str]) -> list[str]:
    """`arguments` less the `NOT_REPEATED` flags and their values."""
    kept, dropped_flag = [], None  # the flag dropped just before the token, written without `=value`
    for token in arguments:
        if dropped_flag and (NOT_REPEATED[dropped_flag] or is_switch_word(token)):
            dropped_flag = None
            continue
        name = flag_name(token) if token.startswith("--") else None
        dropped_flag = name if name in NOT_REPEATED and "=" not in token else None
        if name not in NOT_REPEATED:
            kept.append(token)
    return kept


def partial_window_scale(batch_index: int, batches: int, accumulation: int) -> float:
    """What the loss of batch `batch_index` (of an epoch's `batches`) is multiplied by so that every optimizer step
    takes the mean gradient of its batches: `accelerator.backward` divides each loss by `accumulation`, and an epoch
    whose batches it does not divide ends with a step of fewer batches, which got only that fraction of a mean
    gradient (and met gradient clipping at that size)."""
    partial = batches % accumulation
    return accumulation / partial if partial and batch_index >= batches - partial else 1.0


def hardware(device: torch.device) -> str:
    """What trained the run: a GPU by its name, CPUs with the torch thread count (`accelerate launch` sets
    OMP_NUM_THREADS=1 where `python train.py` uses every core, and the sums come out different in the last bits)."""
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    threads = torch.get_num_threads()
    return f"{device.type} ({threads} torch thread{'s' if threads > 1 else ''})"


def launch_command(arguments: list[str], accelerator: Accelerator) -> str:
    """The command that repeats this run: `python train.py ...`, or `accelerate launch ... train.py ...` with the
    process count and mixed precision, which shape the batch, the data order and the arithmetic. Several processes
    need `--multi_gpu` (without it accelerate starts one unless it sees several GPUs), and on CPUs the variable too.
    Without `--resume_from_checkpoint`: a resumed run ends as the uninterrupted one does, and its checkpoint is gone
    by then (the card would name it by its last folder only); without the Hub upload (`NOT_REPEATED`). A config file
    is written out inline unless it is one of the repository's, named by its path from the repository root (the
    card's command runs there): one elsewhere is neither published with the model nor named by more than its last
    folder; one that resumes or uploads is inlined too."""
    config, _ = split_config(arguments)
    in_repository = (config is not None and not Path(config).is_absolute()
                     and Path(config).resolve() == (REPO_ROOT / config).resolve()
                     and (REPO_ROOT / config).resolve().is_relative_to(REPO_ROOT))
    sets_unrepeated = without_unrepeated(expand_config(arguments)) != expand_config(without_unrepeated(arguments))
    if config is not None and (sets_unrepeated or not in_repository):
        arguments = expand_config(arguments)
    arguments = without_unrepeated(arguments)
    if accelerator.num_processes == 1 and accelerator.mixed_precision == "no":
        return "python train.py " + shlex.join(arguments)
    launch = "accelerate launch"
    if accelerator.num_processes > 1:
        cpus = accelerator.distributed_type == DistributedType.MULTI_CPU
        launch = ("ACCELERATE_USE_CPU=true " if cpus else "") + "accelerate launch --multi_gpu"
    return (f"{launch} --num_processes {accelerator.num_processes} --mixed_precision {accelerator.mixed_precision} "
            "train.py " + shlex.join(arguments))


def main(argv: list[str] | None = None) -> dict:
    """Run training + evaluation (or evaluation only); return the test metrics."""
    started = time.time()
    model_args, data_args, args = parse_arguments(argv)
    # Mixed precision and the process layout come from `accelerate launch` (a hard-coded
    # mixed_precision would override its --mixed_precision). The seedable sampler makes
    # the shuffle a function of (seed, epoch) on every process, so a resumed run sees the same data order.
    accelerator = Accelerator(
        gradient_accumulation_steps=args.gradient_accumulation_steps,
        dataloader_config=DataLoaderConfiguration(use_seedable_sampler=True, data_seed=data_seed(args.seed)),
    )
    if not accelerator.is_main_process:  # the data checks' and converters' warnings once, not once per process
        for name in ("detection_data", "datasets_scripts"):
            logging.getLogger(name).setLevel(logging.ERROR)
    set_seed(args.seed)
    unread = unread_data_arguments(data_args, training=not args.eval_only)
    if unread and accelerator.is_main_process:
        logger.warning(f"not read: {', '.join(unread)} (--train_dir and --eval_dir give the run its data, or it reads "
                       "no MiniGenImage)")
    if args.eval_only:
        return run_eval_only(model_args, data_args, args, accelerator, started)
    # its validation and test crops must not come from tiles the backbone was pretrained on, whatever the training data
    builds = minigenimage_builds_read(data_args)
    if len(set(builds.values())) > 1:  # each seed and crop size deals the photographs' tiles out otherwise
        raise ValueError(
            f"the run reads MiniGenImage builds of different seeds or crop sizes ({'; '.join(builds)}): one's "
            "validation and test crops come partly from the tiles of the other's training split; train and evaluate "
            "on builds of one seed and crop size"
        )
    if model_args.model_name_or_path:
        for source, (seed, crop_size) in builds.items():
            check_tile_record(model_args.model_name_or_path, seed, source, crop_size)

    if accelerator.gradient_accumulation_steps != args.gradient_accumulation_steps:
        # `accelerate launch --gradient_accumulation_steps` (DeepSpeed) sets it in the environment, and Accelerator
        # prefers that: the schedule, the batch and the logs would count steps that are not taken.
        raise ValueError(
            f"accelerate accumulates gradients over {accelerator.gradient_accumulation_steps} steps "
            f"(ACCELERATE_GRADIENT_ACCUMULATION_STEPS) but --gradient_accumulation_steps is "
            f"{args.gradient_accumulation_steps}: give the same value to both, or set it with train.py's argument only"
        )
    command = launch_command(sys.argv[1:] if argv is None else argv, accelerator)

    output_dir = Path(args.output_dir)
    if not args.resume_from_checkpoint and list_checkpoints(output_dir):
        raise ValueError(
            f"{output_dir / 'checkpoints'} holds an earlier run's checkpoints: continue it with "
            "--resume_from_checkpoint latest, or start over in another --output_dir (or after removing that folder)"
        )
    settings = run_settings((model_args, data_args, args), leave_out=RESUMABLE_CHANGES)
    # the process layout shapes the data order, the schedule and the batch: a resume must keep it
    settings.update(processes=accelerator.num_processes, mixed_precision=accelerator.mixed_precision)
    checkpoint = resolve_checkpoint(args.resume_from_checkpoint, output_dir) if args.resume_from_checkpoint else None
    # the log the run continues: this folder's for one of its own checkpoints (however its path names it), else the
    # log of the checkpoint's own run folder
    resumed_log = None
    if checkpoint is not None:  # before any data or model is loaded
        check_same_run(checkpoint, settings)
        own = checkpoint.resolve().parent == (output_dir / "checkpoints").resolve()
        resumed_log = output_dir / "train_log.jsonl" if own else checkpoint.parent.parent / "train_log.jsonl"
        if not own and list_checkpoints(output_dir):
            # resuming removes the checkpoints after the one resumed: here they would be another run's
            raise ValueError(
                f"--resume_from_checkpoint {checkpoint} is not one of {output_dir / 'checkpoints'}, which holds "
                "another run's checkpoints: resume into the checkpoint's own run folder, or into a new --output_dir"
            )
    if args.push_to_hub:  # after the checks above, which would otherwise leave an empty repository behind
        problems = []
        if accelerator.is_main_process:
            try:
                # the full id: a bare NAME goes under the logged-in user, and the card must name what users load
                args.hub_model_id = create_model_repo(args.hub_model_id, private=args.hub_private_repo)
            except Exception as error:  # noqa: BLE001 - offline, no login, no rights: before training, not after it
                problems.append(f"--push_to_hub: cannot create {args.hub_model_id} on the Hub ({error})")
        stop_together(accelerator, problems, ValueError)
    with accelerator.main_process_first():  # the main process builds / caches the data, the others read it
        data = load_detection_data(data_args, need_train=True, seed=args.seed)
    # An unreadable evaluation image stops the run now, not after training.
    check_evaluation_images(accelerator, {"validation": data.validation, "test": data.test}, data_args.image_column)

    # Model: the same `from_clip` path for a random tiny CLIP and for openai/clip-vit-large-patch14.
    clip = backbone_path(model_args, args, accelerator)
    try:
        model = PinClipForImageClassification.from_clip(clip, **model_args.config_overrides())
    except OSError as error:  # not a CLIP folder, or a Hub id that cannot be fetched
        raise ValueError(f"--model_name_or_path {clip}: cannot load it ({error})") from error
    processor = model.image_processor()
    config = model.config

    train_images = TrainImages(data.train, data_args.image_column, config.image_size, args.seed, args.horizontal_flip,
                               name=f"training split {data.train_split!r}", resize=config.resize_images)
    train_loader = DataLoader(
        train_images,
        batch_size=args.per_device_train_batch_size,
        shuffle=True,
        collate_fn=Collator(processor),
        num_workers=args.dataloader_num_workers,
        # Its own generator: starting an epoch's iterator (here or after a resume) must not draw from the global
        # RNG that the training noise uses, or a resumed run would see different noise.
        generator=torch.Generator().manual_seed(args.seed),
    )
    train_loader = accelerator.prepare(train_loader)  # sharded: its length is per process
    steps_per_epoch = math.ceil(len(train_loader) / args.gradient_accumulation_steps)
    max_steps = args.max_steps if args.max_steps is not None else args.num_train_epochs * steps_per_epoch
    num_epochs = math.ceil(max_steps / steps_per_epoch)
    optimizer = make_optimizer(model, args)
    scheduler = make_scheduler(optimizer, args, max_steps, accelerator.num_processes)
    model, optimizer, scheduler = accelerator.prepare(model, optimizer, scheduler)

    completed_steps, images_seen, unlogged = 0, 0, {}
    if checkpoint is not None:
        completed_steps, images_seen, unlogged = restore_checkpoint(accelerator, checkpoint, output_dir)
    elif args.resume_from_checkpoint:
        accelerator.print(f"no checkpoint in {output_dir / 'checkpoints'} yet: starting from scratch")
    window = LogWindow(unlogged)  # the per-step values since the last log record, averaged into the next one
    start_epoch = completed_steps // steps_per_epoch
    skip_batches = (completed_steps - start_epoch * steps_per_epoch) * args.gradient_accumulation_steps

    if args.gradient_accumulation_steps > len(train_loader) and accelerator.is_main_process:
        logger.warning(f"--gradient_accumulation_steps {args.gradient_accumulation_steps} exceeds the {len(train_loader)} "
                       "batches of an epoch (per process): each optimizer step takes one epoch's batches")
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    accelerator.print(
        f"training PiN-CLIP ({config.noise_mode} noise) from {clip}: {trainable:,} trainable parameters, "
        f"{len(data.train)} images, {max_steps} steps of {args.per_device_train_batch_size} x "
        f"{accelerator.num_processes} process(es) x {args.gradient_accumulation_steps} accumulation"
    )
    log_path = output_dir / "train_log.jsonl"
    if accelerator.is_main_process:
        output_dir.mkdir(parents=True, exist_ok=True)
        removed = remove_earlier_run(output_dir)
        if removed:
            accelerator.print(f"removed the earlier run's model and reports from {output_dir}: {', '.join(removed)}")
        # The log continues the checkpoint's run: records of an earlier run, or of steps after the checkpoint, are dropped.
        kept = log_records_until(resumed_log, completed_steps) if resumed_log else []
        log_path.write_text("".join(json.dumps(record) + "\n" for record in kept))
    progress = tqdm(total=max_steps, initial=completed_steps, desc="training", disable=not accelerator.is_local_main_process)
    for epoch in range(start_epoch, num_epochs):
        if completed_steps >= max_steps:  # resumed from the last step's checkpoint
            break
        model.train()
        train_images.epoch = epoch  # seeds this epoch's crops and flips
        train_loader.set_epoch(epoch)  # seeds this epoch's shuffle
        skip = skip_batches if epoch == start_epoch else 0  # resumed mid-epoch: the batches before the checkpoint
        batches = accelerator.skip_first_batches(train_loader, skip) if epoch == start_epoch else train_loader
        for batch_index, batch in enumerate(batches, start=skip):
            with accelerator.accumulate(model):
                outputs = model(**batch)
                accelerator.backward(outputs.loss * partial_window_scale(batch_index, len(train_loader),
                                                                         args.gradient_accumulation_steps))
                if accelerator.sync_gradients and args.max_grad_norm > 0:
                    accelerator.clip_grad_norm_(model.parameters(), args.max_grad_norm)
                step_lr = scheduler.get_last_lr()[0]  # the rate this step uses (the scheduler then moves on)
                optimizer.step()
                scheduler.step()
                optimizer.zero_grad()
            images_seen += distinct_images(batch_index, args.per_device_train_batch_size * accelerator.num_processes,
                                           len(train_images))
            window.add(outputs)
            if not accelerator.sync_gradients:
                continue
            completed_steps += 1
            progress.update(1)
            if completed_steps % args.logging_steps == 0 or completed_steps == max_steps:
                record = {"step": completed_steps, "epoch": epoch, "lr": step_lr}
                record.update(window.mean_and_clear(accelerator))
                if not math.isfinite(record["loss"]):  # every later step, and the saved model, would be NaN too
                    raise ValueError(
                        f"the training loss is {record['loss']} at step {completed_steps} (lr {step_lr:g}): training "
                        "diverged; lower --learning_rate or set --max_grad_norm"
                    )
                progress.set_postfix(loss=f"{record['loss']:.3f}", sigma=f"{record.get('noise_sigma_mean', 0):.2f}")
                if accelerator.is_main_process:
                    with log_path.open("a") as log:
                        log.write(json.dumps(record) + "\n")
            if args.checkpointing_steps and completed_steps % args.checkpointing_steps == 0:
                progress_state = {"images_seen": images_seen, "window": window.read(accelerator)}
                save_checkpoint(accelerator, output_dir, completed_steps, args.checkpoints_total_limit,
                                progress=progress_state, settings=settings)
            if completed_steps >= max_steps:
                break
    progress.close()

    # Save first, then evaluate the saved files: the reported numbers are those of the published model.
    accelerator.wait_for_everyone()
    if accelerator.is_main_process:
        accelerator.unwrap_model(model).save_pretrained(output_dir)
    accelerator.wait_for_everyone()
    # Not prepare_model: under `accelerate launch --mixed_precision` it would evaluate in autocast, i.e. score another
    # model than the saved fp32 one that users download.
    detector = load_detector(str(output_dir), trust_remote_code=False, device=accelerator.device)
    column, batch_size = data_args.image_column, args.per_device_eval_batch_size
    validation = None
    if data.validation:
        validation, _ = score_subsets(detector, data.validation, accelerator, column, batch_size, seed=args.seed)
    metrics, outputs, robustness = evaluate_detector(detector, data.test, accelerator, column, batch_size, args.robustness,
                                                     args.seed)
    upload_problem = None

    if accelerator.is_main_process:
        title = f"PiN-CLIP ({config.noise_mode}) on {dataset_title(data_args)}"
        training = {
            "data": training_data(data_args),
            # which build of the benchmark the figures are on (another version holds other images)
            "minigenimage_version": minigenimage_version(data_args),
            "train_split": data.train_split,
            # the families seen in training: every other test subset is an unseen generator
            "generators": training_generators(data.train, data_args.generator_column),
            "steps": completed_steps,
            "images_seen": images_seen,
            "batch": args.per_device_train_batch_size * accelerator.num_processes * args.gradient_accumulation_steps,
            "optimizer": args.optimizer,
            "lr": args.learning_rate,
            "scheduler": args.lr_scheduler_type,
            "seed": args.seed,
            "processes": accelerator.num_processes,
            "mixed_precision": accelerator.mixed_precision,
            # the last bits of the weights depend on these (the metrics, to the shown digits, do not)
            "hardware": hardware(accelerator.device),
            "torch": torch.__version__,
        }
        extra = {"validation": validation, "training": training}
        write_evaluation(output_dir, metrics, outputs, robustness, title, extra)
        robust_text = ""
        if robustness:
            robust_text = "\n## Robustness (mean over test subsets)\n\n" + reporting.robustness_table(robustness)
        reporting.write_model_card(
            output_dir, metrics, config, dataset_title(data_args),
            display_name(data_args.eval_dir or data_args.dataset_name or MINIGENIMAGE), training, command,
            repo_id=args.hub_model_id, extra=robust_text, training_dataset_id=hub_training_dataset(data_args),
        )
        if validation:
            accelerator.print(f"validation: mean acc {reporting.percent(validation['mean']['acc'])} %")
        accelerator.print(summary(metrics, output_dir, time.time() - started, training["generators"]))
        if args.push_to_hub:
            try:
                accelerator.print(f"uploaded to {push_folder(output_dir, args.hub_model_id)}")
            except Exception as error:  # noqa: BLE001 - a dropped connection, a quota: the saved run stays as it is
                upload_problem = (
                    f"the run is saved in {output_dir}, but uploading it to {args.hub_model_id} failed "
                    f"({type(error).__name__}: {error}); retry with `python hub_push.py {shlex.quote(str(output_dir))} "
                    f"--hub_model_id {args.hub_model_id}`"
                )
    accelerator.wait_for_everyone()
    if upload_problem:  # after the other processes are done: one raising alone would leave them waiting
        raise ValueError(upload_problem)
    # The process group stays up: ablation.py calls main() once per run in one launch, and a group destroyed and
    # set up again in the same processes failed to connect. Whoever launched the processes takes it down.
    return metrics


def end_processes() -> None:
    """Take down the process group of a multi-process launch (no-op otherwise), as the script's last step."""
    PartialState().destroy_process_group()


if __name__ == "__main__":
    try:
        main()
    except (ValueError, FileNotFoundError) as error:  # data or arguments that cannot work: the message, no traceback
        print(f"train.py: error: {error}", file=sys.stderr)
        sys.exit(2)
    end_processes()
