"""Command-line arguments of `train.py`: three dataclasses parsed by `HfArgumentParser`.

Any argument can also come from a JSON or YAML file, given either as the first argument (`train.py
configs/genimage.yaml --seed 1`) or with `--config FILE`; arguments on the command line override the file.
"""

import dataclasses
import json
import math
import sys
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import torch
import yaml
from transformers import HfArgumentParser, SchedulerType

from clip_checkpoints import CLIP_SHAPES
from configuration_pinclip import PinClipConfig
from datasets_scripts.minigenimage import CROP_SIZE
from hub_push import repo_id_problem
from inference import is_hub_id

MINIGENIMAGE = "minigenimage"
OPTIMIZERS = ("adam", "adamw")
# The transformers schedules this loop can drive: one `step()` per optimizer step, sized by warmup and total steps
# (reduce_lr_on_plateau and greedy step on a metric; the min-LR cosines and warmup_stable_decay need settings more).
SCHEDULERS = ("linear", "cosine", "cosine_with_restarts", "polynomial", "constant", "constant_with_warmup",
              "inverse_sqrt")
CHECKPOINT_PREFIX = "checkpoint-"  # OUTPUT_DIR/checkpoints/checkpoint-N
CONFIG_SUFFIXES = (".json", ".yaml", ".yml")
# The ModelArguments that say where the backbone comes from and how to load it; all the others are PinClipConfig fields.
NOT_CONFIG_FIELDS = ("model_name_or_path", "random_clip_shape", "trust_remote_code")
# What a checkpoint may be resumed with other values of: where the run is written, how it is continued, logged,
# checkpointed, evaluated in batches, loaded (crops are seeded per image and epoch, so DataLoader workers change no
# batch), where MiniGenImage is cached (a build is its version, seed and crop size, checked by its checksums: as
# PINCLIP_CACHE, which the settings never held) and published. Anything else would continue one run's weights as
# another's.
RESUMABLE_CHANGES = ("output_dir", "resume_from_checkpoint", "logging_steps", "checkpointing_steps",
                     "checkpoints_total_limit", "per_device_eval_batch_size", "dataloader_num_workers", "robustness",
                     "minigenimage_cache_dir", "push_to_hub", "hub_model_id", "hub_private_repo")


@dataclass
class ModelArguments:
    """Which backbone to start from and the PiN-CLIP settings (fields of `PinClipConfig`)."""

    model_name_or_path: str | None = field(
        default=None,
        metadata={
            "help": "CLIP checkpoint (Hub id or folder) to build PiN-CLIP from; with --eval_only, any saved detector. "
            "Default: a tiny random CLIP written to OUTPUT_DIR/random-clip and trained fully."
        },
    )
    random_clip_shape: str = field(
        default="tiny-64", metadata={"help": "Shape of the random CLIP used when no model is given (clip_checkpoints)."}
    )
    trust_remote_code: bool = field(
        default=False,
        metadata={"help": "--eval_only: load the model with the code it ships (a classifier with its own code needs "
                          "it; a PiN-CLIP loads with this repository's class without it)."},
    )
    noise_mode: str = field(default="pin", metadata={"help": "pin (learned noise) | random | none (plain fine-tuning)."})
    noise_injection: str = field(default="embedding", metadata={"help": "embedding | tokens."})
    noise_scale: str = field(
        default="absolute",
        metadata={"help": "absolute | feature_rms (noise in units of each feature vector's RMS: s is a fraction)."},
    )
    noise_loss_weight: float = field(default=1.0, metadata={"help": "λ, weight of the noisy cross-entropy."})
    noise_samples: int = field(default=1, metadata={"help": "m, noise samples per image."})
    random_noise_std: float = field(
        default=0.25,  # chosen on MiniGenImage's validation split (README, "Choosing the defaults")
        metadata={"help": "s: std of `random` noise, of the KL prior and the initial σ of `pin`."},
    )
    sigma_floor: float = field(default=0.0, metadata={"help": "Added to σ so that it cannot collapse to zero."})
    kl_weight: float = field(default=0.0, metadata={"help": "Weight of KL(N(μ, σ²) ‖ N(0, s²I)); 0 disables it."})
    classifier_dropout: float = field(default=0.0, metadata={"help": "Dropout on the image embedding."})
    sigma_activation: str = field(default="softplus", metadata={"help": "softplus | abs (PiNI-style): how σ is made positive."})
    inference_noise: str = field(
        default="none", metadata={"help": "Noise at evaluation and in the saved model: none | mean (add μ) | sample (μ + σz)."}
    )
    generator_hidden_size: int = field(default=256, metadata={"help": "Width of the noise generator's cross-attention."})
    generator_num_heads: int = field(default=4, metadata={"help": "Heads of the noise generator's cross-attention."})
    detach_generator_input: bool = field(
        default=True,
        metadata={"help": "The generator sees a detached image embedding (no backbone gradient through the generator)."},
    )
    class_words: list[str] = field(
        default_factory=lambda: ["real", "fake"], metadata={"help": "The word of each class, 0 = real then 1 = fake."}
    )
    prompt_templates: list[str] = field(
        default_factory=lambda: ["A {} photo"],
        metadata={"help": "Prompt phrasings with one {} for the class word; each is a key of the cross-attention."},
    )
    resize_images: bool = field(
        default=False,
        metadata={"help": "Resize the short side to the model size before cropping, in training and evaluation (off: "
                          "resizing blurs generator traces)."},
    )
    lora_r: int = field(default=0, metadata={"help": "LoRA rank on the vision tower (0: train the whole backbone)."})
    lora_alpha: float = field(default=6.0, metadata={"help": "LoRA alpha."})
    lora_dropout: float = field(default=0.0, metadata={"help": "LoRA dropout."})
    lora_target_modules: list[str] = field(
        default_factory=lambda: ["q_proj", "k_proj", "v_proj"], metadata={"help": "Vision modules that get LoRA."}
    )

    def config_overrides(self) -> dict:
        """The `PinClipConfig` fields these arguments set, for `PinClipForImageClassification.from_clip`."""
        return {argument.name: getattr(self, argument.name) for argument in dataclasses.fields(self)
                if argument.name not in NOT_CONFIG_FIELDS}


@dataclass
class DataArguments:
    """Where the images come from. Default: the embedded MiniGenImage benchmark, built locally."""

    dataset_name: str | None = field(
        default=None,
        metadata={
            "help": f"'{MINIGENIMAGE}', a folder written by save_to_disk (converter output) or a Hub dataset id. "
            f"Default: {MINIGENIMAGE}, unless --train_dir/--eval_dir are given."
        },
    )
    dataset_config_name: str | None = field(default=None, metadata={"help": "Hub dataset configuration."})
    train_dir: str | None = field(
        default=None, metadata={"help": "Image folder tree for training (0_real/1_fake, nature/ai or real/fake)."}
    )
    eval_dir: str | None = field(default=None, metadata={"help": "Image folder tree for evaluation, same layouts."})
    train_split: str = field(default="train", metadata={"help": "Split to train on."})
    validation_split: str = field(default="validation", metadata={
        "help": "Split for model selection (`validation`, else `valid`/`val`/`dev` when present; `none`: no "
                "validation)."})
    test_split_prefix: str = field(default="test_", metadata={"help": "Splits named PREFIX<subset> are test subsets."})
    eval_splits: list[str] | None = field(
        default=None, metadata={"help": "Explicit test splits (default: every PREFIX* split, else 'test')."}
    )
    train_generators: list[str] | None = field(
        default=None, metadata={"help": "Train only on these generator values (e.g. GenImage's SD v1.4)."}
    )
    train_subsets: list[str] | None = field(
        default=None, metadata={"help": "Train only on these `subset` values (e.g. AIGIBench Setting-II classes)."}
    )
    image_column: str = field(default="image", metadata={"help": "Column holding the images."})
    label_column: str = field(default="label", metadata={"help": "Column holding 0 = real / 1 = fake."})
    generator_column: str = field(
        default="generator", metadata={"help": "Column naming the source; a single test split is grouped by it."}
    )
    max_train_samples: int | None = field(
        default=None, metadata={"help": "Train on this many rows, drawn at random with --seed (debugging)."}
    )
    max_eval_samples: int | None = field(
        default=None, metadata={"help": "Test and validate on this many rows of every subset, drawn at random, the same rows whatever --seed (debugging)."}
    )
    minigenimage_reduced: bool = field(default=False, metadata={"help": "Small, fast MiniGenImage (tests)."})
    minigenimage_cache_dir: str | None = field(default=None, metadata={"help": "Where MiniGenImage is cached."})
    minigenimage_seed: int = field(default=0, metadata={"help": "Seed of the MiniGenImage build."})


@dataclass
class TrainingArguments:
    """Optimisation, Accelerate, outputs and what to run."""

    output_dir: str = field(default="outputs/pinclip-minigenimage", metadata={"help": "Everything is written here."})
    seed: int = field(default=0, metadata={"help": "Seed of the initialisation, data order, crops and noise."})
    # 40: chosen on the validation split; the tiny random backbone is still improving there at 24 (README).
    num_train_epochs: int = field(default=40, metadata={"help": "Epochs (ignored when --max_steps is set)."})
    max_steps: int | None = field(default=None, metadata={"help": "Total optimizer steps (overrides epochs)."})
    per_device_train_batch_size: int = field(default=32, metadata={"help": "Batch size per process."})
    per_device_eval_batch_size: int = field(default=128, metadata={"help": "Evaluation batch size per process."})
    gradient_accumulation_steps: int = field(default=1, metadata={"help": "Batches per optimizer step."})
    optimizer: str = field(default="adamw", metadata={"help": "adam (the authors') | adamw."})
    learning_rate: float = field(default=1e-3, metadata={"help": "Peak learning rate."})
    weight_decay: float | None = field(
        default=None, metadata={"help": "AdamW's decoupled weight decay (default 0.05; adam takes none: default 0)."}
    )
    lr_scheduler_type: str = field(default="cosine",
                                   metadata={"help": f"transformers scheduler: {', '.join(SCHEDULERS)}."})
    warmup_ratio: float = field(default=0.05, metadata={"help": "Fraction of steps with linear warm-up."})
    max_grad_norm: float = field(default=1.0, metadata={"help": "Gradient clipping (0: off)."})
    horizontal_flip: bool = field(default=True, metadata={"help": "Random horizontal flip in training."})
    logging_steps: int = field(default=10, metadata={"help": "Log loss, ‖μ‖ and σ every N steps."})
    checkpointing_steps: int | None = field(
        default=None, metadata={"help": "Save the full training state (accelerator.save_state) every N steps."}
    )
    checkpoints_total_limit: int = field(default=2, metadata={"help": "Keep only the newest N checkpoints (0: all)."})
    resume_from_checkpoint: str | None = field(
        default=None, metadata={"help": "'latest' or a checkpoint folder: continue exactly where it stopped."}
    )
    eval_only: bool = field(default=False, metadata={"help": "Only evaluate --model_name_or_path."})
    robustness: bool = field(default=False, metadata={"help": "Also evaluate under JPEG and Gaussian blur."})
    dataloader_num_workers: int = field(default=0, metadata={"help": "DataLoader worker processes."})
    push_to_hub: bool = field(default=False, metadata={"help": "Upload the output folder to --hub_model_id."})
    hub_model_id: str | None = field(default=None, metadata={"help": "Hub repository, e.g. user/pinclip-genimage."})
    hub_private_repo: bool = field(default=False, metadata={"help": "Create the Hub repository as private."})

    def __post_init__(self) -> None:
        if self.weight_decay is None:  # each optimizer's own default: Adam, the authors', has no decay to apply
            self.weight_decay = 0.05 if self.optimizer == "adamw" else 0.0


ARGUMENT_CLASSES = (ModelArguments, DataArguments, TrainingArguments)


def read_config_file(path: str | Path) -> dict:
    """Arguments from a JSON or YAML mapping of argument name → value."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"config file {path} does not exist")
    text = path.read_text()
    try:
        values = json.loads(text) if path.suffix == ".json" else yaml.safe_load(text)
    except (ValueError, yaml.YAMLError) as error:  # JSONDecodeError is a ValueError
        kind = "JSON" if path.suffix == ".json" else "YAML"
        raise ValueError(f"config file {path}: not valid {kind} ({error})") from None
    if not isinstance(values, dict):
        raise ValueError(f"config file {path} must hold a mapping of argument names to values")
    return values


def config_to_argv(values: dict) -> list[str]:
    """Turn a config mapping into command-line tokens, so the file and the command line share one parser."""
    argv: list[str] = []
    for name, value in values.items():
        if value is None:
            continue
        if value == []:  # argparse would answer "expected at least one argument", not naming the file
            raise ValueError(f"--{name} is an empty list: leave it out of the config file instead")
        tokens = value if isinstance(value, list) else [value]
        argv += [f"--{name}", *(str(token) for token in tokens)]
    return argv


def flag_name(token: str) -> str:
    """The flag of a `--flag` or `--flag=value` token as train.py's parser reads it: `--noise-mode=pin` is
    `--noise_mode`."""
    return "--" + token[2:].split("=")[0].replace("-", "_")


def expand_config(argv: list[str]) -> list[str]:
    """Replace a config file given first (`train.py configs/genimage.yaml --seed 1`) or as `--config FILE` (or
    `--config=FILE`) by its arguments, placed first: the rest of the command line wins. One config file per run."""
    file, rest = split_config(argv)
    if file is None:
        return rest
    try:
        return config_to_argv(read_config_file(file)) + rest
    except ValueError as error:
        message = str(error)
        raise ValueError(message if message.startswith("config file") else f"config file {file}: {message}") from None


def split_config(argv: list[str]) -> tuple[str | None, list[str]]:
    """The config file a command line names (given first, or as `--config FILE` / `--config=FILE`), None for none,
    and the rest of the command line."""
    files, rest = [], list(argv)
    if rest and rest[0].endswith(CONFIG_SUFFIXES) and not rest[0].startswith("-"):
        files.append(rest.pop(0))
    while "--config" in rest or any(token.startswith("--config=") for token in rest):
        position = next(i for i, token in enumerate(rest) if token == "--config" or token.startswith("--config="))
        if rest[position] == "--config":
            if position + 1 >= len(rest) or rest[position + 1].startswith("-"):
                raise ValueError("--config needs a file name")
            files.append(rest.pop(position + 1))
            rest.pop(position)
        else:
            files.append(rest.pop(position).removeprefix("--config="))
    if len(files) > 1:
        raise ValueError(f"one config file per run, got {len(files)} ({', '.join(files)}): merge them, or give the "
                         "other's settings on the command line")
    return (files[0] if files else None), rest


def model_folder_problem(folder: Path, eval_only: bool) -> str | None:
    """Why a local `--model_name_or_path` folder cannot serve the run, if it cannot: training starts from a CLIP
    checkpoint; `--eval_only` evaluates a saved image classifier, which needs a config.json."""
    try:
        model_type = json.loads((folder / "config.json").read_text()).get("model_type")
    except FileNotFoundError:
        return "no config.json in this folder: not a saved model"
    except (OSError, ValueError, AttributeError) as error:
        return f"its config.json cannot be read as a model's ({type(error).__name__})"
    if not eval_only and model_type == PinClipConfig.model_type:
        return ("a saved PiN-CLIP detector: training starts from a CLIP checkpoint (evaluate this one with "
                "--eval_only)")
    if not eval_only and model_type != "clip":
        return f"not a CLIP checkpoint (model_type {model_type!r}): training starts from a CLIPModel folder or Hub id"
    return None  # for --eval_only, whether its weights make a classifier shows when it loads


def learning_rate_problem(learning_rate: float) -> str | None:
    """Why `learning_rate` cannot drive Adam/AdamW, or None. Their first step is lr / (1 − β1) = 10 × lr, which must
    fit a float32, else the optimizer stops with an overflow RuntimeError; smaller absurd rates diverge, which the
    training loss check reports."""
    if not (math.isfinite(learning_rate) and learning_rate > 0):
        return "must be a positive number"
    largest = torch.finfo(torch.float32).max * (1 - 0.9)  # 0.9: the β1 of both optimizers (PyTorch's default)
    if learning_rate > largest:
        return f"must be at most {largest:.3g}: Adam's first step is 10× the rate, and it must fit a float32"
    return None


def check_arguments(model_args: ModelArguments, data_args: DataArguments, args: TrainingArguments) -> list[str]:
    """Problems with the given paths, values and argument combinations, each naming the argument."""
    problems = []
    for name in ("train_dir", "eval_dir"):
        value = getattr(data_args, name)
        if value is not None and not Path(value).is_dir():
            problems.append(f"--{name} {value}: no such directory")
    model = model_args.model_name_or_path
    if model and not Path(model).is_dir() and not is_hub_id(model):
        problems.append(f"--model_name_or_path {model}: no such folder (and not a Hub id)")
    elif model and Path(model).is_dir() and (problem := model_folder_problem(Path(model), args.eval_only)):
        problems.append(f"--model_name_or_path {model}: {problem}")  # now, not after the data has loaded
    if not model and model_args.random_clip_shape not in CLIP_SHAPES:
        problems.append(f"--random_clip_shape {model_args.random_clip_shape}: choose one of {', '.join(CLIP_SHAPES)}")
    # the nearest existing folder on the way: a file there fails only when the reports are written, after the work
    existing = next(path for path in (Path(args.output_dir), *Path(args.output_dir).parents) if path.exists())
    if not existing.is_dir():
        where = "" if existing == Path(args.output_dir) else f"{existing} is "
        problems.append(f"--output_dir {args.output_dir}: {where}a file, not a folder")
    for name, value in (("seed", args.seed), ("minigenimage_seed", data_args.minigenimage_seed)):
        if not 0 <= value < 2**32:  # what torch, numpy and Accelerate's set_seed take
            problems.append(f"--{name} {value}: must be in [0, 2**32)")
    if args.eval_only and not model_args.model_name_or_path:
        problems.append("--eval_only needs --model_name_or_path (a saved detector folder or Hub id)")
    if args.eval_only and (Path(args.output_dir) / "config.json").is_file():  # the default one is the default run's
        problems.append(f"--output_dir {args.output_dir} holds a saved model, whose reports an evaluation would "
                        "replace: give --eval_only its own --output_dir")
    if data_args.generator_column == "label" and data_args.label_column != "label":
        # the label column is renamed `label`, replacing the column of that name: subsets would be the two classes
        problems.append(f"--generator_column label names the column that --label_column {data_args.label_column} "
                        "replaces (the real/fake label is read as `label`): rename the generator column first")
    if args.push_to_hub and not args.hub_model_id:
        problems.append("--push_to_hub needs --hub_model_id")
    elif args.push_to_hub and (problem := repo_id_problem(args.hub_model_id)):
        problems.append(problem)
    if args.push_to_hub and args.eval_only:  # an evaluation writes reports, not a model of its own
        problems.append("--push_to_hub uploads the model a run trains, and --eval_only trains none: upload a saved "
                        "model folder with `python hub_push.py FOLDER --hub_model_id USER/NAME`")
    resume = args.resume_from_checkpoint
    if resume not in (None, "latest"):
        name = Path(resume).name
        if not Path(resume).is_dir():
            problems.append(f"--resume_from_checkpoint {resume}: no such checkpoint folder")
        elif not (name.startswith(CHECKPOINT_PREFIX) and name.removeprefix(CHECKPOINT_PREFIX).isdigit()):
            problems.append(f"--resume_from_checkpoint {resume}: not a checkpoint folder (checkpoints/checkpoint-N)")
    at_least = {
        "max_steps" if args.max_steps is not None else "num_train_epochs": 1,  # max_steps overrides epochs
        "per_device_train_batch_size": 1, "per_device_eval_batch_size": 1, "gradient_accumulation_steps": 1,
        "logging_steps": 1, "dataloader_num_workers": 0, "checkpoints_total_limit": 0,
    }
    if args.checkpointing_steps is not None:
        at_least["checkpointing_steps"] = 1
    problems += [f"--{name} {getattr(args, name)}: must be at least {low}"
                 for name, low in at_least.items() if getattr(args, name) < low]
    for name in ("max_train_samples", "max_eval_samples"):
        value = getattr(data_args, name)
        if value is not None and value < 1:  # None: not set, every row
            problems.append(f"--{name} {value}: must be at least 1")
    if lr_problem := learning_rate_problem(args.learning_rate):
        problems.append(f"--learning_rate {args.learning_rate}: {lr_problem}")
    for name in ("weight_decay", "max_grad_norm"):
        if not (math.isfinite(getattr(args, name)) and getattr(args, name) >= 0):
            problems.append(f"--{name} {getattr(args, name)}: must be a number ≥ 0")
    if not 0 <= args.warmup_ratio < 1:
        problems.append(f"--warmup_ratio {args.warmup_ratio}: must be in [0, 1)")
    if args.optimizer not in OPTIMIZERS:
        problems.append(f"--optimizer {args.optimizer}: choose one of {', '.join(OPTIMIZERS)}")
    elif args.optimizer == "adam" and args.weight_decay:  # it would be ignored: make_optimizer gives Adam none
        problems.append(f"--weight_decay {args.weight_decay}: --optimizer adam applies no weight decay (use --optimizer "
                        "adamw, or leave --weight_decay out)")
    if not args.eval_only:  # the model's settings, checked now rather than after the data has loaded
        try:
            PinClipConfig(**model_args.config_overrides())
        except ValueError as error:
            problems.append(str(error).replace(f"{PinClipConfig.__name__}.", "--"))
    if args.lr_scheduler_type not in SCHEDULERS:
        known = args.lr_scheduler_type in {scheduler.value for scheduler in SchedulerType}
        why = ("a transformers scheduler that needs metrics or settings this loop does not give it" if known
               else "not a transformers scheduler")
        problems.append(f"--lr_scheduler_type {args.lr_scheduler_type}: {why} (use one of {', '.join(SCHEDULERS)})")
    return problems


def parse_arguments(
    argv: list[str] | None = None, check: bool = True
) -> tuple[ModelArguments, DataArguments, TrainingArguments]:
    """Parse the command line (or `argv`); exit with status 2 and a message naming the culprit on any error (with
    `check=False`, only on an unreadable config file or an unknown argument: the values as given)."""
    # No abbreviations: ablation.py, the card's repeat command and the config merge read flags by their full names
    # (`--resume_from X` passed as --resume_from_checkpoint and escaped all three)
    parser = HfArgumentParser(ARGUMENT_CLASSES, description=__doc__, allow_abbrev=False,
                              usage="%(prog)s [CONFIG.yaml | --config CONFIG] [--argument value ...]")
    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        argv = expand_config(argv)
    except (OSError, ValueError, yaml.YAMLError) as error:
        parser.error(str(error))
    model_args, data_args, args, unknown = parser.parse_args_into_dataclasses(args=argv, return_remaining_strings=True)
    if unknown:
        parser.error(f"unknown arguments: {' '.join(unknown)} (see --help for the accepted ones)")
    problems = check_arguments(model_args, data_args, args) if check else []
    if problems:
        parser.error("; ".join(problems))
    return model_args, data_args, args


def reads_dataset_name(data_args: DataArguments, training: bool = True) -> bool:
    """Whether a run (`training`, or an `--eval_only` one) loads `--dataset_name` (MiniGenImage when none is given):
    not when folders give it all the data it needs (a preset's dataset is then not needed: an `--eval_only` run needs
    test data alone), nor when a folder is given and no name."""
    if not training:  # --train_dir alone gives it no test data: the dataset then does (a named one, else none)
        return data_args.eval_dir is None and (data_args.dataset_name is not None or data_args.train_dir is None)
    folders = (data_args.train_dir is not None) + (data_args.eval_dir is not None)
    return folders == 0 or (folders == 1 and data_args.dataset_name is not None)


def reads_minigenimage(data_args: DataArguments, training: bool = True) -> bool:
    """Whether a run loads MiniGenImage, as training, validation or test data."""
    return reads_dataset_name(data_args, training) and (data_args.dataset_name or MINIGENIMAGE) == MINIGENIMAGE


def unread_data_arguments(data_args: DataArguments, training: bool = True) -> list[str]:
    """`--name value` of each data source argument given but not read: folders give the run all its data (a config
    file's --dataset_name), or the run reads no MiniGenImage (its --minigenimage_* settings)."""
    unread = []
    if not reads_dataset_name(data_args, training):
        unread += ["dataset_name", "dataset_config_name"]
    if not reads_minigenimage(data_args, training):
        unread += ["minigenimage_reduced", "minigenimage_seed", "minigenimage_cache_dir"]
    return not_at_default({name: getattr(data_args, name) for name in unread})


def written_minigenimage_reports(data_args: DataArguments, training: bool = True) -> dict[str, dict]:
    """The report.json of each MiniGenImage build written out by `datasets_scripts/minigenimage.py` that a run reads,
    by where it is named: an `--output_dir` read as `--dataset_name`, an `--export_folders` folder read as
    `--train_dir` or `--eval_dir` (its report.json sits at the export's top, above the split folders)."""
    reports = {}
    folders = {"--dataset_name": data_args.dataset_name if reads_dataset_name(data_args, training) else None,
               "--train_dir": data_args.train_dir if training else None, "--eval_dir": data_args.eval_dir}
    for flag, folder in folders.items():
        if folder is None or not Path(folder).is_dir():
            continue
        for place in [Path(folder)] + ([] if flag == "--dataset_name" else list(Path(folder).resolve().parents)):
            report = _minigenimage_report(place / "report.json")
            if report is not None:
                crop = f", crop size {report['crop_size']}" if report.get("crop_size", CROP_SIZE) != CROP_SIZE else ""
                reports[f"{flag} {folder} (MiniGenImage seed {report.get('seed')}{crop}, {place / 'report.json'})"] = report
                break
    return reports


def _minigenimage_report(path: Path) -> dict | None:
    """The content of a MiniGenImage build's report.json, None for any other file or none."""
    try:
        content = json.loads(path.read_text()) if path.is_file() else {}
    except (OSError, ValueError):  # not a build's report: the dataset's loading says what is wrong with the folder
        return None
    return content if isinstance(content, dict) and content.get("name") == "MiniGenImage" else None


def minigenimage_builds_read(data_args: DataArguments) -> dict[str, tuple[int, int]]:
    """The MiniGenImage builds a run reads, as {where it is named: (seed, crop size)}, the two settings that decide
    which tiles its splits come from: the build it makes (`--minigenimage_seed`, the default crop size) and the
    written-out builds (`written_minigenimage_reports`; a report without a crop size predates other sizes)."""
    builds = {}
    if reads_minigenimage(data_args):
        builds[f"--minigenimage_seed {data_args.minigenimage_seed}"] = (data_args.minigenimage_seed, CROP_SIZE)
    for source, report in written_minigenimage_reports(data_args).items():
        seed, crop_size = report.get("seed"), report.get("crop_size", CROP_SIZE)
        if isinstance(seed, int) and isinstance(crop_size, int):
            builds[source] = (seed, crop_size)
    return builds


def minigenimage_version(data_args: DataArguments, training: bool = True) -> str | None:
    """The version of MiniGenImage a run (`training`, or an `--eval_only` one) reads (another version holds other
    images): the one it builds, else the one a written-out build's report.json names; None when it reads none."""
    if reads_minigenimage(data_args, training):
        from datasets_scripts.minigenimage import VERSION

        return VERSION
    versions = sorted({str(report.get("version"))
                       for report in written_minigenimage_reports(data_args, training).values()})
    return ", ".join(versions) or None


# Accelerate's seedable sampler shuffles epoch e with seed `data_seed + e`: with data_seed = seed, seed 1 replayed
# seed 0's orders one epoch later (39 of 40 epochs shared). Seeds this far apart share none; seed 0 keeps its order.
DATA_SEED_STRIDE = 1_000_003


def data_seed(seed: int) -> int:
    """The seed of the run's data order (Accelerate's `DataLoaderConfiguration.data_seed`) for `--seed`."""
    return seed * DATA_SEED_STRIDE


def run_settings(arguments: Iterable, leave_out: Iterable[str]) -> dict:
    """A run's parsed arguments (the three dataclasses) as JSON values without `leave_out`, plus the size and
    modification time of every file of a local `--model_name_or_path` folder: a backbone written again is another run,
    and the MiniGenImage version the run reads, if it reads MiniGenImage: another version holds other images."""
    settings = {}
    for group in arguments:
        settings.update(dataclasses.asdict(group))
        if isinstance(group, DataArguments) and (version := minigenimage_version(group)):
            settings["minigenimage_version"] = version
    for name in leave_out:
        settings.pop(name)
    if "seed" in settings:  # how the seed orders the data is part of the run too (`data_seed`)
        settings["data_seed"] = data_seed(settings["seed"])
    backbone = settings.get("model_name_or_path")
    if backbone and Path(backbone).is_dir():
        settings["backbone_files"] = {path.name: [path.stat().st_size, path.stat().st_mtime_ns]
                                      for path in sorted(Path(backbone).iterdir()) if path.is_file()}
    return json.loads(json.dumps(settings))  # as a file of them reads back (tuples become lists)


def argument_defaults() -> dict:
    """The default of every argument of the three dataclasses, as `run_settings` records values."""
    defaults = {}
    for group in (ModelArguments, DataArguments, TrainingArguments):
        for argument in dataclasses.fields(group):
            if argument.default is not dataclasses.MISSING:
                defaults[argument.name] = argument.default
            elif argument.default_factory is not dataclasses.MISSING:
                defaults[argument.name] = argument.default_factory()
    return json.loads(json.dumps(defaults))


# The model arguments an evaluation of a saved model reads: the others describe a model to build from a CLIP.
EVAL_ONLY_MODEL_ARGUMENTS = ("model_name_or_path", "trust_remote_code")


def ignored_by_eval_only(model_args: ModelArguments, args: TrainingArguments) -> list[str]:
    """`--name value` of each model setting, and of the checkpoint arguments, given a value other than its default,
    which `--eval_only` does not use: the saved model's config.json decides (its `inference_noise` included)."""
    given = {**dataclasses.asdict(model_args), "resume_from_checkpoint": args.resume_from_checkpoint,
             "checkpointing_steps": args.checkpointing_steps}
    return not_at_default({name: value for name, value in given.items() if name not in EVAL_ONLY_MODEL_ARGUMENTS})


def not_at_default(values: dict) -> list[str]:
    """`--name value` of each of the arguments `values` that differs from its default."""
    defaults = argument_defaults()
    return [f"--{name} {value}" for name, value in json.loads(json.dumps(values)).items() if value != defaults[name]]


def changed_settings(before: dict, now: dict) -> list[str]:
    """`name old → new` for every setting that differs. A setting recorded on one side only (an argument added
    since the other side was recorded) compares as its default, so a run recorded before it existed still counts
    as the same run when it is left at its default; one with no default (the process count) is then not compared."""
    # a run recorded without a MiniGenImage version read none, or a build from before 1.3 that recorded none
    defaults, changes = {**argument_defaults(), "minigenimage_version": None}, []
    # Adam applies no weight decay: runs before it defaulted to 0 for Adam recorded AdamW's 0.05 all the same
    before, now = ({**side, "weight_decay": 0.0} if side.get("optimizer") == "adam" else side for side in (before, now))
    # a run recorded before `data_seed` ordered its data with its seed itself
    before, now = ({**side, "data_seed": side.get("data_seed", side["seed"])} if "seed" in side else side
                   for side in (before, now))
    for name in sorted(before.keys() | now.keys()):
        if name in before and name in now:
            old, new = before[name], now[name]
        elif name in defaults:
            old, new = before.get(name, defaults[name]), now.get(name, defaults[name])
        else:
            continue
        if old != new:
            changes.append(f"{name} {old} → {new}")
    return changes
