"""A cue in MiniGenImage that is not a generator's fingerprint: saturated pixels (bench/NOTES.md §7).

Up to MiniGenImage 1.2 the autoencoder families decoded through a sigmoid, which almost never reaches 0 or 255, while
photographs often hold clipped highlights, and the diffusion family clipped its leftover noise, saturating more often
than photographs; since 1.3 every fake holds its source crop's histogram, and this audit checks that the cue is gone.
For every split and label this prints the share of images holding a pixel value ≥ `--high` in some channel, and the
balanced accuracy of a rule that reads nothing else: "fake when no such pixel" (its direction fitted on the training split).
A share that differs between reals and fakes of a family is a shortcut a detector can learn instead of the
generator's traces, and one that the training family shares with unseen ones transfers with it.

With `--model`, how a trained detector reacts to a saturated patch: the share of each test split's images it calls
fake, as they are and with a 3×3 patch painted at the centre, saturated (255) or not (200, the control). Detectors
trained on 1.3, which holds no saturation cue, call fewer fakes fake with the saturated patch than with the control
as 1.2's did, so a gap here is a reaction to a bright patch, not by itself evidence that the cue was learnt.

    python bench/audit_minigenimage.py              # the default build (seed 0, full size)
    python bench/audit_minigenimage.py --model outputs/pinclip-minigenimage
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from datasets_scripts.minigenimage import build_minigenimage  # noqa: E402
from inference import FAKE, Detector  # noqa: E402

PATCH = 3  # pixels a side


def saturated(images: list, high: int) -> np.ndarray:
    """Whether each image holds a value ≥ `high` in some channel."""
    return np.array([np.asarray(image.convert("RGB")).max() >= high for image in images])


def with_patch(image: Image.Image, value: int) -> Image.Image:
    """A copy of `image` with a grey `PATCH`×`PATCH` square of `value` at its centre."""
    patched = image.convert("RGB")
    left, top = (patched.width - PATCH) // 2, (patched.height - PATCH) // 2
    patched.paste((value, value, value), (left, top, left + PATCH, top + PATCH))
    return patched


def called_fake(detector: Detector, images: list, batch: int = 256) -> np.ndarray:
    """Whether `detector` calls each image fake (at its threshold)."""
    scores = [row[FAKE] for start in range(0, len(images), batch)
              for row in detector.score_images(images[start : start + batch])]
    return np.array(scores) >= detector.threshold


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seed", type=int, default=0, help="MiniGenImage build seed")
    parser.add_argument("--reduced", action="store_true", help="the reduced build (tests)")
    parser.add_argument("--high", type=int, default=250, help="a pixel value at least this high is saturated")
    parser.add_argument("--model", help="a trained detector folder: probe whether it reads the cue")
    args = parser.parse_args(argv)
    data = build_minigenimage(seed=args.seed, reduced=args.reduced, show_progress=False)

    rows, fake_when_unsaturated = [], None
    for split in ["train", "validation", *sorted(name for name in data if name.startswith("test_"))]:
        dataset = data[split]
        labels, generators = np.array(dataset["label"]), np.array(dataset["generator"])
        hit = saturated(dataset["image"], args.high)
        if fake_when_unsaturated is None:  # the rule's direction, from the training split only
            fake_when_unsaturated = hit[labels == 0].mean() > hit[labels == 1].mean()
        for generator in sorted(set(generators[labels == 1])):
            chosen = (labels == 0) | (generators == generator)  # the split's reals and this family's fakes
            real_share, fake_share = hit[chosen & (labels == 0)].mean(), hit[chosen & (labels == 1)].mean()
            # balanced (the mean of the real and the fake accuracy): a validation split holds two families' fakes
            right_on_reals, right_on_fakes = (real_share, 1 - fake_share) if fake_when_unsaturated else (
                1 - real_share, fake_share)
            rows.append((split, generator, real_share, fake_share, (right_on_reals + right_on_fakes) / 2))

    rule = "fake when no pixel" if fake_when_unsaturated else "fake when a pixel"
    print(f"MiniGenImage seed {args.seed} ({'reduced' if args.reduced else 'full'}): images with a channel value "
          f"≥ {args.high}, and the balanced accuracy of the rule \"{rule} ≥ {args.high}\" (direction fitted on train)\n")
    print("| split | fake family | reals saturated | fakes saturated | rule's balanced accuracy |")
    print("|---|---|---|---|---|")
    for split, generator, real_share, fake_share, accuracy in rows:
        print(f"| {split} | {generator} | {real_share:.3f} | {fake_share:.3f} | {accuracy:.3f} |")
    if args.model:
        detector = Detector.load(args.model)
        print(f"\nShare called fake by {args.model}: as they are, with a {PATCH}×{PATCH} patch of 255 at the centre, "
              "and of 200 (the control)\n")
        print("| split | images | as they are | 255 patch | 200 patch |")
        print("|---|---|---|---|---|")
        fakes = []  # per test split: the share of its fakes called fake, as they are and with each patch
        for split in sorted(name for name in data if name.startswith("test_")):
            labels, images = np.array(data[split]["label"]), list(data[split]["image"])
            shares = [called_fake(detector, [with_patch(image, value) for image in images] if value else images)
                      for value in (None, 255, 200)]
            fakes.append([share[labels == 1].mean() for share in shares])
            for label, name in ((1, "fakes"), (0, "reals")):
                cells = " | ".join(f"{share[labels == label].mean():.3f}" for share in shares)
                print(f"| {split} | {name} | {cells} |")
        print("| **mean over test splits** | fakes | " + " | ".join(f"{v:.3f}" for v in np.mean(fakes, axis=0)) + " |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
