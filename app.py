"""Gradio demo of a PiN-CLIP AI-generated image detector (also the Space's `app_file`).

    python app.py [--model PATH_OR_HUB_ID] [--port N]

Tabs: one image → real/fake probabilities, the decision at the model's threshold and a robustness preview
(JPEG / blur re-scoring); a batch of files → a table and a CSV; the model: training data and per-generator
results from the model folder. Uploads are decoded by `image_io.load_rgb_image`, never by Gradio, so the bytes
the user sent are the bytes that are scored, and a bad file becomes a message naming the file, not a crash.
"""

from __future__ import annotations

import argparse
import collections
import csv
import json
import logging
import math
import os
import re
import shutil
import tempfile
from pathlib import Path

import gradio as gr
import yaml
from gradio import processing_utils
from PIL import Image

from corruptions import degrade
from image_io import ImageLoadError, load_rgb_image
from inference import (
    DEFAULT_MODEL_DIR, FAKE, NOTED_PADDING, TRAIN_COMMAND, Detector, display_name, p_fake_text, padding_text,
)

APP_DIR = Path(__file__).resolve().parent
ASSETS_DIR = APP_DIR / "assets"
# A Space carries its model in `model/`; a checkout has the default training run's output.
MODEL_CANDIDATES = (APP_DIR / "model", APP_DIR / DEFAULT_MODEL_DIR)
MAX_UPLOAD = "20mb"
PREVIEW_SIZE = 512  # previews are shown downscaled; scoring always uses the full image
NO_JPEG = 100  # the JPEG slider's "off" position
# /predict requests served at once. Measured on 2 cores (README, "Load benchmark"; bench/bench_app_concurrency.py):
# on a busy machine 8 concurrent single-image passes beat one at a time by ~3x and pooled batches by ~2x; on an idle
# one all three ways are within ~5 %. They cost little memory.
PREDICT_CONCURRENCY = 8
# Robustness previews served at once: each blurs and re-encodes the whole upload, which for an 81-Mpx PNG of a few
# hundred KB (under the upload limits) a review measured at ~1.2 GB and ~5 s, so eight at once could take a Space's
# memory.
PREVIEW_CONCURRENCY = 2
CSV_FOLDERS_KEPT = 16  # batch CSVs kept on disk (Gradio serves its own copies)
BATCH_COLUMNS = ["file", "p_fake", "label", "error", "padding"]  # predict.py's, the path as the upload's name
# Uploads and previews in Gradio's cache: every hour, files older than an hour go (a Space runs for weeks).
CACHE_CLEANUP = (3600, 3600)
# The column titles of reporting.py's results tables (reporting does not travel to the Space).
METRIC_COLUMNS = (("acc", "Acc"), ("r_acc", "R.Acc"), ("f_acc", "F.Acc"), ("ap", "AP"), ("auc", "AUC"))
logger = logging.getLogger("pinclip.app")


def _save_pil_to_cache_atomically(img: Image.Image, cache_dir: str, name: str = "image", format: str = "webp") -> str:
    """Gradio's `save_pil_to_cache`, but writing under a temporary name and renaming into place.

    Gradio 6 names a cached image by the hash of its bytes and rewrites the file on every call with
    `Path.write_bytes` (truncate, then write). Two requests that return the same image (8 clients cycling through
    the example images do) then race: one client downloads its preview while the other request has just truncated
    the file, and gets an empty body (`bench/bench_app_load.py` failed 1 client in 8 in half of its runs). Gradio
    already writes cached *files* this way; a rename is atomic, so a reader sees the old or the new complete file.
    """
    data = processing_utils.encode_pil_to_bytes(img, format)
    folder = Path(cache_dir) / processing_utils.hash_bytes(data)
    folder.mkdir(exist_ok=True, parents=True)
    target = (folder / f"{name}.{format}").resolve()
    with tempfile.NamedTemporaryFile(dir=folder, prefix=f".{name}-", delete=False) as temporary:
        temporary.write(data)
    os.replace(temporary.name, target)
    return str(target)


processing_utils.save_pil_to_cache = _save_pil_to_cache_atomically


def spreadsheet_safe(cell: str) -> str:
    """A CSV cell that a spreadsheet shows as text: an uploaded file named `=HYPERLINK(...).png` would otherwise be
    run as a formula when the downloaded CSV is opened (a quote in front is the usual escape)."""
    return "'" + cell if cell[:1] in ("=", "+", "-", "@", "\t", "\r") else cell


def upload_names(paths: list[str]) -> list[str]:
    """The uploads' file names (never the server's folders), numbered where several share one: `a.png (1 of 2)`."""
    names = [Path(path).name for path in paths]
    counts, seen = collections.Counter(names), collections.Counter()
    numbered = []
    for name in names:
        seen[name] += 1
        numbered.append(f"{name} ({seen[name]} of {counts[name]})" if counts[name] > 1 else name)
    return numbered


def p_fake_shown(p_fake: float, threshold: float) -> str:
    """p(fake) to 3 decimals, or to 9 significant digits (`p_fake_text`) where 3 decimals would put it on the other
    side of the threshold: 0.4996 must not read 0.500 beside "real"."""
    short = f"{p_fake:.3f}"
    return short if (float(short) >= threshold) == (p_fake >= threshold) else p_fake_text(p_fake)


def decision_words(label: str) -> str:
    """A decision as the demo states it."""
    return "AI-generated (fake)" if label == FAKE else "real"


def code_span(text: str) -> str:
    """`text` as Markdown inline code, whatever backticks it holds (an uploaded file's name)."""
    longest = max((len(run) for run in re.findall("`+", text)), default=0)
    fence = "`" * (longest + 1)  # a longer run of backticks than the text holds; spaces keep edge ones apart
    return f"{fence} {text} {fence}" if longest else f"{fence}{text}{fence}"


def decision_label(**kwargs) -> gr.Label:
    """A `gr.Label` headed by the detector's decision at its threshold, above the probabilities. Gradio heads a Label
    with the likelier class, which contradicts the decision whenever the threshold is not 0.5: this one takes
    `(decision, {class: probability})` and shows (and answers API clients) that decision. Its `postprocess` is
    replaced on the instance: a subclass of a Gradio component makes Gradio write a `.pyi` file beside app.py."""
    label = gr.Label(**kwargs)
    probabilities_only = label.postprocess

    def postprocess(value):
        if not isinstance(value, tuple):
            return probabilities_only(value)
        decision, probabilities = value
        data = probabilities_only(probabilities)
        data.label = decision
        return data

    label.postprocess = postprocess
    return label


def resolve_model(model: str | os.PathLike | None) -> str | None:
    """The model to load: the one asked for, else the first default folder that exists, else None."""
    if model is not None:  # "" is a path (refused when loaded), not "no model named"
        return str(model)
    return next((str(path) for path in MODEL_CANDIDATES if path.is_dir()), None)


def load_detector(model: str | None, trust_remote_code: bool = False,
                  strict: bool = False) -> tuple[Detector | None, str]:
    """(detector, status line) — (None, what to do) when there is no model or it cannot be loaded; with `strict`
    (a model named on the command line) a model that cannot be loaded raises `ValueError` with the reason."""
    if model is None:
        return None, f"No model yet: create the default one with `{TRAIN_COMMAND}`, then restart the app."
    try:
        return Detector.load(model, trust_remote_code=trust_remote_code), ""
    except Exception as error:  # noqa: BLE001 - the app must start and say so; the details go to the server log only
        if strict:  # the operator's own path and the reason, on the operator's terminal
            reason = str(error).removeprefix(f"{model}: ")
            hint = " (add --trust_remote_code if you trust its code)" if "trust_remote_code" in reason else ""
            raise ValueError(f"cannot load the model {model}: {reason}{hint}") from error
        logger.exception("cannot load model %s", model)
        if "trust_remote_code" in str(error):
            return None, (
                f"The model `{display_name(model)}` ships its own code: restart the app with `--trust_remote_code` "
                "if you trust it (see the server log)."
            )
        return None, (
            f"Could not load the model `{display_name(model)}` (see the server log). Train the default one with "
            f"`{TRAIN_COMMAND}` or pass `--model` a saved PiN-CLIP folder or Hub id."
        )


# ------------------------------------------------------------------------------------------------ model panel
def _model_file(model: str, name: str) -> Path | None:
    """A file of the model folder, or of a Hub model already in the local cache (never a download offline)."""
    if Path(model).is_dir():
        path = Path(model) / name
        return path if path.is_file() else None
    try:
        from huggingface_hub import hf_hub_download

        return Path(hf_hub_download(model, name))
    except Exception:  # noqa: BLE001 - the panel is optional: a missing card or metrics file just hides a part
        return None


def _read_text(path: Path) -> str | None:
    """A model file's text, or None (logged) when it cannot be read as UTF-8: the panel then leaves that part out."""
    try:
        return path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        logger.warning("model panel: cannot read %s (%s)", path.name, error)
        return None


def read_card(model: str) -> tuple[dict, str]:
    """The model card's YAML front matter and body (both empty when there is no card or it cannot be read)."""
    path = _model_file(model, "README.md")
    text = None if path is None else _read_text(path)
    if text is None:
        return {}, ""
    parts = text.split("---", 2)
    if not text.startswith("---") or len(parts) < 3:  # no front matter, or one that is never closed
        return {}, text.strip()
    _, front, body = parts
    try:
        card = yaml.safe_load(front)
    except yaml.YAMLError:
        card = None
    return (card if isinstance(card, dict) else {}), body.strip()


def read_metrics(model: str) -> dict:
    """The model's `metrics.json` (empty when there is none or it is not a JSON object, logged)."""
    path = _model_file(model, "metrics.json")
    text = None if path is None else _read_text(path)
    if text is None:
        return {}
    try:
        metrics = json.loads(text)
    except ValueError as error:
        logger.warning("model panel: %s is not JSON (%s)", path.name, error)
        return {}
    if not isinstance(metrics, dict):
        logger.warning("model panel: %s is not a metrics file of train.py (a %s)", path.name, type(metrics).__name__)
        return {}
    return metrics


def metrics_rows(metrics: dict) -> list[list]:
    """Per-generator test results from `metrics.json` (one row per subset, then the mean); none when they are not
    in the layout `train.py` writes (logged)."""
    try:
        subsets = dict(metrics.get("subsets", {}))
        if "mean" in metrics:
            subsets["mean"] = metrics["mean"]
        return [
            # a metric is None where it is undefined (AP or real accuracy on a subset with no reals): an empty cell
            [name, values.get("n", "")] + [None if values.get(key) is None else round(float(values[key]), 4)
                                            for key, _ in METRIC_COLUMNS]
            for name, values in subsets.items()
        ]
    except (ValueError, TypeError, AttributeError) as error:  # not {"subsets": {name: {metric: number}}}
        logger.warning("model panel: metrics.json is not a metrics file of train.py (%s)", error)
        return []


def no_results_message(model: str) -> str:
    """Why the Model tab shows no per-generator table: the model has no `metrics.json`, or one the panel cannot read."""
    if _model_file(model, "metrics.json") is None:
        return "No `metrics.json` beside this model: no per-generator results to show."
    return ("The `metrics.json` beside this model holds no per-generator results in the layout `train.py` writes "
            "(the app's log says what it found).")


def card_model_name(card: dict) -> str | None:
    """The model's name in its card (`model-index`), which `train.py` writes: a Space's folder is always `model/`."""
    index = card.get("model-index")
    entry = index[0] if isinstance(index, list) and index else None
    name = entry.get("name") if isinstance(entry, dict) else None
    return str(name) if name else None


def training_data_name(metrics: dict, card: dict) -> str:
    """What the model was trained on: as `train.py` records it in `metrics.json` (a Hub dataset id, MiniGenImage or a
    local folder's name), else the card's `datasets` (which lists Hub datasets only)."""
    training = metrics.get("training")
    if isinstance(training, dict) and training.get("data"):
        return str(training["data"])
    datasets = card.get("datasets") or []
    recorded = ", ".join(map(str, datasets if isinstance(datasets, list) else [datasets]))
    return recorded or "not recorded (neither metrics.json nor a model card names it)"


def model_overview(detector: Detector, card: dict, metrics: dict) -> str:
    """Markdown facts about the loaded model: base CLIP, training data, noise, input size, threshold."""
    config = detector.model.config
    pinclip = hasattr(config, "noise_mode")
    bases = card.get("base_model") or getattr(config, "clip_name_or_path", None) or "unknown"
    base = ", ".join(display_name(str(name)) for name in (bases if isinstance(bases, list) else [bases]))
    # as the Detect tab says it: from the processor the app runs, not from a PiN-CLIP field another model lacks
    prepared = "centre-cropped, not resized" if detector.preprocessing.centre_crop else "as its image processor prepares it"
    lines = [
        f"**Model** `{card_model_name(card) or detector.name}` · base {'CLIP' if pinclip else 'model'} `{base}`",
        f"**Training data** {training_data_name(metrics, card)}",
    ]
    if pinclip:  # PiN-CLIP's own settings; another classifier has none to show
        lines.append(f"**Noise** `{config.noise_mode}` (injection `{config.noise_injection}`, scale `{config.noise_scale}`)")
    lines += [
        f"**Input** {getattr(config, 'image_size', '?')} px, {prepared}",
        f"**Decision** fake when p(fake) ≥ {detector.threshold:.9g}",
    ]
    return "  \n".join(lines)


# ------------------------------------------------------------------------------------------------- handlers
class Handlers:
    """The demo's event functions around one (possibly missing) detector."""

    def __init__(self, detector: Detector | None, problem: str):
        self.detector = detector
        self.problem = problem
        self.csv_folders: list[str] = []  # the batch CSVs' folders, oldest first
        # all of them in one folder removed with the handlers, at the latest when the app exits (each held the
        # uploads' names and scores, and stayed in the temporary folder for good)
        self.csv_root = tempfile.TemporaryDirectory(prefix="pinclip-batch-")
        self.uploads: dict[str, str | None] = {}  # each open page's latest upload, by Gradio's session hash

    def _require_model(self) -> Detector:
        if self.detector is None:
            raise gr.Error(self.problem)
        return self.detector

    @staticmethod
    def open_upload(path: str) -> tuple[str, Image.Image]:
        """(file name, RGB image) of an uploaded file; a gr.Error naming only the file when it is not an image."""
        name = Path(path).name
        try:
            # Bytes, not the path: error messages then cannot carry the server's upload folder.
            return name, load_rgb_image(Path(path).read_bytes())
        except ImageLoadError as error:
            raise gr.Error(f"{name}: {str(error).removeprefix('image: ')}") from None

    @staticmethod
    def preview(image: Image.Image) -> Image.Image:
        """A display copy: large images shrunk, small ones enlarged with visible pixels (nearest neighbour)."""
        scale = PREVIEW_SIZE // 2 // max(image.size)
        if scale > 1:  # a 64 px crop would otherwise be a speck on the page
            return image.resize((image.width * scale, image.height * scale), Image.Resampling.NEAREST)
        thumbnail = image.copy()
        thumbnail.thumbnail((PREVIEW_SIZE, PREVIEW_SIZE))
        return thumbnail

    @staticmethod
    def score(detector: Detector, name: str, images: list[Image.Image]) -> list[dict[str, float]]:
        """`detector.score_images`, its refusals (a diverged model's NaN scores) as a gr.Error naming the file."""
        try:
            return detector.score_images(images)
        except ValueError as error:
            raise gr.Error(f"{name}: {error}") from None

    def predict(self, path: str | None) -> tuple[tuple[str, dict[str, float]] | None, str, Image.Image | None]:
        """One uploaded image → ((decision, {label: probability}), decision text, the pixels the model read)."""
        if not path:
            return None, "", None
        detector = self._require_model()
        name, image = self.open_upload(path)
        (probabilities,) = self.score(detector, name, [image])
        p_fake = probabilities[FAKE]
        label = detector.label_of(p_fake)
        view = detector.preprocessing.model_view(image)
        # A crop-only processor reads a window of the upload, not all of it: say so, next to the decision.
        size = f"{view.width}×{view.height} px"
        read = f"its central {size}" if detector.preprocessing.centre_crop else f"it as {size} after its processor"
        padding = detector.preprocessing.padding(image)
        if padding >= NOTED_PADDING:
            # the crop of an image smaller than it is mostly black border: the score says little about the image
            # (rounded down: a 1×1 image is not 100% padding)
            read = (f"it padded with black to {size}, {math.floor(padding * 100)}% of what it reads being padding: "
                    "weak evidence for an image this small")
        decision = (
            f"**Decision: {decision_words(label)}** · {code_span(name)} "
            f"({image.width}×{image.height}; the model reads {read}, shown below): "
            f"p(fake) = {p_fake_shown(p_fake, detector.threshold)}, threshold {detector.threshold:.9g}"
        )
        return (label, probabilities), decision, self.preview(view)

    def note_upload(self, path: str | None, request: gr.Request) -> None:
        """Note the page's latest upload: the first step of the events an upload starts."""
        self.uploads[request.session_hash] = path

    def forget_page(self, request: gr.Request) -> None:
        """Drop a closed page's upload (a Space serves many pages over weeks)."""
        self.uploads.pop(request.session_hash, None)

    def is_replaced(self, path: str | None, request: gr.Request | None) -> bool:
        """Whether the page's latest upload is another than `path` (never for calls without a page)."""
        return self.uploads.get(request.session_hash if request is not None else None, path) != path

    def robustness(self, path: str | None, jpeg_quality: int, blur_sigma: float,
                   request: gr.Request | None = None) -> tuple[dict[str, float] | None, str, Image.Image | None]:
        """Re-score the image after blur and JPEG re-compression, next to its original score (nothing to do while
        both sliders rest: the Detect panel already shows that score). A preview that ends after the page's next
        upload changes nothing: it would stand under the new image."""
        if self.is_replaced(path, request):  # queued before the page's next upload: nothing to compute
            return gr.skip(), gr.skip(), gr.skip()
        if not path:
            return None, "", None
        if jpeg_quality >= NO_JPEG and blur_sigma <= 0:
            return None, "Move a slider to re-score the image after JPEG re-compression or blur.", None
        detector = self._require_model()
        name, image = self.open_upload(path)
        try:
            processed = degrade(image, None if jpeg_quality >= NO_JPEG else int(jpeg_quality), float(blur_sigma))
        except ValueError as error:
            raise gr.Error(f"{name}: {error}") from None
        # one at a time: the original scored in a batch of two could differ from the Detect panel's score in the last
        # bit, and so in its decision at a threshold on that bit
        (original,), (changed,) = (self.score(detector, name, [scored]) for scored in (image, processed))
        steps = [f"blur σ={blur_sigma:g}" if blur_sigma > 0 else "", f"JPEG q={int(jpeg_quality)}" if jpeg_quality < NO_JPEG else ""]
        steps_text = " then ".join(step for step in steps if step)
        shown = (p_fake_shown(scores[FAKE], detector.threshold) for scores in (original, changed))
        # named: the panel must never pass off one upload's result as another's
        shift = "{}: p(fake) {} → {} after {}; decision after processing: **{}**".format(
            code_span(name), *shown, steps_text, decision_words(detector.label_of(changed[FAKE])))
        if self.is_replaced(path, request):  # uploaded while this one waited or was scored (a large one takes seconds)
            return gr.skip(), gr.skip(), gr.skip()
        return changed, shift, self.preview(detector.preprocessing.model_view(processed))

    def batch(self, paths: list[str] | None, progress: gr.Progress = gr.Progress()) -> tuple[list[list], str | None]:
        """Several files → table rows (file, p_fake, label, error, padding: as predict.py writes them) and a CSV of
        the same."""
        if not paths:
            gr.Warning("No files to scan: add images first.")
            return [], None
        detector = self._require_model()
        rows = []
        results = progress.tqdm(detector.scan(paths, batch_size=16), total=len(paths), desc="scanning")
        for name, result in zip(upload_names(paths), results):  # the scan keeps the order of `paths`
            # as predict.py writes it: rounder values would tie scores and could read 0.5 beside "real"
            p_fake = None if result.p_fake is None else float(p_fake_text(result.p_fake))
            padding = None if result.padding is None else float(padding_text(result.padding))
            rows.append([name, p_fake, result.label or "", result.error or "", padding])
        # One folder per request, so concurrent users never overwrite each other's download; Gradio serves its
        # own copy of the file, so earlier requests' folders are removed rather than left to pile up.
        self.csv_folders.append(tempfile.mkdtemp(dir=self.csv_root.name))
        for old in self.csv_folders[:-CSV_FOLDERS_KEPT]:
            shutil.rmtree(old, ignore_errors=True)
        del self.csv_folders[:-CSV_FOLDERS_KEPT]
        csv_path = Path(self.csv_folders[-1]) / "pinclip-results.csv"
        with csv_path.open("w", newline="", encoding="utf-8") as handle:
            writer = csv.writer(handle)
            writer.writerow(BATCH_COLUMNS)
            # the padding as shown (rounded down once already: padding_text again took 0.58 to 0.57)
            writer.writerows([spreadsheet_safe(name), p_fake_text(p_fake), label, spreadsheet_safe(error),
                              "" if padding is None else f"{padding:.2f}"] for name, p_fake, label, error, padding in rows)
        return rows, str(csv_path)


# ------------------------------------------------------------------------------------------------------- UI
def example_files() -> list[tuple[str, str]]:
    """(path, caption) of the bundled example images: reals first, then fakes named by generator family."""
    files = sorted(ASSETS_DIR.glob("real_*.png")) + sorted(ASSETS_DIR.glob("fake_*.png"))
    return [(str(path), path.stem.replace("_", " · ", 1)) for path in files]


def build_demo(model_path: str | os.PathLike | None = None, trust_remote_code: bool = False,
               strict: bool = False) -> gr.Blocks:
    """The whole demo for one model (None: `model/` beside the app, as in the Space, else the default training
    run's folder, whichever exists first). `trust_remote_code` as in `inference.load_classifier`.

    A model that cannot be loaded gives a demo that says why, or with `strict` a `ValueError` with the same words.
    """
    model = resolve_model(model_path)
    detector, problem = load_detector(model, trust_remote_code, strict=strict)
    if strict and detector is None:  # no model at all
        raise ValueError(problem)
    handlers = Handlers(detector, problem)
    gr.set_static_paths([ASSETS_DIR])  # examples load from the app folder whatever the working directory

    with gr.Blocks(title="PiN-CLIP AI-generated image detector", delete_cache=CACHE_CLEANUP) as demo:
        gr.Markdown(
            "# PiN-CLIP: is this image AI-generated?\n"
            "A CLIP detector trained with positive-incentive noise. Scores are probabilities from a research "
            "model: evidence to weigh, not proof."
        )
        if problem:
            gr.Markdown(f"⚠️ {problem}", elem_id="model-status")

        with gr.Tab("Detect"):
            with gr.Row():
                with gr.Column():
                    # No file_types: Gradio would refuse by extension (.tga, .mpo, no extension) what
                    # load_rgb_image opens, and answer a non-image without naming it.
                    upload = gr.File(label="Image", type="filepath", elem_id="upload")
                    examples = example_files()
                    if examples:
                        gr.Examples(
                            examples=[[path] for path, _ in examples], example_labels=[caption for _, caption in examples],
                            inputs=[upload], label="MiniGenImage examples",
                        )
                with gr.Column():
                    label = decision_label(num_top_classes=2, label="Decision and probabilities", elem_id="prediction")
                    decision = gr.Markdown(label="Decision", elem_id="decision")
                    # PNG, not Gradio's default WebP: a lossy preview would add artefacts the model never saw.
                    seen = gr.Image(label="What the model reads (RGB, EXIF-rotated, first frame, its crop)",
                                    interactive=False, height=260, format="png")
            with gr.Accordion("Robustness preview: does processing move the score?", open=True):
                with gr.Row():
                    jpeg = gr.Slider(30, NO_JPEG, value=NO_JPEG, step=5, label="JPEG quality (100 = no re-compression)")
                    blur = gr.Slider(0, 3, value=0, step=0.25, label="Gaussian blur σ (px)", elem_id="blur")
                with gr.Row():
                    # no heading (Gradio's would name the likelier class): the decision is in the text beside it. Not
                    # a decision_label: a preview that changes nothing (gr.skip) makes Gradio rebuild its outputs
                    # from their constructor, without that label's own postprocess
                    robust_label = gr.Label(num_top_classes=2, label="Probabilities after processing",
                                            show_heading=False)
                    with gr.Column():
                        robust_shift = gr.Markdown(elem_id="robust-shift")
                        robust_image = gr.Image(label="What the model reads after processing", interactive=False,
                                                height=200, format="png")

        with gr.Tab("Batch"):
            batch_files = gr.File(label="Images", file_count="multiple", type="filepath")
            batch_button = gr.Button("Scan", variant="primary")
            batch_table = gr.Dataframe(headers=BATCH_COLUMNS, label="Results", interactive=False)
            batch_csv = gr.File(label="Download CSV", interactive=False)

        with gr.Tab("Model"):
            if detector is None:
                gr.Markdown(problem)
            else:
                card, card_body = read_card(model)
                metrics = read_metrics(model)
                gr.Markdown(model_overview(detector, card, metrics))
                rows = metrics_rows(metrics)
                if rows:
                    gr.Markdown("### Test results per generator (from `metrics.json`)")
                    gr.Dataframe(value=rows, headers=["generator", "n"] + [title for _, title in METRIC_COLUMNS], interactive=False)
                else:
                    gr.Markdown(no_results_message(model))
                if card_body:
                    with gr.Accordion("Model card", open=False):
                        gr.Markdown(card_body)

        robust_inputs, robust_outputs = [upload, jpeg, blur], [robust_label, robust_shift, robust_image]
        scoring = dict(concurrency_limit=PREDICT_CONCURRENCY, concurrency_id="score")
        previewing = dict(concurrency_limit=PREVIEW_CONCURRENCY, concurrency_id="preview")
        # `input` fires for drags, clicks, arrow keys and typed values alike; only the latest pending one runs.
        gr.on([jpeg.input, blur.input], handlers.robustness, robust_inputs, robust_outputs, api_visibility="private",
              trigger_mode="always_last", **previewing)
        # Each upload is noted first (outside the queue, before its prediction and preview are sent): a preview of
        # the previous upload, still running or queued, then ends without showing anything (`robustness`). No
        # `cancels`: the browser sent them after the new upload's own events, which they then cancelled.
        noted = upload.change(handlers.note_upload, [upload], None, queue=False,
                              api_visibility="private")  # an API client has no page to close: its entry would stay
        detected = noted.then(handlers.predict, [upload], [label, decision, seen], api_name="predict", **scoring)
        # always_last: the new upload's preview waits for the previous one still running, instead of being skipped
        detected.success(handlers.robustness, robust_inputs, robust_outputs, api_visibility="private",
                         trigger_mode="always_last", **previewing)
        demo.unload(handlers.forget_page)
        batch_button.click(handlers.batch, [batch_files], [batch_table, batch_csv], api_name="batch")
    return demo


def launch_kwargs(port: int | None) -> dict:
    """Settings for `Blocks.launch`: Gradio reads GRADIO_SERVER_NAME / GRADIO_SERVER_PORT itself; `--port` wins."""
    return dict(server_port=port, max_file_size=MAX_UPLOAD, theme=gr.themes.Soft())


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", help=f"model folder or Hub id (default: model/ beside app.py as in the Space, "
                        f"else {DEFAULT_MODEL_DIR}, whichever exists)")
    parser.add_argument("--trust_remote_code", action="store_true",
                        help="load the model with the code it ships (its folder or Hub repository): a classifier "
                        "with its own code needs it; a PiN-CLIP loads with this repository's class without it")
    parser.add_argument("--port", type=int, help="server port (default: $GRADIO_SERVER_PORT or 7860)")
    args = parser.parse_args(argv)
    if args.model == "":  # `--model "$MODEL"` with MODEL unset would otherwise start on the default model
        parser.error("--model is empty: name a model folder or Hub id, or leave --model out for the default")
    logging.basicConfig(level=logging.INFO)
    try:
        # A model named on the command line must load: a typo should not start a demo that only shows an error.
        demo = build_demo(args.model, args.trust_remote_code, strict=args.model is not None)
    except ValueError as error:
        parser.exit(2, f"app.py: error: {error}\n")
    try:
        demo.launch(**launch_kwargs(args.port))
    except OSError as error:  # Gradio's advice names launch()'s parameters, not this script's flags
        reason = str(error).split(". ")[0]
        parser.exit(2, f"app.py: error: cannot start the server: {reason} (a port in use: choose another with --port "
                       "or GRADIO_SERVER_PORT; or a GRADIO_SERVER_NAME that is no address of this machine)\n")


if __name__ == "__main__":
    main()
