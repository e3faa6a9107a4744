"""Convert AIGIBench to an HF dataset.

Raw layout: `train/<cls>/{0_real,1_fake}/*` and `test/<gen>/{0_real,1_fake}/*` (`val/...` like
train; deeper folders such as `test/<gen>/<sub>/0_real` are kept in the subset name, unless one names a split:
`test/<gen>/<sub>/train/0_real` is a GenImage tree, skipped with a reason).
Splits come from the first folder (`test/test/<gen>/...` and `train/train/<cls>/...`, an archive unzipped into its
split folder, read as `test/<gen>/...` and `train/<cls>/...`; `train/train/0_real` is the LSUN class `train`).  Test: generator = `<gen>`, subset = the folders between the
split and the label folder.  Train/val: subset = `<cls>`; generator = `progan` for the 20 LSUN
classes of ProGAN data (car, cat, chair, horse, …), otherwise the folder name (e.g. `sdv1.4`).

    python datasets_scripts/aigibench.py RAW_DIR --output_dir OUT [--push_to_hub ID]
"""

from __future__ import annotations

import os
import sys

import datasets

if __package__:
    from .convert_common import (
        PROGAN_CLASSES, Placement, cli, convert, find_label, leading_split, load_converted, split_below_generator,
    )
else:
    from convert_common import (
        PROGAN_CLASSES, Placement, cli, convert, find_label, leading_split, load_converted, split_below_generator,
    )


def aigibench_rule(parts: tuple[str, ...]) -> Placement | str:
    match = find_label(parts)
    if isinstance(match, str):
        return match
    split, start = leading_split(parts, match)
    middle = parts[start : match.index]
    if split is None or not middle:
        return "unexpected AIGIBench layout (want {train,test}/<name>/{0_real,1_fake}/file)"
    subset = "/".join(middle)
    if split_below_generator(middle):  # kept in the subset name, the split folder would be ignored
        return (f"unexpected AIGIBench layout (a split folder below {middle[0]} in {subset}; want "
                "{train,test}/<name>/[...]/{0_real,1_fake}/file; a GenImage tree is read by genimage.py)")
    if split != "test" and middle[0].lower() in PROGAN_CLASSES:
        return Placement(split, match.label, "progan", subset)
    return Placement(split, match.label, middle[0], subset)


def load_aigibench(raw_dir: str | os.PathLike, cache_dir: str | None = None) -> datasets.DatasetDict:
    """Read an AIGIBench tree in-process without writing an output folder."""
    return load_converted(raw_dir, aigibench_rule, cache_dir)


def convert_aigibench(
    raw_dir: str | os.PathLike, output_dir: str | os.PathLike, push_to_hub_id: str | None = None
) -> datasets.DatasetDict:
    """Convert an AIGIBench tree into `output_dir` (+ report.json)."""
    return convert("aigibench", raw_dir, output_dir, aigibench_rule, push_to_hub_id)


def main(argv: list[str] | None = None) -> int:
    return cli(convert_aigibench, __doc__, argv)


if __name__ == "__main__":
    sys.exit(main())
