"""Loading a PiN-CLIP detector and scoring images with it, shared by the demo (`app.py`), the folder scanner
(`predict.py`) and the Space.

Every image goes through `image_io.load_rgb_image` and the model's saved image processor (as
`preprocessing.Preprocessing`), so the demo, the scanner and evaluation see identical pixels. Batched scoring
decodes and crops in DataLoader workers while the main process normalises whole batches and runs the model under
`torch.inference_mode`.
"""

from __future__ import annotations

import hashlib
import math
import os
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import torch
from huggingface_hub.errors import HFValidationError
from huggingface_hub.utils import validate_repo_id
from PIL import Image
from torch.utils.data import DataLoader, Dataset
from transformers import (
    AutoImageProcessor,
    AutoModelForImageClassification,
    BaseImageProcessor,
    PreTrainedConfig,
    PreTrainedModel,
)
from transformers.utils import CONFIG_NAME

from image_io import IMAGE_EXTENSIONS, ImageLoadError, load_rgb_image, to_rgb
from labels import FakeOutput
from modeling_pinclip import PinClipForImageClassification
from preprocessing import Preprocessing

# Where the default training run (`python train.py`) writes its model.
DEFAULT_MODEL_DIR = Path("outputs") / "pinclip-minigenimage"
TRAIN_COMMAND = "python train.py"
DEFAULT_THRESHOLD = 0.5
REAL, FAKE = "real", "fake"
# Top-level weight names of a PiN-CLIP file that no CLIP class has (its vision tower and projection they share).
PINCLIP_ONLY_WEIGHTS = ("noise_generator", "prompt_embeds")


@dataclass
class ScanResult:
    """One scanned file: `p_fake` and `label` when it could be scored, `error` (the reason) otherwise; `padding`, the
    fraction of what the model read that was black padding (`Preprocessing.padding`: an image smaller than the
    model's input, whose score is weak evidence)."""

    path: str
    p_fake: float | None = None
    label: str | None = None
    error: str | None = None
    padding: float | None = None


class Detector:
    """A real/fake image classifier with its image processor and decision threshold."""

    def __init__(
        self, model: torch.nn.Module, processor: BaseImageProcessor, threshold: float = DEFAULT_THRESHOLD, name: str = ""
    ):
        if not 0.0 <= threshold <= 1.0:
            raise ValueError(f"detection threshold {threshold} must be in [0, 1]")
        self.model = model.eval()
        self.processor = processor
        self.threshold = threshold
        self.name = name
        self.device = next(model.parameters()).device
        # Hub detectors disagree on which index is "fake" and what it is called: read it from the label names.
        # The detector then speaks of "real" and "fake" whatever the model's own names.
        self.fake_output = FakeOutput.of(model.config)
        self.preprocessing = Preprocessing(processor)

    @classmethod
    def load(
        cls, name_or_path: str | os.PathLike, device: str | None = None, trust_remote_code: bool = False,
        dtype: torch.dtype | None = None,
    ) -> "Detector":
        """Load a saved detector (local folder or Hub id; with HF_HUB_OFFLINE=1 only local files are read), as
        `load_classifier` does, on `device` (default: CUDA when there is one) in `dtype` (default: as saved).

        The threshold is the config's `detection_threshold` when the model carries one, 0.5 otherwise.
        """
        source = str(name_or_path)
        model, processor = load_classifier(source, trust_remote_code, dtype=dtype)
        model = model.to(device or ("cuda" if torch.cuda.is_available() else "cpu"))
        threshold = getattr(model.config, "detection_threshold", None)
        threshold = DEFAULT_THRESHOLD if threshold is None else float(threshold)
        return cls(model, processor, threshold, name=display_name(source))

    @torch.inference_mode()
    def fake_probabilities(self, pixel_values: torch.Tensor, noise_seeds: torch.Tensor | None = None) -> torch.Tensor:
        """A `(B, 3, H, W)` batch → `(B,)` float32 P(fake), on the model's device. A PiN-CLIP that samples noise at
        inference (`inference_noise="sample"`) draws each image's noise from its seed in `noise_seeds`, by default
        `pixel_noise_seeds`: the same image then scores the same in every run, batch and tool."""
        if noise_seeds is None and getattr(self.model.config, "inference_noise", "none") == "sample":
            noise_seeds = pixel_noise_seeds(pixel_values)
        extra = {} if noise_seeds is None else {"noise_seeds": noise_seeds}
        logits = self.model(pixel_values=pixel_values.to(self.device, self.model.dtype), **extra).logits
        return self.fake_output.probability(logits.float())

    def label_of(self, p_fake: float) -> str:
        """The decision at the model's threshold."""
        return FAKE if p_fake >= self.threshold else REAL

    def score_images(self, images: Sequence[Image.Image]) -> list[dict[str, float]]:
        """`{"real": p, "fake": p}` of each PIL image, in one batch (P(real) = 1 - P(fake)).

        Any mode is read as `image_io.load_rgb_image` reads a file's (16-bit rescaled, alpha dropped); EXIF orientation
        is not applied here: open files with `load_rgb_image`, which applies it.
        """
        if not images:
            return []
        p_fakes = self.fake_probabilities(self.preprocessing([to_rgb(image) for image in images])).tolist()
        if not all(map(math.isfinite, p_fakes)):  # `nan >= threshold` is False: it would read "real"
            raise ValueError(f"the model's scores are not all numbers ({p_fakes})")
        return [{REAL: 1.0 - p_fake, FAKE: p_fake} for p_fake in p_fakes]

    def p_fake(self, image: Image.Image) -> float:
        """Probability that one PIL image is AI-generated (see `score_images`)."""
        return self.score_images([image])[0][FAKE]

    def scan(self, paths: Sequence[str | os.PathLike], batch_size: int = 32, num_workers: int = 0) -> Iterator[ScanResult]:
        """Score image files in order; a file that cannot be read yields a result with its `error`, never raises."""
        paths = list(paths)
        batch_size = scan_batch_size(len(paths), batch_size, num_workers)
        loader = DataLoader(
            _ImageFiles(paths, self.preprocessing),
            batch_size=batch_size,
            num_workers=num_workers,
            collate_fn=_stack_readable,
            # Workers only decode and preprocess; they must not each start a full set of torch threads.
            worker_init_fn=_single_thread_worker,
        )
        for items, stacked in loader:
            p_fakes = iter([])  # a batch whose files were all unreadable has nothing to score
            if stacked is not None:
                p_fakes = iter(self.fake_probabilities(self.preprocessing.per_batch(stacked)).tolist())
            for item in items:
                if item.error is not None:
                    yield ScanResult(item.path, error=item.error)
                elif not math.isfinite(p_fake := next(p_fakes)):  # `nan >= threshold` is False: it would read "real"
                    yield ScanResult(item.path, error=f"the model's score is not a number ({p_fake})")
                else:
                    yield ScanResult(item.path, p_fake=p_fake, label=self.label_of(p_fake), padding=item.padding)


def scan_batch_size(files: int, batch_size: int, num_workers: int) -> int:
    """The batch `Detector.scan` uses: loader batches go to workers whole, so a small folder gets smaller batches
    and every worker gets work."""
    return max(1, min(batch_size, math.ceil(files / num_workers))) if num_workers > 0 else batch_size


def p_fake_text(p_fake: float | None) -> str:
    """p_fake as written to result files: 9 significant digits give back the float32 probability exactly, so a file
    agrees with its label at any threshold and keeps ties and rankings (AP, AUC) as computed. "" when not scored."""
    return "" if p_fake is None else f"{p_fake:.9g}"


# The least padding that makes a score weak evidence, and the least the result files' two decimals show: a row or two
# of pixels short of the crop (a 224×223 image) is neither noted nor counted.
NOTED_PADDING = 0.01


def padding_text(padding: float | None) -> str:
    """The padding fraction as result files write it: two decimals, rounded down so a 1×1 image is not 1 (all
    padding); "" when not scored."""
    return "" if padding is None else f"{math.floor(padding * 100) / 100:.2f}"


def pixel_noise_seeds(pixel_values: torch.Tensor) -> torch.Tensor:
    """One seed per image of a `(B, 3, H, W)` batch, a digest of its pixels: unlike torch's global generator, which
    nothing seeds in the scanner or the demo, it gives an image the same noise wherever it is scored. 32 bits: torch's
    CPU generator reads no more of a seed."""
    pixels = pixel_values.detach().to("cpu", torch.float32).contiguous()
    return torch.tensor([int.from_bytes(hashlib.blake2b(image.numpy().tobytes(), digest_size=4).digest(), "little")
                         for image in pixels], dtype=torch.long)


def display_name(name_or_path: str) -> str:
    """How a model or backbone is named to users: a Hub id (`name` or `owner/name`) as it is, a local folder by its
    own name only, so that no server path leaves the demo."""
    path = Path(name_or_path)
    if path.is_absolute() or path.exists() or name_or_path.count("/") > 1:
        return Path(os.path.abspath(path)).name  # `./` or `a/..` named by the folder, a link by its own name
    return name_or_path


def is_hub_id(name: str) -> bool:
    """Whether `name` can be a Hub repo id (`name` or `owner/name`): a path such as /data/clip or ./model cannot, nor
    `outputs/missing-run` when a local folder `outputs` exists (a folder path with a typo, not a Hub owner)."""
    try:
        validate_repo_id(name)
    except HFValidationError:
        return False
    return "/" not in name or not Path(name.split("/")[0]).is_dir()


def load_classifier(
    name_or_path: str | os.PathLike, trust_remote_code: bool = False, dtype: torch.dtype | None = None
) -> tuple[PreTrainedModel, BaseImageProcessor]:
    """A saved image classifier (local folder or Hub id) in eval mode, its weights in `dtype` (default: as
    transformers loads it; `torch.bfloat16` is the fast form on a GPU, bench/NOTES.md §6), and its image processor
    (PIL backend).

    Without `trust_remote_code` no code from the model's folder or Hub repository runs: a PiN-CLIP detector loads
    with the `modeling_pinclip` class beside this file (and must fit it exactly: a model saved by another version
    raises `ValueError`), any other classifier through the transformers classes. With it, the model and its image
    processor load with the code they ship, as `trust_remote_code=True` does in transformers. Either way a model
    whose file lacks some of its weights (a CLIP backbone without a trained head, for one) raises `ValueError`.
    """
    source = str(name_or_path)
    if not Path(source).is_dir() and not is_hub_id(source):  # transformers would answer with Hub id syntax rules
        raise ValueError(f"{source}: no such model folder (and not a Hub id)")
    if Path(source).is_dir() and not (Path(source) / CONFIG_NAME).is_file():  # else "Unrecognized model ... model_type"
        raise ValueError(f"{source}: no {CONFIG_NAME} in this folder: not a saved model")
    config_dict, _ = PreTrainedConfig.get_config_dict(source)  # a plain dict: reading it runs no code
    is_pinclip = config_dict.get("model_type") == PinClipForImageClassification.config_class.model_type
    # transformers fills missing weights with random ones and only logs it: a detector must not score at random.
    if is_pinclip and not trust_remote_code:
        model, info = PinClipForImageClassification.from_pretrained(source, output_loading_info=True, dtype=dtype)
        problems = {kind: keys for kind, keys in info.items() if keys}  # missing, unexpected, mismatched, errors
        if problems:
            raise ValueError(
                f"{source}: its weights do not fit this repository's PiN-CLIP class ({problems}); "
                "it was saved by another version: load it with its own code (trust_remote_code)"
            )
    else:
        model, info = AutoModelForImageClassification.from_pretrained(
            source, trust_remote_code=trust_remote_code, output_loading_info=True, dtype=dtype
        )
        # Unused weights in the file (a pretraining head, say) are common and harmless; absent ones are not.
        problems = {kind: info[kind] for kind in ("missing_keys", "mismatched_keys") if info.get(kind)}
        if problems:
            raise ValueError(
                f"{source}: its weights do not cover the model ({problems}): those parts would score at random; "
                "is it a trained classifier?"
            )
        # A PiN-CLIP file whose config names another model type (an edited model_type: "clip") loads as that model
        # without the detector's noise generator and prompts, and scores other numbers than the detector it was.
        unused_pinclip = sorted(key for key in info["unexpected_keys"] if key.split(".")[0] in PINCLIP_ONLY_WEIGHTS)
        if unused_pinclip:
            raise ValueError(
                f"{source}: its file holds PiN-CLIP weights ({', '.join(unused_pinclip[:3])}, ...) that its config's "
                f"model_type {config_dict.get('model_type')!r} does not use: a PiN-CLIP detector needs model_type "
                f"{PinClipForImageClassification.config_class.model_type!r}"
            )
    # backend="pil": torchvision is not a dependency, and the PIL backend is what training saved and used.
    processor = AutoImageProcessor.from_pretrained(source, backend="pil", trust_remote_code=trust_remote_code)
    return model.eval(), processor


@dataclass
class _Item:
    path: str
    pixel_values: torch.Tensor | None
    error: str | None = None
    padding: float | None = None


class _ImageFiles(Dataset):
    """Image files → `preprocessing.per_image(RGB image)` tensors and their padding, or why a file cannot be read
    (runs in DataLoader workers)."""

    def __init__(self, paths: list[str | os.PathLike], preprocessing: Preprocessing):
        self.paths = paths
        self.preprocessing = preprocessing

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, index: int) -> _Item:
        path = str(self.paths[index])
        try:
            image = load_rgb_image(path)
            return _Item(path, self.preprocessing.per_image(image), padding=self.preprocessing.padding(image))
        except ImageLoadError as error:  # the row names the file
            return _Item(path, None, error.reason)
        except Exception as error:  # noqa: BLE001 - one odd file must not stop a scan of thousands
            return _Item(path, None, f"cannot process: {type(error).__name__}: {error}")


def _stack_readable(items: list[_Item]) -> tuple[list[_Item], torch.Tensor | None]:
    """The batch's items (pixels dropped) and one tensor of the readable ones, stacked where the items were made:
    a worker then hands the main process one shared-memory tensor per batch instead of one per image."""
    readable = [item.pixel_values for item in items if item.pixel_values is not None]
    return [replace(item, pixel_values=None) for item in items], torch.stack(readable) if readable else None


def _single_thread_worker(_: int) -> None:
    torch.set_num_threads(1)


def find_images(paths: Iterable[str | os.PathLike]) -> list[Path]:
    """Files named in `paths` plus, for folders, every image file below them: recursively, following folder links
    (each real folder once, across all of `paths`: `photos photos/2024` lists 2024's files once, and by its own path
    rather than a link's), sorted, hidden files and folders skipped. A broken link, and a folder that cannot be
    listed, are kept, so that their rows say so. A file is listed once, however many arguments name it or lead to it
    (a file named beside its folder; a link to a file is a file of its own). An empty path is refused (`Path("")`
    would be the working folder)."""
    found: list[Path] = []
    seen: set[str] = set()
    listed: set[tuple[str, str]] = set()  # (real folder, name) of every file in `found`
    for name in paths:
        if not str(name):  # Path("") is the working folder: an unset shell variable would scan it
            raise ValueError("an empty path names no file or folder")
        path = Path(name)
        try:
            folder_named = path.is_dir()
        except OSError:  # a name too long, a folder on its way that cannot be searched: its row says why
            folder_named = False
        if not folder_named:
            found += _unlisted([path], listed)  # named explicitly: scanned (or reported) whatever its extension
            continue
        below, unlisted = [], []
        # The tree's own folders first, the folders its links lead to after: a folder reached both ways is named by
        # its real path, whichever name sorts first
        tops = [path]
        while tops:
            for folder, folders, files in os.walk(tops.pop(0), onerror=unlisted.append):  # links not entered
                real = os.path.realpath(folder)
                if real in seen:  # reached again through a link (or a link loop): its files are listed once
                    folders.clear()
                    continue
                seen.add(real)
                folders[:] = sorted(name for name in folders if not name.startswith("."))  # a walk order of our own
                tops += [Path(folder, name) for name in folders if os.path.islink(os.path.join(folder, name))]
                below += [Path(folder, name) for name in files
                          if not name.startswith(".") and Path(name).suffix.lower() in IMAGE_EXTENSIONS]
        # A folder that cannot be listed gets a row that says so, rather than its files left out unnoticed (one row,
        # however many links or arguments lead to it).
        for error in unlisted:
            real = os.path.realpath(error.filename)
            if real not in seen:
                seen.add(real)
                below.append(Path(error.filename))
        found += _unlisted(sorted(below), listed)
    return found


def _unlisted(paths: list[Path], listed: set[tuple[str, str]]) -> list[Path]:
    """The files of `paths` not in `listed` (by real folder and name), which they are added to."""
    kept = []
    for path in paths:
        key = (os.path.realpath(path.parent), path.name)
        if key not in listed:
            listed.add(key)
            kept.append(path)
    return kept
