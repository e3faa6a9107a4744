"""preprocessing.CentreCrop: the crop-only split of the image processor gives the processor's own floats, and the
training/evaluation Collator uses it only where it applies."""

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from transformers import AutoImageProcessor

from detection_data import Collator
from preprocessing import CentreCrop, Preprocessing


@pytest.fixture(scope="module")
def processor(tiny_model_dir: Path):
    return AutoImageProcessor.from_pretrained(tiny_model_dir, backend="pil")


def random_image(width: int, height: int, seed: int) -> Image.Image:
    return Image.fromarray(np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8))


def test_centre_crop_gives_the_processors_floats_bit_for_bit(processor) -> None:
    split = CentreCrop.of(processor)
    assert split is not None
    assert (split.height, split.width) == (processor.crop_size["height"], processor.crop_size["width"])
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


def test_centre_crop_takes_a_scalar_mean_and_std_like_the_processor(processor) -> None:
    scalar = processor.__class__(**{**processor.to_dict(), "image_mean": 0.5, "image_std": 0.25})
    split = CentreCrop.of(scalar)
    image = random_image(50, 70, 3)
    expected = scalar(images=image, return_tensors="pt")["pixel_values"]
    assert torch.equal(split.normalize(split.crop(image)[None]), expected)


def test_centre_crop_refuses_images_that_are_not_rgb(processor) -> None:
    with pytest.raises(ValueError, match="RGB"):
        CentreCrop.of(processor).crop(random_image(10, 10, 0).convert("RGBA"))


def test_centre_crop_is_refused_for_processors_that_do_more(processor) -> None:
    assert CentreCrop.of(processor.__class__(**{**processor.to_dict(), "do_resize": True})) is None
    assert CentreCrop.of(processor.__class__(**{**processor.to_dict(), "do_normalize": False})) is None
    assert CentreCrop.of(object()) is None


def test_collator_gives_the_processors_batch(processor) -> None:
    side = processor.crop_size["height"]
    images = [random_image(side, side, 0), random_image(2 * side + 3, side + 1, 1), random_image(5, 9, 2)]
    expected = processor(images=images, return_tensors="pt")["pixel_values"]
    batch = Collator(processor)([(image, label) for image, label in zip(images, (0, 1, 1))])
    assert Collator(processor).preprocessing.centre_crop is not None
    assert torch.equal(batch["pixel_values"], expected) and batch["labels"].tolist() == [0, 1, 1]
    resizing = processor.__class__(**{**processor.to_dict(), "do_resize": True})
    assert Collator(resizing).preprocessing.centre_crop is None
    resized = Collator(resizing)([(images[1], 0)])["pixel_values"]
    assert torch.equal(resized, resizing(images=[images[1]], return_tensors="pt")["pixel_values"])


def test_centre_crop_of_a_non_square_crop_size(processor) -> None:
    wide = processor.__class__(**{**processor.to_dict(), "crop_size": {"height": 12, "width": 20}})
    split = CentreCrop.of(wide)
    assert (split.height, split.width) == (12, 20)
    for seed, (width, height) in enumerate([(40, 30), (15, 9), (20, 12), (7, 33)]):
        image = random_image(width, height, seed)
        expected = wide(images=image, return_tensors="pt")["pixel_values"]
        assert torch.equal(split.normalize(split.crop(image)[None]), expected), (width, height)


def test_a_processor_that_pads_runs_whole(processor) -> None:
    """do_pad with a pad_size pads the crop out to pad_size: the crop-only split cannot reproduce it."""
    padding = processor.__class__(**{**processor.to_dict(), "do_pad": True, "pad_size": {"height": 40, "width": 40}})
    assert CentreCrop.of(padding) is None
    image = random_image(50, 70, 3)
    expected = padding(images=image, return_tensors="pt")["pixel_values"]
    assert expected.shape[-2:] == (40, 40) and torch.equal(Preprocessing(padding)([image]), expected)


@pytest.mark.parametrize("resizes", [False, True])
def test_model_view_is_the_image_the_model_reads(processor, resizes: bool) -> None:
    """The demo shows `model_view`: scored again, it must give the model the input the image gave it (exactly for
    the crop; within the 8-bit rounding of the view after a resize), and be the central crop where nothing resizes."""
    if resizes:
        side = processor.crop_size["height"]
        processor = processor.__class__(**{**processor.to_dict(), "do_resize": True, "size": {"shortest_edge": side}})
    preprocessing = Preprocessing(processor)
    assert (preprocessing.centre_crop is None) == resizes
    image = random_image(300, 200, seed=7)
    view = preprocessing.model_view(image)
    side = processor.crop_size["height"]
    assert view.mode == "RGB" and view.size == (side, side)
    if not resizes:
        left, top = (300 - side) // 2, (200 - side) // 2
        assert np.array_equal(np.asarray(view), np.asarray(image.crop((left, top, left + side, top + side))))
        assert torch.equal(preprocessing([view]), preprocessing([image]))
    else:
        one_level = processor.rescale_factor / min(processor.image_std)  # one 8-bit step in model-input units
        assert (preprocessing([view]) - preprocessing([image])).abs().max() <= 0.5 * one_level + 1e-6
        assert not np.array_equal(np.asarray(view), np.asarray(image.crop((50, 50, 50 + side, 50 + side))))
