"""A model's image processor as the two steps batched loading needs: one where an image is loaded (a DataLoader
worker) and one on the stacked batch. For the forensic preprocessing (centre crop, no resize, CLIP mean/std) the
steps are a uint8 crop and a batched normalisation with exactly the processor's floats; any other processor runs
whole in the first step.

Used by `inference.Detector` (the demo, the scanner) and by `detection_data.Collator` (training and evaluation).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from PIL import Image
from transformers import BaseImageProcessor

# The processor settings under which `CentreCrop` reproduces it.
_CROP_ONLY_STEPS = {"do_resize": False, "do_center_crop": True, "do_rescale": True, "do_normalize": True}


@dataclass(frozen=True)
class CentreCrop:
    """The saved image processor's work when all it does is centre-crop, rescale and normalise (the forensic
    default), split in two: `crop` per image (PIL; DataLoader workers then hand over uint8 crops, a
    quarter of float32's bytes) and `normalize` once per batch. Together they give the processor's floats
    bit for bit (tests/test_preprocessing.py), at a fifth to about half its cost per image (bench/NOTES.md §2): the
    processor converts the whole decoded image to an array before cropping and runs its arithmetic image by image.
    """

    height: int
    width: int
    rescale_factor: float
    mean: tuple[float, ...]
    std: tuple[float, ...]

    @classmethod
    def of(cls, processor: BaseImageProcessor) -> "CentreCrop | None":
        """The split of `processor`, or None when it does anything else (resizing, padding, another backend)."""
        if (
            getattr(processor, "backend", None) != "pil"
            or getattr(processor, "do_pad", None)
            or any(getattr(processor, name, None) != value for name, value in _CROP_ONLY_STEPS.items())
        ):
            return None
        # A scalar mean/std applies to every channel, as in the processor; a (1,) tensor broadcasts the same way.
        mean, std = (tuple(map(float, np.atleast_1d(v))) for v in (processor.image_mean, processor.image_std))
        return cls(int(processor.crop_size["height"]), int(processor.crop_size["width"]),
                   float(processor.rescale_factor), mean, std)

    def crop(self, image: Image.Image) -> torch.Tensor:
        """An RGB image → its centred `(3, height, width)` uint8 crop; zeros where the image is smaller (the
        processor's padding: both place the crop at `(size - crop) // 2`, PIL fills outside the image with 0)."""
        if image.mode != "RGB":
            # Every loader here gives RGB, alpha and transparent colour dropped (image_io.load_rgb_image).
            raise ValueError(f"CentreCrop expects an RGB image (image_io.load_rgb_image gives one), got {image.mode}")
        left, top = (image.width - self.width) // 2, (image.height - self.height) // 2
        pixels = np.array(image.crop((left, top, left + self.width, top + self.height)))
        return torch.from_numpy(pixels).permute(2, 0, 1)

    def normalize(self, crops: torch.Tensor) -> torch.Tensor:
        """`(B, 3, H, W)` uint8 crops → model input, with the processor's arithmetic: rescale in float64 and round
        to float32, then subtract the mean and divide by the std in float32."""
        rescaled = crops.double().mul_(self.rescale_factor).float()
        mean = torch.tensor(self.mean, dtype=torch.float32).view(1, -1, 1, 1)
        std = torch.tensor(self.std, dtype=torch.float32).view(1, -1, 1, 1)
        return rescaled.sub_(mean).div_(std)


class Preprocessing:
    """`processor` as `per_image` (where an RGB image is loaded) then `per_batch` (on the stacked results): the
    `CentreCrop` split when the processor only crops, rescales and normalises, else the whole processor per image.
    Picklable, so `per_image` can run in DataLoader workers."""

    def __init__(self, processor: BaseImageProcessor):
        self.processor = processor
        self.centre_crop = CentreCrop.of(processor)

    def per_image(self, image: Image.Image) -> torch.Tensor:
        """One RGB image → its uint8 crop (split) or its float `(3, H, W)` model input (whole processor)."""
        if self.centre_crop:
            return self.centre_crop.crop(image)
        return self.processor(images=image, return_tensors="pt")["pixel_values"][0]

    def per_batch(self, stacked: torch.Tensor) -> torch.Tensor:
        """Stacked `per_image` results → the `(B, 3, H, W)` model input (the split normalises here)."""
        return self.centre_crop.normalize(stacked) if self.centre_crop else stacked

    def __call__(self, images: Sequence[Image.Image]) -> torch.Tensor:
        """RGB images → their `(B, 3, H, W)` model input, both steps in this process."""
        return self.per_batch(torch.stack([self.per_image(image) for image in images]))

    def padding(self, image: Image.Image) -> float:
        """The fraction of what the model reads of `image` that is black padding: > 0 when a crop-only processor
        meets an image smaller than its crop, whose score then says little about the image. 0 for a processor
        that resizes (it pads nothing)."""
        if not self.centre_crop:
            return 0.0
        crop = self.centre_crop
        return 1 - min(image.width, crop.width) * min(image.height, crop.height) / (crop.width * crop.height)

    def model_view(self, image: Image.Image) -> Image.Image:
        """What the model reads of an RGB image, as an RGB image: the crop itself for the split, else the
        processor's output with its normalisation and rescaling undone (the pixels after any resize and crop)."""
        if self.centre_crop:
            return Image.fromarray(self.centre_crop.crop(image).permute(1, 2, 0).numpy())
        processor = self.processor
        pixels = self.per_image(image).double()
        if getattr(processor, "do_normalize", False):
            std, mean = (torch.tensor(np.atleast_1d(v), dtype=torch.float64).view(-1, 1, 1)
                         for v in (processor.image_std, processor.image_mean))
            pixels = pixels * std + mean
        if getattr(processor, "do_rescale", False):
            pixels = pixels / float(processor.rescale_factor)
        return Image.fromarray(pixels.round().clamp(0, 255).to(torch.uint8).permute(1, 2, 0).numpy())
