"""Converters: fabricated miniature raw trees → HF datasets with one schema and a skip report."""

from __future__ import annotations

import errno
import io
import itertools
import json
import os
import sys
import time
from pathlib import Path

import datasets
from filelock import FileLock
import numpy as np
import pytest
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from datasets_scripts import aigibench, convert_common, folder, forensynths, genimage  # noqa: E402


def _image_bytes(fmt: str, seed: int) -> bytes:
    pixels = np.random.default_rng(seed).integers(0, 256, (12, 12, 3), dtype=np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format=fmt)
    return buffer.getvalue()


def _write(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)


def _leaf(folder_path: Path, seed: int, marker: str | None = None) -> None:
    """One PNG and one JPEG in a label folder, named `<label folder>_<seed>_{a.png,b.jpg}`.

    The stored image path keeps only the file name, so names carry what the tests check.
    """
    stem = f"{marker or folder_path.name}_{seed}"
    _write(folder_path / f"{stem}_a.png", _image_bytes("PNG", seed))
    _write(folder_path / f"{stem}_b.jpg", _image_bytes("JPEG", seed + 1))


FAKE_PREFIXES = ("ai_", "1_fake_", "fake_")


def _expected_label(name: str) -> int:
    return 1 if name.startswith(FAKE_PREFIXES) else 0


def _bad_files(folder_path: Path) -> dict[str, str]:
    """A zero-byte file, a truncated JPEG and a text file named .jpg; returns name → reason prefix."""
    _write(folder_path / "zero.png", b"")
    _write(folder_path / "truncated.jpg", _image_bytes("JPEG", 99)[:150])
    _write(folder_path / "notes.jpg", b"this is not an image")
    return {"zero.png": "empty file (0 bytes)", "truncated.jpg": "truncated or corrupt image data",
            "notes.jpg": "not a recognised image file"}


def _skipped(report: dict) -> dict[str, str]:
    return {item["file"]: item["reason"] for item in report["skipped"]}


def _rows(ds: datasets.Dataset) -> list[tuple[str, int, str, str]]:
    raw = ds.cast_column("image", datasets.Image(decode=False))
    return [(r["image"]["path"], r["label"], r["generator"], r["subset"]) for r in raw]


def _check_in_process_reader(load, raw: Path, converted: datasets.DatasetDict, tmp_path: Path) -> None:
    """`load(raw)` (the in-process reader) gives the converter's splits and rows and writes nothing into `raw`."""

    def rows(dsd: datasets.DatasetDict) -> dict[str, list[tuple[str, int, str, str]]]:
        # the converter stores file names, the in-process reader paths relative to `raw`
        return {split: [(Path(p).name, *rest) for p, *rest in _rows(ds)] for split, ds in dsd.items()}

    before = sorted(raw.rglob("*"))
    assert rows(load(raw, cache_dir=str(tmp_path / "hf_cache"))) == rows(converted)
    assert sorted(raw.rglob("*")) == before


def _check_schema(dsd: datasets.DatasetDict) -> None:
    for ds in dsd.values():
        assert ds.features["label"].names == ["real", "fake"]
        assert isinstance(ds.features["image"], datasets.Image)
        assert set(ds.column_names) == {"image", "label", "generator", "subset"}


# ---------------------------------------------------------------- GenImage


@pytest.fixture
def genimage_tree(tmp_path: Path) -> tuple[Path, dict[str, str]]:
    raw = tmp_path / "genimage"
    for gen, sub in (("ADM", "imagenet_ai_0508_adm"), ("stable_diffusion_v_1_4", "imagenet_ai_0419_sdv4")):
        for i, split in enumerate(("train", "val")):
            _leaf(raw / gen / sub / split / "ai", seed=10 * i)
            _leaf(raw / gen / sub / split / "nature", seed=10 * i + 5)
    bad_dir = raw / "ADM" / "imagenet_ai_0508_adm" / "val" / "nature"
    bad = {f"ADM/imagenet_ai_0508_adm/val/nature/{k}": v for k, v in _bad_files(bad_dir).items()}
    _write(raw / "ADM" / "imagenet_ai_0508_adm" / "extra" / "ai" / "odd.png", _image_bytes("PNG", 3))
    bad["ADM/imagenet_ai_0508_adm/extra/ai/odd.png"] = "unexpected GenImage layout"
    _write(raw / "README.txt", b"GenImage")
    bad["README.txt"] = "no label folder"
    return raw, bad


def test_genimage_labels_splits_generators_and_report(genimage_tree, tmp_path):
    raw, bad = genimage_tree
    out = tmp_path / "out"
    dsd = genimage.convert_genimage(raw, out)
    _check_schema(dsd)
    assert sorted(dsd) == ["train", "validation"]
    for split in dsd:
        rows = _rows(dsd[split])
        assert len(rows) == 8  # 2 generators x 2 labels x (png + jpg)
        for path, label, generator, subset in rows:
            assert label == _expected_label(path)
            assert generator in {"ADM", "stable_diffusion_v_1_4"}
            assert subset.startswith("imagenet_ai_")
        # deterministic, sorted order: ADM before stable_diffusion, ai before nature, a before b
        assert [(g, r[0]) for r in rows for g in [r[2]]] == sorted((g, r[0]) for r in rows for g in [r[2]])

    report = json.loads((out / "report.json").read_text())
    assert report["num_images"] == 16
    assert report["num_skipped"] == len(bad)
    skipped = _skipped(report)
    assert set(skipped) == set(bad)
    for name, reason in bad.items():
        assert skipped[name].startswith(reason), (name, skipped[name])
    assert report["counts"]["validation"]["imagenet_ai_0508_adm"] == {"real": 2, "fake": 2}
    assert report["counts_by_generator"]["train"]["ADM"] == {"real": 2, "fake": 2}

    reloaded = datasets.load_from_disk(str(out))
    assert reloaded["train"].num_rows == 8
    assert reloaded["train"][0]["image"].size == (12, 12)
    _check_in_process_reader(genimage.load_genimage, raw, dsd, tmp_path)


def test_genimage_archives_unzipped_side_by_side_are_refused_before_any_image_is_read(tmp_path, monkeypatch):
    """`data/GenImage/imagenet_*/...` (archives unzipped into one folder) became one generator, `GenImage`: one pooled
    row where the tables need one per generator."""
    raw = tmp_path / "data"
    for archive in ("imagenet_ai_0508_adm", "imagenet_glide"):
        for split, label in (("train", "ai"), ("val", "nature")):
            _leaf(raw / "GenImage" / archive / split / label, seed=1)
    monkeypatch.setattr(convert_common, "check_image", lambda path: pytest.fail("an image was checked"))
    for read in (lambda: genimage.convert_genimage(raw, tmp_path / "out"), lambda: genimage.load_genimage(raw)):
        with pytest.raises(ValueError, match="GenImage holds 2 imagenet_\\* folders \\(imagenet_ai_0508_adm, "
                                             "imagenet_glide\\).* one generator 'GenImage'"):
            read()
    assert not (tmp_path / "out").exists()


def test_original_bytes_are_stored_not_reencoded(genimage_tree, tmp_path):
    raw, _ = genimage_tree
    dsd = genimage.convert_genimage(raw, tmp_path / "out")
    stored = dsd["train"].cast_column("image", datasets.Image(decode=False))
    for row in stored:
        (source,) = (raw / row["generator"]).rglob(f"train/*/{row['image']['path']}")
        assert row["image"]["bytes"] == source.read_bytes()
    jpeg_rows = [r for r in stored if r["image"]["path"].endswith(".jpg")]
    assert jpeg_rows and all(r["image"]["bytes"][:2] == b"\xff\xd8" for r in jpeg_rows)


# ---------------------------------------------------------------- AIGIBench


def test_aigibench_layout(tmp_path):
    raw = tmp_path / "AIGIBench"
    for i, cls in enumerate(("car", "sdv1.4")):
        _leaf(raw / "train" / cls / "0_real", seed=i)
        _leaf(raw / "train" / cls / "1_fake", seed=i + 20)
    for i, gen in enumerate(("FLUX", "SocialRF")):
        _leaf(raw / "test" / gen / "0_real", seed=i + 40)
        _leaf(raw / "test" / gen / "1_fake", seed=i + 60)
    bad = {f"test/FLUX/1_fake/{k}": v for k, v in _bad_files(raw / "test" / "FLUX" / "1_fake").items()}
    _write(raw / "test" / "FLUX" / "1_fake" / "0_real" / "mixed.png", _image_bytes("PNG", 7))
    bad["test/FLUX/1_fake/0_real/mixed.png"] = "ambiguous"

    out = tmp_path / "out"
    dsd = aigibench.convert_aigibench(raw, out)
    _check_schema(dsd)
    assert sorted(dsd) == ["test", "train"]
    train = _rows(dsd["train"])
    assert {(g, s) for _, _, g, s in train} == {("progan", "car"), ("sdv1.4", "sdv1.4")}
    test = _rows(dsd["test"])
    assert {g for _, _, g, _ in test} == {"FLUX", "SocialRF"}
    for path, label, _, _ in train + test:
        assert label == _expected_label(path)
    report = json.loads((out / "report.json").read_text())
    skipped = _skipped(report)
    assert set(skipped) == set(bad)
    assert all(skipped[k].startswith(v) for k, v in bad.items())
    assert report["counts"]["test"]["FLUX"] == {"real": 2, "fake": 2}
    _check_in_process_reader(aigibench.load_aigibench, raw, dsd, tmp_path)


# ---------------------------------------------------------------- ForenSynths


def test_forensynths_layout(tmp_path):
    raw = tmp_path / "CNNSpot"
    _leaf(raw / "train" / "airplane" / "0_real", 1)
    _leaf(raw / "train" / "airplane" / "1_fake", 2)
    _leaf(raw / "val" / "horse" / "0_real", 3)
    _leaf(raw / "val" / "horse" / "1_fake", 4)
    _leaf(raw / "test" / "progan" / "cat" / "0_real", 5)
    _leaf(raw / "test" / "progan" / "cat" / "1_fake", 6)
    _leaf(raw / "test" / "deepfake" / "0_real", 7)
    _leaf(raw / "test" / "deepfake" / "1_fake", 8)
    bad = {f"val/horse/0_real/{k}": v for k, v in _bad_files(raw / "val" / "horse" / "0_real").items()}

    dsd = forensynths.convert_forensynths(raw, tmp_path / "out")
    _check_schema(dsd)
    assert sorted(dsd) == ["test", "train", "validation"]
    assert {(g, s) for _, _, g, s in _rows(dsd["train"])} == {("progan", "airplane")}
    assert {(g, s) for _, _, g, s in _rows(dsd["validation"])} == {("progan", "horse")}
    assert {(g, s) for _, _, g, s in _rows(dsd["test"])} == {("progan", "progan/cat"), ("deepfake", "deepfake")}
    for split in dsd:
        for path, label, _, _ in _rows(dsd[split]):
            assert label == _expected_label(path)
    report = json.loads((tmp_path / "out" / "report.json").read_text())
    assert report["num_images"] == 16 and report["num_skipped"] == 3
    assert set(_skipped(report)) == set(bad)
    _check_in_process_reader(forensynths.load_forensynths, raw, dsd, tmp_path)


def test_forensynths_without_split_folder_infers_train_or_test():
    assert forensynths.forensynths_rule(("car", "1_fake", "x.png")) == convert_common.Placement(
        "train", 1, "progan", "car"
    )
    assert forensynths.forensynths_rule(("biggan", "0_real", "x.png")) == convert_common.Placement(
        "test", 0, "biggan", "biggan"
    )


# ---------------------------------------------------------------- generic folders


@pytest.fixture
def folder_tree(tmp_path: Path) -> Path:
    raw = tmp_path / "mixed"
    _leaf(raw / "test" / "midjourney" / "nature", 1)
    _leaf(raw / "test" / "midjourney" / "ai", 2)
    _leaf(raw / "test" / "wild" / "deep" / "real", 3)
    _leaf(raw / "test" / "wild" / "deep" / "fake", 4)
    _leaf(raw / "train" / "mine" / "0_real" / "nested", 5, marker="0_real")  # images below the label folder
    _leaf(raw / "train" / "mine" / "1_fake", 6)
    _bad_files(raw / "train" / "mine" / "1_fake")
    _write(raw / "test" / "fake" / "real" / "which.png", _image_bytes("PNG", 8))
    return raw


def test_folder_any_depth_and_label_names(folder_tree, tmp_path):
    out = tmp_path / "out"
    dsd = folder.convert_folder(folder_tree, out)
    _check_schema(dsd)
    assert sorted(dsd) == ["test", "train"]
    test = _rows(dsd["test"])
    assert {(g, s) for _, _, g, s in test} == {("midjourney", "midjourney"), ("wild", "wild/deep")}
    for path, label, _, _ in test:
        assert label == _expected_label(path)
    train = _rows(dsd["train"])
    assert [(p, lab) for p, lab, _, _ in train] == [
        ("0_real_5_a.png", 0),
        ("0_real_5_b.jpg", 0),
        ("1_fake_6_a.png", 1),
        ("1_fake_6_b.jpg", 1),
    ]
    report = json.loads((out / "report.json").read_text())
    skipped = _skipped(report)
    assert skipped["test/fake/real/which.png"].startswith("ambiguous")
    assert report["num_skipped"] == 4
    assert sum(v["real"] + v["fake"] for s in report["counts"].values() for v in s.values()) == report["num_images"] == 12


def test_load_folder_dataset_in_process_without_split_folder(tmp_path):
    raw = tmp_path / "progan_eval"
    _leaf(raw / "0_real", 1)
    _leaf(raw / "1_fake", 2)
    _write(raw / "1_fake" / "zero.jpg", b"")
    dsd = folder.load_folder_dataset(raw, cache_dir=str(tmp_path / "hf_cache"))
    assert list(dsd) == ["train"]
    rows = _rows(dsd["train"])
    assert [(lab, g) for _, lab, g, _ in rows] == [(0, "progan_eval")] * 2 + [(1, "progan_eval")] * 2
    assert not (raw / "report.json").exists()  # in-process loading writes nothing into the raw tree
    # changed content under the same paths must not be served from a stale cache
    _write(raw / "0_real" / "0_real_9_c.png", _image_bytes("PNG", 9))
    assert folder.load_folder_dataset(raw, cache_dir=str(tmp_path / "hf_cache"))["train"].num_rows == 5
    # a tree without split folders read as a test set (same files, so the cache must tell the two apart)
    as_test = folder.load_folder_dataset(raw, default_split="test", cache_dir=str(tmp_path / "hf_cache"))
    assert list(as_test) == ["test"] and as_test["test"].num_rows == 5


def test_cli_and_push_to_hub_use_a_replaceable_client(folder_tree, tmp_path, monkeypatch):
    import huggingface_hub

    pushed, created = [], []
    monkeypatch.setattr(datasets.DatasetDict, "push_to_hub", lambda self, repo_id, **kw: pushed.append((repo_id, list(self))))
    monkeypatch.setattr(huggingface_hub.HfApi, "create_repo", lambda self, repo_id, **kw: created.append((repo_id, kw)))
    out = tmp_path / "cli_out"
    assert folder.main([str(folder_tree), "--output_dir", str(out), "--push_to_hub", "me/mixed"]) == 0
    assert pushed == [("me/mixed", ["test", "train"])]
    assert created == [("me/mixed", {"repo_type": "dataset", "exist_ok": True})]
    assert datasets.load_from_disk(str(out))["test"].num_rows == 8
    # re-running into the same output directory replaces the dataset cleanly, and only the dataset
    (out / "keep.txt").write_text("user file")
    assert folder.main([str(folder_tree), "--output_dir", str(out)]) == 0
    assert datasets.load_from_disk(str(out))["train"].num_rows == 4
    assert (out / "keep.txt").read_text() == "user file"


def test_empty_tree_is_a_clear_error(tmp_path):
    (tmp_path / "empty" / "0_real").mkdir(parents=True)
    _write(tmp_path / "empty" / "0_real" / "zero.png", b"")
    with pytest.raises(ValueError, match="no usable images"):
        folder.convert_folder(tmp_path / "empty", tmp_path / "out")


def test_folder_symlinks_out_of_the_tree_are_followed_and_hidden_entries_reported(tmp_path):
    raw, elsewhere = tmp_path / "raw", tmp_path / "elsewhere"
    _leaf(raw / "test" / "sd" / "0_real", 1)
    _leaf(elsewhere / "fakes", 2, marker="1_fake")
    (raw / "test" / "sd" / "1_fake").symlink_to(elsewhere / "fakes", target_is_directory=True)  # read
    (raw / "test" / "sd" / "zz_again").mkdir()
    (raw / "test" / "sd" / "zz_again" / "1_fake").symlink_to(elsewhere / "fakes", target_is_directory=True)  # again
    (raw / "benchmark").symlink_to(raw / "test", target_is_directory=True)  # sorts first: test stays test
    (raw / "test" / "sd" / "0_real" / "up").symlink_to(raw, target_is_directory=True)  # a loop back to the root
    _leaf(raw / ".trash" / "1_fake", 3)
    _write(raw / "test" / "sd" / "0_real" / ".DS_Store", b"finder")
    out = tmp_path / "out"
    dsd = folder.convert_folder(raw, out)
    assert list(dsd) == ["test"]
    assert sorted((p, lab, g) for p, lab, g, _ in _rows(dsd["test"])) == [
        ("0_real_1_a.png", 0, "sd"), ("0_real_1_b.jpg", 0, "sd"), ("1_fake_2_a.png", 1, "sd"), ("1_fake_2_b.jpg", 1, "sd"),
    ]
    skipped = _skipped(json.loads((out / "report.json").read_text()))
    assert skipped == {
        ".trash": "hidden folder, not read",
        "benchmark": "symlink to a folder of this tree or above it, not followed",
        "test/sd/0_real/.DS_Store": "hidden file, not read",
        "test/sd/0_real/up": "symlink to a folder of this tree or above it, not followed",
        **{f"test/sd/zz_again/1_fake/1_fake_2_{x}": f"file already read for generator 'sd' (test/sd/1_fake/1_fake_2_{x}), "
           "not read again" for x in ("a.png", "b.jpg")},
    }


def test_folder_split_folder_may_sit_below_the_generator(tmp_path):
    raw = tmp_path / "raw"
    _leaf(raw / "sdv14" / "train" / "0_real", 1)
    _leaf(raw / "sdv14" / "val" / "1_fake", 2)
    _leaf(raw / "val" / "train" / "1_fake", 3)  # ProGAN's LSUN class `train`: the first split folder decides
    dsd = folder.convert_folder(raw, tmp_path / "out")
    assert sorted(dsd) == ["train", "validation"]
    assert {(lab, g, s) for _, lab, g, s in _rows(dsd["train"])} == {(0, "sdv14", "sdv14")}
    assert {(lab, g, s) for _, lab, g, s in _rows(dsd["validation"])} == {(1, "sdv14", "sdv14"), (1, "train", "train")}


def test_forensynths_as_its_archives_unpack(tmp_path):
    raw = tmp_path / "CNNDetection"
    _leaf(raw / "progan_train" / "airplane" / "0_real", 1)
    _leaf(raw / "progan_val" / "train" / "1_fake", 2)
    _leaf(raw / "CNN_synth_testset" / "stylegan" / "car" / "1_fake", 3)
    dsd = forensynths.convert_forensynths(raw, tmp_path / "out")
    placed = {split: {(lab, g, s) for _, lab, g, s in _rows(dsd[split])} for split in dsd}
    assert placed == {"train": {(0, "progan", "airplane")}, "validation": {(1, "progan", "train")},
                      "test": {(1, "stylegan", "stylegan/car")}}


def test_archives_unzipped_into_split_folders_of_the_same_name_keep_their_generators(tmp_path):
    # CNNDetection's instructions: `cd dataset/test && unzip CNN_synth_testset.zip` (and so for train and val)
    raw = tmp_path / "dataset"
    _leaf(raw / "train" / "progan_train" / "airplane" / "0_real", 1)
    _leaf(raw / "val" / "progan_val" / "car" / "1_fake", 2)
    _leaf(raw / "test" / "CNN_synth_testset" / "stylegan" / "car" / "1_fake", 3)
    _leaf(raw / "test" / "CNN_synth_testset" / "deepfake" / "0_real", 4)
    expected = {"train": {(0, "progan", "airplane")}, "validation": {(1, "progan", "car")},
                "test": {(1, "stylegan", "stylegan/car"), (0, "deepfake", "deepfake")}}
    dsd = forensynths.convert_forensynths(raw, tmp_path / "out")
    assert {split: {(lab, g, s) for _, lab, g, s in _rows(dsd[split])} for split in dsd} == expected
    dsd = folder.convert_folder(raw, tmp_path / "out-folder")  # the generic reader reads it alike
    placed = {split: {(lab, g) for _, lab, g, _ in _rows(dsd[split])} for split in dsd}
    assert placed == {"train": {(0, "airplane")}, "validation": {(1, "car")}, "test": {(1, "stylegan"), (0, "deepfake")}}


def test_converters_refuse_what_the_loaders_refuse(tmp_path):
    from image_io import ImageLoadError, MAX_IMAGE_PIXELS, load_rgb_image
    from test_image_io import jpeg_with_corrupt_exif

    _write(tmp_path / "exif.jpg", jpeg_with_corrupt_exif())
    _write(tmp_path / "small.png", _image_bytes("PNG", 1))
    side = int(MAX_IMAGE_PIXELS ** 0.5) + 1  # over the loaders' limit, under twice it (where Pillow only warns)
    Image.new("1", (side, side)).save(tmp_path / "big.png")
    for name in ("exif.jpg", "small.png", "big.png"):
        try:
            load_rgb_image(tmp_path / name)
            refused = None
        except ImageLoadError as error:
            refused = str(error).removeprefix(f"{tmp_path / name}: ")
        assert convert_common.check_image(tmp_path / name) == refused, name
    assert convert_common.check_image(tmp_path / "small.png") is None
    assert convert_common.check_image(tmp_path / "big.png") == f"{side}x{side} is larger than the {MAX_IMAGE_PIXELS} pixel limit"


def test_converters_read_every_extension_the_scanner_reads(tmp_path):
    """The converters and --train_dir skipped .jfif, .jpe, .ppm, ... that predict.py and the demo score."""
    from inference import find_images

    for name, fmt in (("a.jfif", "JPEG"), ("b.jpe", "JPEG"), ("c.ppm", "PPM"), ("d.tga", "TGA")):
        _write(tmp_path / "raw" / "test" / "sd" / "1_fake" / name, _image_bytes(fmt, 1))
    _write(tmp_path / "raw" / "test" / "sd" / "0_real" / "e.png", _image_bytes("PNG", 2))
    plan = convert_common.plan_conversion(tmp_path / "raw", folder.folder_rule("raw"))
    assert plan.skipped == [] and len(plan.entries["test"]) == 5 == len(find_images([tmp_path / "raw"]))


def test_same_names_sizes_and_times_under_another_root_are_not_served_from_the_cache(tmp_path):
    colours = {"a": (255, 0, 0), "b": (0, 0, 255)}
    for tree, colour in colours.items():
        for label in ("0_real", "1_fake"):
            path = tmp_path / tree / "data" / label / "x.bmp"
            path.parent.mkdir(parents=True)
            Image.new("RGB", (4, 4), colour).save(path)  # BMP: same size whatever the colour
            os.utime(path, ns=(1_000_000_000, 1_000_000_000))
    for tree, colour in colours.items():
        dsd = folder.load_folder_dataset(tmp_path / tree / "data", cache_dir=str(tmp_path / "hf_cache"))
        assert dsd["train"][0]["image"].getpixel((0, 0)) == colour


def test_in_process_loading_logs_the_skipped_files(tmp_path, caplog):
    raw = tmp_path / "raw"
    _leaf(raw / "0_real", 1)
    _leaf(raw / "1_fake", 2)
    _leaf(raw / "generated", 3)  # not a label folder name of the converters
    with caplog.at_level("WARNING"):
        folder.load_folder_dataset(raw, cache_dir=str(tmp_path / "hf_cache"))
    assert "2 files skipped" in caplog.text
    assert "generated/generated_3_a.png: no label folder" in caplog.text


def test_label_split_folders_and_extensions_match_case_insensitively(tmp_path):
    raw = tmp_path / "raw"
    _write(raw / "Test" / "sd" / "Real" / "a.PNG", _image_bytes("PNG", 1))
    _write(raw / "Test" / "sd" / "FAKE" / "b.JPG", _image_bytes("JPEG", 2))
    plan = convert_common.plan_conversion(raw, folder.folder_rule("raw"))
    assert plan.skipped == []
    assert sorted(plan.entries["test"]) == [
        ("Test/sd/FAKE/b.JPG", convert_common.Placement("test", 1, "sd", "sd")),
        ("Test/sd/Real/a.PNG", convert_common.Placement("test", 0, "sd", "sd")),
    ]
    # the archive layouts too: GenImage's Val/Nature folders, AIGIBench's and ForenSynths' LSUN class names
    assert aigibench.aigibench_rule(("Train", "Car", "0_real", "x.png")) == convert_common.Placement(
        "train", 0, "progan", "Car"
    )
    assert forensynths.forensynths_rule(("Horse", "1_FAKE", "x.png")) == convert_common.Placement(
        "train", 1, "progan", "Horse"
    )
    assert genimage.genimage_rule(("ADM", "imagenet_ai", "Val", "Nature", "x.png")) == convert_common.Placement(
        "validation", 0, "ADM", "imagenet_ai"
    )


def test_a_file_cut_off_in_its_pixel_data_is_skipped(tmp_path):
    from image_io import ImageLoadError, load_rgb_image

    pixels = np.random.default_rng(0).integers(0, 256, (64, 64, 3), dtype=np.uint8)
    for fmt, name in (("PNG", "cut.png"), ("JPEG", "cut.jpg")):
        buffer = io.BytesIO()
        Image.fromarray(pixels).save(buffer, format=fmt)
        data = buffer.getvalue()
        _write(tmp_path / name, data[: len(data) * 2 // 3])  # header intact: opens, fails only when decoded
        with Image.open(tmp_path / name) as image:
            assert image.size == (64, 64)
        with pytest.raises(ImageLoadError, match="truncated"):
            load_rgb_image(tmp_path / name)  # what training would do with it, hours into a run
        assert convert_common.check_image(tmp_path / name).startswith("truncated or corrupt"), name


def test_folder_symlink_to_a_folder_above_the_root_is_not_followed(tmp_path):
    data = tmp_path / "data"
    raw = data / "raw"
    _leaf(raw / "0_real", 1)
    _leaf(raw / "1_fake", 2)
    _leaf(data / "unrelated" / "1_fake", 3)  # beside the tree: never to be read through the link
    (raw / "links").mkdir()
    (raw / "links" / "parent").symlink_to(data, target_is_directory=True)
    plan = convert_common.plan_conversion(raw, folder.folder_rule("raw"))
    assert [rel for rel, _ in plan.entries["train"]] == [
        "0_real/0_real_1_a.png", "0_real/0_real_1_b.jpg", "1_fake/1_fake_2_a.png", "1_fake/1_fake_2_b.jpg",
    ]
    assert plan.skipped == [
        {"file": "links/parent", "reason": "symlink to a folder of this tree or above it, not followed"}
    ]


def test_a_file_rewritten_with_the_same_size_is_not_served_from_the_cache(tmp_path):
    raw, cache = tmp_path / "raw", str(tmp_path / "hf_cache")
    for label in ("0_real", "1_fake"):
        (raw / label).mkdir(parents=True)
        Image.new("RGB", (4, 4), (255, 0, 0)).save(raw / label / "x.bmp")
        os.utime(raw / label / "x.bmp", ns=(1_000_000_000, 1_000_000_000))
    assert folder.load_folder_dataset(raw, cache_dir=cache)["train"][0]["image"].getpixel((0, 0)) == (255, 0, 0)
    Image.new("RGB", (4, 4), (0, 0, 255)).save(raw / "0_real" / "x.bmp")  # BMP: same size whatever the colour
    os.utime(raw / "0_real" / "x.bmp", ns=(2_000_000_000, 2_000_000_000))
    assert folder.load_folder_dataset(raw, cache_dir=cache)["train"][0]["image"].getpixel((0, 0)) == (0, 0, 255)


def test_two_files_of_one_size_and_mtime_swapped_between_labels_are_read_again(tmp_path):
    raw, cache = tmp_path / "raw", str(tmp_path / "hf_cache")
    for label, colour in (("0_real", (255, 0, 0)), ("1_fake", (0, 0, 255))):
        (raw / label).mkdir(parents=True)
        Image.new("RGB", (4, 4), colour).save(raw / label / "a.bmp")  # BMP: same size whatever the colour
        os.utime(raw / label / "a.bmp", ns=(1_000_000_000, 1_000_000_000))  # as tar restores whole seconds

    def colour_by_label() -> dict[int, tuple]:
        rows = folder.load_folder_dataset(raw, cache_dir=cache)["train"]
        return {row["label"]: row["image"].getpixel((0, 0)) for row in rows}

    assert colour_by_label() == {0: (255, 0, 0), 1: (0, 0, 255)}
    os.rename(raw / "0_real" / "a.bmp", tmp_path / "a.bmp")  # `mv` keeps each file's mtime
    os.rename(raw / "1_fake" / "a.bmp", raw / "0_real" / "a.bmp")
    os.rename(tmp_path / "a.bmp", raw / "1_fake" / "a.bmp")
    assert colour_by_label() == {0: (0, 0, 255), 1: (255, 0, 0)}  # each file under the label it now has


def test_the_same_files_read_with_another_layout_rule_are_not_served_from_the_cache(tmp_path):
    raw, cache = tmp_path / "raw", str(tmp_path / "hf_cache")
    _leaf(raw / "train" / "car" / "0_real", 1)
    _leaf(raw / "train" / "car" / "1_fake", 2)
    assert set(folder.load_folder_dataset(raw, cache_dir=cache)["train"]["generator"]) == {"car"}
    assert set(forensynths.load_forensynths(raw, cache_dir=cache)["train"]["generator"]) == {"progan"}


def test_report_counts_each_class_and_the_output_holds_only_the_dataset(tmp_path):
    raw, out = tmp_path / "raw", tmp_path / "out"
    _leaf(raw / "test" / "sd" / "0_real", 1)  # 2 reals
    _write(raw / "test" / "sd" / "1_fake" / "f.png", _image_bytes("PNG", 2))  # 1 fake
    _leaf(raw / "test" / "wild" / "deep" / "1_fake", 3)  # 2 fakes, no reals
    folder.convert_folder(raw, out)
    report = json.loads((out / "report.json").read_text())
    assert report["counts"] == {"test": {"sd": {"real": 2, "fake": 1}, "wild/deep": {"real": 0, "fake": 2}}}
    assert report["counts_by_generator"] == {"test": {"sd": {"real": 2, "fake": 1}, "wild": {"real": 0, "fake": 2}}}
    assert report["num_images"] == 5 and report["num_skipped"] == 0
    # the private build cache is dropped: the output is the saved dataset and its report, not a second copy
    assert sorted(p.name for p in out.iterdir()) == ["dataset_dict.json", "report.json", "test"]


def test_in_process_loading_lists_ten_skipped_files_then_how_many_more(tmp_path, caplog):
    raw = tmp_path / "raw"
    _leaf(raw / "0_real", 1)
    _leaf(raw / "1_fake", 2)
    for i in range(11):
        _write(raw / "notes" / f"n{i:02d}.png", _image_bytes("PNG", i))  # no label folder
    with caplog.at_level("WARNING"):
        folder.load_folder_dataset(raw, cache_dir=str(tmp_path / "hf_cache"))
    assert "11 files skipped" in caplog.text
    assert "notes/n09.png: no label folder" in caplog.text and "n10.png" not in caplog.text
    assert "... and 1 more" in caplog.text


def test_load_folder_dataset_names_the_generator_after_the_resolved_folder(tmp_path, monkeypatch):
    raw = tmp_path / "progan_eval"
    _leaf(raw / "0_real", 1)
    _leaf(raw / "1_fake", 2)
    monkeypatch.chdir(raw)
    dsd = folder.load_folder_dataset(".", cache_dir=str(tmp_path / "hf_cache"))
    assert set(dsd["train"]["generator"]) == {"progan_eval"}


def _stored_images(dataset: datasets.Dataset) -> dict[str, bytes | None]:
    """path → the bytes a row stores (None: a path alone, read from wherever the reader stands)."""
    images = dataset.cast_column("image", datasets.Image(decode=False))["image"]
    return {image["path"]: image["bytes"] for image in images}


def test_rows_keep_their_bytes_when_the_working_directory_holds_a_file_of_the_same_relative_path(tmp_path, monkeypatch):
    """datasets' Image encoder keeps a path alone when it names a file from the working directory: that file, not
    the one under raw_dir, would then be read (and nothing, from anywhere else)."""
    raw = tmp_path / "data"
    _leaf(raw / "0_real", 1)
    _leaf(raw / "1_fake", 2)
    impostor = tmp_path / "0_real" / "0_real_1_a.png"  # same path relative to the working directory
    _write(impostor, _image_bytes("PNG", 99))
    monkeypatch.chdir(tmp_path)
    in_process = folder.load_folder_dataset("data", cache_dir=str(tmp_path / "hf_cache"))["train"]
    monkeypatch.chdir(raw)  # converting from inside the tree: every relative path names its own file from here
    folder.convert_folder(".", tmp_path / "out")
    monkeypatch.chdir(tmp_path.parent)
    saved = datasets.load_from_disk(str(tmp_path / "out"))["train"]
    files = {path.relative_to(raw).as_posix(): path.read_bytes() for path in raw.rglob("*.*")}
    assert _stored_images(in_process) == files and len(files) == 4
    assert _stored_images(saved) == {Path(rel).name: data for rel, data in files.items()}  # save_to_disk keeps names
    row = next(row for row in in_process if row["label"] == 0 and row["image"].format == "PNG")
    assert np.array_equal(np.asarray(row["image"]), np.asarray(Image.open(raw / "0_real" / "0_real_1_a.png")))


def test_genimage_accepts_the_short_layout_and_rejects_deeper_ones():
    assert genimage.genimage_rule(("ADM", "train", "ai", "x.png")) == convert_common.Placement("train", 1, "ADM", "ADM")
    assert genimage.genimage_rule(("ADM", "val", "nature", "x.png")) == convert_common.Placement(
        "validation", 0, "ADM", "ADM"
    )
    deeper = genimage.genimage_rule(("ADM", "imagenet_ai_0508_adm", "extra", "train", "ai", "x.png"))
    assert isinstance(deeper, str) and deeper.startswith("unexpected GenImage layout")


def test_genimage_refuses_a_folder_wrapping_the_generator_folders(tmp_path):
    # `GenImage/ADM/train/ai`: read from above the wrapper, it would be one generator named "GenImage"
    raw = tmp_path / "downloads"
    for generator in ("ADM", "Midjourney"):
        _leaf(raw / "GenImage" / generator / "train" / "ai", 1)
        _leaf(raw / "GenImage" / generator / "train" / "nature", 2)
    with pytest.raises(ValueError, match="no usable images"):
        genimage.convert_genimage(raw, tmp_path / "out")
    reason = genimage.genimage_rule(("GenImage", "ADM", "train", "ai", "x.png"))
    assert "'ADM' is no imagenet_* folder" in reason and "give that folder as RAW_DIR" in reason
    dsd = genimage.convert_genimage(raw / "GenImage", tmp_path / "out")  # the folder it asks for
    assert sorted(set(dsd["train"]["generator"])) == ["ADM", "Midjourney"]


def test_a_test_archive_unzipped_into_its_split_folder_keeps_its_generators(tmp_path):
    raw = tmp_path / "AIGIBench"  # `cd test && unzip test.zip` gives test/test/<gen>/...
    _leaf(raw / "train" / "car" / "0_real", 1)
    _leaf(raw / "train" / "car" / "1_fake", 2)
    for generator in ("FLUX1-dev", "SDXL"):
        _leaf(raw / "test" / "test" / generator / "0_real", 3)
        _leaf(raw / "test" / "test" / generator / "1_fake", 4)
    dsd = aigibench.convert_aigibench(raw, tmp_path / "out")
    assert sorted(set(dsd["test"]["generator"])) == ["FLUX1-dev", "SDXL"]
    assert forensynths.forensynths_rule(("test", "test", "biggan", "1_fake", "x.png")).generator == "biggan"
    dsd = folder.convert_folder(raw, tmp_path / "out-folder")  # the generic reader alike
    assert sorted(set(dsd["test"]["generator"])) == ["FLUX1-dev", "SDXL"]
    # ... but `train/train/` is ProGAN's LSUN class "train" under the training split, as before
    assert aigibench.aigibench_rule(("train", "train", "0_real", "x.png")) == convert_common.Placement(
        "train", 0, "progan", "train")
    assert folder.folder_rule("raw")(("train", "train", "0_real", "x.png")).generator == "train"


def test_a_training_archive_unzipped_into_train_keeps_its_generators(tmp_path):
    # was: `train/train/sdv1.4/1_fake` read the repeated `train` as ProGAN's LSUN class: every training generator
    # became `progan`, and an ablation then counted SD1.4 tests as unseen
    raw = tmp_path / "AIGIBench"
    for generator in ("car", "sdv1.4"):
        _leaf(raw / "train" / "train" / generator / "0_real", 1)
        _leaf(raw / "train" / "train" / generator / "1_fake", 2)
    _leaf(raw / "test" / "SDXL" / "0_real", 3)
    _leaf(raw / "test" / "SDXL" / "1_fake", 4)
    dsd = aigibench.convert_aigibench(raw, tmp_path / "out")
    assert sorted(set(zip(dsd["train"]["generator"], dsd["train"]["subset"]))) == [("progan", "car"),
                                                                                   ("sdv1.4", "sdv1.4")]
    # the archive repeated above the LSUN class `train` itself: that class
    assert aigibench.aigibench_rule(("train", "train", "train", "0_real", "x.png")) == convert_common.Placement(
        "train", 0, "progan", "train")
    assert forensynths.forensynths_rule(("train", "train", "car", "1_fake", "x.png")).subset == "car"
    assert folder.folder_rule("raw")(("train", "train", "sd", "0_real", "x.png")).generator == "sd"


def test_nas_and_system_metadata_folders_are_reported_not_read(tmp_path):
    raw = tmp_path / "raw"
    _leaf(raw / "test" / "sd" / "0_real", 1)
    _leaf(raw / "test" / "sd" / "1_fake", 2)
    # a Synology NAS keeps downscaled JPEG thumbnails of each image beside it: other bytes, same class folder
    _write(raw / "test" / "sd" / "0_real" / "@eaDir" / "0_real_1_a.png" / "SYNOPHOTO_THUMB_S.jpg", _image_bytes("JPEG", 9))
    _leaf(raw / "$RECYCLE.BIN" / "1_fake", 3)
    out = tmp_path / "out"
    dsd = aigibench.convert_aigibench(raw, out)
    assert len(dsd["test"]) == 4
    skipped = _skipped(json.loads((out / "report.json").read_text()))
    reason = "system metadata folder (thumbnails, recycle bin), not read"
    assert skipped == {"$RECYCLE.BIN": reason, "test/sd/0_real/@eaDir": reason}


def test_converter_help_shows_the_layout_and_the_run_names_its_generators(tmp_path, capsys):
    with pytest.raises(SystemExit):
        genimage.main(["--help"])
    assert "imagenet_ai_0419_sdv4/train/ai/xxx.png" in capsys.readouterr().out  # the layout paragraph, as written
    raw = tmp_path / "raw"
    for generator in ("ADM", "wukong"):
        _leaf(raw / generator / "imagenet_x" / "val" / "ai", 1)
        _leaf(raw / generator / "imagenet_x" / "val" / "nature", 2)
    assert genimage.main([str(raw), "--output_dir", str(tmp_path / "out")]) == 0
    assert "validation: 2 generator(s): ADM, wukong" in capsys.readouterr().out
    file = tmp_path / "images.zip"
    file.write_bytes(b"PK")
    with pytest.raises(SystemExit):
        genimage.main([str(file), "--output_dir", str(tmp_path / "out2")])
    assert "is a file, not a folder" in capsys.readouterr().err


def test_aigibench_rule_edge_layouts():
    place = convert_common.Placement
    # a test generator that happens to share an LSUN class name is still its own generator
    assert aigibench.aigibench_rule(("test", "car", "1_fake", "x.png")) == place("test", 1, "car", "car")
    # deeper folders are kept in the subset name; the generator is the first folder
    assert aigibench.aigibench_rule(("test", "FLUX", "portrait", "0_real", "x.png")) == place(
        "test", 0, "FLUX", "FLUX/portrait"
    )
    # no name folder, or no split folder: skipped with a reason, not crashed on nor guessed
    for parts in (("train", "0_real", "x.png"), ("FLUX", "1_fake", "x.png")):
        reason = aigibench.aigibench_rule(parts)
        assert isinstance(reason, str) and reason.startswith("unexpected AIGIBench layout"), parts
    # a split folder deeper down is no subset: a GenImage tree's training images became test data of subsets such as
    # "ADM/imagenet_ai_0508_adm/train", and validation images training data of "sdv1.4/val"
    for parts in (("test", "ADM", "imagenet_ai_0508_adm", "train", "ai", "x.png"),
                  ("train", "sdv1.4", "val", "0_real", "x.png"), ("test", "FLUX", "Test", "1_fake", "x.png")):
        reason = aigibench.aigibench_rule(parts)
        assert isinstance(reason, str) and "a GenImage tree is read by genimage.py" in reason, parts
    # ProGAN's test set holds a folder for the LSUN class "train"
    assert aigibench.aigibench_rule(("test", "ProGAN", "train", "1_fake", "x.png")) == place(
        "test", 1, "ProGAN", "ProGAN/train")


def test_forensynths_rule_edge_layouts():
    place = convert_common.Placement
    # label folders straight under a val folder: ProGAN data without a class folder; under `train/`, that is the LSUN
    # class "train" of a tree rooted at progan_train/ (test_forensynths_rooted_at_its_training_folder_...)
    assert forensynths.forensynths_rule(("val", "1_fake", "x.png")) == place("validation", 1, "progan", "progan")
    # under test/, a generator folder named like an LSUN class is the generator, not ProGAN training data
    assert forensynths.forensynths_rule(("test", "car", "1_fake", "x.png")) == place("test", 1, "car", "car")
    # label folders straight under test/: no generator to name, skipped with a reason
    reason = forensynths.forensynths_rule(("test", "0_real", "x.png"))
    assert isinstance(reason, str) and reason.startswith("unexpected ForenSynths layout")
    # no split folder above the label folder: one below it names the split (validation images were trained on, and
    # a generator's train/ images were test data)
    assert forensynths.forensynths_rule(("car", "0_real", "val", "x.png")) == place("validation", 0, "progan", "car")
    assert forensynths.forensynths_rule(("deepfake", "1_fake", "train", "x.png")) == place("train", 1, "deepfake",
                                                                                           "deepfake")
    assert forensynths.forensynths_rule(("test", "car", "1_fake", "val", "x.png")).split == "test"  # above comes first
    # ProGAN's held-out images split below the label stay ProGAN's, not a generator called "car"
    assert forensynths.forensynths_rule(("car", "0_real", "test", "x.png")) == place("test", 0, "progan", "car")
    # a GenImage tree given to this converter: its train/ and val/ images became test data of subsets such as
    # "ADM/imagenet_ai_0508_adm/train"; refused like any path off the layout
    for parts in (("ADM", "imagenet_ai_0508_adm", "train", "ai", "x.png"), ("ADM", "val", "nature", "x.png"),
                  ("ADM", "train", "ai", "x.png"), ("test", "stylegan", "car", "extra", "1_fake", "x.png")):
        reason = forensynths.forensynths_rule(parts)
        assert isinstance(reason, str) and "a GenImage tree is read by genimage.py" in reason, parts
    # ProGAN's test set holds a folder for the LSUN class "train"
    assert forensynths.forensynths_rule(("test", "progan", "train", "1_fake", "x.png")) == place(
        "test", 1, "progan", "progan/train")


def test_folder_symlink_to_the_filesystem_root_is_not_followed(tmp_path):
    raw = tmp_path / "raw"
    _leaf(raw / "0_real", 1)
    _leaf(raw / "1_fake", 2)
    (raw / "links").mkdir()
    (raw / "links" / "root").symlink_to("/", target_is_directory=True)
    walked = list(itertools.islice(convert_common.walk_files(raw), 50))  # bounded: a buggy walk reads the whole disk
    assert [(w.path.relative_to(raw).as_posix(), w.skip_reason) for w in walked] == [
        ("0_real/0_real_1_a.png", None),
        ("0_real/0_real_1_b.jpg", None),
        ("1_fake/1_fake_2_a.png", None),
        ("1_fake/1_fake_2_b.jpg", None),
        ("links/root", "symlink to a folder of this tree or above it, not followed"),
    ]


def _tree_of_two_links(tmp_path: Path, leaves: tuple[str, ...], test_link: tuple[str, str],
                       train_link: tuple[str, str]) -> tuple[Path, Path]:
    """`raw/test/<name>` and `raw/train/<name>` linked to folders of `elsewhere`, which holds `leaves`."""
    raw, elsewhere = tmp_path / "raw", tmp_path / "elsewhere"
    for seed, leaf in enumerate(leaves, start=1):
        _leaf(elsewhere / leaf, seed)
    for split, (name, target) in (("test", test_link), ("train", train_link)):
        (raw / split).mkdir(parents=True)
        (raw / split / name).symlink_to(elsewhere / target, target_is_directory=True)
    return raw, elsewhere


def test_files_reached_through_two_folder_symlinks_are_read_once(tmp_path):
    # the whole collection as test data, and one part of it as train
    raw, _ = _tree_of_two_links(tmp_path, ("sd/0_real", "sd/1_fake"), ("all", ""), ("sd", "sd"))
    plan = convert_common.plan_conversion(raw, folder.folder_rule("raw"))
    kept = [os.path.realpath(raw / rel) for entries in plan.entries.values() for rel, _ in entries]
    assert len(kept) == 4 == len(set(kept)), sorted(plan.entries)  # no image in both train and test


def test_files_read_through_one_link_are_not_read_again_below_another(tmp_path):
    # test/sd is read first (sorted order); train/all holds sd again, as a plain folder
    raw, elsewhere = _tree_of_two_links(tmp_path, ("sd/0_real", "gan/1_fake"), ("sd", "sd"), ("all", ""))
    plan = convert_common.plan_conversion(raw, folder.folder_rule("raw"))
    assert [rel for rel, _ in plan.entries["test"]] == ["test/sd/0_real/0_real_1_a.png", "test/sd/0_real/0_real_1_b.jpg"]
    assert [rel for rel, _ in plan.entries["train"]] == [
        "train/all/gan/1_fake/1_fake_2_a.png", "train/all/gan/1_fake/1_fake_2_b.jpg"
    ]
    assert plan.skipped == [
        {"file": f"train/all/sd/0_real/0_real_1_{x}",
         "reason": f"file already read into split 'test' (test/sd/0_real/0_real_1_{x}): no file lands in two splits"}
        for x in ("a.png", "b.jpg")
    ]


def test_a_real_set_shared_by_two_test_generators_counts_for_both(tmp_path):
    """Test generators often share one set of reals; linked in, as copied in, each generator keeps it (it gave
    the second generator no reals at all, and so no R.Acc, AP or AUC, when every real folder was read once)."""
    raw, shared = tmp_path / "raw", tmp_path / "shared"
    _leaf(shared, 1, marker="0_real")
    for seed, generator in enumerate(("gan", "sd"), start=2):
        _leaf(raw / "test" / generator / "1_fake", seed)
        (raw / "test" / generator / "0_real").symlink_to(shared, target_is_directory=True)
    (raw / "train" / "sd").mkdir(parents=True)
    (raw / "train" / "sd" / "0_real").symlink_to(shared, target_is_directory=True)  # a test image: not trained on
    (raw / "train" / "sd" / "1_fake").symlink_to(shared, target_is_directory=True)  # a real: never also a fake
    (raw / "test" / "sd" / "1_fake" / "loop").symlink_to(raw / "test", target_is_directory=True)
    (shared / "loop").symlink_to(shared, target_is_directory=True)  # a loop outside the tree
    plan = convert_common.plan_conversion(raw, folder.folder_rule("raw"))
    assert list(plan.entries) == ["test"]
    reals = {(placement.generator, Path(rel).name) for rel, placement in plan.entries["test"] if placement.label == 0}
    assert reals == {(g, f"0_real_1_{x}") for g in ("gan", "sd") for x in ("a.png", "b.jpg")}
    reasons = {item["file"]: item["reason"] for item in plan.skipped}
    assert reasons["train/sd/0_real/0_real_1_a.png"] == (
        "file already read into split 'test' (test/gan/0_real/0_real_1_a.png): no file lands in two splits"
    )
    assert reasons["train/sd/1_fake/0_real_1_b.jpg"].startswith("file already read into split 'test'")
    assert reasons["test/gan/0_real/loop"] == f"symlink loop (back to {shared.resolve()}), not followed"
    assert reasons["test/sd/1_fake/loop"] == "symlink to a folder of this tree or above it, not followed"


def test_a_file_with_two_labels_or_twice_in_one_generator_is_kept_once(tmp_path):
    raw, shared = tmp_path / "raw", tmp_path / "shared"
    _leaf(shared, 1, marker="x")
    (raw / "test" / "sd").mkdir(parents=True)
    (raw / "test" / "sd" / "0_real").symlink_to(shared, target_is_directory=True)
    (raw / "test" / "sd" / "1_fake").symlink_to(shared, target_is_directory=True)
    (raw / "test" / "sd" / "v2").mkdir()
    (raw / "test" / "sd" / "v2" / "0_real").symlink_to(shared, target_is_directory=True)
    plan = convert_common.plan_conversion(raw, folder.folder_rule("raw"))
    assert [rel for rel, _ in plan.entries["test"]] == ["test/sd/0_real/x_1_a.png", "test/sd/0_real/x_1_b.jpg"]
    reasons = {item["file"]: item["reason"] for item in plan.skipped}
    assert reasons == {
        **{f"test/sd/1_fake/x_1_{x}": f"file already read as real (test/sd/0_real/x_1_{x}): one file cannot be both"
           for x in ("a.png", "b.jpg")},
        **{f"test/sd/v2/0_real/x_1_{x}":
           f"file already read for generator 'sd' (test/sd/0_real/x_1_{x}), not read again" for x in ("a.png", "b.jpg")},
    }


def test_a_file_reached_through_two_links_is_read_once(tmp_path):
    raw, outside = tmp_path / "raw", tmp_path / "outside.png"
    _leaf(raw / "train" / "real", 1)
    _write(outside, _image_bytes("PNG", 5))
    (raw / "test" / "real").mkdir(parents=True)
    (raw / "test" / "real" / "a_link.png").symlink_to(raw / "train" / "real" / "real_1_a.png")
    (raw / "test" / "real" / "x.png").symlink_to(outside)
    (raw / "train" / "real" / "x.png").symlink_to(outside)
    plan = convert_common.plan_conversion(raw, folder.folder_rule("raw"))
    assert [rel for rel, _ in plan.entries["test"]] == ["test/real/a_link.png", "test/real/x.png"]
    assert [rel for rel, _ in plan.entries["train"]] == ["train/real/real_1_b.jpg"]  # the two read under test/
    assert {item["file"] for item in plan.skipped} == {"train/real/real_1_a.png", "train/real/x.png"}
    assert all(item["reason"].startswith("file already read") for item in plan.skipped)


def test_a_folder_that_cannot_be_listed_is_reported_not_silently_left_out(tmp_path, monkeypatch):
    raw = tmp_path / "raw"
    _leaf(raw / "train" / "0_real", 1)
    _leaf(raw / "train" / "1_fake", 2)
    locked = raw / "train" / "1_fake" / "locked"
    _leaf(locked, 3)
    scandir = os.scandir

    def refusing(path="."):  # chmod 000 does not stop root: refuse the listing instead
        if os.fspath(path) == str(locked):
            raise PermissionError(13, "Permission denied", str(locked))
        return scandir(path)

    monkeypatch.setattr(os, "scandir", refusing)
    plan = convert_common.plan_conversion(raw, folder.folder_rule("raw"))
    assert len(plan.entries["train"]) == 4
    assert plan.skipped == [
        {"file": "train/1_fake/locked", "reason": "folder cannot be read (Permission denied), not read"}
    ]


def _files(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.mark.parametrize("where", ["the raw folder", "inside the raw folder", "above the raw folder"])
def test_an_output_that_overlaps_the_raw_tree_is_refused_and_nothing_is_touched(tmp_path, where):
    data = tmp_path / "data"
    _leaf(data / "train" / "0_real", 1)
    _leaf(data / "train" / "1_fake", 2)
    raw, out = {"the raw folder": (data, data), "inside the raw folder": (data, data / "converted"),
                "above the raw folder": (data / "train", data)}[where]
    before = _files(data)
    for _ in range(2):  # a second run must not take the first one's leftovers for an earlier dataset
        with pytest.raises(ValueError, match="overlap"):
            folder.convert_folder(raw, out)
    assert _files(data) == before and not (data / "converted").exists()


def test_an_output_folder_holding_other_things_is_refused_untouched(tmp_path):
    raw = tmp_path / "raw"
    _leaf(raw / "0_real", 1)
    _leaf(raw / "1_fake", 2)
    home = tmp_path / "home"  # e.g. --output_dir ~ : a datasets/model cache and anything else must survive
    _write(home / ".cache" / "huggingface" / "model.safetensors", b"weights")
    _write(home / "notes.txt", b"mine")
    single = tmp_path / "single-dataset"  # an earlier datasets.Dataset, not a conversion
    datasets.Dataset.from_dict({"x": [1, 2, 3]}).save_to_disk(str(single))
    for out in (home, single):
        before = _files(out)
        with pytest.raises(FileExistsError, match="not an earlier output of this converter"):
            folder.convert_folder(raw, out)
        assert _files(out) == before
    assert datasets.load_from_disk(str(single))["x"] == [1, 2, 3]


def test_a_rerun_replaces_its_own_earlier_dataset_and_keeps_the_rest(tmp_path):
    raw, out = tmp_path / "raw", tmp_path / "out"
    _leaf(raw / "train" / "0_real", 1)
    _leaf(raw / "train" / "1_fake", 2)
    _leaf(raw / "test" / "sd" / "0_real", 3)
    _leaf(raw / "test" / "sd" / "1_fake", 4)
    folder.convert_folder(raw, out)
    _write(out / "NOTES.md", b"my notes")
    import shutil

    shutil.rmtree(raw / "test")  # the new conversion has no test split: the old one must not linger
    result = folder.convert_folder(raw, out)
    assert set(result) == {"train"} and result["train"].num_rows == 4
    assert sorted(p.name for p in out.iterdir()) == ["NOTES.md", "dataset_dict.json", "report.json", "train"]
    assert set(datasets.load_from_disk(str(out))) == {"train"}


def test_a_new_split_in_the_way_of_a_folder_that_is_not_ours_keeps_the_earlier_dataset(tmp_path):
    raw, out = tmp_path / "raw", tmp_path / "out"
    _leaf(raw / "test" / "sd" / "0_real", 1)
    _leaf(raw / "test" / "sd" / "1_fake", 2)
    folder.convert_folder(raw, out)
    _write(out / "train" / "mine.txt", b"not a split of the dataset")
    _leaf(raw / "train" / "0_real", 3)
    _leaf(raw / "train" / "1_fake", 4)
    with pytest.raises(FileExistsError, match="\\['train'\\]"):
        folder.convert_folder(raw, out)
    assert (out / "train" / "mine.txt").read_bytes() == b"not a split of the dataset"
    assert set(datasets.load_from_disk(str(out))) == {"test"}
    assert not [p.name for p in out.iterdir() if p.name.startswith(".pinclip-build")]


def test_converter_cli_reports_user_errors_with_status_2_and_leaves_no_folder(tmp_path, capsys):
    (tmp_path / "empty").mkdir()
    for raw, message in ((tmp_path / "missing", "raw directory not found"), (tmp_path / "empty", "no usable images")):
        with pytest.raises(SystemExit) as exit_:
            folder.main([str(raw), "--output_dir", str(tmp_path / "out")])
        error = capsys.readouterr().err
        assert exit_.value.code == 2 and message in error and "Traceback" not in error
        assert not (tmp_path / "out").exists()


def test_a_disk_filling_up_while_the_rows_are_written_is_a_message_not_a_traceback(tmp_path, capsys, monkeypatch):
    # was: datasets wrapped the OSError in DatasetGenerationError, which the CLI did not catch: traceback, exit 1
    raw = tmp_path / "raw"
    _leaf(raw / "0_real", 1)
    _leaf(raw / "1_fake", 2)
    rows = convert_common._rows

    def filling_up(raw_dir, entries):
        yield next(rows(raw_dir, entries))
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(convert_common, "_rows", filling_up)
    with pytest.raises(SystemExit) as exit_:
        folder.main([str(raw), "--output_dir", str(tmp_path / "out")])
    error = capsys.readouterr().err
    assert exit_.value.code == 2 and "writing the train rows failed: No space left on device" in error
    assert "Traceback" not in error and not (tmp_path / "out").exists()


def test_an_empty_hub_id_is_refused_not_ignored(tmp_path, capsys):
    # was: `--push_to_hub "$UNSET"` converted, uploaded nothing and exited 0
    raw = tmp_path / "raw"
    _leaf(raw / "0_real", 1)
    _leaf(raw / "1_fake", 2)
    with pytest.raises(SystemExit) as exit_:
        folder.main([str(raw), "--output_dir", str(tmp_path / "out"), "--push_to_hub", ""])
    assert exit_.value.code == 2 and "--push_to_hub: needs a repository id" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()
    from datasets_scripts import minigenimage

    with pytest.raises(SystemExit) as exit_:  # refused before any build
        minigenimage.main(["--output_dir", str(tmp_path / "mini"), "--push_to_hub", " "])
    assert exit_.value.code == 2 and "--push_to_hub: needs a repository id" in capsys.readouterr().err


def test_a_broken_link_in_the_way_of_a_new_split_keeps_the_earlier_dataset(tmp_path):
    raw, out = tmp_path / "raw", tmp_path / "out"
    _leaf(raw / "test" / "sd" / "0_real", 1)
    _leaf(raw / "test" / "sd" / "1_fake", 2)
    folder.convert_folder(raw, out)
    (out / "train").symlink_to(tmp_path / "missing")
    _leaf(raw / "train" / "0_real", 3)
    _leaf(raw / "train" / "1_fake", 4)
    with pytest.raises(FileExistsError, match="\\['train'\\]"):
        folder.convert_folder(raw, out)
    assert set(datasets.load_from_disk(str(out))) == {"test"}


def test_a_killed_runs_build_folder_is_removed_and_a_running_ones_kept_whatever_their_age(tmp_path):
    """Build folders went by age: a run killed an hour ago kept its (possibly huge) datasets cache in the output for a
    day, and a conversion running for over a day had its build deleted under it by a second conversion."""
    raw, out = tmp_path / "raw", tmp_path / "out"
    _leaf(raw / "0_real", 1)
    _leaf(raw / "1_fake", 2)
    two_days_ago = time.time() - 2 * 24 * 3600
    _write(out / ".pinclip-build-killed" / "cache" / "x.arrow", b"left behind an hour ago")
    _write(out / ".pinclip-build-killed" / ".lock", b"")  # its process ended: nobody holds the lock
    _write(out / ".pinclip-build-running" / "cache" / "x.arrow", b"another conversion, running for two days")
    _write(out / ".pinclip-build-unlocked" / "cache" / "x.arrow", b"killed before it took its lock, two days ago")
    for name in ("running", "unlocked"):
        os.utime(out / f".pinclip-build-{name}", (two_days_ago, two_days_ago))
    with FileLock(out / ".pinclip-build-running" / ".lock"):
        assert folder.convert_folder(raw, out)["train"].num_rows == 4
    assert sorted(p.name for p in out.iterdir()) == [".pinclip-build-running", "dataset_dict.json", "report.json",
                                                      "train"]


def test_an_output_we_cannot_write_into_fails_before_any_image_is_checked(tmp_path, monkeypatch):
    """Every image was decoded first (hours on GenImage), then the error named a hidden build folder."""
    from datasets_scripts import convert_common

    raw, out = tmp_path / "raw", tmp_path / "out"
    _leaf(raw / "0_real", 1)
    _leaf(raw / "1_fake", 2)
    out.mkdir()

    def read_only(*args, **kwargs):
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(convert_common.tempfile, "mkdtemp", read_only)
    monkeypatch.setattr(convert_common, "check_image", lambda path: pytest.fail("an image was checked"))
    with pytest.raises(OSError, match="cannot write into the output folder .*out: Permission denied"):
        folder.convert_folder(raw, out)


def test_a_failed_conversion_removes_the_parent_folders_it_made(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="no usable images"):
        folder.convert_folder(tmp_path / "empty", tmp_path / "new" / "deeper" / "out")
    assert not (tmp_path / "new").exists()


def test_the_cli_says_why_files_were_skipped(tmp_path, capsys):
    """A wrong root (here one folder too deep for GenImage's layout) used to say only 'no usable images ... (N files
    skipped)', and the failed run leaves no report.json to look in."""
    raw = tmp_path / "GenImage"
    _leaf(raw / "wrapper" / "sd" / "imagenet_ai" / "val" / "ai", 1)
    with pytest.raises(SystemExit) as exit_:
        genimage.main([str(raw), "--output_dir", str(tmp_path / "out")])
    error = capsys.readouterr().err
    assert exit_.value.code == 2
    assert "2 files skipped; commonest reasons: 2 × " in error and "layout" in error
    _leaf(raw / "sd" / "imagenet_ai" / "val" / "ai", 2)
    _write(raw / "sd" / "notes.txt", b"not an image")
    assert genimage.main([str(raw), "--output_dir", str(tmp_path / "out")]) == 0
    assert "2 images written, 3 files skipped; commonest reasons: 2 × " in capsys.readouterr().out


def test_skip_reasons_are_counted_by_kind_and_a_bad_file_is_decoded_once(tmp_path, monkeypatch, capsys):
    raw, shared = tmp_path / "raw", tmp_path / "shared"
    _leaf(shared, 1, marker="x")
    _write(shared / "broken.png", _image_bytes("PNG", 3)[:40])
    _leaf(raw / "test" / "sd" / "1_fake", 2)
    (raw / "test" / "gan").mkdir(parents=True)
    for generator in ("gan", "sd"):
        (raw / "test" / generator / "0_real").symlink_to(shared, target_is_directory=True)
    (raw / "train" / "sd").mkdir(parents=True)
    (raw / "train" / "sd" / "0_real").symlink_to(shared, target_is_directory=True)
    checked = []
    check_image = convert_common.check_image
    monkeypatch.setattr(convert_common, "check_image", lambda path: checked.append(path.name) or check_image(path))
    assert folder.main([str(raw), "--output_dir", str(tmp_path / "out")]) == 0
    assert checked.count("broken.png") == 1  # refused once, not decoded again through every link
    out = capsys.readouterr().out
    # the paths in brackets differ per file; the kinds are what the count is about
    assert "6 images written, 5 files skipped; commonest reasons: 3 × not a recognised image file, " in out
    assert ", 2 × file already read into split 'test' (see report.json)" in out


def test_a_hub_that_cannot_be_reached_stops_the_conversion_before_any_work(folder_tree, tmp_path, monkeypatch, capsys):
    """It was tried after the whole conversion (hours for GenImage), with a traceback, and the output replaced."""
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(convert_common, "plan_conversion", lambda *a: pytest.fail("converted before the Hub check"))
    with pytest.raises(SystemExit) as stopped:
        folder.main([str(folder_tree), "--output_dir", str(tmp_path / "out"), "--push_to_hub", "me/mixed"])
    assert stopped.value.code == 2 and "cannot create the dataset me/mixed on the Hub" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_a_misspelt_raw_folder_stops_before_the_hub_is_touched(tmp_path, monkeypatch, capsys):
    import huggingface_hub

    monkeypatch.setattr(huggingface_hub.HfApi, "create_repo", lambda *a, **kw: pytest.fail("repository created"))
    with pytest.raises(SystemExit) as stopped:  # an empty dataset repository was left on the Hub
        folder.main([str(tmp_path / "no_such_raw_dir"), "--output_dir", str(tmp_path / "out"), "--push_to_hub", "me/x"])
    assert stopped.value.code == 2 and "raw directory not found" in capsys.readouterr().err


def test_an_upload_that_fails_after_the_conversion_says_the_dataset_is_written(folder_tree, tmp_path, monkeypatch,
                                                                               capsys):
    import huggingface_hub

    monkeypatch.setattr(huggingface_hub.HfApi, "create_repo", lambda self, repo_id, **kw: None)
    def quota(self, repo_id, **kw):
        raise RuntimeError("quota exceeded")
    monkeypatch.setattr(datasets.DatasetDict, "push_to_hub", quota)
    with pytest.raises(SystemExit) as stopped:
        folder.main([str(folder_tree), "--output_dir", str(tmp_path / "out"), "--push_to_hub", "me/mixed"])
    assert stopped.value.code == 2
    assert "is written, but uploading it to me/mixed failed (RuntimeError: quota exceeded)" in capsys.readouterr().err
    assert datasets.load_from_disk(str(tmp_path / "out"))["test"].num_rows == 8


def test_something_else_where_a_split_goes_is_refused_before_any_work(folder_tree, tmp_path, monkeypatch):
    out = tmp_path / "out"
    folder.convert_folder(folder_tree / "train", out)  # an earlier dataset with a train split only
    (out / "test").mkdir()  # the user's own notes, say, where the new test split goes
    monkeypatch.setattr(convert_common, "plan_to_dataset_dict", lambda *a, **k: pytest.fail("built before the check"))
    with pytest.raises(FileExistsError, match=r"already holds \['test'\], which are not this converter's"):
        folder.convert_folder(folder_tree, out)


def test_an_interrupted_replacement_keeps_the_earlier_dataset(folder_tree, tmp_path, monkeypatch):
    out = tmp_path / "out"
    folder.convert_folder(folder_tree, out)
    before = sorted(p.relative_to(out).as_posix() for p in out.rglob("*"))
    real_replace, calls = os.replace, []
    def interrupted(source, target):
        calls.append(source)
        if len(calls) == 5:  # the earlier dataset moved aside, the first new items moved in
            raise KeyboardInterrupt
        real_replace(source, target)
    monkeypatch.setattr(convert_common.os, "replace", interrupted)
    with pytest.raises(KeyboardInterrupt):
        folder.convert_folder(folder_tree, out)
    monkeypatch.setattr(convert_common.os, "replace", real_replace)
    assert sorted(p.relative_to(out).as_posix() for p in out.rglob("*")) == before
    assert datasets.load_from_disk(str(out))["train"].num_rows == 4


def test_a_hard_link_does_not_put_one_file_in_two_splits(tmp_path):
    raw = tmp_path / "raw"
    _leaf(raw / "train" / "sd" / "0_real", 1)
    _leaf(raw / "train" / "sd" / "1_fake", 2)
    (raw / "test" / "sd" / "0_real").mkdir(parents=True)
    os.link(raw / "train" / "sd" / "0_real" / "0_real_1_a.png", raw / "test" / "sd" / "0_real" / "copy.png")
    plan = convert_common.plan_conversion(raw, folder.folder_rule("raw"))
    assert plan.skipped == [{"file": "train/sd/0_real/0_real_1_a.png",
                             "reason": "file already read into split 'test' (test/sd/0_real/copy.png): no file lands in "
                                       "two splits"}]


def test_the_extension_is_checked_for_each_name_of_a_linked_file(tmp_path):
    # one file under a name without an image extension that sorts first, and under another generator as a backup
    raw = tmp_path / "raw"
    _leaf(raw / "test" / "sd" / "1_fake", 1)
    _leaf(raw / "test" / "sd" / "0_real", 1)
    image = raw / "test" / "sd" / "1_fake" / "1_fake_1_a.png"
    os.link(image, raw / "test" / "sd" / "1_fake" / "1_fake_1_")
    (raw / "test" / "zz" / "1_fake").mkdir(parents=True)
    os.link(image, raw / "test" / "zz" / "1_fake" / "1_fake_1_a.png.bak")
    plan = convert_common.plan_conversion(raw, folder.folder_rule("raw"))
    kept = sorted(rel for rel, _ in plan.entries["test"])
    assert "test/sd/1_fake/1_fake_1_a.png" in kept and not any(rel.endswith((".bak", "_")) for rel in kept)
    assert {item["file"]: item["reason"] for item in plan.skipped} == {
        "test/sd/1_fake/1_fake_1_": "not an image extension (none)",
        "test/zz/1_fake/1_fake_1_a.png.bak": "not an image extension (.bak)",
    }


def test_a_file_name_that_is_not_utf8_is_converted_with_its_bytes_escaped(tmp_path):
    raw = tmp_path / "raw"
    _leaf(raw / "test" / "sd" / "1_fake", 1)
    (raw / "test" / "sd" / "0_real").mkdir(parents=True)
    os.link(raw / "test" / "sd" / "1_fake" / "1_fake_1_a.png", os.fsencode(raw / "test" / "sd") + b"/0_real/caf\xe9.png")
    (raw / "test" / "sd" / "1_fake" / "1_fake_1_a.png").unlink()
    dsd = folder.convert_folder(raw, tmp_path / "out")
    assert sorted(path for path, *_ in _rows(dsd["test"])) == ["1_fake_1_b.jpg", "caf\\xe9.png"]


def test_a_split_folder_below_the_label_folder_names_the_split():
    """`real/val/x.png` put the validation images into the training split."""
    rule = folder.folder_rule("rs")
    assert rule(("real", "val", "x.png")) == convert_common.Placement("validation", 0, "rs", "rs")
    assert rule(("fake", "train", "x.png")) == convert_common.Placement("train", 1, "rs", "rs")
    assert rule(("test", "sd", "fake", "val", "x.png")).split == "test"  # a split folder above comes first


def test_forensynths_rooted_at_its_training_folder_keeps_the_lsun_class_train():
    assert forensynths.forensynths_rule(("train", "0_real", "x.png")) == convert_common.Placement(
        "train", 0, "progan", "train"
    )
    assert forensynths.forensynths_rule(("train", "car", "0_real", "x.png")) == convert_common.Placement(
        "train", 0, "progan", "car"
    )


def test_a_broken_link_is_skipped_not_a_stop(tmp_path):
    """Keying files by inode stat()ed every path, and a broken link stopped the whole conversion."""
    raw = tmp_path / "raw"
    _leaf(raw / "gen" / "0_real", 1)
    _leaf(raw / "gen" / "1_fake", 2)
    (raw / "gen" / "1_fake" / "broken.png").symlink_to(tmp_path / "nowhere.png")
    (raw / "notes").mkdir()
    (raw / "notes" / "dangling.png").symlink_to(tmp_path / "nowhere.png")  # no label folder: skipped for that
    plan = convert_common.plan_conversion(raw, folder.folder_rule("raw"))
    assert sum(len(entries) for entries in plan.entries.values()) == 4
    assert _skipped({"skipped": plan.skipped}) == {
        "gen/1_fake/broken.png": "cannot be read (No such file or directory)",
        "notes/dangling.png": "no label folder (0_real/1_fake, real/fake, nature/ai) in path",
    }


def test_a_folder_name_that_is_not_utf8_is_kept_escaped(tmp_path):
    raw = os.fsencode(tmp_path / "raw")
    for label, seed in ((b"0_real", 1), (b"1_fake", 2)):
        os.makedirs(raw + b"/gen_\xff/" + label)
        _write(Path(os.fsdecode(raw + b"/gen_\xff/" + label + b"/x.png")), _image_bytes("PNG", seed))
    dsd = folder.convert_folder(os.fsdecode(raw), tmp_path / "out")
    assert {(label, generator) for _, label, generator, _ in _rows(dsd["train"])} == {(0, "gen_\\xff"), (1, "gen_\\xff")}
    report = json.loads((tmp_path / "out" / "report.json").read_text())  # its names as the dataset's
    assert list(report["counts"]["train"]) == list(report["counts_by_generator"]["train"]) == ["gen_\\xff"]


def test_identical_files_across_splits_or_labels_are_reported(tmp_path, capsys, caplog):
    raw, out = tmp_path / "raw", tmp_path / "out"
    copied = _image_bytes("PNG", 7)
    _write(raw / "train" / "0_real" / "a.png", copied)
    _write(raw / "test" / "0_real" / "copy-of-a.png", copied)  # a copy, not a link: the plan reads both
    _write(raw / "train" / "1_fake" / "b.png", _image_bytes("PNG", 8))
    _write(raw / "train" / "1_fake" / "b-again.png", _image_bytes("PNG", 8))  # same split and label: harmless
    _write(raw / "test" / "1_fake" / "c.png", _image_bytes("PNG", 9))
    _write(raw / "test" / "0_real" / "c-as-real.png", _image_bytes("PNG", 9))  # one image as both classes
    assert folder.main([str(raw), "--output_dir", str(out)]) == 0
    report = json.loads((out / "report.json").read_text())
    assert [group["files"] for group in report["identical_across_splits_or_labels"]] == [
        ["test: test/0_real/c-as-real.png (real)", "test: test/1_fake/c.png (fake)"],
        ["test: test/0_real/copy-of-a.png (real)", "train: train/0_real/a.png (real)"],
    ]
    assert "warning: 2 images are stored as identical files" in capsys.readouterr().err
    folder.load_folder_dataset(raw)  # read in-process (--train_dir): a logged warning instead of the report
    assert "2 images are stored as identical files in more than one split or under both labels" in caplog.text


def test_an_output_that_cannot_be_made_is_refused_before_any_image_is_read(tmp_path, monkeypatch, capsys):
    raw = tmp_path / "raw"
    _leaf(raw / "0_real", 1)
    _leaf(raw / "1_fake", 2)
    (tmp_path / "a-file").write_text("")
    (tmp_path / "broken").symlink_to(tmp_path / "nowhere")
    read = []
    monkeypatch.setattr(convert_common, "plan_conversion", lambda *args: read.append(args))  # hours on GenImage
    with pytest.raises(SystemExit, match="2"):  # was a traceback
        folder.main([str(raw), "--output_dir", str(tmp_path / "a-file" / "out")])
    assert f"cannot create the output folder {tmp_path / 'a-file' / 'out'}: Not a directory" in capsys.readouterr().err
    with pytest.raises(SystemExit, match="2"):  # was "[Errno 17] File exists"
        folder.main([str(raw), "--output_dir", str(tmp_path / "broken")])
    assert f"is a link to {tmp_path / 'nowhere'}, which does not exist" in capsys.readouterr().err
    assert read == [] and not (tmp_path / "nowhere").exists()
    out = tmp_path / "new" / "parent" / "out"  # its parents are made, then the disk fills up
    make_folder = Path.mkdir

    def disk_full_at_out(path, *args, **kwargs):
        if path == out and out.parent.is_dir():
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(path))
        return make_folder(path, *args, **kwargs)

    monkeypatch.setattr(Path, "mkdir", disk_full_at_out)
    with pytest.raises(SystemExit, match="2"):
        folder.main([str(raw), "--output_dir", str(out)])
    assert f"cannot create the output folder {out}: No space left on device" in capsys.readouterr().err
    assert not (tmp_path / "new").exists()  # was left behind, empty


def test_a_plain_folder_given_through_a_link_or_as_dot_names_its_generator_as_given(tmp_path, monkeypatch):
    export = tmp_path / "nas_export_0412"
    _leaf(export / "real", 1)
    _leaf(export / "fake", 1)
    (tmp_path / "sdxl").symlink_to(export, target_is_directory=True)
    read = folder.load_folder_dataset(tmp_path / "sdxl", cache_dir=str(tmp_path / "hf"))["train"]
    assert set(read["generator"]) == {"sdxl"}  # was the link's target, nas_export_0412
    monkeypatch.chdir(export)
    assert set(folder.load_folder_dataset(".", cache_dir=str(tmp_path / "hf2"))["train"]["generator"]) == {
        "nas_export_0412"}
