"""inference.Detector.scan: batched scores equal single-image scores, with the crop-only split or the processor."""

from pathlib import Path

import pytest
from PIL import EpsImagePlugin, Image

from image_io import IMAGE_EXTENSIONS
from inference import Detector, find_images, scan_batch_size
from test_preprocessing import random_image


@pytest.mark.parametrize("workers", [0, 2])
def test_scan_scores_equal_single_image_scores(tiny_model_dir: Path, tmp_path: Path, workers: int) -> None:
    detector = Detector.load(tiny_model_dir, device="cpu")
    assert detector.preprocessing.centre_crop is not None
    paths = []
    for index, (width, height) in enumerate([(64, 48), (20, 30), (300, 200), (33, 33), (90, 17)]):
        paths.append(tmp_path / f"{index}.{'png' if index % 2 else 'jpg'}")
        random_image(width, height, index).save(paths[-1])
    results = list(detector.scan(paths, batch_size=2, num_workers=workers))
    assert [result.path for result in results] == [str(path) for path in paths]
    for path, result in zip(paths, results):
        assert result.error is None
        assert result.p_fake == pytest.approx(detector.p_fake(Image.open(path).convert("RGB")), abs=1e-6)


def test_a_score_at_the_threshold_is_fake(tiny_model_dir: Path) -> None:
    """README and the demo: fake when p(fake) ≥ the threshold."""
    detector = Detector.load(tiny_model_dir, device="cpu")
    detector = Detector(detector.model, detector.processor, threshold=0.7)
    assert [detector.label_of(p) for p in (0.6999, 0.7, 0.7001)] == ["real", "fake", "fake"]


def test_scan_runs_a_processor_that_resizes_whole(tiny_model_dir: Path, tmp_path: Path) -> None:
    detector = Detector.load(tiny_model_dir, device="cpu")
    resizing = detector.processor.__class__(**{**detector.processor.to_dict(), "do_resize": True})
    detector = Detector(detector.model, resizing)
    assert detector.preprocessing.centre_crop is None
    path = tmp_path / "wide.png"
    random_image(120, 50, 0).save(path)
    (result,) = detector.scan([path], num_workers=0)
    assert result.p_fake == pytest.approx(detector.p_fake(Image.open(path).convert("RGB")), abs=1e-6)
    # Resizing changes what the model sees: the crop-only path would have scored different pixels.
    original = Detector.load(tiny_model_dir, device="cpu")
    assert result.p_fake != pytest.approx(original.p_fake(Image.open(path).convert("RGB")), abs=1e-6)


def test_loading_runs_no_code_from_the_model_folder_unless_trusted(tiny_model_dir: Path, tmp_path: Path) -> None:
    """A PiN-CLIP loads with this repository's class; another model's own code runs only with trust_remote_code."""
    import json
    import shutil

    folder = shutil.copytree(tiny_model_dir, tmp_path / "pinclip-with-hostile-code")
    (folder / "modeling_pinclip.py").write_text('raise RuntimeError("code from the model folder ran")\n')
    reference = Detector.load(tiny_model_dir, device="cpu")
    image = random_image(40, 40, 1)
    assert Detector.load(folder, device="cpu").p_fake(image) == reference.p_fake(image)
    with pytest.raises(RuntimeError, match="code from the model folder ran"):  # trusted: the model's own code
        Detector.load(folder, device="cpu", trust_remote_code=True)

    # The same folder as a third-party classifier (not model_type "pinclip"): its code is what loads it.
    config = json.loads((folder / "config.json").read_text())
    (folder / "config.json").write_text(json.dumps({**config, "model_type": "someone-elses-detector"}))
    with pytest.raises(ValueError, match="trust_remote_code"):
        Detector.load(folder, device="cpu")
    with pytest.raises(RuntimeError, match="code from the model folder ran"):
        Detector.load(folder, device="cpu", trust_remote_code=True)


def test_a_pinclip_file_under_another_model_type_is_refused_not_scored_without_its_noise_generator(
    tiny_model_dir: Path, tmp_path: Path
) -> None:
    import json
    import shutil

    # model_type edited to "clip": transformers loads CLIPForImageClassification and only logs the unused weights
    folder = shutil.copytree(tiny_model_dir, tmp_path / "edited-model-type")
    config = json.loads((folder / "config.json").read_text())
    config.pop("auto_map")
    (folder / "config.json").write_text(json.dumps({**config, "model_type": "clip"}))
    with pytest.raises(ValueError, match=r"PiN-CLIP weights \(noise_generator\..*model_type 'clip'"):
        Detector.load(folder, device="cpu")


def test_a_folder_without_config_is_named_so(tmp_path: Path) -> None:
    random_image(40, 40, 0).save(tmp_path / "photo.png")  # an image folder given as the model
    with pytest.raises(ValueError, match=r"no config.json in this folder: not a saved model"):
        Detector.load(tmp_path, device="cpu")


def test_a_pinclip_whose_weights_do_not_fit_this_class_is_refused_not_scored_at_random(
    tiny_model_dir: Path, tmp_path: Path
) -> None:
    import shutil

    from safetensors.torch import load_file, save_file

    folder = shutil.copytree(tiny_model_dir, tmp_path / "pinclip-from-another-version")
    weights = load_file(folder / "model.safetensors")
    renamed = {name.replace("classifier.", "head."): tensor for name, tensor in weights.items()}
    save_file(renamed, folder / "model.safetensors", metadata={"format": "pt"})
    with pytest.raises(ValueError, match="do not fit this repository's PiN-CLIP class.*classifier.weight"):
        Detector.load(folder, device="cpu")


def test_a_classifier_whose_file_lacks_its_head_is_refused(tiny_clip_dir: Path, tiny_model_dir: Path,
                                                           tmp_path: Path) -> None:
    """A CLIP checkpoint labelled real/fake is no detector: transformers would give it a random head."""
    import json
    import shutil

    from transformers import CLIPForImageClassification

    folder = shutil.copytree(tiny_clip_dir, tmp_path / "clip-labelled-real-fake")
    config = json.loads((folder / "config.json").read_text())
    labels = {"id2label": {"0": "real", "1": "fake"}, "label2id": {"real": 0, "fake": 1}}
    (folder / "config.json").write_text(json.dumps({**config, **labels, "architectures": ["CLIPForImageClassification"]}))
    with pytest.raises(ValueError, match="do not cover the model.*classifier"):
        Detector.load(folder, device="cpu")

    # The same architecture saved whole (head included) is a classifier like any other and loads.
    CLIPForImageClassification.from_pretrained(folder).save_pretrained(tmp_path / "trained-clip-classifier")
    shutil.copy(tiny_model_dir / "preprocessor_config.json", tmp_path / "trained-clip-classifier")
    detector = Detector.load(tmp_path / "trained-clip-classifier", device="cpu")
    assert 0.0 <= detector.p_fake(random_image(40, 40, 2)) <= 1.0


def test_score_images_takes_any_pil_mode_and_an_empty_list(tiny_model_dir: Path) -> None:
    detector = Detector.load(tiny_model_dir, device="cpu")
    rgb = random_image(40, 40, 3)
    assert detector.score_images([]) == []
    assert detector.p_fake(rgb.convert("RGBA")) == detector.p_fake(rgb)  # alpha dropped, as load_rgb_image does
    grey = rgb.convert("L")
    assert detector.p_fake(grey) == detector.p_fake(grey.convert("RGB"))


def test_a_folder_scan_leaves_out_videos_and_data_files_pillow_cannot_decode(tmp_path):
    """Pillow registers .mpg (a header reader) and .h5/.grib/.bufr/.wmf (stubs): a scan read such files whole, a
    1.5 GB video included, only to report them undecodable."""
    Image.new("RGB", (8, 8)).save(tmp_path / "a.png")
    for name in ("clip.mpg", "clip.MPEG", "data.h5", "data.hdf", "w.grib", "w.bufr", "m.wmf", "m.emf"):
        (tmp_path / name).write_bytes(b"\0" * 64)
    assert find_images([tmp_path]) == [tmp_path / "a.png"]
    assert find_images([tmp_path / "clip.mpg"]) == [tmp_path / "clip.mpg"]  # named explicitly: still reported
    # EPS is decoded by Ghostscript, an outside program: scanned only where it is installed
    assert (".eps" in IMAGE_EXTENSIONS) == bool(EpsImagePlugin.has_ghostscript())


def test_a_score_that_is_not_a_number_is_an_error_not_a_real_label(tiny_model_dir: Path, tmp_path: Path) -> None:
    """A diverged model's NaN compared below every threshold: the scan called every image real."""
    import math

    import torch

    detector = Detector.load(tiny_model_dir, device="cpu")
    with torch.no_grad():
        detector.model.classifier.bias.fill_(math.nan)
    path = tmp_path / "a.png"
    random_image(40, 40, 0).save(path)
    (result,) = detector.scan([path])
    assert result.label is None and result.p_fake is None and result.error == "the model's score is not a number (nan)"
    with pytest.raises(ValueError, match="not all numbers"):
        detector.score_images([Image.open(path)])


def test_a_small_folder_is_split_so_that_every_worker_gets_a_batch() -> None:
    assert scan_batch_size(5, 32, 2) == 3  # ceil(5 / 2): a batch for each of two workers, not one of 5
    assert scan_batch_size(100, 32, 2) == 32  # capped by the batch size
    assert scan_batch_size(1, 32, 4) == 1  # never 0
    assert scan_batch_size(7, 32, 0) == 32  # no workers: the batch as asked


def test_a_folder_that_cannot_be_listed_gets_a_row_not_silence(tiny_model_dir, tmp_path, monkeypatch):
    import os

    (tmp_path / "photos" / "locked").mkdir(parents=True)
    for name in ("photos/a.png", "photos/locked/b.png"):
        Image.new("RGB", (8, 8)).save(tmp_path / name)
    locked = os.path.realpath(tmp_path / "photos" / "locked")
    scandir = os.scandir

    def refusing(path="."):  # what a folder without read permission does (tests may run as root)
        if os.path.realpath(path) == locked:  # the folder itself, by whichever route
            raise PermissionError(13, "Permission denied", os.fspath(path))
        return scandir(path)

    monkeypatch.setattr(os, "scandir", refusing)
    files = find_images([tmp_path / "photos"])
    assert files == [tmp_path / "photos" / "a.png", tmp_path / "photos" / "locked"]
    rows = {Path(r.path).name: r for r in Detector.load(tiny_model_dir).scan(files, num_workers=0)}
    assert rows["locked"].error == "a folder that cannot be listed (Permission denied)"
    assert rows["a.png"].error is None
    # one row however many routes lead to it: a link, and the folder named again
    (tmp_path / "photos" / "same_locked").symlink_to(locked, target_is_directory=True)
    assert find_images([tmp_path / "photos", locked]) == files


def test_a_file_named_beside_its_folder_or_twice_is_listed_once(tmp_path, monkeypatch):
    # it was scored twice, in two batches, and its two rows could differ in the last digits
    for name in ("a.png", "b.png"):
        Image.new("RGB", (8, 8)).save(tmp_path / name)
    (tmp_path / "link.png").symlink_to(tmp_path / "a.png")  # a file link stays a file of its own
    monkeypatch.chdir(tmp_path)
    listed = find_images(["a.png", tmp_path, "./a.png", tmp_path / "b.png"])
    assert listed == [Path("a.png"), tmp_path / "b.png", tmp_path / "link.png"]


def test_paths_the_file_system_refuses_or_that_are_empty(tiny_model_dir, tmp_path, monkeypatch):
    too_long = tmp_path / ("a" * 300 + ".png")
    assert find_images([too_long]) == [too_long]  # was an OSError that stopped the whole scan
    with pytest.raises(ValueError, match="an empty path names no file or folder"):
        find_images([""])  # Path("") is the working folder
    monkeypatch.chdir(tmp_path)
    rows = list(Detector.load(tiny_model_dir).scan([too_long, "./missing.png"], num_workers=0))
    # the reason only: `./missing.png` is named `missing.png` in the loader's message, which was kept whole
    assert [row.error for row in rows] == ["cannot be read (File name too long)", "no such file"]


def test_a_model_that_samples_noise_scores_an_image_the_same_in_every_run_batch_and_tool(
    tiny_model_dir: Path, tmp_path: Path
) -> None:
    """Was: the scanner and the demo drew the noise from torch's unseeded generator: another score on every run,
    labels flipping near the threshold."""
    import json
    import shutil

    import torch

    folder = shutil.copytree(tiny_model_dir, tmp_path / "sampling")
    config = json.loads((folder / "config.json").read_text())
    (folder / "config.json").write_text(json.dumps({**config, "inference_noise": "sample"}))
    detector = Detector.load(folder, device="cpu")
    paths = []
    for index in range(5):
        paths.append(tmp_path / f"{index}.png")
        random_image(40 + 7 * index, 50, index).save(paths[-1])
    torch.manual_seed(1)
    first = {result.path: result.p_fake for result in detector.scan(paths, batch_size=2)}
    torch.manual_seed(2)
    again = {result.path: result.p_fake for result in detector.scan(paths[::-1], batch_size=3)}
    assert again == pytest.approx(first, abs=1e-6)
    for path in paths:
        assert detector.p_fake(Image.open(path).convert("RGB")) == pytest.approx(first[str(path)], abs=1e-6)
    # the noise is drawn: the scores are not the noise-free model's
    noise_free = {result.path: result.p_fake for result in Detector.load(tiny_model_dir, device="cpu").scan(paths)}
    assert max(abs(first[path] - noise_free[path]) for path in first) > 1e-3
