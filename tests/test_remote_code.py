"""A saved PiN-CLIP loads as remote code in a fresh process, far from this repository, and serves a pipeline."""

import io
import json
import os
import subprocess
import sys

import numpy as np
import pytest
import torch
from PIL import Image
from transformers import pipeline

from image_io import load_rgb_image
from modeling_pinclip import PinClipForImageClassification

pytestmark = pytest.mark.filterwarnings("ignore")

# Runs in a clean process: this repository is not importable and peft is blocked, so only the saved folder
# (its config, weights and copied code files) can make this work.
RELOAD_SCRIPT = r"""
import json, sys
sys.modules["peft"] = None  # a merged model must not need peft
import torch
from transformers import AutoModel, AutoModelForImageClassification, pipeline
from PIL import Image
folder, pixels_path, image_path = sys.argv[1:4]
pixels = torch.load(pixels_path)
for auto in (AutoModelForImageClassification, AutoModel):
    model = auto.from_pretrained(folder, trust_remote_code=True).eval()
    with torch.no_grad():
        logits = model(pixels).logits
    print(json.dumps({"class": type(model).__name__, "logits": logits.tolist()}))
detector = pipeline("image-classification", model=folder, trust_remote_code=True)
print(json.dumps({"pipeline": detector(Image.open(image_path))}))
# the torchvision backend, which transformers picks whenever torchvision is installed, asked for outright
from transformers import AutoImageProcessor
asked = AutoImageProcessor.from_pretrained(folder, trust_remote_code=True, backend="torchvision")
print(json.dumps({"processors": [type(detector.image_processor).__name__, type(asked).__name__]}))
"""


def clean_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH",)}
    env.update(HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1")
    return env


def test_auto_classes_and_pipeline_reload_in_fresh_process(tiny_clip_dir, tmp_path):
    model = PinClipForImageClassification.from_clip(str(tiny_clip_dir), lora_r=4).eval()
    with torch.no_grad():
        for name, param in model.named_parameters():
            if "lora_B" in name:
                param.normal_(std=0.2)
    folder = tmp_path / "saved"
    model.save_pretrained(folder)

    image = Image.fromarray(np.random.default_rng(0).integers(0, 256, (48, 40, 3), dtype=np.uint8))
    image.save(tmp_path / "image.png")
    pixels = torch.randn(3, 3, 32, 32, generator=torch.Generator().manual_seed(1))
    torch.save(pixels, tmp_path / "pixels.pt")
    with torch.no_grad():
        expected = model(pixels).logits
        expected_p_fake = model(**model.image_processor()(image, return_tensors="pt")).logits.softmax(-1)[0, 1]

    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    result = subprocess.run(
        [sys.executable, "-c", RELOAD_SCRIPT, str(folder), str(tmp_path / "pixels.pt"), str(tmp_path / "image.png")],
        cwd=elsewhere, env=clean_env(), capture_output=True, text=True, timeout=240,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    lines = [json.loads(line) for line in result.stdout.splitlines() if line.startswith("{")]
    for line in lines[:2]:
        assert line["class"] == "PinClipForImageClassification"
        torch.testing.assert_close(torch.tensor(line["logits"]), expected, atol=1e-5, rtol=0)
    scores = {entry["label"]: entry["score"] for entry in lines[2]["pipeline"]}
    assert set(scores) == {"real", "fake"}
    assert sum(scores.values()) == pytest.approx(1.0, abs=1e-6)
    assert scores["fake"] == pytest.approx(float(expected_p_fake), abs=1e-5)
    # always the PIL processor the model was trained with (the torchvision one pads odd margins on the other side)
    assert lines[3]["processors"] == ["PinClipImageProcessor", "PinClipImageProcessor"]


def test_saved_processor_records_forensic_preprocessing(tiny_model_dir):
    config = json.loads((tiny_model_dir / "preprocessor_config.json").read_text())
    assert config["do_resize"] is False and config["do_center_crop"] is True
    assert config["crop_size"] == {"height": 32, "width": 32}
    assert config["image_mean"] == pytest.approx([0.48145466, 0.4578275, 0.40821073])
    assert config["image_std"] == pytest.approx([0.26862954, 0.26130258, 0.27577711])


def test_processor_crops_large_and_pads_small_images_without_resizing(tiny_model_dir):
    model = PinClipForImageClassification.from_pretrained(tiny_model_dir)
    processor = model.image_processor()
    big = np.random.default_rng(0).integers(0, 256, (64, 80, 3), dtype=np.uint8)
    pixels = processor(Image.fromarray(big), return_tensors="pt")["pixel_values"][0]
    mean, std = np.array(processor.image_mean), np.array(processor.image_std)
    centre = big[16:48, 24:56] / 255.0
    np.testing.assert_allclose(pixels.permute(1, 2, 0).numpy(), (centre - mean) / std, atol=1e-5)

    small = processor(Image.fromarray(big[:8, :8]), return_tensors="pt")["pixel_values"][0]
    assert small.shape == (3, 32, 32)
    np.testing.assert_allclose(small[:, 12:20, 12:20].permute(1, 2, 0).numpy(), (big[:8, :8] / 255.0 - mean) / std, atol=1e-5)
    np.testing.assert_allclose(small[:, 0, 0].numpy(), -mean / std, atol=1e-5)  # zero padding


def encoded(image: Image.Image, fmt: str = "PNG", **save_args) -> Image.Image:
    buffer = io.BytesIO()
    image.save(buffer, fmt, **save_args)
    buffer.seek(0)
    return Image.open(buffer)


def odd_images() -> dict[str, Image.Image]:
    rng = np.random.default_rng(0)
    rgb = Image.fromarray(rng.integers(0, 256, (40, 50, 3), dtype=np.uint8))
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90° on display
    gif = io.BytesIO()
    rgb.save(gif, "GIF", save_all=True, append_images=[rgb.rotate(90)])
    gif.seek(0)
    return {
        "grayscale": encoded(rgb.convert("L")),
        "rgba": encoded(rgb.convert("RGBA")),
        "palette": encoded(rgb.convert("P")),
        "cmyk": encoded(rgb.convert("CMYK"), "JPEG"),
        "16-bit": encoded(Image.fromarray(rng.integers(0, 65535, (40, 50), dtype=np.uint16))),
        "exif-rotated": encoded(rgb, "JPEG", exif=exif),
        "animated-gif": Image.open(gif),
        "8x8": encoded(rgb.resize((8, 8))),
    }


@pytest.fixture(scope="module")
def detector(tiny_model_dir):
    return pipeline("image-classification", model=str(tiny_model_dir), trust_remote_code=True)


@pytest.mark.parametrize("kind", list(odd_images()))
def test_pipeline_scores_odd_images(detector, kind):
    scores = {entry["label"]: entry["score"] for entry in detector(odd_images()[kind])}
    assert set(scores) == {"real", "fake"}
    assert sum(scores.values()) == pytest.approx(1.0, abs=1e-6)


def transparent_files() -> dict[str, tuple[str, bytes]]:
    """(suffix, file bytes) of images whose transparency CLIP's processor would composite on white; most pixels
    carry it."""
    grey = np.random.default_rng(1).integers(0, 256, (40, 50), dtype=np.uint8)
    grey[5:35, 5:45] = 7
    palette = Image.fromarray(np.stack([grey] * 3, axis=-1)).quantize(256)
    key = int(np.bincount(np.asarray(palette).ravel()).argmax())

    def saved(image: Image.Image, fmt: str = "PNG", **save_args) -> bytes:
        buffer = io.BytesIO()
        image.save(buffer, fmt, **save_args)
        return buffer.getvalue()

    return {
        "grey, transparent colour": (".png", saved(Image.fromarray(grey), transparency=7)),
        "palette, transparent index": (".png", saved(palette, transparency=key)),
        "palette GIF, transparent index": (".gif", saved(palette, "GIF", transparency=key)),
        "rgba": (".png", saved(Image.fromarray(np.stack([grey] * 3 + [grey // 2], axis=-1)))),
    }


@pytest.mark.parametrize("kind", list(transparent_files()))
def test_pipeline_drops_transparency_as_training_and_the_scanner_do(detector, tiny_model_dir, tmp_path, kind):
    """pipeline(path) reads the pixels the scan (predict.py, the demo, training's evaluation) reads: transformers'
    `load_image` keeps a palette image's transparent colour, which CLIP's processor would paint white."""
    from inference import Detector

    suffix, data = transparent_files()[kind]
    path = tmp_path / f"image{suffix}"
    path.write_bytes(data)
    scanner = Detector.load(str(tiny_model_dir))
    scanned = next(scanner.scan([str(path)])).p_fake
    on_white = Image.alpha_composite(Image.new("RGBA", (50, 40), "white"), Image.open(path).convert("RGBA"))
    assert scanner.p_fake(on_white.convert("RGB")) != pytest.approx(scanned, abs=1e-5)  # the case tells them apart
    piped = {entry["label"]: entry["score"] for entry in detector(str(path))}["fake"]
    assert piped == pytest.approx(scanned, abs=1e-5)
    processed = detector.image_processor(Image.open(path), return_tensors="pt")["pixel_values"]
    torch.testing.assert_close(processed, scanner.preprocessing([load_rgb_image(path)]))


def test_an_rgba_array_or_tensor_reads_as_the_same_image_does(detector, tiny_model_dir):
    """An RGBA array was composited on white (CLIP's handling) where the same image as PIL lost its alpha."""
    from inference import Detector

    rgba = np.random.default_rng(2).integers(0, 256, (40, 50, 4), dtype=np.uint8)
    rgba[20:, :, 3] = 0  # the bottom half transparent
    processor = detector.image_processor
    as_pil = processor(Image.fromarray(rgba), return_tensors="pt")["pixel_values"]
    for array in (rgba, rgba.transpose(2, 0, 1), torch.from_numpy(rgba.transpose(2, 0, 1).copy())):
        torch.testing.assert_close(processor(array, return_tensors="pt")["pixel_values"], as_pil)
    scanner = Detector.load(str(tiny_model_dir))
    piped = {entry["label"]: entry["score"] for entry in detector(rgba)}["fake"]
    assert piped == pytest.approx(scanner.p_fake(Image.fromarray(rgba[..., :3])), abs=1e-5)


def test_pipeline_refuses_image_over_pixel_limit(detector, tmp_path, monkeypatch):
    path = tmp_path / "bomb.png"
    Image.new("RGB", (200, 200)).save(path)
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 10_000)  # 40k px is over twice the limit: PIL refuses
    with pytest.raises(Image.DecompressionBombError, match="decompression bomb"):
        detector(str(path))
