"""Convert any real/fake folder tree to an HF dataset.

Leaves are `0_real/1_fake`, `real/fake` or `nature/ai` folders at any depth.  One folder above
the label folder may name the split (`train`, `val`/`validation`, `test`, `train_multi`), first
(`test/sdv14/1_fake`) or deeper (`sdv14/test/1_fake`); without one, every image goes to
`default_split` ("train", like HF imagefolder); with two, the file is skipped as ambiguous.  The
other folders above the label folder name the subset (joined with "/"); the first of them is the
generator.  Images directly under a label folder at the top take the raw directory's own name as
generator.

    python datasets_scripts/folder.py RAW_DIR --output_dir OUT [--push_to_hub ID]
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import datasets

if __package__:
    from .convert_common import SPLIT_ALIASES, LayoutRule, Placement, cli, convert, find_label, load_converted
else:
    from convert_common import SPLIT_ALIASES, LayoutRule, Placement, cli, convert, find_label, load_converted


def folder_rule(root_name: str, default_split: str = "train") -> LayoutRule:
    """Layout rule for a generic tree whose root folder is called `root_name`."""

    def rule(parts: tuple[str, ...]) -> Placement | str:
        match = find_label(parts)
        if isinstance(match, str):
            return match
        above_label = parts[: match.index]
        splits = [name for name in above_label if name.lower() in SPLIT_ALIASES]
        if len(splits) > 1:
            return f"ambiguous: several split folders in path ({', '.join(splits)})"
        middle = [name for name in above_label if name.lower() not in SPLIT_ALIASES]
        split = SPLIT_ALIASES[splits[0].lower()] if splits else default_split
        generator = middle[0] if middle else root_name
        return Placement(split, match.label, generator, "/".join(middle) or generator)

    return rule


def load_folder_dataset(
    raw_dir: str | os.PathLike, default_split: str = "train", cache_dir: str | None = None
) -> datasets.DatasetDict:
    """Read a real/fake folder tree in-process (no output folder; rows go to the datasets cache)."""
    return load_converted(raw_dir, folder_rule(Path(raw_dir).resolve().name, default_split), cache_dir)


def convert_folder(
    raw_dir: str | os.PathLike, output_dir: str | os.PathLike, push_to_hub_id: str | None = None
) -> datasets.DatasetDict:
    """Convert a real/fake folder tree into `output_dir` (+ report.json)."""
    return convert("folder", raw_dir, output_dir, folder_rule(Path(raw_dir).resolve().name), push_to_hub_id)


def main(argv: list[str] | None = None) -> int:
    return cli(convert_folder, __doc__.split("\n\n")[0], argv)


if __name__ == "__main__":
    sys.exit(main())
