"""MiniGenImage: a small real-vs-fake benchmark built locally, with no download.

Real images are random crops of the photographs shipped inside scikit-image and scikit-learn.
Fake images are content-matched: every fake is the output of a small generator network (trained
on the fly on real training crops) fed with a real crop, so the two classes differ in generator
fingerprints, not in content.  Each family synthesises pixels differently (see
`minigen_generators.py`), which reproduces the failure PiN-CLIP attacks: a detector trained on one
family does well on it and worse on families it never saw.

Splits
- ``train``: reals + fakes of ``DEFAULT_TRAIN_FAMILY`` only (GenImage protocol).
- ``train_multi``: reals + fakes of ``TRAIN_MULTI_FAMILIES`` (AIGIBench Setting-II style).
- ``validation``: held-out crops of the train family plus ``VALIDATION_FAMILY``, a family that no
  train or test split contains, for model selection without looking at test families.
- ``test_<family>`` for every family in ``FAMILIES``: balanced reals and fakes.

Reals carry the ``generator`` name of the family their split/pair belongs to (a real in
``test_tconv`` has generator ``"tconv"``), so per-generator evaluation can group both classes.

Reals of train / validation / test come from disjoint regions: every photo is cut into a grid of
tiles, each tile belongs to exactly one of the three pools, and a crop lies inside one tile. Each
pool is one draw of distinct crops, so no crop recurs within or across the splits that share it.
"""

from __future__ import annotations

import argparse
import glob
import hashlib
import io
import json
import os
import secrets
import shutil
import sys
import time
import warnings
import zlib
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path

import datasets
import numpy as np
import torch
from PIL import Image
from tqdm.auto import tqdm

if __package__:
    from . import minigen_generators as gens
    from .convert_common import LABEL_NAMES, create_dataset_repo, hub_repo_argument, push_to_hub
else:  # run as a script: python datasets_scripts/minigenimage.py
    import minigen_generators as gens
    from convert_common import LABEL_NAMES, create_dataset_repo, hub_repo_argument, push_to_hub

VERSION = "1.4.0"
FAMILIES: tuple[str, ...] = ("tconv", "nearest", "bilinear", "pixelshuffle", "gan", "diffusion")
DEFAULT_TRAIN_FAMILY = "tconv"
TRAIN_MULTI_FAMILIES: tuple[str, ...] = ("tconv", "gan", "diffusion")
VALIDATION_FAMILY = "vqae"
ALL_GENERATORS: tuple[str, ...] = FAMILIES + (VALIDATION_FAMILY,)
FEATURES = datasets.Features(
    {
        "image": datasets.Image(),
        "label": datasets.ClassLabel(names=LABEL_NAMES),
        "generator": datasets.Value("string"),
    }
)

# Natural colour photographs only: grey-scale or synthetic images would let a detector separate
# classes by colourfulness instead of by generator fingerprints.
SKIMAGE_PHOTOS = (
    "astronaut.png",
    "chelsea.png",
    "coffee.png",
    "hubble_deep_field.jpg",
    "ihc.png",
    "motorcycle_left.png",
    "retina.jpg",
    "rocket.jpg",
)
POOL_FRACTIONS = {"train": 0.55, "validation": 0.15, "test": 0.30}
# One torch thread: on a shared 2-core machine two threads spin against other processes and run
# several times slower, and a fixed thread count keeps the float reductions (and so the pixels)
# identical from run to run.
BUILD_THREADS = 1
CROP_SIZE = 64  # the benchmark's crops (what `train.py` builds and every README figure uses)
MIN_CROP_STD = 0.03  # reject nearly flat crops (black sky of hubble, retina border): no fingerprint


@dataclass(frozen=True)
class Sizes:
    """How many images and how much generator training a build uses (per class counts)."""

    train_per_class: int
    train_multi_per_class: int
    validation_per_class: int  # per validation generator (train family and VALIDATION_FAMILY)
    test_per_class: int  # per test family
    generator_steps: int
    generator_batch: int = 16
    generator_patch: int = 32  # generators are fully convolutional: train on small patches, apply to crops
    generator_train_crops: int = 1024


FULL_SIZES = Sizes(
    train_per_class=1500, train_multi_per_class=1500, validation_per_class=300, test_per_class=300, generator_steps=300
)
REDUCED_SIZES = Sizes(
    train_per_class=48,
    train_multi_per_class=24,
    validation_per_class=16,
    test_per_class=16,
    generator_steps=25,
    generator_train_crops=128,
)


def default_cache_dir() -> str:
    """`$PINCLIP_CACHE/minigenimage`, else `~/.cache/pinclip/minigenimage`."""
    root = os.environ.get("PINCLIP_CACHE") or os.path.join(os.path.expanduser("~"), ".cache", "pinclip")
    return os.path.join(root, "minigenimage")


def build_code_fingerprint() -> dict[str, str]:
    """What else decides the pixels besides the arguments: this module's and the generators' code (its constants:
    tile pools, crop filter, photo list), and the versions of the libraries that compute or supply them."""
    import PIL
    import skimage
    import sklearn

    code = hashlib.sha256()
    for module in (Path(__file__), Path(gens.__file__)):
        code.update(module.read_bytes())
    return {"code": code.hexdigest(), "torch": torch.__version__, "numpy": np.__version__, "pillow": PIL.__version__,
            "scikit-image": skimage.__version__, "scikit-learn": sklearn.__version__}


def cache_key(seed: int, crop_size: int, reduced: bool, sizes: Sizes) -> str:
    """Name of the cache entry: changes whenever anything that affects the pixels changes (the arguments, and
    `build_code_fingerprint`: an edited constant such as the tile pools served the earlier build)."""
    payload = json.dumps(
        {"version": VERSION, "seed": seed, "crop_size": crop_size, "reduced": reduced, "sizes": asdict(sizes),
         "build": build_code_fingerprint()},
        sort_keys=True,
    )
    return f"v{VERSION}-seed{seed}-crop{crop_size}-{'reduced' if reduced else 'full'}-" + hashlib.sha256(
        payload.encode()
    ).hexdigest()[:12]


def _rng(seed: int, *keys: str) -> np.random.Generator:
    """Independent stream per purpose, so changing one split's size never moves another's pixels."""
    return np.random.default_rng([seed] + [zlib.crc32(k.encode()) for k in keys])


def _torch_generator(seed: int, *keys: str) -> torch.Generator:
    return torch.Generator().manual_seed(int(_rng(seed, *keys).integers(2**62)))


# --------------------------------------------------------------------------------------------
# Real crops


@dataclass(frozen=True)
class Photo:
    """A bundled photograph the real images are cropped from; `name` is `library/file` (e.g. `skimage/coffee.png`)."""

    name: str
    pixels: np.ndarray  # H x W x 3 uint8


def load_photos() -> list[Photo]:
    """The colour photographs bundled with scikit-image and scikit-learn (no download)."""
    import skimage
    from sklearn.datasets import load_sample_images

    photos = []
    data_dir = Path(skimage.__file__).parent / "data"
    for name in SKIMAGE_PHOTOS:
        path = data_dir / name
        if not path.is_file():  # skipped, it moved every tile of the later photos into another split
            raise FileNotFoundError(f"scikit-image {skimage.__version__} bundles no {name}, one of the photographs "
                                    "MiniGenImage is cut from (SKIMAGE_PHOTOS): install a scikit-image that has them all")
        photos.append(Photo(f"skimage/{name}", np.asarray(Image.open(path).convert("RGB"))))
    samples = load_sample_images()
    for filename, pixels in zip(samples.filenames, samples.images):
        photos.append(Photo(f"sklearn/{Path(filename).name}", np.ascontiguousarray(pixels[..., :3])))
    return photos


Box = tuple[int, int, int, int]  # photo index, top, left, tile size


def tile_pools_digest(pools: dict[str, list[Box]]) -> str:
    """A fingerprint of a tile assignment (`assign_tiles`): two builds with the same one share no tile across splits."""
    return hashlib.sha256(json.dumps({split: pools[split] for split in sorted(pools)}).encode()).hexdigest()


def assign_tiles(photos: list[Photo], crop_size: int, seed: int) -> dict[str, list[Box]]:
    """Cut every photo into a grid of tiles and deal the tiles out to the train/validation/test pools."""
    tile = crop_size * 3 // 2  # leaves room for the crop to move inside its tile
    tiles: list[Box] = []
    for index, photo in enumerate(photos):
        height, width = photo.pixels.shape[:2]
        for row in range(height // tile):
            for col in range(width // tile):
                tiles.append((index, row * tile, col * tile, tile))
    order = _rng(seed, "tiles").permutation(len(tiles))
    n_val = max(1, round(len(tiles) * POOL_FRACTIONS["validation"]))
    n_test = max(1, round(len(tiles) * POOL_FRACTIONS["test"]))
    if len(tiles) < n_val + n_test + 1:
        raise ValueError(f"crop_size {crop_size} is too large: only {len(tiles)} tiles in the bundled photos")
    shuffled = [tiles[i] for i in order]
    return {
        "validation": shuffled[:n_val],
        "test": shuffled[n_val : n_val + n_test],
        "train": shuffled[n_val + n_test :],
    }


def sample_crops(
    photos: list[Photo], pool: list[Box], count: int, crop_size: int, rng: np.random.Generator, distinct: bool = False
) -> tuple[np.ndarray, list[list]]:
    """`count` random crops lying inside tiles of `pool`; returns (N, H, W, 3) uint8 and their boxes.

    With `distinct`, no box is drawn twice. A `ValueError` when the pool holds fewer than `count` boxes, or when the
    draws run out of boxes that are not nearly flat (each flat box is remembered once it has been drawn).
    """
    positions = sum((tile - crop_size + 1) ** 2 for _, _, _, tile in pool)
    if distinct and count > positions:
        raise ValueError(f"{count} distinct {crop_size}-pixel crops asked of a pool of {len(pool)} tiles that holds fewer")
    crops, boxes = [], []
    drawn, flat = set(), set()
    while len(crops) < count:
        if len(flat) + (len(drawn) if distinct else 0) == positions:
            raise ValueError(
                f"{count} {'distinct ' if distinct else ''}{crop_size}-pixel crops asked of a pool of {len(pool)} tiles "
                f"that holds {positions - len(flat)} not nearly flat (std ≥ {MIN_CROP_STD} of the range)"
            )
        photo_index, top, left, tile = pool[rng.integers(len(pool))]
        y = top + int(rng.integers(tile - crop_size + 1))
        x = left + int(rng.integers(tile - crop_size + 1))
        if (photo_index, y, x) in flat or (distinct and (photo_index, y, x) in drawn):
            continue
        crop = photos[photo_index].pixels[y : y + crop_size, x : x + crop_size]
        if crop.std() / 255.0 < MIN_CROP_STD:
            flat.add((photo_index, y, x))
            continue
        drawn.add((photo_index, y, x))
        crops.append(crop)
        boxes.append([photos[photo_index].name, y, x, crop_size])
    return np.stack(crops) if crops else np.zeros((0, crop_size, crop_size, 3), np.uint8), boxes


def _to_tensor(crops: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(crops).permute(0, 3, 1, 2).float().div(255.0)


def _to_uint8(batch: torch.Tensor) -> np.ndarray:
    return batch.mul(255.0).round().clamp(0, 255).to(torch.uint8).permute(0, 2, 3, 1).numpy()


# --------------------------------------------------------------------------------------------
# Generators


@contextmanager
def _cpu_threads(n: int) -> Iterator[None]:
    """Pin the torch thread count during the build (results depend on it) and restore it after."""
    previous = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


def train_generators(
    families: tuple[str, ...], train_crops: np.ndarray, sizes: Sizes, seed: int, show_progress: bool = True
) -> dict[str, torch.nn.Module]:
    """Train one network per family on random patches of the training crops."""
    patch = sizes.generator_patch
    patches = _to_tensor(train_crops[:, :patch, :patch]).contiguous()
    models = {}
    with tqdm(total=sizes.generator_steps * len(families), desc="training generators", disable=not show_progress) as bar:
        for family in families:
            # the family's weight init draws from the global torch RNG: seed it without leaking state
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(int(_rng(seed, "init", family).integers(2**62)))
                models[family] = gens.train_generator(
                    family,
                    patches,
                    steps=sizes.generator_steps,
                    batch_size=sizes.generator_batch,
                    generator=_torch_generator(seed, "train", family),
                    progress=lambda: bar.update(1),
                )
    return models


def make_fakes(family: str, model: torch.nn.Module, crops: np.ndarray, seed: int, key: str) -> np.ndarray:
    """Content-matched fakes: the family's network applied to real crops, in batches."""
    generator = _torch_generator(seed, "generate", family, key)
    out = [gens.generate(family, model, _to_tensor(crops[i : i + 256]), generator) for i in range(0, len(crops), 256)]
    return _to_uint8(torch.cat(out)) if out else crops.copy()


# --------------------------------------------------------------------------------------------
# Splits


@dataclass
class SplitPlan:
    """One split: (real crops, fake crops) per generator, and where the crops came from."""

    parts: list[tuple[str, np.ndarray, np.ndarray]]
    real_boxes: list[list]
    fake_source_boxes: list[list]


def plan_splits(
    photos: list[Photo], pools: dict[str, list[Box]], models: dict[str, torch.nn.Module], sizes: Sizes, crop_size: int, seed: int
) -> dict[str, SplitPlan]:
    """Decide every split's real crops and generate its fakes from other crops of the same pool (none drawn twice)."""
    wanted: dict[str, tuple[str, list[tuple[str, int]]]] = {
        "train": ("train", [(DEFAULT_TRAIN_FAMILY, sizes.train_per_class)]),
        "train_multi": ("train", _spread(TRAIN_MULTI_FAMILIES, sizes.train_multi_per_class)),
        "validation": (
            "validation",
            [(DEFAULT_TRAIN_FAMILY, sizes.validation_per_class), (VALIDATION_FAMILY, sizes.validation_per_class)],
        ),
    }
    for family in FAMILIES:
        wanted[f"test_{family}"] = ("test", [(family, sizes.test_per_class)])
    # One draw of distinct crops per pool, dealt out in order: no crop repeats within or across the splits of a pool,
    # and none is both a real and a fake's source.
    drawn: dict[str, tuple[np.ndarray, list[list]]] = {}
    for pool_name in pools:
        total = sum(2 * count for pool, per_family in wanted.values() if pool == pool_name for _, count in per_family)
        drawn[pool_name] = sample_crops(photos, pools[pool_name], total, crop_size, _rng(seed, "crops", pool_name), distinct=True)
    dealt = dict.fromkeys(pools, 0)
    plans = {}
    for split, (pool_name, per_family) in wanted.items():
        plan = SplitPlan([], [], [])
        pixels, boxes = drawn[pool_name]
        for family, count in per_family:
            start = dealt[pool_name]
            reals, sources = slice(start, start + count), slice(start + count, start + 2 * count)
            dealt[pool_name] = start + 2 * count
            fakes = make_fakes(family, models[family], pixels[sources], seed, split)
            plan.parts.append((family, pixels[reals], fakes))
            plan.real_boxes += boxes[reals]
            plan.fake_source_boxes += boxes[sources]
        plans[split] = plan
    return plans


def _spread(families: tuple[str, ...], total: int) -> list[tuple[str, int]]:
    """Split `total` per-class images as evenly as possible over `families`."""
    base, extra = divmod(total, len(families))
    return [(family, base + (i < extra)) for i, family in enumerate(families)]


def encode_png(pixels: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="PNG")
    return buffer.getvalue()


def plan_to_dataset(split: str, plan: SplitPlan, seed: int, show_progress: bool = True) -> datasets.Dataset:
    """PNG-encode both classes (lossless, same format: no format shortcut) and shuffle rows."""
    rows = [
        (generator, label, pixels)
        for generator, reals, fakes in plan.parts
        for label, images in ((0, reals), (1, fakes))
        for pixels in images
    ]
    order = _rng(seed, "order", split).permutation(len(rows))
    columns: dict[str, list] = {"image": [], "label": [], "generator": []}
    for i in tqdm(order, desc=f"encoding {split}", disable=not show_progress, leave=False):
        generator, label, pixels = rows[i]
        columns["image"].append({"bytes": encode_png(pixels), "path": None})
        columns["label"].append(label)
        columns["generator"].append(generator)
    return datasets.Dataset.from_dict(columns, features=FEATURES, split=datasets.NamedSplit(split))


# --------------------------------------------------------------------------------------------
# Build, cache, export


def count_rows(dataset_dict: datasets.DatasetDict) -> dict[str, dict[str, dict[str, int]]]:
    """Images per split, generator and label name."""
    counts: dict[str, dict[str, dict[str, int]]] = {}
    for split, ds in dataset_dict.items():
        per = Counter(zip(ds["generator"], ds["label"]))
        counts[split] = {}
        for (generator, label), n in sorted(per.items()):
            counts[split].setdefault(generator, {})[LABEL_NAMES[label]] = n
    return counts


def _build(seed: int, crop_size: int, reduced: bool, sizes: Sizes, show_progress: bool) -> tuple[datasets.DatasetDict, dict]:
    start = time.perf_counter()
    with _cpu_threads(BUILD_THREADS):
        photos = load_photos()
        pools = assign_tiles(photos, crop_size, seed)
        generator_crops, _ = sample_crops(
            photos, pools["train"], sizes.generator_train_crops, crop_size, _rng(seed, "generator-crops")
        )
        models = train_generators(ALL_GENERATORS, generator_crops, sizes, seed, show_progress)
        plans = plan_splits(photos, pools, models, sizes, crop_size, seed)
    dataset_dict = datasets.DatasetDict(
        {split: plan_to_dataset(split, plan, seed, show_progress) for split, plan in plans.items()}
    )
    report = {
        "name": "MiniGenImage",
        "version": VERSION,
        "seed": seed,
        "crop_size": crop_size,
        "reduced": reduced,
        "sizes": asdict(sizes),
        "families": list(FAMILIES),
        "default_train_family": DEFAULT_TRAIN_FAMILY,
        "train_multi_families": list(TRAIN_MULTI_FAMILIES),
        "validation_family": VALIDATION_FAMILY,
        "photos": [p.name for p in photos],
        "build_seconds": round(time.perf_counter() - start, 2),
        "counts": count_rows(dataset_dict),
        # [photo, top, left, size] of every real crop and of every crop fed to a generator
        "real_crops": {split: plan.real_boxes for split, plan in plans.items()},
        "fake_source_crops": {split: plan.fake_source_boxes for split, plan in plans.items()},
    }
    return dataset_dict, report


def build_minigenimage(
    output_dir: str | None = None,
    seed: int = 0,
    crop_size: int = CROP_SIZE,
    reduced: bool = False,
    cache_dir: str | None = None,
    sizes: Sizes | None = None,
    show_progress: bool = True,
) -> datasets.DatasetDict:
    """Build (or load from the cache) MiniGenImage and return it as a `DatasetDict`.

    The build is cached under `cache_dir` (default: see `default_cache_dir`) keyed by version,
    seed, crop size, reduced flag, sizes and `build_code_fingerprint`; later calls load it in seconds. With `output_dir`,
    the dataset is also written there with `save_to_disk`, next to a `report.json`.
    """
    if crop_size < 2 or crop_size % 2:
        # the generators halve and double the crop: an odd one would come back a pixel smaller than its reals,
        # a size shortcut for any detector
        raise ValueError(f"crop_size must be an even number of pixels, got {crop_size}")
    if output_dir is not None and (problem := output_problem(Path(output_dir))):  # before the build, not after it
        raise FileExistsError(problem)
    sizes = sizes or (REDUCED_SIZES if reduced else FULL_SIZES)
    entry = Path(cache_dir or default_cache_dir()) / cache_key(seed, crop_size, reduced, sizes)
    try:  # before the build, not after minutes of it
        entry.parent.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise unusable_cache(entry.parent, error) from None
    remove_stale_staging(entry)
    dataset_dict = load_cached(entry)
    if dataset_dict is None:
        try:  # written beside the entry and renamed, so an interrupted build never looks like a cached one; made
            staging = staging_folder(entry)  # before the build: a cache others made, read-only to us, fails now
        except OSError as error:
            raise unusable_cache(entry.parent, error) from None
        try:
            dataset_dict, report = _build(seed, crop_size, reduced, sizes, show_progress)
            dataset_dict.save_to_disk(str(staging / "data"))
            (staging / "report.json").write_text(json.dumps(report, indent=1))
            (staging / CHECKSUMS).write_text(json.dumps(file_digests(staging), indent=1))
            try:
                os.replace(staging, entry)
            except OSError:  # a concurrent build renamed its entry into place first: keep theirs
                if not (entry / "report.json").is_file():
                    raise
        finally:
            shutil.rmtree(staging, ignore_errors=True)  # gone after the rename; a failed build's leftovers are not
        dataset_dict = datasets.load_from_disk(str(entry / "data"))
    if output_dir is not None:
        write_output(dataset_dict, entry / "report.json", Path(output_dir))
    return dataset_dict


def unusable_cache(folder: Path, error: OSError) -> ValueError:
    """The error for a cache folder that cannot be made or written: a setting to change (ValueError: the scripts'
    exit status 2), not a failing disk."""
    return ValueError(f"cannot use {folder} as MiniGenImage's cache ({error.strerror or error}): set PINCLIP_CACHE "
                      "(or train.py's --minigenimage_cache_dir) to a folder you can write")


def unwritable_problem(flag: str, folder: Path, beside: bool = False) -> str | None:
    """Why a run cannot write `folder` (or, `beside`, a folder next to it: the staging folder renamed onto it), or
    None: checked before the build, whose minute it would otherwise end with a traceback. The nearest folder that
    exists must be one, and writable."""
    existing = Path(os.path.abspath(folder))
    if beside:
        existing = existing.parent
    while not existing.exists() and not existing.is_symlink():
        existing = existing.parent
    if not existing.is_dir():
        return f"{flag} {folder}: {existing} is a file, not a folder"
    if not os.access(existing, os.W_OK | os.X_OK):
        return f"{flag} {folder}: cannot write into {existing} (permission denied)"
    return None


def output_problem(output_dir: Path) -> str | None:
    """Why `output_dir` cannot take a build (it is replaced whole), or None: it must be new, empty or an earlier
    output of this script (its report.json, dataset_dict.json and split folders, nothing else), in a folder this
    process can write."""
    if problem := unwritable_problem("--output_dir", output_dir, beside=True):
        return problem
    here, target = Path.cwd().resolve(), output_dir.resolve()
    if here == target or target in here.parents:  # renamed away whole: the shell would sit in a deleted folder
        return f"--output_dir {output_dir} is the working folder or holds it, which the build replaces: give another"
    if not output_dir.exists():
        return None
    if not output_dir.is_dir():
        return f"--output_dir {output_dir} is a file"
    names = {path.name for path in output_dir.iterdir()}
    try:
        earlier = json.loads((output_dir / "report.json").read_text()).get("name") == "MiniGenImage"
        splits = json.loads((output_dir / "dataset_dict.json").read_text())["splits"]
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        earlier, splits = False, []
    if names and not (earlier and names <= {"report.json", "dataset_dict.json", *splits}):
        return (f"--output_dir {output_dir} holds files that are not an earlier MiniGenImage output: it is replaced "
                "whole, so give a new or empty folder")
    return None


def write_output(dataset_dict: datasets.DatasetDict, report: Path, output_dir: Path) -> None:
    """`save_to_disk` into a folder beside `output_dir`, then renamed onto it: an interrupted write leaves the earlier
    output as it was (written in place, a Ctrl-C left splits of two builds, which loaded as one dataset).
    `build_minigenimage` has checked `output_problem` before its build."""
    remove_stale_staging(output_dir)
    staging = staging_folder(output_dir)
    try:
        dataset_dict.save_to_disk(str(staging / "data"))
        shutil.copyfile(report, staging / "data" / "report.json")
        if output_dir.exists():
            os.replace(output_dir, staging / "earlier")
        try:
            os.replace(staging / "data", output_dir)
        except BaseException:
            if (staging / "earlier").exists():  # back in place
                os.replace(staging / "earlier", output_dir)
            raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)


# Beside an entry's report.json and data/: the SHA-256 of every file the build wrote.
CHECKSUMS = "checksums.json"


def file_digests(folder: Path) -> dict[str, str]:
    """The SHA-256 of every file under `folder`, keyed by its path relative to `folder`."""
    return {path.relative_to(folder).as_posix(): hashlib.sha256(path.read_bytes()).hexdigest()
            for path in sorted(folder.rglob("*")) if path.is_file()}


def changed_files(entry: Path) -> list[str]:
    """The files of a cache entry that are missing or no longer hold the bytes its build wrote (per `CHECKSUMS`; a
    record that leaves out the build's report or dataset index counts as changed itself)."""
    recorded = json.loads((entry / CHECKSUMS).read_text())
    if not {"report.json", "data/dataset_dict.json"} <= set(recorded):
        return [CHECKSUMS]
    found = file_digests(entry)
    return [name for name, digest in recorded.items() if found.get(name) != digest]


def load_cached(entry: Path) -> datasets.DatasetDict | None:
    """The build cached in `entry`, or None when there is none. An entry whose files are not the bytes its build
    wrote is moved out of the way with a warning, to be built again, instead of being read as MiniGenImage: an Arrow
    file cut short can load with fewer rows and no error, and a flipped byte inside an image changes its pixels or
    breaks it only when it is decoded, mid-training or mid-evaluation."""
    if not entry.exists():
        return None
    try:  # a build is renamed into place with its checksums: an entry without them is damaged too
        changed = changed_files(entry)
        if not changed:
            return datasets.load_from_disk(str(entry / "data"))
        shown = ", ".join(changed[:3]) + (f" and {len(changed) - 3} more" if len(changed) > 3 else "")
        problem = f"{shown}: missing, or not the bytes {CHECKSUMS} records"
    # pyarrow's errors are OSError or ValueError
    except (OSError, ValueError, AttributeError) as error:
        problem = f"it cannot be read: {type(error).__name__}: {error}"
    try:  # moved out of the way to be rebuilt: a cache others made, read-only to us, cannot take the rebuild
        damaged = staging_folder(entry)
    except OSError as error:
        raise ValueError(f"MiniGenImage's cache entry {entry} is damaged ({problem}), and "
                         f"{unusable_cache(entry.parent, error)}") from None
    warnings.warn(f"MiniGenImage's cache entry {entry} is damaged ({problem}): building it again", stacklevel=3)
    try:
        os.replace(entry, damaged / entry.name)
    except FileNotFoundError:  # another process moved it first
        pass
    shutil.rmtree(damaged, ignore_errors=True)
    return None


def staging_folder(target: Path) -> Path:
    """A new empty folder beside `target` (named after it), to write into and rename onto it. Made with mkdir, so
    with the umask's permissions: `tempfile.mkdtemp`'s 0700 would stay on the renamed folder and shut other users
    out of a shared cache or model folder."""
    target.parent.mkdir(parents=True, exist_ok=True)
    while True:
        staging = target.with_name(f".{target.name}.{os.getpid()}.{secrets.token_hex(4)}")
        try:
            staging.mkdir()
            return staging
        except FileExistsError:
            continue


# No build takes a day: a staging folder older than this was left by a killed process.
STALE_STAGING_SECONDS = 24 * 3600


def remove_stale_staging(target: Path) -> None:
    """Remove the staging folders of `target` that killed processes left (`staging_folder`'s, over a day old)."""
    for staging in target.parent.glob(f".{glob.escape(target.name)}.*"):
        try:
            stale = time.time() - staging.stat().st_mtime > STALE_STAGING_SECONDS
        except OSError:  # removed meanwhile
            continue
        if stale:
            shutil.rmtree(staging, ignore_errors=True)


def load_report(
    seed: int = 0, crop_size: int = CROP_SIZE, reduced: bool = False, cache_dir: str | None = None,
    sizes: Sizes | None = None,
) -> dict:
    """The `report.json` of a cached build (build it first with `build_minigenimage`, with the same arguments)."""
    sizes = sizes or (REDUCED_SIZES if reduced else FULL_SIZES)
    entry = Path(cache_dir or default_cache_dir()) / cache_key(seed, crop_size, reduced, sizes)
    return json.loads((entry / "report.json").read_text())


def export_folders(dataset_dict: datasets.DatasetDict, directory: str, report: dict | None = None) -> dict[str, int]:
    """Write the research folder layout: `DIR/test/<family>/{0_real,1_fake}/NNNNNN.png` for every
    test split and `DIR/<split>/<generator>/{0_real,1_fake}/...` for train, train_multi and
    validation, into a new or empty DIR (`check_export_dir`). With `report` (the build's), `DIR/report.json` records
    the build: train.py reads its seed to know which tiles the splits come from. Returns the files written per split."""
    check_export_dir(directory)
    written = {}
    for split, ds in dataset_dict.items():
        top = Path(directory) / ("test" if split.startswith("test_") else split)
        raw = ds.cast_column("image", datasets.Image(decode=False))
        for i, row in enumerate(raw):
            folder = top / row["generator"] / f"{row['label']}_{LABEL_NAMES[row['label']]}"
            folder.mkdir(parents=True, exist_ok=True)
            (folder / f"{i:06d}.png").write_bytes(row["image"]["bytes"])  # stored PNG bytes, no re-encode
        written[split] = len(ds)
    if report is not None:
        (Path(directory) / "report.json").write_text(json.dumps(report, indent=1))
    return written


def check_export_dir(directory: str) -> None:
    """Refuse an export folder that is a file or holds anything: files of another build named like this one's would be
    replaced and the rest would stay beside them, mixing two builds' splits."""
    folder = Path(directory)
    if folder.exists() and (not folder.is_dir() or any(folder.iterdir())):
        raise FileExistsError(
            f"--export_folders {directory} is not an empty folder: choose a new or empty one (nothing in it was changed)"
        )
    if problem := unwritable_problem("--export_folders", folder):
        raise FileExistsError(problem)


# The demo's examples: the training family, one it half-catches and the hardest (README, "Results on MiniGenImage").
EXAMPLE_FAMILIES = ("tconv", "gan", "diffusion")


def export_examples(dataset_dict: datasets.DatasetDict, directory: str | Path) -> list[Path]:
    """The demo's example images: for each of `EXAMPLE_FAMILIES`, the first real (`real_<n>.png`) and the first fake
    (`fake_<family>.png`) of its test split, in row order (chosen by position, not by what a detector says)."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    written = []
    for number, family in enumerate(EXAMPLE_FAMILIES, start=1):
        raw = dataset_dict[f"test_{family}"].cast_column("image", datasets.Image(decode=False))
        labels = raw["label"]
        for label, name in ((0, f"real_{number}.png"), (1, f"fake_{family}.png")):
            (directory / name).write_bytes(raw[labels.index(label)]["image"]["bytes"])  # stored PNG bytes
            written.append(directory / name)
    return written


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--output_dir", required=True)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--crop_size", type=int, default=CROP_SIZE)
    parser.add_argument("--reduced", action="store_true", help="tiny build for tests (seconds)")
    parser.add_argument("--cache_dir", default=None)
    parser.add_argument("--export_folders", default=None, metavar="DIR")
    parser.add_argument("--export_examples", default=None, metavar="DIR", help="the demo's six example images")
    parser.add_argument("--push_to_hub", default=None, metavar="REPO_ID", type=hub_repo_argument)
    args = parser.parse_args(argv)
    if problem := output_problem(Path(args.output_dir)):  # before the Hub and the build
        parser.error(problem)
    if args.export_folders:
        try:  # before the build
            check_export_dir(args.export_folders)
        except FileExistsError as error:
            parser.error(str(error))
        export, output = Path(args.export_folders).resolve(), Path(args.output_dir).resolve()
        if export == output or export in output.parents:
            parser.error(f"--export_folders {args.export_folders} holds --output_dir {args.output_dir}: give them "
                         "folders of their own")
    if args.export_examples and (problem := unwritable_problem("--export_examples", Path(args.export_examples))):
        parser.error(problem)  # before the build
    if args.push_to_hub:
        try:  # a missing login or network fails now, not after the build (as the converters do)
            create_dataset_repo(args.push_to_hub)
        except ValueError as error:
            parser.exit(2, f"{parser.prog}: error: {error}\n")
    try:
        dataset_dict = build_minigenimage(
            args.output_dir, seed=args.seed, crop_size=args.crop_size, reduced=args.reduced, cache_dir=args.cache_dir
        )
    except ValueError as error:  # an odd --crop_size, a cache folder that cannot be made
        parser.exit(2, f"{parser.prog}: error: {error}\n")
    print(dataset_dict)
    if args.export_folders:
        report = load_report(args.seed, args.crop_size, args.reduced, args.cache_dir)
        export_folders(dataset_dict, args.export_folders, report)
    if args.export_examples:
        export_examples(dataset_dict, args.export_examples)
    if args.push_to_hub:
        try:
            push_to_hub(dataset_dict, args.push_to_hub)
        except Exception as error:  # noqa: BLE001 - network, rights, quota: the written dataset stays usable
            parser.exit(1, f"{parser.prog}: error: {args.output_dir} is written, but uploading it to {args.push_to_hub} "
                           f"failed ({type(error).__name__}: {error}); rerun with --push_to_hub to retry\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
