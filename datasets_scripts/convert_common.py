"""Shared machinery of the raw-folder → HF dataset converters.

A converter is one *layout rule*: a function that maps a file's path (relative to the raw root,
split into parts) to a `Placement` (split, label, generator, subset) or to a skip reason.  This
module does the rest, identically for every source:

1. walk the tree in sorted order (never `os.listdir` order), following folder symlinks that lead
   outside it, each once,
2. check every file (extension, zero bytes, truncation, decodability, pixel limit, EXIF) without
   keeping pixels, so that every kept file is one the training and evaluation loaders can open,
3. stream the original file bytes (no re-encoding) into a `Dataset` per split with
   `Dataset.from_generator`, so memory never holds all images,
4. write `save_to_disk(OUT)` and `OUT/report.json`, and optionally push to the Hub.
"""

from __future__ import annotations

import argparse
import collections
import hashlib
import json
import logging
import os
import shutil
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path

import datasets
from datasets.exceptions import DatasetGenerationError
from filelock import FileLock, Timeout

# Run as a script (`python datasets_scripts/genimage.py`), only this folder is on the path: the converters read
# images with the repository's own loader, so that a file they keep is one training and evaluation can open.
REPO_ROOT = Path(__file__).resolve().parents[1]
if str(REPO_ROOT) not in sys.path:
    sys.path.append(str(REPO_ROOT))
from image_io import IMAGE_EXTENSIONS, ImageLoadError, load_rgb_image  # noqa: E402
from labels import LABEL_NAMES  # noqa: E402

logger = logging.getLogger(__name__)

REPORT_NAME = "report.json"
BUILD_PREFIX = ".pinclip-build-"  # the converter's temporary folder inside the output
BUILD_LOCK = ".lock"  # inside a build folder: held by its conversion for as long as it runs
UNLOCKED_BUILD_SECONDS = 24 * 3600  # a build folder never locked, this old, was left by a killed run
FEATURES = datasets.Features(
    {
        "image": datasets.Image(),
        "label": datasets.ClassLabel(names=LABEL_NAMES),
        "generator": datasets.Value("string"),
        "subset": datasets.Value("string"),
    }
)
# The rows are written with the image as a plain {bytes, path} struct, then typed as an Image: encoding through the
# Image feature drops the bytes of any row whose path, relative to raw_dir, also names a file relative to the working
# directory, and that file (another one, or the same one reached only from here) would be read in their place.
ROW_FEATURES = datasets.Features(
    {**FEATURES, "image": {"bytes": datasets.Value("binary"), "path": datasets.Value("string")}}
)
ROWS_FORMAT = "bytes always kept"  # part of the cache key: rows cached by the encoding above are not reused

# Leaf folder names that carry the label, compared case-insensitively.
REAL_MARKERS = {"0_real", "real", "nature"}
FAKE_MARKERS = {"1_fake", "fake", "ai"}

# Folder names that name a split, mapped to the HF split name.
SPLIT_ALIASES = {
    "train": "train",
    "training": "train",
    "train_multi": "train_multi",
    "val": "validation",
    "valid": "validation",
    "validation": "validation",
    "test": "test",
    "testing": "test",
}
# ForenSynths (CNNDetection) as its archives unpack: progan_train, progan_val, CNN_synth_testset
ARCHIVE_SPLIT_FOLDERS = {"progan_train": "train", "progan_val": "validation", "cnn_synth_testset": "test"}
SPLIT_ALIASES.update(ARCHIVE_SPLIT_FOLDERS)


@dataclass(frozen=True)
class Placement:
    """Where a file goes: split, label (0 real / 1 fake), generator and subset names."""

    split: str
    label: int
    generator: str
    subset: str


# A layout rule returns a Placement, or a string: the reason the file is skipped.
LayoutRule = Callable[[tuple[str, ...]], "Placement | str"]


@dataclass(frozen=True)
class LabelMatch:
    """The position of the single label folder in a path, and the label it names."""

    index: int
    label: int


def find_label(parts: tuple[str, ...]) -> LabelMatch | str:
    """Locate the label folder among the directory parts of a path.

    A path with both a real and a fake marker (e.g. `fake/0_real/x.png`), or with two markers at
    all, is ambiguous and rejected: guessing could give a file the wrong label.
    """
    matches = []
    for index, part in enumerate(parts[:-1]):  # the file name itself never carries the label
        name = part.lower()
        if name in REAL_MARKERS:
            matches.append(LabelMatch(index, 0))
        elif name in FAKE_MARKERS:
            matches.append(LabelMatch(index, 1))
    if not matches:
        return "no label folder (0_real/1_fake, real/fake, nature/ai) in path"
    if len(matches) > 1:
        return "ambiguous: several label folders in path (" + ", ".join(parts[m.index] for m in matches) + ")"
    return matches[0]


def extension_problem(path: Path) -> str | None:
    """Why `path`'s name is not that of an image file the scanner reads (`image_io.IMAGE_EXTENSIONS`), or None."""
    if path.suffix.lower() not in IMAGE_EXTENSIONS:
        return f"not an image extension ({path.suffix or 'none'})"
    return None


def check_image(path: Path) -> str | None:
    """Why the file at `path` is not a usable image, or None: a complete decode by `image_io.load_rgb_image`, the very
    loader of training and evaluation, so a file kept here cannot fail there, hours into a run. No pixels are kept.
    Its name is `extension_problem`'s to judge (the same file may have several)."""
    try:
        load_rgb_image(path).close()
    except ImageLoadError as error:
        return error.reason  # the report names the file already
    except OSError as error:  # unreadable (permissions), or gone since the walk
        return f"cannot be read ({error.strerror or error})"
    return None


@dataclass(frozen=True)
class WalkedFile:
    """A file found under the raw root, or an entry not read and why (hidden, a looping link, unreadable, ...)."""

    path: Path
    skip_reason: str | None = None


# Folders that NAS boxes and operating systems add beside the user's files: a Synology `@eaDir` holds downscaled JPEG
# thumbnails of every image, which would be read as more images of the folder's class.
METADATA_FOLDERS = frozenset(
    name.lower() for name in ("@eaDir", "#recycle", "#snapshot", "$RECYCLE.BIN", "System Volume Information", "__MACOSX")
)


def walk_files(raw_dir: Path) -> Iterator[WalkedFile]:
    """Every entry under `raw_dir` in a deterministic (sorted) order.

    A folder symlink that leads outside the tree is followed (datasets are often assembled from links), also when
    another link leads to the same folder: where a file may appear twice is `plan_conversion`'s rule, which knows
    the split and generator each path names. One that leads to a folder of the tree itself, or above it (up to `/`),
    is reported, not followed: that folder is read at its own path, which is what names its split, generator and
    subset. A link back to a folder on its own path (a loop outside the tree) is reported, not followed. Hidden
    files and folders (`.DS_Store`, `.cache`, ...), system metadata folders (`@eaDir`, `$RECYCLE.BIN`, ...) and
    folders that cannot be listed are reported, not read.
    """
    root = os.path.realpath(raw_dir)
    own_folders = {os.path.realpath(folder) for folder, _, _ in os.walk(raw_dir)}  # links not followed
    unreadable: list[OSError] = []
    for folder, dirs, files in os.walk(raw_dir, followlinks=True, onerror=unreadable.append):
        while unreadable:  # os.walk skips a folder it cannot list: say so
            yield _unreadable_folder(unreadable.pop(0))
        # the real folders on the way down to this one: a link to any of them would loop
        on_path = {os.path.realpath(up) for up in (Path(folder), *Path(folder).parents) if up.is_relative_to(raw_dir)}
        kept = []
        for name in sorted(dirs):
            path = Path(folder) / name
            target = os.path.realpath(path)
            if name.startswith("."):
                yield WalkedFile(path, "hidden folder, not read")
            elif name.lower() in METADATA_FOLDERS:
                yield WalkedFile(path, "system metadata folder (thumbnails, recycle bin), not read")
            elif path.is_symlink() and (target in own_folders or os.path.commonpath([root, target]) == target):
                yield WalkedFile(path, "symlink to a folder of this tree or above it, not followed")
            elif target in on_path:
                yield WalkedFile(path, f"symlink loop (back to {target}), not followed")
            else:
                kept.append(name)
        dirs[:] = kept
        for name in sorted(files):
            path = Path(folder) / name
            yield WalkedFile(path, "hidden file, not read") if name.startswith(".") else WalkedFile(path)
    yield from map(_unreadable_folder, unreadable)  # those below the last folder listed


def _unreadable_folder(error: OSError) -> WalkedFile:
    return WalkedFile(Path(error.filename), f"folder cannot be read ({error.strerror or error}), not read")


@dataclass
class ConversionPlan:
    """The files to convert per split, and every file skipped with its reason."""

    entries: dict[str, list[tuple[str, Placement]]] = field(default_factory=dict)
    skipped: list[dict[str, str]] = field(default_factory=list)

    def fingerprint(self, raw_dir: Path) -> str:
        """Changes when the root folder or any kept file's path, size, mtime, inode or ctime changes (keys the datasets
        cache). Size and mtime alone missed two files of one size and one mtime (fixed-size formats unpacked by tar,
        which sets whole seconds) swapped between the label folders: the cache served each under its old label. A
        rename or rewrite sets the ctime, which nothing sets back."""
        digest = hashlib.sha256(f"{raw_dir.resolve()}\n".encode(errors="surrogateescape"))
        for split in sorted(self.entries):
            for rel, placement in self.entries[split]:
                stat = (raw_dir / rel).stat()
                # surrogateescape: a file name that is not UTF-8 (an archive from another system) hashes as its bytes
                facts = f"{stat.st_size}|{stat.st_mtime_ns}|{stat.st_ino}|{stat.st_ctime_ns}"
                digest.update(f"{split}|{rel}|{placement}|{facts}\n".encode(errors="surrogateescape"))
        return digest.hexdigest()


def commonest_reasons(skipped: list[dict[str, str]], shown: int = 3) -> str:
    """`"; commonest reasons: 12 × <reason>, ..."` for a plan's or report's skipped files, "" when there are none.
    Reasons are counted without what they say in brackets (the path that kept a file, a decoder's details), which
    differs from file to file."""
    kinds = collections.Counter(item["reason"].split(" (")[0] for item in skipped).most_common(shown)
    return "; commonest reasons: " + ", ".join(f"{n} × {reason}" for reason, n in kinds) if kinds else ""


def plan_conversion(raw_dir: str | os.PathLike, rule: LayoutRule) -> ConversionPlan:
    """Apply the layout rule and the image checks to every file under `raw_dir`.

    Each real file (symbolic and hard links resolved) is converted once per generator of one split: a real set that several test
    generators share through links counts for each of them, as it would as copies, but no file is read twice for one
    generator, lands in two splits or carries two labels. The first path in walk order keeps it (folders sorted by
    name, a folder's files before its subfolders), so which split keeps a file linked into two is alphabetical.
    """
    root = check_raw_dir(raw_dir)
    plan = ConversionPlan()
    kept: dict[tuple[int, int], tuple[str, Placement, set[str]]] = {}  # file → first path, placement, its generators
    refused: dict[tuple[int, int], str] = {}  # file → why its contents were refused: decoded once, however many links
    for walked in walk_files(root):
        rel = walked.path.relative_to(root)
        reason = walked.skip_reason
        if reason is None:
            placement = rule(rel.parts)
            if not isinstance(placement, str):  # names as the dataset stores them (folders need not be UTF-8)
                placement = replace(placement, generator=printable(placement.generator),
                                    subset=printable(placement.subset))
            target = None if isinstance(placement, str) else file_identity(walked.path)
            if isinstance(placement, str):
                reason = placement
            elif isinstance(target, str):  # a broken link, a link loop, a file gone since the walk
                reason = target
            elif (by_name := extension_problem(walked.path)) is not None:  # per path: links may name a file otherwise
                reason = by_name
            elif target in kept:
                reason = _repeat_reason(placement, *kept[target])
            elif target in refused:
                reason = refused[target]
            else:
                reason = check_image(walked.path)
                if reason is not None:
                    refused[target] = reason
        if reason is not None:
            plan.skipped.append({"file": rel.as_posix(), "reason": reason})
            continue
        kept.setdefault(target, (rel.as_posix(), placement, set()))[2].add(placement.generator)
        plan.entries.setdefault(placement.split, []).append((rel.as_posix(), placement))
    return plan


def check_raw_dir(raw_dir: str | os.PathLike) -> Path:
    """`raw_dir` as a Path; `FileNotFoundError` when it is no folder."""
    root = Path(raw_dir)
    if root.exists() and not root.is_dir():
        raise FileNotFoundError(f"raw directory {root} is a file, not a folder: give the folder that holds the images")
    if not root.is_dir():
        raise FileNotFoundError(f"raw directory not found: {root}")
    return root


def file_identity(path: Path) -> tuple[int, int] | str:
    """(device, inode) of the file `path` leads to: the same for every symbolic or hard link to it (trees split into
    train/test with `cp -al` or `ln` hold one file under several names); why not, when it cannot be reached."""
    try:
        stat = path.stat()
    except OSError as error:
        return f"cannot be read ({error.strerror or error})"
    return stat.st_dev, stat.st_ino


def _repeat_reason(placement: Placement, first_path: str, first: Placement, generators: set[str]) -> str | None:
    """Why a file already kept once (at `first_path`, as `first`) is not kept again here, or None to keep it."""
    if placement.split != first.split:
        return f"file already read into split {first.split!r} ({first_path}): no file lands in two splits"
    if placement.label != first.label:
        return f"file already read as {LABEL_NAMES[first.label]} ({first_path}): one file cannot be both"
    if placement.generator in generators:
        return f"file already read for generator {placement.generator!r} ({first_path}), not read again"
    return None  # the same split and label, another generator: a shared real (or fake) set


def printable(rel: str) -> str:
    """A path or folder name as Arrow can store it: the bytes of a name that is not UTF-8 as `\\xNN` escapes."""
    return os.fsencode(rel).decode("utf-8", errors="backslashreplace")


def _rows(raw_dir: str, entries: list[tuple[str, Placement]]) -> Iterator[dict]:
    for rel, placement in entries:
        yield {
            # original bytes: JPEGs stay JPEGs (re-encoding would add a second compression trace)
            "image": {"bytes": (Path(raw_dir) / rel).read_bytes(), "path": printable(rel)},
            "label": placement.label,
            "generator": placement.generator,
            "subset": placement.subset,
        }


def plan_to_dataset_dict(raw_dir: str | os.PathLike, plan: ConversionPlan, cache_dir: str | None = None) -> datasets.DatasetDict:
    """Stream each split's files into Arrow (datasets cache), one row at a time."""
    if not plan.entries:
        raise ValueError(f"no usable images found under {raw_dir} ({len(plan.skipped)} files skipped{commonest_reasons(plan.skipped)})")
    base = plan.fingerprint(Path(raw_dir))
    splits = {}
    for split in sorted(plan.entries):
        try:
            splits[split] = datasets.Dataset.from_generator(
                _rows,
                features=ROW_FEATURES,
                gen_kwargs={"raw_dir": str(raw_dir), "entries": plan.entries[split]},
                split=datasets.NamedSplit(split),
                cache_dir=cache_dir,
                fingerprint=hashlib.sha256(f"{base}|{split}|{ROWS_FORMAT}".encode()).hexdigest()[:32],
            ).cast_column("image", FEATURES["image"])  # the same Arrow storage: a schema change, no rewrite
        except DatasetGenerationError as error:  # datasets wraps a full disk or a file gone since the plan in it
            cause = error.__cause__
            if not isinstance(cause, OSError):
                raise
            raise OSError(cause.errno, f"writing the {split} rows failed: {cause.strerror or cause}",
                          cause.filename) from error
    return datasets.DatasetDict(splits)


def identical_images(dataset_dict: datasets.DatasetDict) -> list[dict]:
    """Files of identical bytes that lie in different splits or carry different labels: copies (a file reached twice
    by links is read once already) that would test on a training image or show one image as both classes. Each
    group: `{"sha256", "files": ["split: path (label)", ...]}`, sorted."""
    first: dict[bytes, tuple[str, str, int]] = {}
    repeated: dict[bytes, list[tuple[str, str, int]]] = {}
    for split, dataset in dataset_dict.items():
        for batch in dataset.with_format("arrow").iter(batch_size=256):
            images = batch.column("image").combine_chunks()
            rows = zip(images.field("bytes").to_pylist(), images.field("path").to_pylist(), batch.column("label").to_pylist())
            for data, path, label in rows:
                digest = hashlib.sha256(data).digest()
                if digest in first:
                    repeated.setdefault(digest, [first[digest]]).append((split, path, label))
                else:
                    first[digest] = (split, path, label)
    groups = [
        {"sha256": digest.hex(), "files": [f"{split}: {path} ({LABEL_NAMES[label]})" for split, path, label in rows]}
        for digest, rows in repeated.items()
        if len({split for split, _, _ in rows}) > 1 or len({label for _, _, label in rows}) > 1
    ]
    return sorted(groups, key=lambda group: group["files"])


def identical_warning(identical: list[dict], shown: int) -> str:
    """The warning about `identical_images`' groups, the first `shown` of them listed."""
    listed = "\n".join(f"  {', '.join(group['files'])}" for group in identical[:shown])
    return (f"{len(identical)} images are stored as identical files in more than one split or under both labels (a "
            f"test image that is also a training image inflates the test numbers):\n{listed}"
            + ("\n  ..." if len(identical) > shown else ""))


def build_report(source: str, raw_dir: str | os.PathLike, plan: ConversionPlan, identical: list[dict]) -> dict:
    """Images per split, subset and label; every skipped file with its reason; copies across splits or labels."""
    counts: dict[str, dict[str, dict[str, int]]] = {}
    by_generator: dict[str, dict[str, dict[str, int]]] = {}
    for split, entries in sorted(plan.entries.items()):
        for _, placement in entries:
            for table, key in ((counts, placement.subset), (by_generator, placement.generator)):
                table.setdefault(split, {}).setdefault(key, {"real": 0, "fake": 0})[LABEL_NAMES[placement.label]] += 1
    return {
        "source": source,
        "raw_dir": str(raw_dir),
        "num_images": sum(len(e) for e in plan.entries.values()),
        "num_skipped": len(plan.skipped),
        "counts": counts,
        "counts_by_generator": by_generator,
        "skipped": plan.skipped,
        "identical_across_splits_or_labels": identical,
    }


def create_dataset_repo(repo_id: str) -> None:
    """Create the dataset repository `repo_id` (kept when it exists); `ValueError` naming why it cannot be."""
    from huggingface_hub import HfApi

    try:
        HfApi().create_repo(repo_id, repo_type="dataset", exist_ok=True)
    except Exception as error:  # noqa: BLE001 - offline, no login, no rights: before any conversion work
        raise ValueError(f"--push_to_hub: cannot create the dataset {repo_id} on the Hub ({error})") from error


def push_to_hub(dataset_dict: datasets.DatasetDict, repo_id: str) -> None:
    """Upload with `DatasetDict.push_to_hub`, which embeds the image bytes in the Hub's parquet files."""
    dataset_dict.push_to_hub(repo_id)


def load_converted(raw_dir: str | os.PathLike, rule: LayoutRule, cache_dir: str | None = None) -> datasets.DatasetDict:
    """Convert in-process, without writing an output folder (rows go to the datasets cache).

    There is no report.json here, so skipped files are logged as a warning: how many, and why.
    """
    plan = plan_conversion(raw_dir, rule)
    if plan.skipped:
        shown = "\n".join(f"  {entry['file']}: {entry['reason']}" for entry in plan.skipped[:10])
        more = f"\n  ... and {len(plan.skipped) - 10} more" if len(plan.skipped) > 10 else ""
        logger.warning(f"{raw_dir}: {len(plan.skipped)} files skipped, not read:\n{shown}{more}")
    dataset_dict = plan_to_dataset_dict(raw_dir, plan, cache_dir)
    identical = identical_images(dataset_dict)
    if identical:
        logger.warning(f"{raw_dir}: {identical_warning(identical, shown=10)}")
    return dataset_dict


def convert(
    source: str,
    raw_dir: str | os.PathLike,
    output_dir: str | os.PathLike,
    rule: LayoutRule,
    push_to_hub_id: str | None = None,
) -> datasets.DatasetDict:
    """Convert `raw_dir` with `rule`, write `output_dir` (load_from_disk-able) and its report.json.

    `output_dir` must not overlap `raw_dir` and must be new, empty or an earlier conversion's output (whose dataset
    is then replaced): nothing else in it is ever deleted or mixed with the new dataset.
    """
    out = Path(output_dir)
    check_output_dir(raw_dir, out)
    check_raw_dir(raw_dir)  # before the Hub: a misspelt folder must not leave an empty dataset repository
    created = [folder for folder in (out, *out.parents) if not folder.exists()]  # deepest first
    try:
        try:  # an output that cannot be made (below a file, read-only) fails now, not after every image was decoded
            out.mkdir(parents=True, exist_ok=True)
        except OSError as error:  # its parents may be made already: removed below
            raise OSError(f"cannot create the output folder {output_dir}: {error.strerror or error}") from error
        if push_to_hub_id:  # a missing login or network fails now, not after hours of converting
            create_dataset_repo(push_to_hub_id)
        for build in out.glob(f"{BUILD_PREFIX}*"):  # a killed run's (`finally` below never ran) goes; one in use by
            if is_left_over(build):  # a conversion into the same output running now stays
                shutil.rmtree(build, ignore_errors=True)
        # The build (datasets cache included) happens in a folder of its own, removed whatever happens, and made
        # before the images are checked: an output we cannot write into fails now, not after every image's decode.
        try:
            build = Path(tempfile.mkdtemp(prefix=BUILD_PREFIX, dir=out))
        except OSError as error:
            raise OSError(f"cannot write into the output folder {output_dir}: {error.strerror or error}") from error
        lock = FileLock(build / BUILD_LOCK)
        try:
            with lock:
                plan = plan_conversion(raw_dir, rule)
                check_nothing_in_the_way(out, set(plan.entries))
                dataset_dict = plan_to_dataset_dict(raw_dir, plan, cache_dir=str(build / "cache"))
                dataset_dict.save_to_disk(str(build / "data"))
                identical = identical_images(dataset_dict)
                del dataset_dict
                report = build_report(source, raw_dir, plan, identical)
                (build / "data" / REPORT_NAME).write_text(json.dumps(report, indent=1))
                _replace_dataset(out, build / "data")
        finally:  # after the lock's release: an open lock file cannot be deleted on Windows
            shutil.rmtree(build, ignore_errors=True)
    finally:
        for folder in created:  # a failed run leaves no folder it made
            if folder.is_dir() and not any(folder.iterdir()):
                folder.rmdir()
    result = datasets.load_from_disk(str(out))
    if push_to_hub_id:
        try:
            push_to_hub(result, push_to_hub_id)
        except Exception as error:  # noqa: BLE001 - network, rights, quota: the written dataset stays usable
            raise ValueError(
                f"{out} is written, but uploading it to {push_to_hub_id} failed ({type(error).__name__}: {error}); "
                f"upload it with datasets.load_from_disk({str(out)!r}).push_to_hub({push_to_hub_id!r})"
            ) from error
    return result


def is_left_over(build: Path) -> bool:
    """Whether a build folder found in an output belongs to no running conversion.

    A conversion holds the lock file in its build folder for as long as it runs, and the system releases a process's
    locks when it ends, a kill included: a lock that can be taken is a killed run's, however recent; one that cannot
    is a live conversion's, however long it has run (a GenImage conversion can take a day, and writing deep inside
    the folder does not touch the folder's own time). Only a folder that never got its lock file (its run was killed
    between making it and locking it, or it is an earlier version's) goes by age.
    """
    lock = build / BUILD_LOCK
    try:
        if not lock.exists():
            return time.time() - build.stat().st_mtime > UNLOCKED_BUILD_SECONDS
        with FileLock(lock, timeout=0):
            return True
    except Timeout:
        return False
    except OSError:  # removed meanwhile, or not ours to lock: leave it
        return False


def check_output_dir(raw_dir: str | os.PathLike, output_dir: str | os.PathLike) -> None:
    """Refuse an output folder that overlaps the raw tree or holds anything but an earlier conversion's output."""
    raw, out = Path(raw_dir).resolve(), Path(output_dir).resolve()
    if os.path.commonpath([raw, out]) in (str(raw), str(out)):
        raise ValueError(
            f"output {output_dir} and raw folder {raw_dir} overlap (one is inside the other): the dataset would "
            "replace or be read as raw files; write it to a folder of its own"
        )
    if Path(output_dir).is_symlink() and not out.exists():  # mkdir would answer "File exists" for it
        raise FileNotFoundError(f"output {output_dir} is a link to {os.readlink(output_dir)}, which does not exist")
    # a killed run's build folder is ours (and removed): it does not make an empty output "hold something"
    holds = out.is_dir() and any(not item.name.startswith(BUILD_PREFIX) for item in out.iterdir())
    if out.exists() and (not out.is_dir() or (holds and _previous_splits(out) is None)):
        raise FileExistsError(
            f"output {output_dir} exists and is not an earlier output of this converter (its report.json and "
            "dataset_dict.json): choose a new or empty folder; nothing in it was changed"
        )


def _previous_splits(out: Path) -> list[str] | None:
    """The split folders of the dataset an earlier conversion wrote into `out`, or None when it holds none."""
    try:
        report = json.loads((out / REPORT_NAME).read_text())
        splits = json.loads((out / "dataset_dict.json").read_text())["splits"]
    except (OSError, ValueError, KeyError, TypeError):
        return None
    is_report = isinstance(report, dict) and {"source", "num_images", "counts"} <= set(report)
    names_ok = isinstance(splits, list) and all(isinstance(s, str) and s and "/" not in s and s not in (".", "..")
                                                for s in splits)
    return splits if is_report and names_ok else None


def _owned(out: Path) -> set[str]:
    """The names in `out` that an earlier conversion wrote (its split folders, dataset_dict.json, report.json)."""
    return {*(_previous_splits(out) or []), "dataset_dict.json", REPORT_NAME}


def check_nothing_in_the_way(out: Path, names: set[str]) -> None:
    """Refuse, before any work, an output holding something of another origin where the new dataset's `names`
    (split folders) or its dataset_dict.json and report.json go."""
    owned = _owned(out)
    in_the_way = sorted(  # lexists: a broken link is in the way too
        name for name in names | {"dataset_dict.json", REPORT_NAME} if os.path.lexists(out / name) and name not in owned
    )
    if in_the_way:
        raise FileExistsError(f"output {out} already holds {in_the_way}, which are not this converter's: not replaced")


def _replace_dataset(out: Path, new: Path) -> None:
    """Move the freshly saved dataset (and report) from `new` into `out`, replacing an earlier conversion's.

    Only the earlier dataset's own files are removed, and only once the new ones are in place: the earlier ones are
    first moved aside (a rename), and moved back should anything stop the replacement, a Ctrl-C included. Other files
    in `out` stay as they are.
    """
    check_nothing_in_the_way(out, {item.name for item in new.iterdir()})
    aside = Path(tempfile.mkdtemp(prefix=BUILD_PREFIX, dir=out))
    moved_aside, moved_in = [], []
    try:
        for name in sorted(_owned(out)):
            if os.path.lexists(out / name):  # a file, a folder or a link (never followed)
                os.replace(out / name, aside / name)
                moved_aside.append(name)
        for item in sorted(new.iterdir()):
            os.replace(item, out / item.name)
            moved_in.append(item.name)
    except BaseException:
        for name in moved_in:  # back where they came from (removed with the build)
            os.replace(out / name, new / name)
        for name in moved_aside:
            os.replace(aside / name, out / name)
        raise
    finally:
        shutil.rmtree(aside, ignore_errors=True)


def hub_repo_argument(value: str) -> str:
    """`--push_to_hub`'s value: an empty one (an unset shell variable) is refused, not read as "no upload"."""
    if not value.strip():
        raise argparse.ArgumentTypeError("needs a repository id (USER/NAME), got an empty one")
    return value


def cli(convert_fn: Callable[..., datasets.DatasetDict], description: str, argv: list[str] | None = None) -> int:
    """`python datasets_scripts/<source>.py RAW_DIR --output_dir OUT [--push_to_hub ID]`; `description` is the
    converter's docstring, whose layout paragraphs `--help` shows as written."""
    parser = argparse.ArgumentParser(description=description, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("raw_dir", help="the folder holding the raw tree (its layout: above)")
    parser.add_argument("--output_dir", required=True)
    parser.add_argument("--push_to_hub", default=None, metavar="REPO_ID", type=hub_repo_argument)
    args = parser.parse_args(argv)
    try:
        dataset_dict = convert_fn(args.raw_dir, args.output_dir, args.push_to_hub)
    except (OSError, ValueError) as error:  # the user's folders, a full disk: a message, not a traceback
        parser.exit(2, f"{parser.prog}: error: {error}\n")
    report = json.loads((Path(args.output_dir) / REPORT_NAME).read_text())
    print(dataset_dict)
    why = commonest_reasons(report["skipped"])
    print(f"{report['num_images']} images written, {report['num_skipped']} files skipped{why} (see report.json)")
    # the rows evaluation reports: a wrapping folder taken for a generator shows here as one name where many were meant
    for split, generators in report["counts_by_generator"].items():
        print(f"{split}: {len(generators)} generator(s): {', '.join(generators)}")
    identical = report["identical_across_splits_or_labels"]
    if identical:
        print(f"warning: {identical_warning(identical, shown=3)}\n(every group in report.json)", file=sys.stderr)
    return 0


# The 20 LSUN object classes of ProGAN training data (ForenSynths, AIGIBench Setting-II).
PROGAN_CLASSES = frozenset(
    "airplane bicycle bird boat bottle bus car cat chair cow diningtable dog horse motorbike person "
    "pottedplant sheep sofa train tvmonitor".split()
)


def names_split_again(name: str, split: str, above_label: bool) -> bool:
    """Whether the folder `name`, right below a folder of `split`, names that split again: an archive's own folder
    (`test/CNN_synth_testset/`, as CNNDetection's instructions unzip it into `test/`) or the split repeated
    (`test/test/`, `test.zip` unzipped into `test/`). Taken for a generator, it would be the one generator of every file
    below it. Not ProGAN's LSUN class `train` right above the label folder (`above_label`: `train/train/0_real`),
    which is a class; one with folders below it (`train/train/sdv1.4/1_fake`) repeats the split."""
    return SPLIT_ALIASES.get(name.lower()) == split and not (above_label and name.lower() in PROGAN_CLASSES)


def split_below_generator(middle: tuple[str, ...]) -> str | None:
    """A folder below a generator's (`middle[0]`) that names a split, if any: `ADM/imagenet_ai_0508_adm/train` is a
    GenImage tree, whose training images would become test data. Not the LSUN class `train` right below ProGAN's
    test generator (`test/progan/train/0_real`)."""
    for depth, name in enumerate(middle[1:], start=1):
        if name.lower() in SPLIT_ALIASES and not (depth == 1 and name.lower() == "train" and middle[0].lower() == "progan"):
            return name
    return None


def leading_split(parts: tuple[str, ...], match: LabelMatch) -> tuple[str | None, int]:
    """The split named by the first folder, if any, and where the folders after it start: after a second folder
    naming the same split too (`names_split_again`)."""
    if match.index >= 1 and parts[0].lower() in SPLIT_ALIASES:
        split = SPLIT_ALIASES[parts[0].lower()]
        return split, 2 if match.index >= 2 and names_split_again(parts[1], split, match.index == 2) else 1
    return None, 0


def split_below_label(parts: tuple[str, ...], match: LabelMatch) -> str | None:
    """The split named by a folder below the label folder (`real/val/x.png`), if any: for trees split inside their
    label folders, whose validation images would otherwise become training data."""
    below = (name.lower() for name in parts[match.index + 1 : -1])
    return next((SPLIT_ALIASES[name] for name in below if name in SPLIT_ALIASES), None)
