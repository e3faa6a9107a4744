"""Convert ForenSynths (CNNSpot) to an HF dataset.

Raw layout: ProGAN training data `[train|val/]<cls>/{0_real,1_fake}/*` (`<cls>` one of the 20
LSUN classes) → generator `progan`, subset `<cls>`; test sets `[test/]<gen>/[<cls>/]{0_real,1_fake}/*`
(e.g. `test/progan/airplane/0_real`, `test/deepfake/1_fake`) → generator `<gen>`, subset
`<gen>[/<cls>]`.  The first folder gives the split (the archives' `progan_train`, `progan_val`
and `CNN_synth_testset` folders count as `train`, `val` and `test`); without one, a split folder
below the label folder gives it (`car/0_real/val/x.png`), and without any, a tree whose first folder
is an LSUN class is `train` and any other is `test`.

    python datasets_scripts/forensynths.py RAW_DIR --output_dir OUT [--push_to_hub ID]
"""

from __future__ import annotations

import os
import sys

import datasets

if __package__:
    from .convert_common import (
        PROGAN_CLASSES, Placement, cli, convert, find_label, leading_split, load_converted, split_below_generator,
        split_below_label,
    )
else:
    from convert_common import (
        PROGAN_CLASSES, Placement, cli, convert, find_label, leading_split, load_converted, split_below_generator,
        split_below_label,
    )


def forensynths_rule(parts: tuple[str, ...]) -> Placement | str:
    match = find_label(parts)
    if isinstance(match, str):
        return match
    split, start = leading_split(parts, match)
    middle = parts[start : match.index]
    if split == "train" and not middle and parts[0].lower() in PROGAN_CLASSES:
        # `train/0_real/x.png` in a tree rooted at progan_train/: the LSUN class "train", not the split
        split, middle = None, parts[:1]
    # ProGAN's own images: an LSUN-class first folder, unless a test/ folder above it makes that a test generator
    is_progan = bool(middle) and middle[0].lower() in PROGAN_CLASSES and split != "test"
    if split is None:  # a split folder below the label folder (`car/0_real/test/x.png`), else inferred
        split = split_below_label(parts, match) or ("train" if is_progan else "test")
    if is_progan or (split != "test" and not middle):
        return Placement(split, match.label, "progan", "/".join(middle) or "progan")
    if not middle:
        return "unexpected ForenSynths layout (want test/<gen>/[<cls>/]{0_real,1_fake}/file; use folder.py for a bare tree)"
    if len(middle) > 2 or split_below_generator(middle):
        # a GenImage tree (`<gen>/imagenet_<gen>/train/ai`) put its training images into the test split
        return (f"unexpected ForenSynths layout ({'/'.join(middle)} above the label folder; want test/<gen>/[<cls>/]"
                "{0_real,1_fake}/file; a GenImage tree is read by genimage.py, a bare tree by folder.py)")
    return Placement(split, match.label, middle[0], "/".join(middle))


def load_forensynths(raw_dir: str | os.PathLike, cache_dir: str | None = None) -> datasets.DatasetDict:
    """Read a ForenSynths tree in-process without writing an output folder."""
    return load_converted(raw_dir, forensynths_rule, cache_dir)


def convert_forensynths(
    raw_dir: str | os.PathLike, output_dir: str | os.PathLike, push_to_hub_id: str | None = None
) -> datasets.DatasetDict:
    """Convert a ForenSynths tree into `output_dir` (+ report.json)."""
    return convert("forensynths", raw_dir, output_dir, forensynths_rule, push_to_hub_id)


def main(argv: list[str] | None = None) -> int:
    return cli(convert_forensynths, __doc__, argv)


if __name__ == "__main__":
    sys.exit(main())
