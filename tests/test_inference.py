"""inference.Detector.scan: batched scores equal single-image scores, with the crop-only split or the processor."""

from pathlib import Path

import pytest
from PIL import Image

from inference import Detector
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
