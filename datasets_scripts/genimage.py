"""Convert GenImage to an HF dataset.

Raw layout: `<gen>/imagenet_*/{train,val}/{ai,nature}/*` (e.g.
`stable_diffusion_v_1_4/imagenet_ai_0419_sdv4/train/ai/xxx.png`); `<gen>/{train,val}/{ai,nature}`
is accepted too.  `train` → split `train`, `val` → split `validation`; generator = `<gen>`,
subset = the `imagenet_*` folder (or `<gen>`).  Give the folder that holds the generator folders:
a file at `<wrapper>/<gen>/{train,val}/...` is skipped with that reason, not read under generator `<wrapper>`, and a
folder holding several `imagenet_*` folders (archives unzipped side by side) is refused.

    python datasets_scripts/genimage.py RAW_DIR --output_dir OUT [--push_to_hub ID]
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import datasets

if __package__:
    from .convert_common import Placement, cli, convert, find_label, load_converted
else:
    from convert_common import Placement, cli, convert, find_label, load_converted

SPLITS = {"train": "train", "val": "validation"}


def genimage_rule(parts: tuple[str, ...]) -> Placement | str:
    match = find_label(parts)
    if isinstance(match, str):
        return match
    split_folder = parts[match.index - 1].lower() if match.index >= 2 else ""
    if match.index not in (2, 3) or split_folder not in SPLITS:
        return "unexpected GenImage layout (want <gen>/imagenet_*/{train,val}/{ai,nature}/file)"
    if match.index == 3 and not parts[1].lower().startswith("imagenet"):
        # `GenImage/ADM/train/ai`: a folder wrapping the generator folders would become the one generator of them all
        return (f"unexpected GenImage layout: {parts[1]!r} is no imagenet_* folder (a folder wrapping the generator "
                "folders? give that folder as RAW_DIR)")
    generator = parts[0]
    subset = parts[1] if match.index == 3 else generator
    return Placement(SPLITS[split_folder], match.label, generator, subset)


def check_one_archive_per_generator(raw_dir: str | os.PathLike) -> None:
    """`ValueError` when a `<gen>` folder holds several imagenet_* folders: in GenImage each generator folder holds
    one, so that folder wraps archives of several generators unzipped side by side, and the rule (which sees one path
    at a time) would report them all as one generator named after it. Read from the folder names alone, before any
    image is decoded; anything else wrong with `raw_dir` is for the conversion to say."""
    try:
        folders = sorted(path for path in Path(raw_dir).iterdir() if path.is_dir())
        for folder in folders:
            archives = sorted(path.name for path in folder.iterdir()
                              if path.is_dir() and path.name.lower().startswith("imagenet"))
            if len(archives) > 1:
                raise ValueError(
                    f"{folder} holds {len(archives)} imagenet_* folders ({', '.join(archives)}): GenImage has one per "
                    "generator folder, and these would be reported as the one generator "
                    f"{folder.name!r}; put each in a folder named after its generator (e.g. ADM/imagenet_ai_0508_adm)"
                )
    except OSError:
        return


def load_genimage(raw_dir: str | os.PathLike, cache_dir: str | None = None) -> datasets.DatasetDict:
    """Read a GenImage tree in-process without writing an output folder."""
    check_one_archive_per_generator(raw_dir)
    return load_converted(raw_dir, genimage_rule, cache_dir)


def convert_genimage(
    raw_dir: str | os.PathLike, output_dir: str | os.PathLike, push_to_hub_id: str | None = None
) -> datasets.DatasetDict:
    """Convert a GenImage tree into `output_dir` (+ report.json)."""
    check_one_archive_per_generator(raw_dir)
    return convert("genimage", raw_dir, output_dir, genimage_rule, push_to_hub_id)


def main(argv: list[str] | None = None) -> int:
    return cli(convert_genimage, __doc__, argv)


if __name__ == "__main__":
    sys.exit(main())
