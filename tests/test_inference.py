"""inference.Detector's batched path: the crop-only split of the image processor gives the processor's own floats."""

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from transformers import AutoImageProcessor

from inference import CentreCrop, Detector


@pytest.fixture(scope="module")
def processor(tiny_model_dir: Path):
    return AutoImageProcessor.from_pretrained(tiny_model_dir, backend="pil")


def random_image(width: int, height: int, seed: int) -> Image.Image:
    return Image.fromarray(np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8))


def test_centre_crop_gives_the_processors_floats_bit_for_bit(processor) -> None:
    split = CentreCrop.of(processor)
    assert split is not None and (split.height, split.width) == (processor.crop_size["height"], processor.crop_size["width"])
    side = split.height
    # Larger, smaller (padded), odd offsets both ways, one side larger and the other smaller, exactly the crop.
    sizes = [(side, side), (side + 1, side + 3), (side - 1, side - 2), (2 * side + 5, 7), (3, 2 * side + 1), (1, 1),
             (513, 384)]
    for seed, (width, height) in enumerate(sizes):
        image = random_image(width, height, seed)
        expected = processor(images=image, return_tensors="pt")["pixel_values"]
        crop = split.crop(image)
        assert crop.dtype == torch.uint8 and crop.shape == (3, split.height, split.width)
        assert torch.equal(split.normalize(crop[None]), expected), (width, height)


def test_centre_crop_is_refused_for_processors_that_do_more(processor) -> None:
    assert CentreCrop.of(processor.__class__(**{**processor.to_dict(), "do_resize": True})) is None
    assert CentreCrop.of(processor.__class__(**{**processor.to_dict(), "do_normalize": False})) is None
    assert CentreCrop.of(object()) is None


@pytest.mark.parametrize("workers", [0, 2])
def test_scan_scores_equal_single_image_scores(tiny_model_dir: Path, tmp_path: Path, workers: int) -> None:
    detector = Detector.load(tiny_model_dir, device="cpu")
    assert detector.centre_crop is not None
    paths = []
    for index, (width, height) in enumerate([(64, 48), (20, 30), (300, 200), (33, 33), (90, 17)]):
        paths.append(tmp_path / f"{index}.{'png' if index % 2 else 'jpg'}")
        random_image(width, height, index).save(paths[-1])
    results = list(detector.scan(paths, batch_size=2, num_workers=workers))
    assert [result.path for result in results] == [str(path) for path in paths]
    for path, result in zip(paths, results):
        assert result.error is None
        assert result.p_fake == pytest.approx(detector.p_fake(Image.open(path).convert("RGB")), abs=1e-6)


def test_scan_runs_a_processor_that_resizes_whole(tiny_model_dir: Path, tmp_path: Path) -> None:
    detector = Detector.load(tiny_model_dir, device="cpu")
    resizing = detector.processor.__class__(**{**detector.processor.to_dict(), "do_resize": True})
    detector = Detector(detector.model, resizing)
    assert detector.centre_crop is None
    path = tmp_path / "wide.png"
    random_image(120, 50, 0).save(path)
    (result,) = detector.scan([path], num_workers=0)
    assert result.p_fake == pytest.approx(detector.p_fake(Image.open(path).convert("RGB")), abs=1e-6)
    # Resizing changes what the model sees: the crop-only path would have scored different pixels.
    original = Detector.load(tiny_model_dir, device="cpu")
    assert result.p_fake != pytest.approx(original.p_fake(Image.open(path).convert("RGB")), abs=1e-6)
