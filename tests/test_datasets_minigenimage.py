"""MiniGenImage: reduced build, splits, balance, PNG storage, disjoint crops, cache, determinism."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import datasets
import numpy as np
import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))

from datasets_scripts import folder, minigenimage as mgi  # noqa: E402

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
TINY = mgi.Sizes(
    train_per_class=4,
    train_multi_per_class=3,
    validation_per_class=2,
    test_per_class=2,
    generator_steps=3,
    generator_train_crops=16,
)


@pytest.fixture(scope="session")
def cache_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("minigen_cache")


@pytest.fixture(scope="session")
def reduced(cache_dir: Path) -> datasets.DatasetDict:
    return mgi.build_minigenimage(reduced=True, cache_dir=str(cache_dir), show_progress=False)


@pytest.fixture(scope="session")
def report(reduced: datasets.DatasetDict, cache_dir: Path) -> dict:
    return mgi.load_report(reduced=True, cache_dir=str(cache_dir))


def _raw(ds: datasets.Dataset) -> datasets.Dataset:
    return ds.cast_column("image", datasets.Image(decode=False))


def test_interface_constants():
    assert len(mgi.FAMILIES) >= 6 and len(set(mgi.FAMILIES)) == len(mgi.FAMILIES)
    assert {"tconv", "nearest", "bilinear", "pixelshuffle", "gan"} <= set(mgi.FAMILIES)
    assert mgi.DEFAULT_TRAIN_FAMILY == "tconv"
    assert mgi.VALIDATION_FAMILY not in mgi.FAMILIES
    assert set(mgi.TRAIN_MULTI_FAMILIES) <= set(mgi.FAMILIES) and len(mgi.TRAIN_MULTI_FAMILIES) >= 2


def test_splits_features_and_families(reduced):
    expected = {"train", "train_multi", "validation"} | {f"test_{f}" for f in mgi.FAMILIES}
    assert set(reduced) == expected
    for split, ds in reduced.items():
        assert set(ds.column_names) == {"image", "label", "generator"}
        assert ds.features["label"].names == ["real", "fake"]
        assert isinstance(ds.features["image"], datasets.Image)
    assert set(reduced["train"]["generator"]) == {mgi.DEFAULT_TRAIN_FAMILY}
    assert set(reduced["train_multi"]["generator"]) == set(mgi.TRAIN_MULTI_FAMILIES)
    assert set(reduced["validation"]["generator"]) == {mgi.DEFAULT_TRAIN_FAMILY, mgi.VALIDATION_FAMILY}
    for family in mgi.FAMILIES:
        assert set(reduced[f"test_{family}"]["generator"]) == {family}
    tested = {g for split, ds in reduced.items() if split.startswith("test_") for g in ds["generator"]}
    assert tested == set(mgi.FAMILIES) and mgi.VALIDATION_FAMILY not in tested


def test_every_split_is_balanced_per_generator(reduced):
    for split, ds in reduced.items():
        counts = Counter(zip(ds["generator"], ds["label"]))
        for generator in set(ds["generator"]):
            assert counts[(generator, 0)] == counts[(generator, 1)] > 0, (split, generator, counts)
    assert reduced["test_tconv"].num_rows == 2 * mgi.REDUCED_SIZES.test_per_class


def test_both_classes_are_stored_as_png_and_decode_to_crops(reduced):
    for split in ("train", "test_gan", "validation"):
        raw = _raw(reduced[split])
        for row in raw:
            assert row["image"]["bytes"][:8] == PNG_SIGNATURE, (split, row["label"])
        assert set(raw["label"]) == {0, 1}
    image = reduced["test_diffusion"][0]["image"]
    assert image.size == (64, 64) and image.mode == "RGB"


def _overlap(a: list, b: list) -> bool:
    name_a, ya, xa, sa = a
    name_b, yb, xb, sb = b
    return name_a == name_b and ya < yb + sb and yb < ya + sa and xa < xb + sb and xb < xa + sa


def test_train_validation_and_test_crops_are_disjoint(report, reduced):
    def boxes(prefixes: tuple[str, ...]) -> list:
        return [
            box
            for table in ("real_crops", "fake_source_crops")
            for split, split_boxes in report[table].items()
            if split.startswith(prefixes)
            for box in split_boxes
        ]

    train, validation, test = boxes(("train",)), boxes(("validation",)), boxes(("test_",))
    assert train and validation and test
    for held_out in (validation, test):
        assert not any(_overlap(a, b) for a in train for b in held_out)
    assert not any(_overlap(a, b) for a in validation for b in test)
    # and, checked on the stored pixels themselves, no test real equals a training real
    train_reals = {r["image"]["bytes"] for r in _raw(reduced["train"]) if r["label"] == 0}
    for family in mgi.FAMILIES:
        assert not any(r["image"]["bytes"] in train_reals for r in _raw(reduced[f"test_{family}"]) if r["label"] == 0)


def test_fakes_are_content_matched_and_hold_their_sources_pixel_values():
    photos = mgi.load_photos()
    pools = mgi.assign_tiles(photos, 64, seed=0)
    crops, _ = mgi.sample_crops(photos, pools["train"], 40, 64, np.random.default_rng(0))
    torch = pytest.importorskip("torch")
    torch.manual_seed(0)
    with mgi._cpu_threads(mgi.BUILD_THREADS):
        patches = mgi._to_tensor(crops[:32, :32, :32]).contiguous()
        model = mgi.gens.train_generator("tconv", patches, steps=25, batch_size=16, generator=torch.Generator())
        source = mgi._to_tensor(crops[32:])
        fake = mgi.gens.generate("tconv", model, source, torch.Generator().manual_seed(0))
    # each fake holds exactly its source's pixel values per channel (no colour, contrast or saturation cue) ...
    fake_pixels, source_pixels = mgi._to_uint8(fake), mgi._to_uint8(source)
    for f, s in zip(fake_pixels, source_pixels):
        for channel in range(3):
            assert np.array_equal(np.sort(f[..., channel], axis=None), np.sort(s[..., channel], axis=None))
    assert (fake_pixels >= 250).any(axis=(1, 2, 3)).sum() == (source_pixels >= 250).any(axis=(1, 2, 3)).sum() > 0
    # ... and its content: even after a few training steps, correlated with the crop it came from
    correlations = [np.corrcoef(f.flatten().numpy(), s.flatten().numpy())[0, 1] for f, s in zip(fake, source)]
    assert np.mean(correlations) > 0.5
    assert not torch.equal(mgi._to_tensor(mgi._to_uint8(fake)), source)


def test_report_counts_match_dataset(report, reduced):
    assert report["version"] == mgi.VERSION and report["reduced"] is True
    assert report["families"] == list(mgi.FAMILIES)
    assert report["counts"] == mgi.count_rows(reduced)
    assert report["build_seconds"] < 60


def test_cache_is_reused_without_rebuilding(reduced, cache_dir, monkeypatch):
    def fail(*args, **kwargs):
        raise AssertionError("cache miss: the dataset was rebuilt")

    monkeypatch.setattr(mgi, "_build", fail)
    start = time.perf_counter()
    again = mgi.build_minigenimage(reduced=True, cache_dir=str(cache_dir), show_progress=False)
    assert time.perf_counter() - start < 10
    assert _raw(again["test_gan"])["image"] == _raw(reduced["test_gan"])["image"]
    with pytest.raises(AssertionError, match="cache miss"):  # another seed is another cache entry
        mgi.build_minigenimage(seed=1, reduced=True, cache_dir=str(cache_dir), show_progress=False)


def test_cache_writes_survive_a_concurrent_build_and_leave_no_leftovers(reduced, report, monkeypatch, tmp_path):
    monkeypatch.setattr(mgi, "_build", lambda *args: (reduced, report))  # the build itself is tested above

    def rename_after_a_faster_build(staging, entry):  # another process renamed its copy into place first
        shutil.copytree(staging, entry)
        raise OSError(39, "Directory not empty")

    monkeypatch.setattr(mgi.os, "replace", rename_after_a_faster_build)
    got = mgi.build_minigenimage(reduced=True, cache_dir=str(tmp_path / "race"), show_progress=False)
    assert got["test_gan"].num_rows == reduced["test_gan"].num_rows
    assert [entry.name for entry in (tmp_path / "race").iterdir()] == [mgi.cache_key(0, 64, True, mgi.REDUCED_SIZES)]

    class FullDisk:
        def save_to_disk(self, path):
            Path(path).mkdir(parents=True)
            raise OSError(28, "No space left on device")

    monkeypatch.setattr(mgi, "_build", lambda *args: (FullDisk(), report))
    with pytest.raises(OSError, match="No space left"):
        mgi.build_minigenimage(seed=3, reduced=True, cache_dir=str(tmp_path / "full"), show_progress=False)
    assert list((tmp_path / "full").iterdir()) == []  # the half-written staging folder is gone


@pytest.mark.parametrize("damage", ["data file cut short", "report.json deleted", "a byte of an image flipped"])
def test_a_damaged_cache_entry_is_built_again_not_read(reduced, cache_dir, tmp_path, damage):
    """A data file cut at a record-batch boundary loaded with fewer rows and no error: a third of a test split was
    scored and reported as MiniGenImage. An entry without its report.json was built again on every run, which then
    failed to rename the build onto it. A flipped byte inside an image's compressed pixels loaded with the right row
    counts, and changed the image or broke it when it was decoded."""
    copy = tmp_path / "cache"
    shutil.copytree(cache_dir, copy)
    entry = copy / mgi.cache_key(0, mgi.CROP_SIZE, True, mgi.REDUCED_SIZES)
    (arrow,) = (entry / "data" / "test_gan").glob("*.arrow")
    if damage == "data file cut short":
        arrow.write_bytes(arrow.read_bytes()[: arrow.stat().st_size // 2])
    elif damage == "report.json deleted":
        (entry / "report.json").unlink()
    else:
        data = bytearray(arrow.read_bytes())
        data[data.index(b"IDAT") + 40] ^= 0x10  # inside the first image's compressed pixels
        arrow.write_bytes(bytes(data))
        assert mgi.count_rows(datasets.load_from_disk(str(entry / "data"))) == mgi.count_rows(reduced)  # unnoticed
    with pytest.warns(UserWarning, match="cache entry .* is damaged"):
        again = mgi.build_minigenimage(reduced=True, cache_dir=str(copy), show_progress=False)
    assert mgi.count_rows(again) == mgi.count_rows(reduced)
    assert _raw(again["test_gan"])["image"] == _raw(reduced["test_gan"])["image"]
    assert sorted(item.name for item in copy.iterdir()) == [entry.name]  # nothing of the damaged entry is left


def test_cache_folders_take_the_umask_and_killed_builds_leftovers_go(reduced, report, monkeypatch, tmp_path):
    """tempfile.mkdtemp's 0700 stayed on the renamed entry, closing a shared cache to other users; a build killed
    while saving left its staging folder forever."""
    monkeypatch.setattr(mgi, "_build", lambda *args: (reduced, report))
    key = mgi.cache_key(0, mgi.CROP_SIZE, True, mgi.REDUCED_SIZES)
    (tmp_path / f".{key}.999.dead").mkdir()
    old = time.time() - mgi.STALE_STAGING_SECONDS - 60
    os.utime(tmp_path / f".{key}.999.dead", (old, old))
    (tmp_path / f".{key}.998.live").mkdir()  # a build under way
    previous = os.umask(0o022)
    try:
        mgi.build_minigenimage(reduced=True, cache_dir=str(tmp_path), show_progress=False)
    finally:
        os.umask(previous)
    assert (tmp_path / key).stat().st_mode & 0o777 == 0o755
    assert sorted(item.name for item in tmp_path.iterdir()) == [f".{key}.998.live", key]


def test_a_cache_folder_that_cannot_be_made_is_named_before_the_build(monkeypatch, tmp_path):
    def fail(*args, **kwargs):
        raise AssertionError("built before the cache was checked")

    monkeypatch.setattr(mgi, "_build", fail)
    (tmp_path / "a-file").write_text("")
    with pytest.raises(ValueError, match="cannot use .*a-file as MiniGenImage's cache .*PINCLIP_CACHE"):
        mgi.build_minigenimage(reduced=True, cache_dir=str(tmp_path / "a-file"), show_progress=False)
    # the scripts' usage error (exit status 2, one line), as for any other folder given: was a traceback, status 1
    with pytest.raises(SystemExit) as exit_:
        mgi.main(["--reduced", "--output_dir", str(tmp_path / "out"), "--cache_dir", str(tmp_path / "a-file" / "c")])
    assert exit_.value.code == 2
    result = subprocess.run([sys.executable, "train.py", "--minigenimage_reduced", "--output_dir", str(tmp_path / "run")],
                            cwd=REPO_ROOT, capture_output=True, text=True, timeout=120,
                            env={**os.environ, "PINCLIP_CACHE": str(tmp_path / "a-file" / "c"), "HF_HUB_OFFLINE": "1"})
    assert result.returncode == 2 and "Traceback" not in result.stderr, result.stderr[-2000:]
    assert result.stderr.startswith("train.py: error: cannot use") and "a-file" in result.stderr


def test_a_cache_we_cannot_write_is_named_before_the_build_and_a_damaged_entry_there_too(reduced, cache_dir, tmp_path,
                                                                                       monkeypatch):
    """A shared cache made by another user (read-only to us): the build ran for minutes, then failed with a
    PermissionError traceback on its staging folder; a damaged entry there was a traceback after the warning."""
    def read_only(target):
        raise PermissionError(13, "Permission denied", str(target))

    def fail(*args, **kwargs):
        raise AssertionError("built before the cache was checked")

    monkeypatch.setattr(mgi, "_build", fail)
    monkeypatch.setattr(mgi, "staging_folder", read_only)
    with pytest.raises(ValueError, match="cannot use .* as MiniGenImage's cache \\(Permission denied\\)"):
        mgi.build_minigenimage(seed=7, reduced=True, cache_dir=str(tmp_path / "shared"), show_progress=False)
    copy = shutil.copytree(cache_dir, tmp_path / "shared-damaged")
    entry = copy / mgi.cache_key(0, mgi.CROP_SIZE, True, mgi.REDUCED_SIZES)
    (entry / "data" / "dataset_dict.json").unlink()
    with pytest.raises(ValueError, match="is damaged \\(data/dataset_dict.json: missing, or not the bytes "
                                         "checksums.json records\\), and cannot use"):
        mgi.build_minigenimage(reduced=True, cache_dir=str(copy), show_progress=False)
    assert mgi.changed_files(entry) == ["data/dataset_dict.json"]
    (entry / mgi.CHECKSUMS).write_text("{}")  # a record that vouches for nothing is no record
    assert mgi.changed_files(entry) == [mgi.CHECKSUMS]


def test_report_of_a_build_with_custom_sizes(reduced, report, monkeypatch, tmp_path):
    monkeypatch.setattr(mgi, "_build", lambda *args: (reduced, report))
    sizes = mgi.REDUCED_SIZES
    mgi.build_minigenimage(seed=5, sizes=sizes, cache_dir=str(tmp_path), show_progress=False)
    assert mgi.load_report(seed=5, sizes=sizes, cache_dir=str(tmp_path)) == report


def test_cache_dir_honours_pinclip_cache(monkeypatch, tmp_path):
    monkeypatch.setenv("PINCLIP_CACHE", str(tmp_path))
    assert mgi.default_cache_dir() == str(tmp_path / "minigenimage")


@pytest.mark.parametrize("crop_size", [63, 0])
def test_odd_or_empty_crop_sizes_are_refused(crop_size, tmp_path):
    with pytest.raises(ValueError, match=f"even number of pixels, got {crop_size}"):
        mgi.build_minigenimage(crop_size=crop_size, cache_dir=str(tmp_path))


def test_same_seed_same_pixels_and_other_seed_other_pixels(tmp_path):
    def build(seed: int, name: str) -> datasets.DatasetDict:
        return mgi.build_minigenimage(seed=seed, sizes=TINY, cache_dir=str(tmp_path / name), show_progress=False)

    first, second, other = build(0, "a"), build(0, "b"), build(1, "c")
    for split in first:
        assert _raw(first[split])["image"] == _raw(second[split])["image"], split
        assert first[split]["label"] == second[split]["label"]
    assert _raw(first["test_tconv"])["image"] != _raw(other["test_tconv"])["image"]


def test_cli_writes_output_report_and_research_folders(reduced, cache_dir, tmp_path, monkeypatch):
    pushed = []
    monkeypatch.setattr(datasets.DatasetDict, "push_to_hub", lambda self, repo_id, **kw: pushed.append(repo_id))
    monkeypatch.setattr(mgi, "create_dataset_repo", lambda repo_id: pushed.append(f"created {repo_id}"))
    out, folders = tmp_path / "out", tmp_path / "folders"
    argv = ["--output_dir", str(out), "--reduced", "--cache_dir", str(cache_dir)]
    assert mgi.main(argv + ["--export_folders", str(folders), "--push_to_hub", "me/minigen"]) == 0
    assert pushed == ["created me/minigen", "me/minigen"]  # the repository first, before the build
    assert set(datasets.load_from_disk(str(out))) == set(reduced)
    assert json.loads((out / "report.json").read_text())["seed"] == 0

    n = mgi.REDUCED_SIZES.test_per_class
    for family in mgi.FAMILIES:
        for label_dir in ("0_real", "1_fake"):
            files = sorted((folders / "test" / family / label_dir).glob("*.png"))
            assert len(files) == n and files[0].read_bytes()[:8] == PNG_SIGNATURE
    assert len(list((folders / "validation" / mgi.VALIDATION_FAMILY / "1_fake").glob("*.png"))) > 0
    assert json.loads((folders / "report.json").read_text())["seed"] == 0  # train.py reads which tiles they are
    # the exported tree reads back through the generic folder converter with the same labels
    back = folder.load_folder_dataset(folders / "test", cache_dir=str(tmp_path / "hf"))["train"]
    assert Counter(zip(back["generator"], back["label"])) == Counter(
        (f, lab) for f in mgi.FAMILIES for lab in (0, 1) for _ in range(n)
    )


def test_reals_are_the_listed_photo_crops_and_fakes_are_not(reduced, report):
    photos = {p.name: p.pixels for p in mgi.load_photos()}
    for split in ("train", "train_multi", "validation", "test_gan"):
        crops = {
            mgi.encode_png(np.ascontiguousarray(photos[name][y : y + s, x : x + s]))
            for name, y, x, s in report["real_crops"][split]
        }
        raw = _raw(reduced[split])
        reals = {r["image"]["bytes"] for r in raw if r["label"] == 0}
        fakes = {r["image"]["bytes"] for r in raw if r["label"] == 1}
        assert reals == crops, split  # label 0 is exactly the untouched photo crops ...
        assert not fakes & crops, split  # ... and no label-1 image is one


def test_fakes_are_generated_from_other_crops_than_the_reals(monkeypatch):
    monkeypatch.setattr(mgi.gens, "generate", lambda family, model, crops, generator: crops)  # identity "generator"
    photos = mgi.load_photos()
    pools = mgi.assign_tiles(photos, 64, seed=0)
    plans = mgi.plan_splits(photos, pools, dict.fromkeys(mgi.ALL_GENERATORS), TINY, 64, seed=0)
    pixels = {p.name: p.pixels for p in photos}
    for split, plan in plans.items():
        fakes = np.concatenate([fakes for _, _, fakes in plan.parts])
        reals = np.concatenate([reals for _, reals, _ in plan.parts])
        sources = np.stack([pixels[name][y : y + s, x : x + s] for name, y, x, s in plan.fake_source_boxes])
        assert np.array_equal(fakes, sources), split  # each fake comes from the crop the report lists ...
        real_bytes = {r.tobytes() for r in reals}
        assert not any(f.tobytes() in real_bytes for f in fakes), split  # ... never from one of the split's reals


def test_rows_are_shuffled_not_grouped_by_class_or_generator(reduced):
    for split in ("train", "train_multi", "validation", "test_tconv"):
        labels, generators = reduced[split]["label"], reduced[split]["generator"]
        half = len(labels) // 2
        assert 0 < sum(labels[:half]) < half, split  # both classes in the first half (a max_samples cut)
        if len(set(generators)) > 1:
            assert len(set(generators[:half])) == len(set(generators)), split


def test_spread_splits_a_total_as_evenly_as_possible():
    assert mgi._spread(("a", "b", "c"), 10) == [("a", 4), ("b", 3), ("c", 3)]
    assert mgi._spread(("a", "b", "c"), 11) == [("a", 4), ("b", 4), ("c", 3)]
    assert mgi._spread(("a", "b"), 6) == [("a", 3), ("b", 3)]


def test_cache_key_changes_with_every_size_field():
    import dataclasses

    key = mgi.cache_key(0, 64, False, TINY)
    assert key == mgi.cache_key(0, 64, False, mgi.Sizes(**dataclasses.asdict(TINY)))
    for name, value in dataclasses.asdict(TINY).items():
        assert mgi.cache_key(0, 64, False, dataclasses.replace(TINY, **{name: value + 1})) != key, name
    assert len({key, mgi.cache_key(1, 64, False, TINY), mgi.cache_key(0, 32, False, TINY), mgi.cache_key(0, 64, True, TINY)}) == 4


def test_cache_key_changes_with_the_build_code(tmp_path):
    """Edited tile pools (a constant) kept the key, and the earlier build was served."""
    import subprocess
    import sys

    source = Path(mgi.__file__).parent
    keys = []
    for edit in (False, True):
        folder = tmp_path / f"edit{edit}"
        folder.mkdir()
        for name in ("minigenimage.py", "minigen_generators.py", "convert_common.py"):
            (folder / name).write_bytes((source / name).read_bytes())
        if edit:
            module = folder / "minigenimage.py"
            text = module.read_text()
            assert '"train": 0.55, "validation": 0.15, "test": 0.30' in text
            module.write_text(text.replace('"train": 0.55, "validation": 0.15, "test": 0.30',
                                           '"train": 0.65, "validation": 0.15, "test": 0.20'))
        script = "import minigenimage as m; print(m.cache_key(0, 64, True, m.REDUCED_SIZES))"
        env = {**os.environ, "PYTHONPATH": str(source.parent)}  # the repository's image_io; the copies come first
        done = subprocess.run([sys.executable, "-c", script], cwd=folder, capture_output=True, text=True, timeout=120,
                              env=env)
        assert done.returncode == 0, done.stderr[-1500:]
        keys.append(done.stdout.strip().splitlines()[-1])
    assert keys[0] == mgi.cache_key(0, 64, True, mgi.REDUCED_SIZES) and keys[1] != keys[0]


def test_a_missing_bundled_photo_stops_the_build(monkeypatch):
    """Skipped, it moved the tiles of every later photo into other splits under the same cache key."""
    monkeypatch.setattr(mgi, "SKIMAGE_PHOTOS", (*mgi.SKIMAGE_PHOTOS, "no_such_photo.png"))
    with pytest.raises(FileNotFoundError, match="bundles no no_such_photo.png"):
        mgi.load_photos()


def test_crops_lie_inside_one_tile_of_their_pool():
    photos = mgi.load_photos()
    pool = mgi.assign_tiles(photos, 64, seed=0)["test"]
    crops, boxes = mgi.sample_crops(photos, pool, 300, 64, np.random.default_rng(0))
    assert crops.shape == (300, 64, 64, 3)
    names = [p.name for p in photos]
    for name, y, x, size in boxes:
        assert size == 64
        assert any(
            names[i] == name and top <= y and y + size <= top + tile and left <= x and x + size <= left + tile
            for i, top, left, tile in pool
        ), (name, y, x)


def test_nearly_flat_crops_are_never_sampled():
    pixels = np.zeros((96, 192, 3), np.uint8)  # left tile black (like hubble's sky), right tile textured
    pixels[:, 96:] = np.random.default_rng(0).integers(0, 256, (96, 96, 3), dtype=np.uint8)
    photos = [mgi.Photo("synthetic/half_black.png", pixels)]
    crops, boxes = mgi.sample_crops(photos, [(0, 0, 0, 96), (0, 0, 96, 96)], 20, 64, np.random.default_rng(0))
    assert len(crops) == 20
    assert all(x >= 96 for _, _, x, _ in boxes)
    assert all(crop.std() / 255.0 >= mgi.MIN_CROP_STD for crop in crops)


def test_every_family_has_its_own_network():
    def architecture(model) -> str:
        return repr(model) + repr([tuple(b.shape) for b in model.buffers()])

    networks = {family: architecture(factory()) for family, factory in mgi.gens.FACTORIES.items()}
    assert set(networks) == set(mgi.ALL_GENERATORS)
    assert len(set(networks.values())) == len(networks)


def test_no_crop_is_drawn_twice_from_a_pool(report):
    """Reals and fake sources of every split drawing from one pool (train and train_multi; validation; the six tests)
    are distinct crops: no image recurs within or across those splits, and no real is also a fake's source."""
    for prefixes in (("train",), ("validation",), ("test_",)):
        boxes = [
            tuple(box)
            for table in ("real_crops", "fake_source_crops")
            for split, split_boxes in report[table].items()
            if split.startswith(prefixes)
            for box in split_boxes
        ]
        assert len(set(boxes)) == len(boxes) > 0, prefixes


def test_splits_of_a_pool_share_no_crop_even_when_the_pool_barely_holds_them(monkeypatch):
    """With pools of 9 and 18 possible boxes, independent draws per part would repeat a crop; one draw per pool cannot."""
    import dataclasses

    monkeypatch.setattr(mgi.gens, "generate", lambda family, model, crops, generator: crops)  # identity "generator"
    pixels = np.random.default_rng(0).integers(0, 256, (66, 132, 3), dtype=np.uint8)
    photos = [mgi.Photo("synthetic/noise.png", pixels)]
    pools = {"train": [(0, 0, 0, 66)], "validation": [(0, 0, 66, 66)], "test": [(0, 0, 0, 66), (0, 0, 66, 66)]}
    sizes = dataclasses.replace(TINY, train_per_class=1, train_multi_per_class=3, validation_per_class=1, test_per_class=1)
    plans = mgi.plan_splits(photos, pools, dict.fromkeys(mgi.ALL_GENERATORS), sizes, 64, seed=0)
    for prefix, capacity in (("train", 9), ("validation", 9), ("test_", 18)):
        boxes = [tuple(box) for split, plan in plans.items() if split.startswith(prefix)
                 for box in plan.real_boxes + plan.fake_source_boxes]
        assert len(boxes) == len(set(boxes)) <= capacity, prefix


def test_histogram_matching_orders_tied_pixels_as_the_reference_does():
    """Where the generator's output is flat, the fake takes its source's values there in the source's own arrangement,
    not as a ramp in raster order."""
    torch = pytest.importorskip("torch")
    source = torch.rand(2, 3, 16, 16, generator=torch.Generator().manual_seed(0))
    flat_output = torch.full_like(source, 0.5)
    assert torch.equal(mgi.gens.match_histograms(flat_output, source), source)
    # half flat, half ordered: the ordered half keeps its order, the flat half takes its values as the source orders them
    output = source.flip(-1).clone()
    output[..., :8, :] = 0.5
    matched = mgi.gens.match_histograms(output, source)
    for image in range(2):
        for channel in range(3):
            values = matched[image, channel].flatten()
            assert torch.equal(values.sort().values, source[image, channel].flatten().sort().values)
            top, bottom = matched[image, channel, :8].flatten(), matched[image, channel, 8:].flatten()
            assert torch.equal(top.argsort(), source[image, channel, :8].flatten().argsort())
            assert torch.equal(bottom.argsort(), output[image, channel, 8:].flatten().argsort())


def test_distinct_sampling_never_draws_a_box_twice():
    photos = [mgi.Photo("synthetic/noise.png", np.random.default_rng(0).integers(0, 256, (65, 65, 3), dtype=np.uint8))]
    pool = [(0, 0, 0, 65)]  # one tile with room for four 64-pixel crops
    _, boxes = mgi.sample_crops(photos, pool, 4, 64, np.random.default_rng(0), distinct=True)
    assert sorted(map(tuple, boxes)) == [("synthetic/noise.png", y, x, 64) for y in (0, 1) for x in (0, 1)]
    _, repeated = mgi.sample_crops(photos, pool, 4, 64, np.random.default_rng(0))
    assert len(set(map(tuple, repeated))) < 4  # the same draws without `distinct` repeat a box
    with pytest.raises(ValueError, match="5 distinct 64-pixel crops asked of a pool of 1 tiles"):  # it never returned
        mgi.sample_crops(photos, pool, 5, 64, np.random.default_rng(0), distinct=True)


class _DrawLimit:
    """A random generator that gives up after `limit` draws, so that a sampler looping for ever fails instead of hanging."""

    def __init__(self, seed: int, limit: int) -> None:
        self.rng, self.limit, self.draws = np.random.default_rng(seed), limit, 0

    def integers(self, *args, **kwargs):
        self.draws += 1
        assert self.draws <= self.limit, "sample_crops kept drawing from a pool it had exhausted"
        return self.rng.integers(*args, **kwargs)


def test_sampling_a_pool_that_runs_out_of_textured_crops_is_an_error():
    pixels = np.zeros((65, 130, 3), np.uint8)  # two tiles with room for four 64-pixel crops each; the left one black
    pixels[:, 65:] = np.random.default_rng(0).integers(0, 256, (65, 65, 3), dtype=np.uint8)
    photos = [mgi.Photo("synthetic/half_black.png", pixels)]
    pool = [(0, 0, 0, 65), (0, 0, 65, 65)]
    _, boxes = mgi.sample_crops(photos, pool, 4, 64, _DrawLimit(0, 10_000), distinct=True)
    assert sorted(x for _, _, x, _ in boxes) == [65, 65, 66, 66]  # all four textured boxes
    with pytest.raises(ValueError, match="5 distinct 64-pixel crops asked of a pool of 2 tiles that holds 4 not nearly flat"):
        mgi.sample_crops(photos, pool, 5, 64, _DrawLimit(0, 10_000), distinct=True)
    with pytest.raises(ValueError, match="3 64-pixel crops asked of a pool of 1 tiles that holds 0 not nearly flat"):
        mgi.sample_crops(photos, pool[:1], 3, 64, _DrawLimit(0, 10_000))


def test_an_export_into_a_folder_holding_files_is_refused_before_the_build(reduced, cache_dir, tmp_path, capsys):
    """A second export into the same folder mixed two builds: its files replaced the first's of the same names and
    the rest stayed (655 files of two seeds where one build has 400)."""
    folders = tmp_path / "folders"
    (folders / "test").mkdir(parents=True)
    with pytest.raises(SystemExit) as exit_:
        mgi.main(["--output_dir", str(tmp_path / "out"), "--reduced", "--cache_dir", str(tmp_path / "cache"),
                  "--export_folders", str(folders)])
    assert exit_.value.code == 2 and "--export_folders" in capsys.readouterr().err
    assert not (tmp_path / "cache").exists() and [item.name for item in folders.iterdir()] == ["test"]
    with pytest.raises(FileExistsError, match="not an empty folder"):
        mgi.export_folders(reduced, str(folders))
    # the export folder holding the dataset's own output: refused before the build, not after it with a false word
    for output in (tmp_path / "both", tmp_path / "both" / "hf"):
        with pytest.raises(SystemExit):
            mgi.main(["--output_dir", str(output), "--reduced", "--cache_dir", str(tmp_path / "cache"),
                      "--export_folders", str(tmp_path / "both")])
        assert "holds --output_dir" in capsys.readouterr().err and not (tmp_path / "cache").exists()


def test_targets_that_cannot_be_written_are_refused_before_the_build(reduced, cache_dir, tmp_path, capsys,
                                                                     monkeypatch):
    """Were tracebacks after the build (a minute from an empty cache): output or exports under a file, an
    --export_examples that is a file; `--output_dir .` failed after it with "PosixPath('.') has an empty name" (and,
    written, would have renamed the working folder away)."""
    (tmp_path / "afile").write_text("not a folder")
    for flags, flag in ((["--output_dir", str(tmp_path / "afile" / "out")], "--output_dir"),
                        (["--output_dir", str(tmp_path / "out"), "--export_folders", str(tmp_path / "afile" / "f")],
                         "--export_folders"),
                        (["--output_dir", str(tmp_path / "out"), "--export_examples", str(tmp_path / "afile")],
                         "--export_examples")):
        with pytest.raises(SystemExit) as exit_:
            mgi.main([*flags, "--reduced", "--cache_dir", str(tmp_path / "cache")])
        error = capsys.readouterr().err
        assert exit_.value.code == 2 and f"{flag} " in error and f"{tmp_path / 'afile'} is a file, not a folder" in error
        assert not (tmp_path / "cache").exists() and not (tmp_path / "out").exists()
    here = tmp_path / "here"
    here.mkdir()
    monkeypatch.chdir(here)
    for output in (".", ".."):
        with pytest.raises(SystemExit) as exit_:
            mgi.main(["--output_dir", output, "--reduced", "--cache_dir", str(tmp_path / "cache")])
        assert exit_.value.code == 2 and "is the working folder or holds it" in capsys.readouterr().err
    assert here.is_dir() and not (tmp_path / "cache").exists()


def test_exported_folders_keep_each_image_under_its_own_label(reduced, tmp_path):
    part = datasets.DatasetDict({split: reduced[split] for split in ("test_gan", "validation")})
    assert mgi.export_folders(part, str(tmp_path)) == {split: ds.num_rows for split, ds in part.items()}
    for split, top in (("test_gan", tmp_path / "test"), ("validation", tmp_path / "validation")):
        raw = _raw(reduced[split])
        for label, name in ((0, "0_real"), (1, "1_fake")):
            expected = Counter((r["generator"], r["image"]["bytes"]) for r in raw if r["label"] == label)
            got = Counter((p.parent.parent.name, p.read_bytes()) for p in top.glob(f"*/{name}/*.png"))
            assert got == expected, (split, name)


def test_each_family_and_purpose_has_its_own_random_stream(monkeypatch):
    import dataclasses

    import torch

    # weight init: seeded per family (same seed, same weights; another family, other weights)
    untrained = dataclasses.replace(TINY, generator_steps=0)
    crops = np.zeros((2, 64, 64, 3), np.uint8)
    first = mgi.train_generators(("nearest", "bilinear"), crops, untrained, seed=0, show_progress=False)
    again = mgi.train_generators(("nearest",), crops, untrained, seed=0, show_progress=False)
    weight = {family: model.encoder[0].weight for family, model in first.items()}
    assert torch.equal(weight["nearest"], again["nearest"].encoder[0].weight)
    assert not torch.equal(weight["nearest"], weight["bilinear"])
    # sampling noise: seeded per family and split
    monkeypatch.setattr(mgi.gens, "generate", lambda family, model, batch, generator: torch.rand(batch.shape, generator=generator))
    noise = {
        (family, key): mgi.make_fakes(family, None, crops, seed=0, key=key)
        for family in ("diffusion", "gan") for key in ("train_multi", "test_diffusion")
    }
    assert np.array_equal(noise["diffusion", "train_multi"], mgi.make_fakes("diffusion", None, crops, seed=0, key="train_multi"))
    assert len({array.tobytes() for array in noise.values()}) == len(noise)


def test_export_examples_writes_the_first_real_and_fake_of_each_example_family(reduced, tmp_path):
    from datasets_scripts.minigenimage import EXAMPLE_FAMILIES, export_examples

    written = export_examples(reduced, tmp_path / "assets")
    assert [path.name for path in written] == ["real_1.png", "fake_tconv.png", "real_2.png", "fake_gan.png",
                                               "real_3.png", "fake_diffusion.png"]
    assert EXAMPLE_FAMILIES == ("tconv", "gan", "diffusion")
    for number, family in enumerate(EXAMPLE_FAMILIES, start=1):
        rows = _raw(reduced[f"test_{family}"])
        first = {label: next(row for row in rows if row["label"] == label) for label in (0, 1)}
        assert (tmp_path / "assets" / f"real_{number}.png").read_bytes() == first[0]["image"]["bytes"]
        assert (tmp_path / "assets" / f"fake_{family}.png").read_bytes() == first[1]["image"]["bytes"]
        assert first[1]["generator"] == family


def test_an_interrupted_output_write_leaves_the_earlier_output_and_foreign_folders_are_refused(
        reduced, cache_dir, tmp_path, monkeypatch, capsys):
    """`--output_dir` was written in place: a Ctrl-C while a rebuild with another seed saved its splits left splits
    of two builds, loaded as one dataset under the earlier report.json (test tiles inside the training data)."""
    out = tmp_path / "out"
    argv = ["--output_dir", str(out), "--reduced", "--cache_dir", str(cache_dir)]
    assert mgi.main(argv) == 0
    before = {path.relative_to(out): path.read_bytes() for path in out.rglob("*") if path.is_file()}
    save = datasets.Dataset.save_to_disk
    saved = []

    def interrupted_at_the_third_split(self, path, **kwargs):
        saved.append(path)
        if len(saved) == 3:
            raise KeyboardInterrupt
        return save(self, path, **kwargs)

    monkeypatch.setattr(datasets.Dataset, "save_to_disk", interrupted_at_the_third_split)
    with pytest.raises(KeyboardInterrupt):
        mgi.main(argv)
    monkeypatch.undo()
    assert {path.relative_to(out): path.read_bytes() for path in out.rglob("*") if path.is_file()} == before
    assert [path.name for path in tmp_path.iterdir()] == ["out"]  # no staging folder left beside it
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("mine")
    with pytest.raises(SystemExit):  # it is replaced whole: refused before the build
        mgi.main(["--output_dir", str(tmp_path / "mine"), "--reduced", "--cache_dir", str(tmp_path / "no-cache")])
    assert "holds files that are not an earlier MiniGenImage output" in capsys.readouterr().err
    assert (tmp_path / "mine" / "notes.txt").read_text() == "mine" and not (tmp_path / "no-cache").exists()


def test_push_to_hub_without_the_hub_fails_before_the_build_in_one_line(tmp_path, monkeypatch, capsys):
    from huggingface_hub import HfApi

    def offline(self, *args, **kwargs):
        raise ConnectionError("offline mode is enabled")

    monkeypatch.setattr(HfApi, "create_repo", offline)
    monkeypatch.setattr(mgi, "build_minigenimage", lambda *a, **k: pytest.fail("built before the Hub was checked"))
    with pytest.raises(SystemExit) as exit_:  # was a traceback after the whole build
        mgi.main(["--output_dir", str(tmp_path / "out"), "--reduced", "--push_to_hub", "me/minigen"])
    assert exit_.value.code == 2
    assert "--push_to_hub: cannot create the dataset me/minigen on the Hub (offline" in capsys.readouterr().err
