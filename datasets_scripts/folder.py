"""Convert any real/fake folder tree to an HF dataset.

Leaves are `0_real/1_fake`, `real/fake` or `nature/ai` folders at any depth.  The first folder
above the label folder that names a split (`train`, `val`/`validation`, `test`, `train_multi`)
gives the split, whether it comes first (`test/sdv14/1_fake`) or deeper (`sdv14/test/1_fake`);
without one, a split folder below the label folder gives it (`real/val/x.png`), and without any,
the image goes to `default_split` ("train", like HF imagefolder).  The other
folders above the label folder (a later `train` is ProGAN's LSUN class, not a split) name the
subset (joined with "/"); the first of them is the generator.  Images directly under a label
folder at the top take the raw directory's own name as generator.

    python datasets_scripts/folder.py RAW_DIR --output_dir OUT [--push_to_hub ID]
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import datasets

if __package__:
    from .convert_common import (
        SPLIT_ALIASES, LayoutRule, Placement, cli, convert, find_label, load_converted, names_split_again,
        split_below_label,
    )
else:
    from convert_common import (
        SPLIT_ALIASES, LayoutRule, Placement, cli, convert, find_label, load_converted, names_split_again,
        split_below_label,
    )


def folder_rule(root_name: str, default_split: str = "train") -> LayoutRule:
    """Layout rule for a generic tree whose root folder is called `root_name`."""

    def rule(parts: tuple[str, ...]) -> Placement | str:
        match = find_label(parts)
        if isinstance(match, str):
            return match
        middle = list(parts[: match.index])
        position = next((i for i, name in enumerate(middle) if name.lower() in SPLIT_ALIASES), None)
        if position is not None:
            split = SPLIT_ALIASES[middle.pop(position).lower()]
            if position < len(middle) and names_split_again(middle[position], split, position == len(middle) - 1):
                # `test/CNN_synth_testset/<gen>`
                middle.pop(position)
        else:
            split = split_below_label(parts, match) or default_split
        generator = middle[0] if middle else root_name
        return Placement(split, match.label, generator, "/".join(middle) or generator)

    return rule


def load_folder_dataset(
    raw_dir: str | os.PathLike, default_split: str = "train", cache_dir: str | None = None
) -> datasets.DatasetDict:
    """Read a real/fake folder tree in-process (no output folder; rows go to the datasets cache)."""
    return load_converted(raw_dir, folder_rule(generator_name(raw_dir), default_split), cache_dir)


def generator_name(raw_dir: str | os.PathLike) -> str:
    """The generator of images under no generator folder: the raw folder's name as given (`.` named by the folder;
    a link by its own name, not its target's)."""
    return Path(os.path.abspath(raw_dir)).name


def convert_folder(
    raw_dir: str | os.PathLike, output_dir: str | os.PathLike, push_to_hub_id: str | None = None
) -> datasets.DatasetDict:
    """Convert a real/fake folder tree into `output_dir` (+ report.json)."""
    return convert("folder", raw_dir, output_dir, folder_rule(generator_name(raw_dir)), push_to_hub_id)


def main(argv: list[str] | None = None) -> int:
    return cli(convert_folder, __doc__, argv)


if __name__ == "__main__":
    sys.exit(main())
