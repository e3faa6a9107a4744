"""predict.py: recursive, sorted folder scanning; unreadable files become rows with a reason."""

import csv
import io
import json
import os
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import predict
from inference import Detector, ScanResult, find_images


@pytest.fixture(scope="module")
def scan_tree(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Good images in nested folders, broken files, non-image files and a hidden file."""
    root = tmp_path_factory.mktemp("scan") / "photos"
    (root / "b" / "deep").mkdir(parents=True)
    rng = np.random.default_rng(0)
    for name in ("a.png", "b/deep/c.jpg", "b/d.webp"):
        Image.fromarray(rng.integers(0, 256, (40, 50, 3), dtype=np.uint8)).save(root / name)
    (root / "b" / "empty.jpg").write_bytes(b"")
    (root / "b" / "fake_png.png").write_text("not an image")
    (root / "b" / "truncated.png").write_bytes((root / "a.png").read_bytes()[:200])
    (root / "notes.txt").write_text("skipped in folders")
    (root / "report.pdf").write_bytes(b"%PDF-1.4")  # Pillow saves PDFs but cannot open them: skipped in folders
    (root / ".hidden.png").write_bytes((root / "a.png").read_bytes())
    return root


def test_find_images_is_recursive_sorted_and_skips_non_images(scan_tree: Path) -> None:
    found = [path.relative_to(scan_tree).as_posix() for path in find_images([scan_tree])]
    assert found == ["a.png", "b/d.webp", "b/deep/c.jpg", "b/empty.jpg", "b/fake_png.png", "b/truncated.png"]
    assert find_images([scan_tree / "notes.txt"]) == [scan_tree / "notes.txt"]  # named explicitly: kept


def read_rows(path: Path) -> dict[str, dict]:
    if path.suffix == ".csv":
        with path.open(newline="") as handle:
            return {Path(row["path"]).name: row for row in csv.DictReader(handle)}
    return {Path(row["path"]).name: row for row in map(json.loads, path.read_text().splitlines())}


@pytest.mark.parametrize("suffix, workers", [(".csv", 2), (".jsonl", 0)])
def test_scan_writes_a_row_per_file(scan_tree: Path, tiny_model_dir: Path, tmp_path: Path, suffix: str, workers: int) -> None:
    output = tmp_path / f"results{suffix}"
    argv = [str(scan_tree), str(scan_tree / "notes.txt"), "--model", str(tiny_model_dir), "--batch_size", "2",
            "--num_workers", str(workers), "--output", str(output)]
    assert predict.main(argv) == 0
    rows = read_rows(output)
    assert list(rows) == ["a.png", "d.webp", "c.jpg", "empty.jpg", "fake_png.png", "truncated.png", "notes.txt"]
    empty = "" if suffix == ".csv" else None
    for name in ("a.png", "d.webp", "c.jpg"):
        assert 0.0 <= float(rows[name]["p_fake"]) <= 1.0 and rows[name]["label"] in ("real", "fake")
        assert rows[name]["error"] == empty
    assert "empty file" in rows["empty.jpg"]["error"]
    assert "not a recognised image" in rows["fake_png.png"]["error"]
    assert "truncated" in rows["truncated.png"]["error"]
    assert "not a recognised image" in rows["notes.txt"]["error"]
    for name in ("empty.jpg", "fake_png.png", "truncated.png", "notes.txt"):
        assert rows[name]["p_fake"] == empty and rows[name]["label"] == empty


def test_images_smaller_than_the_model_input_are_marked_and_counted(tiny_model_dir: Path, tmp_path: Path,
                                                                    capsys) -> None:
    """Was: a thumbnail's row looked like any other, though the model read mostly black padding (the demo says so)."""
    detector = Detector.load(tiny_model_dir)
    crop = detector.preprocessing.centre_crop
    sizes = {"full.png": (crop.width + 8, crop.height + 18), "half.png": (crop.width // 2, crop.height),
             "tiny.png": (1, 1)}
    for name, size in sizes.items():
        Image.new("RGB", size, (90, 140, 30)).save(tmp_path / name)
    (tmp_path / "broken.png").write_text("not an image")
    for suffix in (".csv", ".jsonl"):
        output = tmp_path / "out" / f"results{suffix}"
        output.parent.mkdir(exist_ok=True)
        assert predict.main([str(tmp_path / name) for name in [*sizes, "broken.png"]]
                            + ["--model", str(tiny_model_dir), "--output", str(output)]) == 0
        rows = read_rows(output)
        padding = {name: row["padding"] for name, row in rows.items()}
        if suffix == ".csv":  # a 1×1 image is not all padding: rounded down
            assert padding == {"full.png": "0.00", "half.png": "0.50", "tiny.png": "0.99", "broken.png": ""}
        else:
            assert padding == {"full.png": 0.0, "half.png": 0.5, "tiny.png": pytest.approx(1 - 1 / (crop.width * crop.height)),
                               "broken.png": None}
        out = capsys.readouterr().out
        assert "(1 error, " in out and "padded" not in out.splitlines()[0]
        assert f"2 scored images are smaller than the model's {crop.width}×{crop.height} px input" in out


def test_padding_the_column_cannot_show_is_not_counted(tmp_path: Path) -> None:
    """Was: a 224×223 image (padding 0.0045, written 0.00) counted as padded, its score called weak evidence."""
    results = [ScanResult("a.png", 0.9, "fake", None, 1 / 224), ScanResult("b.png", 0.1, "real", None, 0.01),
               ScanResult("c.png", 0.2, "real", None, 0.0)]
    counts = predict.write_results(results, tmp_path / "r.csv")
    assert counts == {"fake": 1, "real": 2, predict.PADDED: 1}
    assert [row["padding"] for row in read_rows(tmp_path / "r.csv").values()] == ["0.00", "0.01", "0.00"]


def test_scan_matches_single_image_scores(scan_tree: Path, tiny_model_dir: Path) -> None:
    detector = Detector.load(tiny_model_dir)
    path = scan_tree / "b" / "deep" / "c.jpg"
    (result,) = detector.scan([path])
    assert result.p_fake == pytest.approx(detector.p_fake(Image.open(path).convert("RGB")), abs=1e-6)


def test_dtype_loads_the_weights_in_that_type_and_scores_close_to_float32(scan_tree: Path, tiny_model_dir: Path,
                                                                        tmp_path: Path) -> None:
    rows = {}
    for dtype in ("float32", "bfloat16"):
        output = tmp_path / f"{dtype}.csv"
        assert predict.main([str(scan_tree), "--model", str(tiny_model_dir), "--dtype", dtype, "--num_workers", "0",
                             "--output", str(output)]) == 0
        rows[dtype] = read_rows(output)
    scored = [name for name, row in rows["float32"].items() if row["p_fake"]]
    assert scored == ["a.png", "d.webp", "c.jpg"] and [*rows["bfloat16"]] == [*rows["float32"]]
    for name in scored:  # bfloat16 keeps 8 bits of mantissa: close, rarely identical
        assert float(rows["bfloat16"][name]["p_fake"]) == pytest.approx(float(rows["float32"][name]["p_fake"]), abs=0.02)
    detector = Detector.load(tiny_model_dir, dtype=torch.bfloat16)
    assert {parameter.dtype for parameter in detector.model.parameters()} == {torch.bfloat16}
    with pytest.raises(SystemExit):
        predict.parse_args([str(scan_tree), "--dtype", "int8"])


def test_scan_rejects_bad_arguments(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    with pytest.raises(SystemExit):
        predict.parse_args([str(tmp_path), "--output", "results.txt"])
    with pytest.raises(SystemExit):  # before the model loads and the scan starts
        predict.parse_args([str(tmp_path), "--output", str(tmp_path / "missing" / "r.csv")])
    assert "does not exist" in capsys.readouterr().err
    (tmp_path / "empty").mkdir()
    assert predict.main([str(tmp_path / "empty"), "--output", str(tmp_path / "r.csv")]) == 2  # nothing to scan


def test_a_file_name_that_is_not_utf8_gets_its_row(tiny_model_dir: Path, tmp_path: Path) -> None:
    folder = tmp_path / "latin1"
    folder.mkdir()
    with open(os.fsencode(folder) + b"/lat\xe9.png", "wb") as handle:  # a Latin-1 name: not valid UTF-8
        Image.new("RGB", (40, 40), (10, 200, 30)).save(handle, "PNG")
    Image.new("RGB", (40, 40)).save(folder / "z.png")
    output = tmp_path / "r.csv"
    assert predict.main([str(folder), "--model", str(tiny_model_dir), "--output", str(output)]) == 0
    lines = output.read_bytes().splitlines()
    assert len(lines) == 3 and b"lat\xe9.png" in lines[1] and lines[2].startswith(os.fsencode(folder / "z.png"))
    jsonl = tmp_path / "r.jsonl"
    assert predict.main([str(folder), "--model", str(tiny_model_dir), "--output", str(jsonl)]) == 0
    rows = [json.loads(line) for line in jsonl.read_text(encoding="utf-8").splitlines()]  # valid UTF-8 JSON
    assert os.fsencode(rows[0]["path"]) == os.fsencode(folder) + b"/lat\xe9.png" and rows[0]["p_fake"] is not None


def test_an_output_name_that_is_not_utf8_is_shown_on_a_strict_stdout(tiny_model_dir: Path, tmp_path: Path,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    Image.new("RGB", (40, 40)).save(tmp_path / "a.png")
    output = os.fsdecode(os.fsencode(tmp_path) + b"/r\xe9sultats.csv")  # a Latin-1 name: not valid UTF-8
    stdout = io.TextIOWrapper(io.BytesIO(), encoding="utf-8", errors="strict")  # as under an en_US.UTF-8 locale
    monkeypatch.setattr(sys, "stdout", stdout)
    assert predict.main([str(tmp_path / "a.png"), "--model", str(tiny_model_dir), "--output", output,
                         "--num_workers", "0"]) == 0
    stdout.flush()
    assert "r\\xe9sultats.csv (1 " in stdout.buffer.getvalue().decode()
    assert len(Path(output).read_bytes().splitlines()) == 2


@pytest.mark.parametrize("encoding", ["ascii", "cp1252"])
def test_the_summary_prints_on_a_stdout_that_cannot_encode_it(tiny_model_dir: Path, tmp_path: Path, encoding: str,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    # PYTHONIOENCODING=ascii, or Windows redirecting stdout to a file: the arrow and a name in Greek cannot be encoded
    Image.new("RGB", (40, 40)).save(tmp_path / "a.png")
    stdout = io.TextIOWrapper(io.BytesIO(), encoding=encoding, errors="strict")
    monkeypatch.setattr(sys, "stdout", stdout)
    output = tmp_path / "αποτελέσματα.csv"
    assert predict.main([str(tmp_path / "a.png"), "--model", str(tiny_model_dir), "--output", str(output),
                         "--num_workers", "0"]) == 0  # every row was scored: not the status of a failed scan
    stdout.flush()
    assert "1 files \\u2192 " in stdout.buffer.getvalue().decode(encoding) and "\\u03b1\\u03c0" in stdout.buffer.getvalue().decode(encoding)


def test_a_model_that_cannot_load_is_a_message(scan_tree: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    assert predict.main([str(scan_tree), "--model", str(tmp_path / "typo"), "--output", str(tmp_path / "r.csv")]) == 2
    # a misspelt folder is named as one, not answered with the Hub's rules for repo ids
    assert f"cannot load the model {tmp_path / 'typo'}: no such model folder" in capsys.readouterr().err


def test_a_model_with_its_own_code_needs_trust_remote_code(
    scan_tree: Path, tiny_model_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    import shutil

    folder = shutil.copytree(tiny_model_dir, tmp_path / "third-party-detector")
    config = json.loads((folder / "config.json").read_text())
    (folder / "config.json").write_text(json.dumps({**config, "model_type": "third-party-detector"}))
    output = tmp_path / "r.csv"
    assert predict.main([str(scan_tree / "a.png"), "--model", str(folder), "--output", str(output)]) == 2
    assert "trust_remote_code" in capsys.readouterr().err and not output.exists()
    arguments = [str(scan_tree / "a.png"), "--model", str(folder), "--output", str(output), "--trust_remote_code"]
    assert predict.main(arguments) == 0
    with output.open() as handle:
        (row,) = csv.DictReader(handle)
    expected = Detector.load(tiny_model_dir).p_fake(Image.open(scan_tree / "a.png").convert("RGB"))
    assert float(row["p_fake"]) == pytest.approx(expected, abs=1e-6)


def test_find_images_takes_upper_case_extensions_and_skips_hidden_folders(tmp_path: Path) -> None:
    for name in ("DCIM/IMG_0001.JPG", "DCIM/scan.Png", ".thumbnails/IMG_0001.jpg", "DCIM/.git/objects/x.png"):
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        Image.new("RGB", (8, 8)).save(tmp_path / name, "PNG")
    assert [p.relative_to(tmp_path).as_posix() for p in find_images([tmp_path])] == ["DCIM/IMG_0001.JPG", "DCIM/scan.Png"]
    # a hidden folder named on the command line is scanned: only folders below the named one are skipped
    assert find_images([tmp_path / ".thumbnails"]) == [tmp_path / ".thumbnails" / "IMG_0001.jpg"]


def test_rows_are_on_disk_before_the_scan_ends(tmp_path: Path) -> None:
    output = tmp_path / "r.csv"

    def results():
        yield ScanResult("a.png", 0.25, "real")
        assert "a.png,0.25,real," in output.read_text()  # a scan killed here keeps its first row
        yield ScanResult("b.png", 0.75, "fake")

    assert predict.write_results(results(), output) == {"real": 1, "fake": 1}


def test_find_images_follows_folder_links_once_and_keeps_broken_file_links(tmp_path: Path) -> None:
    root, elsewhere = tmp_path / "photos", tmp_path / "elsewhere"
    (root / "a").mkdir(parents=True)
    elsewhere.mkdir()
    Image.new("RGB", (8, 8)).save(root / "a" / "x.png")
    Image.new("RGB", (8, 8)).save(elsewhere / "y.png")
    (root / "b-link").symlink_to(elsewhere, target_is_directory=True)  # a folder outside the tree: scanned
    (root / "c-loop").symlink_to(root, target_is_directory=True)  # back to the top: not scanned again
    (root / "d-again").symlink_to(elsewhere, target_is_directory=True)  # the same real folder twice: once
    (root / "gone.png").symlink_to(tmp_path / "deleted.png")  # a broken link gets a row that says so
    found = [path.relative_to(root).as_posix() for path in find_images([root])]
    assert found == ["a/x.png", "b-link/y.png", "gone.png"]
    # each real folder once across arguments too: a folder, then one inside it or a link to one (was listed twice)
    found = [path.relative_to(root).as_posix() for path in find_images([root, root / "a", root / "d-again"])]
    assert found == ["a/x.png", "b-link/y.png", "gone.png"]
    assert find_images([root / "a", root]) == [root / "a" / "x.png", root / "b-link" / "y.png", root / "gone.png"]
    # a folder of the tree reached through a link whose name sorts first keeps its own name (was a-link/x.png)
    (root / "A-link").symlink_to(root / "a", target_is_directory=True)
    (root / "a" / "deeper").mkdir()
    (root / "a" / "deeper" / "B-link").symlink_to(elsewhere, target_is_directory=True)  # a link inside, too
    found = [path.relative_to(root).as_posix() for path in find_images([root])]
    assert found == ["a/x.png", "b-link/y.png", "gone.png"]  # two links to one folder: the first one walked, kept


def test_output_that_is_a_folder_or_not_writable_is_refused_before_the_scan(tmp_path: Path, capsys) -> None:
    (tmp_path / "d.csv").mkdir()
    # /proc takes no new files, even from root (which a permission bit would not stop)
    cases = [(tmp_path / "d.csv", "is a folder")] + ([(Path("/proc/o.csv"), "cannot write")] if Path("/proc").is_dir() else [])
    cases.append((tmp_path / ("a" * 300 + ".csv"), "cannot write it (File name too long)"))  # was a traceback
    for output, message in cases:
        with pytest.raises(SystemExit) as exit_:
            predict.parse_args([str(tmp_path), "--output", str(output)])
        assert exit_.value.code == 2 and message in capsys.readouterr().err


def test_an_empty_path_is_refused_not_read_as_the_working_folder(tmp_path: Path, capsys) -> None:
    with pytest.raises(SystemExit) as exit_:  # `predict.py "$DIR"` with DIR unset
        predict.parse_args(["", "--output", str(tmp_path / "r.csv")])
    assert exit_.value.code == 2 and "an empty path names no file or folder" in capsys.readouterr().err


def test_checking_the_output_leaves_an_existing_file_as_it_was_and_creates_none(tmp_path: Path) -> None:
    kept, new = tmp_path / "old.csv", tmp_path / "new.jsonl"
    kept.write_text("path,p_fake\nx.png,0.5\n")
    for output in (kept, new):
        predict.parse_args([str(tmp_path), "--output", str(output)])
    assert kept.read_text() == "path,p_fake\nx.png,0.5\n" and not new.exists()


def test_an_output_linked_to_a_missing_file_keeps_its_link_and_the_scan_writes_through_it(
    tiny_model_dir: Path, tmp_path: Path
) -> None:
    Image.new("RGB", (40, 40)).save(tmp_path / "a.png")
    link, target = tmp_path / "latest.csv", tmp_path / "runs" / "r.csv"
    target.parent.mkdir()
    link.symlink_to(target)
    predict.parse_args([str(tmp_path / "a.png"), "--output", str(link)])
    assert link.is_symlink() and not target.exists()  # checked, left as it was
    assert predict.main([str(tmp_path / "a.png"), "--model", str(tiny_model_dir), "--output", str(link),
                         "--num_workers", "0"]) == 0
    assert link.is_symlink() and len(target.read_text().splitlines()) == 2


def test_a_scan_where_no_file_could_be_scored_exits_1(tiny_model_dir: Path, tmp_path: Path, capsys) -> None:
    output = tmp_path / "out.csv"
    assert predict.main([str(tmp_path / "misspelt_folder"), "--model", str(tiny_model_dir), "--output", str(output)]) == 1
    assert "no file could be scored" in capsys.readouterr().err
    assert read_rows(output)["misspelt_folder"]["error"] == "no such file"
    Image.new("RGB", (8, 8)).save(tmp_path / "ok.png")
    assert predict.main([str(tmp_path / "ok.png"), str(tmp_path / "misspelt_folder"), "--model", str(tiny_model_dir),
                         "--output", str(output), "--num_workers", "0"]) == 0


@pytest.mark.parametrize("p_fake", [0.4999996, 8.79999988e-05, 1.0 - 2.0**-24, 0.5, 1e-30])
def test_csv_p_fake_gives_back_the_float32_probability_and_agrees_with_its_label(p_fake):
    """Six fixed decimals wrote 0.4999996 as 0.500000 beside `real` and tied small scores (AP from the CSV differed
    from train.py's)."""
    probability = float(np.float32(p_fake))  # what Detector.probabilities gives: float32 softmax values
    label = "fake" if probability >= 0.5 else "real"
    row = predict.csv_row(ScanResult(path="x.png", p_fake=probability, label=label))
    assert np.float32(float(row["p_fake"])) == np.float32(probability)
    assert (float(row["p_fake"]) >= 0.5) == (label == "fake")


@pytest.mark.parametrize("stdout", ["closed", "pipe whose reader left", "full disk"])
def test_a_finished_scan_exits_0_whatever_happens_to_its_summary(tiny_model_dir: Path, tmp_path: Path,
                                                                 stdout: str) -> None:
    """The summary is printed after every row is written: a stdout it cannot reach gave a traceback and exit 1,
    the status of a scan that scored nothing."""
    import subprocess

    if stdout == "full disk" and not Path("/dev/full").exists():
        pytest.skip("no /dev/full on this system")
    Image.new("RGB", (40, 40)).save(tmp_path / "a.png")
    output = tmp_path / "r.csv"
    command = [sys.executable, str(Path(predict.__file__)), str(tmp_path / "a.png"), "--model", str(tiny_model_dir),
               "--output", str(output), "--num_workers", "0"]
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    if stdout == "pipe whose reader left":
        read_end, write_end = os.pipe()
        os.close(read_end)
        result = subprocess.run(command, stdout=write_end, stderr=subprocess.PIPE, env=env, timeout=120)
        os.close(write_end)
    else:
        target = subprocess.DEVNULL if stdout == "closed" else open("/dev/full", "w")
        prefix = ["bash", "-c", 'exec "$@" >&-', "-"] if stdout == "closed" else []
        result = subprocess.run(prefix + command, stdout=target, stderr=subprocess.PIPE, env=env, timeout=120)
    assert result.returncode == 0, result.stderr.decode()[-2000:]
    assert b"Traceback" not in result.stderr and len(output.read_text().splitlines()) == 2


def test_ctrl_c_keeps_the_rows_written_and_says_so(tiny_model_dir: Path, tmp_path: Path, monkeypatch, capsys) -> None:
    for name in ("a.png", "b.png", "c.png"):  # smaller than the model's input: padded (were counted twice: "4 of 3")
        Image.new("RGB", (16, 16)).save(tmp_path / name)
    scan = Detector.scan

    def interrupted_after_two(self, paths, **kwargs):
        results = scan(self, paths, **kwargs)
        yield next(results)
        yield next(results)
        raise KeyboardInterrupt

    monkeypatch.setattr(Detector, "scan", interrupted_after_two)
    output = tmp_path / "r.csv"
    assert predict.main([str(tmp_path), "--model", str(tiny_model_dir), "--output", str(output),
                         "--num_workers", "0"]) == 130  # was a traceback through tqdm and the scan
    assert f"interrupted: 2 of 3 files written to {output}" in capsys.readouterr().err
    assert [row["path"][-5:] for row in csv.DictReader(output.open())] == ["a.png", "b.png"]
