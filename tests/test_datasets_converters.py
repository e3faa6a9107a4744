"""Converters: fabricated miniature raw trees → HF datasets with one schema and a skip report."""

from __future__ import annotations

import io
import json
import os
import sys
from pathlib import Path

import datasets
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
    return {"zero.png": "zero-byte", "truncated.jpg": "undecodable", "notes.jpg": "undecodable"}


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
    pushed = []
    monkeypatch.setattr(datasets.DatasetDict, "push_to_hub", lambda self, repo_id, **kw: pushed.append((repo_id, list(self))))
    out = tmp_path / "cli_out"
    assert folder.main([str(folder_tree), "--output_dir", str(out), "--push_to_hub", "me/mixed"]) == 0
    assert pushed == [("me/mixed", ["test", "train"])]
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


def test_folder_symlinks_out_of_the_tree_are_followed_once_and_hidden_entries_reported(tmp_path):
    raw, elsewhere = tmp_path / "raw", tmp_path / "elsewhere"
    _leaf(raw / "test" / "sd" / "0_real", 1)
    _leaf(elsewhere / "fakes", 2, marker="1_fake")
    (raw / "test" / "sd" / "1_fake").symlink_to(elsewhere / "fakes", target_is_directory=True)  # read
    (raw / "test" / "sd" / "zz_again").symlink_to(elsewhere / "fakes", target_is_directory=True)  # read already
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
        "test/sd/zz_again": f"symlink to a folder already read ({(elsewhere / 'fakes').resolve()}), not read again",
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


def test_converters_refuse_what_the_loaders_refuse(tmp_path, monkeypatch):
    from test_image_io import jpeg_with_corrupt_exif

    _write(tmp_path / "exif.jpg", jpeg_with_corrupt_exif())
    assert convert_common.check_image(tmp_path / "exif.jpg").startswith("undecodable")
    _write(tmp_path / "big.png", _image_bytes("PNG", 1))  # 144 pixels
    assert convert_common.check_image(tmp_path / "big.png") is None
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 100)  # Pillow only warns up to twice its limit; the loaders refuse
    assert convert_common.check_image(tmp_path / "big.png") == "larger than Pillow's 100 pixel limit"


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
