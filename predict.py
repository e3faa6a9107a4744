"""Scan image files and folders with a PiN-CLIP detector and write one row per file.

    python predict.py photos/ extra.jpg --output results.csv      # or results.jsonl

Folders are walked recursively in sorted order (files Pillow decodes itself, hidden files skipped, folder links
followed, each real folder once); a file named on the command line is always scanned. A file that cannot be read
gets a row with the reason in `error` and an empty `p_fake` instead of stopping the run. `padding` is the fraction of
what the model read that was black padding (an image smaller than its input: a weak score). Rows are written as they
are scored, so an interrupted scan keeps what it did. Exit status: 0 when a file was scored, 1 when none could be,
2 for arguments or a model that cannot work.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import sys
from collections.abc import Iterable
from dataclasses import asdict
from pathlib import Path

import torch
from tqdm.auto import tqdm

from inference import (
    DEFAULT_MODEL_DIR, NOTED_PADDING, TRAIN_COMMAND, Detector, ScanResult, find_images, p_fake_text, padding_text,
)

FIELDS = ("path", "p_fake", "label", "error", "padding")
PADDED = "padded"  # the count of scored images that the model read partly as padding
DTYPES = {"auto": None, "float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("paths", nargs="+", help="image files and/or folders (scanned recursively)")
    parser.add_argument("--model", default=str(DEFAULT_MODEL_DIR), help="model folder or Hub id (default: %(default)s)")
    parser.add_argument("--trust_remote_code", action="store_true",
                        help="load the model with the code it ships (its folder or Hub repository): a classifier "
                        "with its own code needs it; a PiN-CLIP loads with this repository's class without it")
    parser.add_argument("--batch_size", type=int, default=32, help="images per model call (default: %(default)s)")
    parser.add_argument("--num_workers", type=int, default=2,
                        help="DataLoader workers that decode and preprocess (default: %(default)s)")
    parser.add_argument("--dtype", choices=sorted(DTYPES), default="auto",
                        help="weights and model inputs in this type (default: auto, as saved; a PiN-CLIP is saved in "
                        "float32): bfloat16 is faster on a recent GPU; P(fake) then moves slightly")
    parser.add_argument("--output", default="results.csv", help="results file, .csv or .jsonl (default: %(default)s)")
    args = parser.parse_args(argv)
    if not all(args.paths):  # `predict.py "$DIR"` with DIR unset: Path("") would scan the working folder
        parser.error("an empty path names no file or folder")
    if Path(args.output).suffix.lower() not in (".csv", ".jsonl"):
        parser.error(f"--output must end in .csv or .jsonl, got {args.output!r}")
    output = Path(args.output)
    try:  # found now, not after the model has loaded and the scan has run
        if output.is_dir():
            parser.error(f"--output {args.output} is a folder: name a .csv or .jsonl file")
        if not output.resolve().parent.is_dir():
            parser.error(f"--output {args.output}: folder {output.parent} does not exist")
        existed = output.exists()
        with output.open("a"):  # the file itself (a name too long, a read-only file), left as it was
            pass
        if not existed:  # the file just made; through a link to a missing file, that file, not the link
            output.resolve().unlink()
    except OSError as error:
        parser.error(f"--output {args.output}: cannot write it ({error.strerror})")
    if args.batch_size < 1 or args.num_workers < 0:
        parser.error("--batch_size must be >= 1 and --num_workers >= 0")
    return args


def csv_row(result: ScanResult) -> dict[str, str]:
    """CSV has no null: missing values are empty cells. p_fake as `inference.p_fake_text` writes it (six fixed
    decimals tied small scores and wrote 0.4999996 as 0.500000 beside the label real)."""
    return {"path": result.path, "p_fake": p_fake_text(result.p_fake), "label": result.label or "",
            "error": result.error or "", "padding": padding_text(result.padding)}


def write_results(results: Iterable[ScanResult], output: Path, counts: dict[str, int] | None = None) -> dict[str, int]:
    """Stream results into a CSV or JSON-lines file; returns counts per label (and `error`, and `padded`: scored
    images smaller than the model's input), kept in `counts` as rows are written (what an interrupted scan wrote)."""
    counts = {} if counts is None else counts
    as_csv = output.suffix.lower() == ".csv"
    # A file name that is not valid UTF-8 (a Latin-1 name, say) is not refused mid-scan: CSV gets its original bytes,
    # JSON (UTF-8 by definition) a `\udcXX` escape per such byte, which json.loads + os.fsencode turn back into them.
    with output.open("w", newline="", encoding="utf-8", errors="surrogateescape") as handle:
        writer = csv.DictWriter(handle, fieldnames=FIELDS) if as_csv else None
        if writer is not None:
            writer.writeheader()
        for result in results:
            if writer is not None:
                writer.writerow(csv_row(result))
            else:
                handle.write(json.dumps(asdict(result), allow_nan=False) + "\n")  # strict JSON
            handle.flush()  # rows hit the disk as they come: a killed scan keeps its results
            key = result.label or "error"
            counts[key] = counts.get(key, 0) + 1
            if result.padding is not None and result.padding >= NOTED_PADDING:
                counts[PADDED] = counts.get(PADDED, 0) + 1
    return counts


def print_escaped(line: str) -> None:
    """Print `line` to stdout, with backslash escapes for what the stream's encoding cannot represent. A stdout that
    is closed, a pipe whose reader left (`| head`) or a full disk drops the line: it is the summary of a scan whose
    rows are written, and a traceback would turn its exit status into a failure."""
    if sys.stdout is None:  # started with stdout closed
        return
    encoding = sys.stdout.encoding or "utf-8"
    try:
        print(line.encode(encoding, "backslashreplace").decode(encoding), flush=True)
    except OSError:  # BrokenPipeError, ENOSPC: nothing more goes there, nor does the flush at exit
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    files = find_images(args.paths)
    if not files:
        print("no image files found under the given paths", file=sys.stderr)
        return 2
    if not Path(args.model).exists() and args.model == str(DEFAULT_MODEL_DIR):
        print(f"no model at {args.model}: create it with `{TRAIN_COMMAND}` or pass --model", file=sys.stderr)
        return 2
    try:
        detector = Detector.load(args.model, trust_remote_code=args.trust_remote_code, dtype=DTYPES[args.dtype])
    except Exception as error:  # noqa: BLE001 - a misspelt folder, an offline Hub id, a folder that is no model
        print(f"cannot load the model {args.model}: {str(error).removeprefix(f'{args.model}: ')}", file=sys.stderr)
        return 2
    results = detector.scan(files, batch_size=args.batch_size, num_workers=args.num_workers)
    counts: dict[str, int] = {}
    try:
        write_results(tqdm(results, total=len(files), unit="img", desc="scanning"), Path(args.output), counts)
    except KeyboardInterrupt:  # Ctrl-C: the rows written so far stay, each complete
        written = sum(count for key, count in counts.items() if key != PADDED)  # padded rows are counted already
        print(f"\ninterrupted: {written} of {len(files)} files written to {args.output}", file=sys.stderr)
        return 130  # 128 + SIGINT, as shells report it
    summary = ", ".join(f"{count} {key}" for key, count in sorted(counts.items()) if key != PADDED)
    # A file name that is not UTF-8 (its bytes kept as surrogates) is shown with \x escapes, and what the stdout's
    # encoding cannot hold (cp1252, ascii) with \u escapes: a strict stdout would otherwise fail after the scan had
    # written every row, and the exit status would say that nothing was scored.
    shown = args.output.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")
    print_escaped(f"{len(files)} files → {shown} ({summary}; threshold {detector.threshold:g})")
    if counts.get(PADDED):  # the demo says so beside each such decision; a scan of thumbnails must say it too
        crop = detector.preprocessing.centre_crop
        print_escaped(f"{counts[PADDED]} scored images are smaller than the model's {crop.width}×{crop.height} px input: "
                      "padded with black, their scores are weak evidence (the padding column)")
    if set(counts) - {PADDED} == {"error"}:  # a misspelt path, say: scripts must not take this for a finished scan
        print("no file could be scored: see the error column", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
