"""The Gradio demo, launched on 127.0.0.1 and driven by gradio_client and by a real (headless Chromium) browser."""

import contextlib
import csv
import importlib.util
import json
import shutil
import socket
import struct
import time
import zlib
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from types import SimpleNamespace

import gradio as gr
import numpy as np
import pytest
import torch
from gradio_client import Client, handle_file
from gradio_client.exceptions import AppError
from PIL import Image
from transformers import AutoImageProcessor, AutoModelForImageClassification

import app
import space
from app import (CACHE_CLEANUP, PREDICT_CONCURRENCY, PREVIEW_CONCURRENCY, Handlers, build_demo, code_span, decision_label, launch_kwargs,
                 load_detector, metrics_rows, model_overview, no_results_message, p_fake_shown, read_card,
                 read_metrics)
from image_io import load_rgb_image
from inference import DEFAULT_MODEL_DIR, p_fake_text

ARTIFACTS = Path(__file__).resolve().parents[1] / "test-artifacts"
ASSETS = Path(__file__).resolve().parents[1] / "assets"
CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]
METRICS = {
    "subsets": {
        "test_tconv": {"acc": 0.97, "r_acc": 0.98, "f_acc": 0.96, "ap": 0.99, "auc": 0.99, "n": 32},
        "test_gan": {"acc": 0.71, "r_acc": 0.98, "f_acc": 0.44, "ap": 0.83, "auc": 0.85, "n": 32},
    },
    "mean": {"acc": 0.84, "r_acc": 0.98, "f_acc": 0.70, "ap": 0.91, "auc": 0.92, "n": 64},
}
CARD = "---\ndatasets:\n- minigenimage\nbase_model: openai/clip-vit-large-patch14\n---\n# Card\nTrained on tconv.\n"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def png_header_only(width: int, height: int) -> bytes:
    """A PNG that claims `width`×`height` pixels but holds no pixel data: a decompression bomb's header."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)) + chunk(b"IEND", b"")


def write_awkward_images(folder: Path) -> dict[str, Path]:
    """One file per input the demo must survive; values are paths."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    rgb = Image.fromarray(rng.integers(0, 256, (48, 40, 3), dtype=np.uint8))
    files = {}

    def save(name: str, image: Image.Image, **kwargs) -> None:
        files[name] = folder / name
        image.save(files[name], **kwargs)

    save("cmyk.jpg", rgb.convert("CMYK"))
    save("gray16.png", Image.fromarray((rng.integers(0, 65535, (40, 40))).astype(np.uint16)))
    save("rgba.png", rgb.convert("RGBA"))
    save("palette.png", rgb.convert("P"))
    exif = Image.Exif()
    exif[0x0112] = 6  # orientation: rotate 90°, so the 40×48 stored image is shown 48×40
    save("rotated.jpg", rgb, exif=exif)
    frames = [Image.new("RGB", (32, 32), color) for color in ("red", "blue")]
    files["animated.gif"] = folder / "animated.gif"
    frames[0].save(files["animated.gif"], save_all=True, append_images=frames[1:], duration=100, loop=0)
    save("tiny4x4.png", rgb.crop((0, 0, 4, 4)))
    files["bomb.png"] = folder / "bomb.png"
    files["bomb.png"].write_bytes(png_header_only(30000, 30000))
    files["not_an_image.png"] = folder / "not_an_image.png"
    files["not_an_image.png"].write_text("hello, I am text")
    return files


@pytest.fixture(scope="module")
def model_dir(tiny_model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny model with the metrics and card a training run writes beside it."""
    folder = tmp_path_factory.mktemp("app") / "pinclip-tiny"
    shutil.copytree(tiny_model_dir, folder)
    (folder / "metrics.json").write_text(json.dumps(METRICS))
    (folder / "README.md").write_text(CARD)
    return folder


@pytest.fixture(scope="module")
def app_url(model_dir: Path):
    demo = build_demo(model_dir)
    kwargs = launch_kwargs(free_port())
    demo.launch(server_name="127.0.0.1", prevent_thread_lock=True, quiet=True, **kwargs)
    try:
        yield demo.local_url
    finally:
        demo.close()


@pytest.fixture(scope="module")
def client(app_url: str) -> Client:
    return Client(app_url, verbose=False)


@pytest.fixture(scope="module")
def awkward(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    return write_awkward_images(tmp_path_factory.mktemp("awkward"))


def model_p_fake(model_dir: Path, path: Path) -> float:
    """The model's own probability, computed without any of the app's code but the shared image loader."""
    model = AutoModelForImageClassification.from_pretrained(model_dir, trust_remote_code=True).eval()
    processor = AutoImageProcessor.from_pretrained(model_dir, backend="pil")
    with torch.no_grad():
        logits = model(**processor(images=load_rgb_image(path), return_tensors="pt")).logits
    return logits.softmax(-1)[0, model.config.label2id["fake"]].item()


def confidences(label_output: dict) -> dict[str, float]:
    return {item["label"]: item["confidence"] for item in label_output["confidences"]}


def test_app_answer_equals_model_probability(client: Client, model_dir: Path) -> None:
    image = Path(__file__).resolve().parents[1] / "assets" / "fake_gan.png"
    label, decision, _ = client.predict(handle_file(str(image)), api_name="/predict")
    p_fake = model_p_fake(model_dir, image)
    assert confidences(label)["fake"] == pytest.approx(p_fake, abs=1e-5)
    assert set(confidences(label)) == {"real", "fake"}
    assert label["label"] == ("fake" if p_fake >= 0.5 else "real")
    assert "fake_gan.png" in decision and "threshold 0.5" in decision


def test_concurrent_clients_all_succeed(app_url: str) -> None:
    """8 clients × 10 requests over the example images: Gradio caches equal answers under one name, and a request
    must never download that file while another request is rewriting it."""
    images = sorted(str(path) for path in (Path(__file__).resolve().parents[1] / "assets").glob("*.png"))

    def session(offset: int) -> int:
        session_client = Client(app_url, verbose=False)
        for index in range(10):  # each answer's preview image is downloaded too
            session_client.predict(handle_file(images[(offset + index) % len(images)]), api_name="/predict")
        return 10

    with ThreadPoolExecutor(8) as pool:
        assert sum(pool.map(session, range(8))) == 80


@pytest.mark.parametrize("name", ["cmyk.jpg", "gray16.png", "rgba.png", "palette.png", "rotated.jpg", "animated.gif", "tiny4x4.png"])
def test_app_scores_awkward_images(client: Client, awkward: dict[str, Path], name: str) -> None:
    label, decision, _ = client.predict(handle_file(str(awkward[name])), api_name="/predict")
    assert sum(confidences(label).values()) == pytest.approx(1.0, abs=1e-5)
    if name == "rotated.jpg":
        assert "(48×40;" in decision  # EXIF orientation applied before scoring


@pytest.mark.parametrize("name, reason", [("bomb.png", "pixel limit"), ("not_an_image.png", "not a recognised image")])
def test_app_bad_upload_is_a_message_and_server_survives(client: Client, awkward: dict[str, Path], name: str, reason: str) -> None:
    with pytest.raises(AppError) as error:
        client.predict(handle_file(str(awkward[name])), api_name="/predict")
    message = str(error.value)
    assert name in message and reason in message
    assert str(awkward[name].parent) not in message and "/tmp" not in message  # file name only, no server path
    label, _, _ = client.predict(handle_file(str(awkward["palette.png"])), api_name="/predict")
    assert "confidences" in label


@pytest.mark.parametrize("name", ["image.tga", "no_extension"])
def test_app_judges_uploads_by_their_bytes_not_their_extension(client: Client, tmp_path: Path, name: str) -> None:
    Image.new("RGB", (20, 20), (200, 20, 20)).save(tmp_path / name, "TGA" if name.endswith(".tga") else "PNG")
    label, decision, _ = client.predict(handle_file(str(tmp_path / name)), api_name="/predict")
    assert sum(confidences(label).values()) == pytest.approx(1.0, abs=1e-5) and name in decision


def test_app_batch_table_and_csv(client: Client, awkward: dict[str, Path]) -> None:
    files = [awkward["rgba.png"], awkward["not_an_image.png"], awkward["tiny4x4.png"]]
    table, csv_path = client.predict([handle_file(str(path)) for path in files], api_name="/batch")
    rows = {row[0]: row for row in table["data"]}
    assert list(rows) == ["rgba.png", "not_an_image.png", "tiny4x4.png"]
    assert rows["not_an_image.png"][1] is None and "not a recognised image" in rows["not_an_image.png"][3]
    assert rows["rgba.png"][2] in ("real", "fake")
    lines = Path(csv_path).read_text().splitlines()
    assert lines[0] == "file,p_fake,label,error,padding" and len(lines) == 4
    # the 4×4 image is read mostly as padding, as predict.py's column says; an unreadable file has none
    assert rows["tiny4x4.png"][4] > 0.9 and rows["rgba.png"][4] == 0 and rows["not_an_image.png"][4] is None
    assert [line.rsplit(",", 1)[1] for line in lines[1:]] == ["0.00", "", f"{rows['tiny4x4.png'][4]:.2f}"]
    assert "/" not in "".join(lines[1:])  # names only, no server path
    twin = awkward["rgba.png"].parent / "twin" / "rgba.png"  # another file of the same name
    twin.parent.mkdir(exist_ok=True)
    shutil.copy(awkward["tiny4x4.png"], twin)
    table, _ = client.predict([handle_file(str(path)) for path in (awkward["rgba.png"], twin)], api_name="/batch")
    assert [row[0] for row in table["data"]] == ["rgba.png (1 of 2)", "rgba.png (2 of 2)"]
    assert table["data"][0][1] == rows["rgba.png"][1]  # in upload order


def test_the_batch_csv_writes_the_padding_the_table_shows(model_dir: Path, tmp_path: Path) -> None:
    """Was rounded down twice: a 14×30 upload's 0.58 in the table (and predict.py) was 0.57 in the CSV (32 px crop)."""
    from inference import padding_text

    detector, problem = load_detector(str(model_dir))
    assert (detector.preprocessing.centre_crop.width, detector.preprocessing.centre_crop.height) == (32, 32)
    Image.new("RGB", (14, 30), (10, 200, 30)).save(tmp_path / "thumb.png")
    handlers = Handlers(detector, problem)
    rows, csv_path = handlers.batch([str(tmp_path / "thumb.png")])
    (result,) = detector.scan([tmp_path / "thumb.png"])
    expected = padding_text(result.padding)
    assert expected == "0.58"
    assert rows[0][4] == float(expected) and Path(csv_path).read_text().splitlines()[1].endswith("," + expected)


def test_app_without_model_starts_and_says_how_to_train(tmp_path: Path) -> None:
    detector, problem = load_detector(None)
    assert detector is None and "python train.py" in problem
    assert isinstance(build_demo(tmp_path / "missing-model"), gr.Blocks)  # an unloadable model still builds the UI
    image = tmp_path / "x.png"
    Image.new("RGB", (8, 8)).save(image)
    with pytest.raises(gr.Error, match="python train.py"):
        Handlers(None, problem).predict(str(image))


def test_model_panel_reads_metrics_and_card(model_dir: Path) -> None:
    rows = metrics_rows(read_metrics(str(model_dir)))
    assert [row[0] for row in rows] == ["test_tconv", "test_gan", "mean"]
    assert rows[1][:3] == ["test_gan", 32, 0.71]
    front, body = read_card(str(model_dir))
    assert front["datasets"] == ["minigenimage"] and body.startswith("# Card")


def test_model_panel_survives_undefined_metrics_and_odd_cards(model_dir: Path, tmp_path: Path) -> None:
    folder = shutil.copytree(model_dir, tmp_path / "one-class")
    # A test subset with fakes only: real accuracy, AP and AUC are undefined and stored as null.
    only_fake = {"acc": 0.5, "r_acc": None, "f_acc": 0.5, "ap": None, "auc": None, "n": 2}
    (folder / "metrics.json").write_text(json.dumps({"subsets": {"only_fake": only_fake}, "mean": only_fake}))
    assert metrics_rows(read_metrics(str(folder)))[0][:4] == ["only_fake", 2, 0.5, None]
    assert isinstance(build_demo(str(folder)), gr.Blocks)
    (folder / "README.md").write_text("---\nnever closed\n# Card")
    assert read_card(str(folder)) == ({}, "---\nnever closed\n# Card")
    (folder / "README.md").write_text("---\n- a list, not a mapping\n---\n# Card")
    assert read_card(str(folder)) == ({}, "# Card")


def test_model_panel_names_the_training_data_from_metrics(model_dir: Path, tmp_path: Path) -> None:
    # train.py records the data in metrics.json; the card's `datasets` lists Hub datasets only (none for MiniGenImage
    # or a local folder), so the panel reads metrics.json first and the card only for models trained elsewhere.
    detector, _ = load_detector(str(model_dir))
    card = {"datasets": ["org/genimage"]}
    text = model_overview(detector, card, {"training": {"data": "MiniGenImage"}})
    assert "**Training data** MiniGenImage" in text and "org/genimage" not in text
    assert "**Training data** org/genimage" in model_overview(detector, card, {"training": ["not", "a", "dict"]})
    assert "**Training data** not recorded (neither metrics.json nor a model card names it)" in model_overview(
        detector, {}, {})
    folder = shutil.copytree(model_dir, tmp_path / "recorded")
    (folder / "metrics.json").write_text(json.dumps({"subsets": {}, "training": {"data": "my-photos"}}))
    assert read_metrics(str(folder))["training"]["data"] == "my-photos"


def test_model_panel_names_a_local_backbone_without_its_path(model_dir: Path) -> None:
    detector, _ = load_detector(str(model_dir))
    for base, shown in (("elsewhere/pinclip-run/random-clip", "random-clip"), ("/data/clip", "clip"),
                        ("openai/clip-vit-large-patch14", "openai/clip-vit-large-patch14")):
        detector.model.config.clip_name_or_path = base
        assert f"base CLIP `{shown}`" in model_overview(detector, {}, {})


def test_threshold_comes_from_the_model_config(model_dir: Path, tmp_path: Path) -> None:
    folder = shutil.copytree(model_dir, tmp_path / "strict")
    config = json.loads((folder / "config.json").read_text())
    (folder / "config.json").write_text(json.dumps({**config, "detection_threshold": 0.9}))
    detector, _ = load_detector(str(folder))
    assert detector.threshold == 0.9 and detector.label_of(0.8) == "real" and detector.label_of(0.95) == "fake"


def test_robustness_preview_rescoring(model_dir: Path, tmp_path: Path) -> None:
    detector, problem = load_detector(str(model_dir))
    image = Path(__file__).resolve().parents[1] / "assets" / "real_1.png"
    handlers = Handlers(detector, problem)
    label, shift, preview = handlers.robustness(str(image), 50, 1.5)
    assert set(label) == {"real", "fake"} and "blur σ=1.5 then JPEG q=50" in shift and preview.size == (256, 256)
    Image.new("RGB", (70000, 2)).save(tmp_path / "panorama.png")  # scored fine, but no JPEG can hold it
    with pytest.raises(gr.Error, match="panorama.png: JPEG cannot store a 70000×2 image"):
        handlers.robustness(str(tmp_path / "panorama.png"), 30, 0)


def test_batch_downloads_do_not_pile_up(model_dir: Path) -> None:
    detector, problem = load_detector(str(model_dir))
    handlers = Handlers(detector, problem)
    image = str(Path(__file__).resolve().parents[1] / "assets" / "real_1.png")
    csv_files = [Path(handlers.batch([image])[1]) for _ in range(20)]
    assert all(path.exists() for path in csv_files[-16:]) and not any(path.exists() for path in csv_files[:4])
    assert csv_files[-1].read_text().splitlines()[0] == "file,p_fake,label,error,padding"
    root = Path(handlers.csv_root.name)  # and none stays once the app is gone (they stayed in /tmp for good)
    assert all(root in path.parents for path in csv_files)
    del handlers
    import gc

    gc.collect()
    assert not root.exists()


def test_browser_uploads_image_and_reads_label(app_url: str, awkward: dict[str, Path]) -> None:
    if not CHROMIUM.exists():
        pytest.skip(f"{CHROMIUM} missing: install Debian's chromium (apt-get install -y chromium) to run the browser test")
    from playwright.sync_api import sync_playwright

    ARTIFACTS.mkdir(exist_ok=True)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 1100})
            page.goto(app_url, wait_until="domcontentloaded")
            page.locator("#upload input[type=file]").set_input_files(str(awkward["rotated.jpg"]))
            page.locator("#decision").get_by_text("p(fake)").wait_for(timeout=30_000)
            decision = page.locator("#decision").inner_text()
            prediction = page.locator("#prediction").inner_text()
            page.locator("#robust-shift").get_by_text("Move a slider").wait_for(timeout=30_000)
            page.locator("#blur input[type=range]").focus()  # the keyboard moves a slider as well as the mouse
            page.keyboard.press("ArrowRight")
            page.keyboard.press("ArrowRight")
            page.locator("#robust-shift").get_by_text("after blur σ=0.5").wait_for(timeout=30_000)
            page.screenshot(path=str(ARTIFACTS / "app-detect.png"), full_page=True)
        finally:
            browser.close()
    assert "rotated.jpg" in decision and "(48×40;" in decision
    assert "real" in prediction and "fake" in prediction and "%" in prediction


@contextlib.contextmanager
def demo_page(model_dir: Path) -> Iterator:
    """A Chromium page on a demo of `model_dir` launched for it; the test is skipped without Chromium."""
    if not CHROMIUM.exists():
        pytest.skip(f"{CHROMIUM} missing: install Debian's chromium (apt-get install -y chromium) to run the browser test")
    from playwright.sync_api import sync_playwright

    demo = build_demo(model_dir)
    demo.launch(server_name="127.0.0.1", prevent_thread_lock=True, quiet=True, **launch_kwargs(free_port()))
    try:
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
            try:
                page = browser.new_page()
                page.goto(demo.local_url, wait_until="domcontentloaded")
                yield page
            finally:
                browser.close()
    finally:
        demo.close()


@pytest.mark.parametrize("slow_preview_from", ["slider", "upload"])
def test_a_slow_preview_of_an_earlier_upload_never_stands_under_the_next_one(model_dir: Path, tmp_path: Path,
                                                                           monkeypatch: pytest.MonkeyPatch,
                                                                           slow_preview_from: str) -> None:
    """The preview of a large upload can take seconds: one for the next upload, started meanwhile, once finished
    first and the old result then overwrote it, under the new image (and unnamed). It may have started from the
    slider or, the slider already moved, from the upload itself."""
    slow_size = (70, 50)  # slow.png's, known by it inside the preview
    degrade = app.degrade

    def slow_for_one_file(image, jpeg_quality, blur_sigma):
        if image.size == slow_size:
            time.sleep(4)  # a 9400² upload takes this long on a busy Space
        return degrade(image, jpeg_quality, blur_sigma)

    monkeypatch.setattr(app, "degrade", slow_for_one_file)
    Image.open(ASSETS / "fake_gan.png").convert("RGB").resize(slow_size).save(tmp_path / "slow.png")
    with demo_page(model_dir) as page:
        shift = page.locator("#robust-shift")
        first = tmp_path / ("slow.png" if slow_preview_from == "slider" else "fast.png")
        if slow_preview_from == "upload":
            shutil.copy(ASSETS / "fake_gan.png", first)
        page.locator("#upload input[type=file]").set_input_files(str(first))
        shift.get_by_text("Move a slider").wait_for(timeout=30_000)
        page.locator("#blur input[type=range]").focus()
        page.keyboard.press("ArrowRight")  # with slow.png: the slow preview starts
        if slow_preview_from == "upload":
            shift.get_by_text("fast.png").wait_for(timeout=30_000)
            page.locator("#upload button[aria-label='Clear']").first.click()
            page.locator("#upload input[type=file]").set_input_files(str(tmp_path / "slow.png"))
            page.wait_for_timeout(1_500)  # its prediction done, its preview running
        page.wait_for_timeout(500)
        page.locator("#upload button[aria-label='Clear']").first.click()
        page.locator("#upload input[type=file]").set_input_files(str(ASSETS / "real_1.png"))
        shift.get_by_text("real_1.png").wait_for(timeout=30_000)
        page.wait_for_timeout(6_000)  # past the slow preview's end
        final = shift.inner_text()
    assert "real_1.png" in final and "slow.png" not in final, final


def test_every_upload_in_a_row_gets_its_own_preview(model_dir: Path) -> None:
    """The sliders moved, example after example: the previews of several were lost to an "Error" badge, or the
    previous example's stayed under the new decision (the upload's cancel reached the server after its own events)."""
    shown = []
    with demo_page(model_dir) as page:
        page.locator("#blur input[type=range]").focus()
        page.keyboard.press("ArrowRight")
        shift = page.locator("#robust-shift")
        for example, file in (("real · 1", "real_1.png"), ("fake · gan", "fake_gan.png"),
                              ("real · 2", "real_2.png"), ("fake · tconv", "fake_tconv.png")):
            page.get_by_text(example, exact=True).click()
            try:
                shift.get_by_text(f"{file}: p(fake)").wait_for(timeout=15_000)
            except Exception:  # noqa: BLE001 - recorded, asserted below with what the panel showed
                pass
            shown.append(shift.inner_text())
    files = ["real_1.png", "fake_gan.png", "real_2.png", "fake_tconv.png"]
    assert [file in text for file, text in zip(files, shown)] == [True] * 4, shown


def test_a_space_prefers_its_bundled_model_to_a_training_output(tiny_model_dir: Path, tmp_path: Path) -> None:
    folder = space.build_space(tiny_model_dir, tmp_path / "space")
    spec = importlib.util.spec_from_file_location("space_app", folder / "app.py")
    space_app = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(space_app)
    (folder / DEFAULT_MODEL_DIR).mkdir(parents=True)  # a training run's output beside it
    assert space_app.resolve_model(None) == str(folder / "model")
    shutil.rmtree(folder / "model")
    assert space_app.resolve_model(None) == str(folder / DEFAULT_MODEL_DIR)
    assert space_app.resolve_model("someone/detector") == "someone/detector"


def test_a_card_without_front_matter_keeps_its_horizontal_rules(model_dir: Path, tmp_path: Path) -> None:
    folder = shutil.copytree(model_dir, tmp_path / "plain-card")
    text = "# Card\n\nIntro\n\n---\n\nDetails\n\n---\n\nEnd"
    (folder / "README.md").write_text(text)
    assert read_card(str(folder)) == ({}, text)


def test_model_panel_rounds_metrics_to_four_places(model_dir: Path, tmp_path: Path) -> None:
    folder = shutil.copytree(model_dir, tmp_path / "precise")
    values = {"acc": 0.987654, "r_acc": 0.5, "f_acc": 0.123456, "ap": 0.99999, "auc": 0.25, "n": 7}
    (folder / "metrics.json").write_text(json.dumps({"subsets": {"test_gan": values}}))
    assert metrics_rows(read_metrics(str(folder))) == [["test_gan", 7, 0.9877, 0.5, 0.1235, 1.0, 0.25]]


def test_model_overview_states_the_models_facts(model_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    detector, _ = load_detector(str(model_dir))
    detector.threshold = 0.9
    # where it was trained (a folder): the card's base_model names the base instead
    detector.model.config.clip_name_or_path = str(tmp_path / "trainer" / "clip")
    card = {"base_model": "openai/clip-vit-large-patch14", "datasets": ["org/genimage-sdv14", "org/aigibench"]}
    text = model_overview(detector, card, {})
    assert "base CLIP `openai/clip-vit-large-patch14`" in text and "**Training data** org/genimage-sdv14, org/aigibench" in text
    assert "px, centre-cropped, not resized" in text and "**Decision** fake when p(fake) ≥ 0.9" in text
    # another classifier: its processor resizes, and it has no noise (the tab said "centre-cropped, not resized" and
    # "scale `absolute`", read from PiN-CLIP fields it lacks); a card may list several base models
    from test_labels import ai_not_ai_detector

    other = model_overview(ai_not_ai_detector(), {"base_model": ["org/a", "org/b"]}, {})
    assert "px, as its image processor prepares it" in other and "**Noise**" not in other
    assert "base model `org/a, org/b`" in other
    detector.model.config.noise_scale = "feature_rms"  # s is then a fraction of the features' RMS: say so
    assert "scale `feature_rms`" in model_overview(detector, {}, {})
    monkeypatch.chdir(tmp_path)
    (tmp_path / "runs" / "random-clip").mkdir(parents=True)  # a relative folder, on disk: its name only
    detector.model.config.clip_name_or_path = "runs/random-clip"
    assert "base CLIP `random-clip`" in model_overview(detector, {}, {})


@pytest.mark.parametrize("threshold, verdict", [(0.0, "**Decision: AI-generated (fake)**"), (1.01, "**Decision: real**")])
def test_the_decision_follows_p_fake_and_the_threshold(model_dir: Path, threshold: float, verdict: str) -> None:
    detector, problem = load_detector(str(model_dir))
    detector.threshold = threshold
    image = ASSETS / "fake_gan.png"
    p_fake = detector.p_fake(Image.open(image).convert("RGB"))
    (label, probabilities), decision, _ = Handlers(detector, problem).predict(str(image))
    assert probabilities["fake"] == pytest.approx(p_fake)
    assert decision.startswith(verdict) and f"p(fake) = {p_fake:.3f}," in decision
    assert label == ("fake" if "fake" in verdict else "real")  # the headline is the decision, not the likelier class


def test_robustness_preview_scores_the_processed_image(model_dir: Path) -> None:
    from corruptions import degrade
    from image_io import load_rgb_image

    detector, problem = load_detector(str(model_dir))
    path = ASSETS / "fake_gan.png"
    image = load_rgb_image(path)
    original, processed = (detector.p_fake(im) for im in (image, degrade(image, 30, 3.0)))
    assert abs(original - processed) > 1e-4  # the processing moves this image's score
    label, shift, _ = Handlers(detector, problem).robustness(str(path), 30, 3.0)
    decided = "AI-generated (fake)" if detector.label_of(processed) == "fake" else "real"
    assert label["fake"] == pytest.approx(processed)
    assert shift == (f"`fake_gan.png`: p(fake) {original:.3f} → {processed:.3f} after blur σ=3 then JPEG q=30; "
                     f"decision after processing: **{decided}**")


def test_robustness_preview_at_the_sliders_rest_positions_scores_nothing(model_dir: Path, monkeypatch) -> None:
    """Every upload runs the preview after the prediction: at rest (JPEG 100 is "off", σ 0) it would only score the
    same image twice more."""
    detector, problem = load_detector(str(model_dir))
    monkeypatch.setattr(detector, "score_images", lambda images: pytest.fail("scored at the sliders' rest"))
    label, shift, image = Handlers(detector, problem).robustness(str(ASSETS / "fake_gan.png"), 100, 0)
    assert label is None and image is None and shift.startswith("Move a slider")


def test_a_model_that_cannot_load_is_named_without_its_server_path(tmp_path: Path) -> None:
    broken = tmp_path / "private" / "broken-model"
    broken.mkdir(parents=True)
    (broken / "config.json").write_text("{not json")
    detector, problem = load_detector(str(broken))
    assert detector is None and "`broken-model`" in problem and str(tmp_path) not in problem


def test_batch_rows_and_csv_hold_p_fake_as_the_scanner_writes_it(model_dir: Path) -> None:
    detector, problem = load_detector(str(model_dir))
    paths = [str(ASSETS / "real_1.png"), str(ASSETS / "fake_gan.png")]
    handlers = Handlers(detector, problem)  # kept: its CSV folder goes with it
    rows, csv_path = handlers.batch(paths)
    # the scanner's scores of the same batch (a batch of one may differ in the last bit from a batch of two)
    expected = [result.p_fake for result in detector.scan(paths, batch_size=16)]
    assert expected == pytest.approx([detector.p_fake(Image.open(path).convert("RGB")) for path in paths], abs=1e-6)
    # the float32 probability itself (rounded to six places, 0.4999996 read 0.5 beside "real" and small scores tied)
    assert [np.float32(row[1]) for row in rows] == [np.float32(p) for p in expected]
    assert [row[2] for row in rows] == [detector.label_of(p) for p in expected]
    lines = Path(csv_path).read_text().splitlines()[1:]
    assert [line.split(",")[1] for line in lines] == [p_fake_text(p) for p in expected]


def test_a_model_with_its_own_code_loads_only_when_the_app_is_told_to_trust_it(
    tiny_model_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import app

    folder = shutil.copytree(tiny_model_dir, tmp_path / "third-party-detector")
    config = json.loads((folder / "config.json").read_text())
    (folder / "config.json").write_text(json.dumps({**config, "model_type": "third-party-detector"}))
    detector, problem = load_detector(str(folder))
    assert detector is None and "ships its own code" in problem and "--trust_remote_code" in problem
    detector, problem = load_detector(str(folder), trust_remote_code=True)
    assert detector is not None and problem == ""

    built = []
    monkeypatch.setattr(app, "build_demo", lambda model, trust, strict: built.append((model, trust, strict)) or gr.Blocks())
    monkeypatch.setattr(gr.Blocks, "launch", lambda self, **kwargs: None)
    app.main(["--model", str(folder), "--trust_remote_code"])
    app.main(["--model", str(folder)])
    assert built == [(str(folder), True, True), (str(folder), False, True)]


def test_model_panel_leaves_out_files_it_cannot_read(model_dir: Path, tmp_path: Path) -> None:
    folder = shutil.copytree(model_dir, tmp_path / "odd-files")
    for bad_metrics in ("{not json", json.dumps({"subsets": ["a", "list"]}), json.dumps({"subsets": {"x": 0.5}}),
                        json.dumps([1, 2])):
        (folder / "metrics.json").write_text(bad_metrics)
        assert metrics_rows(read_metrics(str(folder))) == [], bad_metrics
        assert "holds no per-generator results" in no_results_message(str(folder))  # not called missing
    (folder / "metrics.json").unlink()
    assert no_results_message(str(folder)).startswith("No `metrics.json` beside this model")
    (folder / "README.md").write_bytes("---\ndatasets: [x]\n---\n# Carte élève".encode("latin-1"))
    assert read_card(str(folder)) == ({}, "")
    assert isinstance(build_demo(str(folder)), gr.Blocks)  # the demo starts, without those parts of the panel


def test_model_panel_names_the_model_by_its_card(model_dir: Path) -> None:
    # In a Space the model folder is always `model/`: the card's model-index name says which model it is.
    detector, _ = load_detector(str(model_dir))
    assert "**Model** `pinclip-tiny`" in model_overview(detector, {}, {})
    card = {"model-index": [{"name": "pinclip-minigenimage", "results": []}]}
    assert "**Model** `pinclip-minigenimage`" in model_overview(detector, card, {})
    assert "**Model** `pinclip-tiny`" in model_overview(detector, {"model-index": "not a list"}, {})


def test_load_failures_name_a_hub_id_whole_and_a_folder_by_name(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _, problem = load_detector("someuser/nonexistent-detector")
    assert "`someuser/nonexistent-detector`" in problem
    (tmp_path / "not-a-model").mkdir()
    _, problem = load_detector(str(tmp_path / "not-a-model"))
    assert "`not-a-model`" in problem and str(tmp_path) not in problem
    monkeypatch.chdir(tmp_path / "not-a-model")
    _, problem = load_detector("./")
    assert "`not-a-model`" in problem


def test_app_refuses_to_start_on_a_model_named_on_the_command_line_that_cannot_load(
    tmp_path: Path, capsys: pytest.CaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    import app

    monkeypatch.setattr(gr.Blocks, "launch", lambda self, **kwargs: pytest.fail("launched on a missing model"))
    with pytest.raises(SystemExit) as exit_:
        app.main(["--model", str(tmp_path / "typo")])
    error = capsys.readouterr().err
    assert exit_.value.code == 2 and f"cannot load the model {tmp_path / 'typo'}: no such model folder" in error
    with pytest.raises(SystemExit) as exit_:  # `--model "$MODEL"`, MODEL unset: not the default model
        app.main(["--model", ""])
    assert exit_.value.code == 2 and "--model is empty" in capsys.readouterr().err


def test_a_port_in_use_is_a_message_naming_the_flag(model_dir: Path, capsys: pytest.CaptureFixture) -> None:
    """Was: a traceback whose advice named launch()'s server_port parameter."""
    import socket

    import app

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(SystemExit) as exit_:
            app.main(["--model", str(model_dir), "--port", str(port)])
    error = capsys.readouterr().err
    assert exit_.value.code == 2 and f"{port}" in error and "a port in use: choose another with --port" in error
    assert "Traceback" not in error and "launch()" not in error


def test_the_robustness_panel_scores_the_upload_as_the_detect_panel_does(model_dir: Path, monkeypatch) -> None:
    """One image at a time: in a batch of two, the original's p(fake) could differ from the Detect panel's in the last
    bit, and so could its decision at a threshold on that bit."""
    detector, problem = load_detector(str(model_dir))
    batches = []
    score_images = detector.score_images
    monkeypatch.setattr(detector, "score_images", lambda images: batches.append(len(images)) or score_images(images))
    handlers = Handlers(detector, problem)
    detected, _, _ = handlers.predict(str(ASSETS / "fake_gan.png"))
    _, shift, _ = handlers.robustness(str(ASSETS / "fake_gan.png"), 50, 1)
    assert batches == [1, 1, 1]
    assert shift.split(" p(fake) ")[1].startswith(p_fake_shown(detected[1]["fake"], detector.threshold) + " → ")


def test_a_preview_of_an_upload_the_page_has_replaced_changes_nothing(model_dir: Path, monkeypatch) -> None:
    """A preview still running when the next image is uploaded finished and stood under the new image."""
    detector, problem = load_detector(str(model_dir))
    handlers = Handlers(detector, problem)
    page, other_page = SimpleNamespace(session_hash="page"), SimpleNamespace(session_hash="other")
    old, new = str(ASSETS / "fake_gan.png"), str(ASSETS / "real_1.png")
    handlers.note_upload(old, page)
    handlers.note_upload(old, other_page)
    score = Handlers.score

    def upload_while_scoring(detector, name, images):  # the page's next upload arrives while this one is scored
        handlers.note_upload(new, page)
        return score(detector, name, images)

    monkeypatch.setattr(handlers, "score", upload_while_scoring)
    assert handlers.robustness(old, 50, 1, page) == (gr.skip(), gr.skip(), gr.skip())
    monkeypatch.undo()
    assert handlers.robustness(old, 50, 1, page) == (gr.skip(), gr.skip(), gr.skip())  # queued before, run after
    assert "`real_1.png`: p(fake)" in handlers.robustness(new, 50, 1, page)[1]
    assert "`fake_gan.png`: p(fake)" in handlers.robustness(old, 50, 1, other_page)[1]  # each page its own upload
    assert "`fake_gan.png`: p(fake)" in handlers.robustness(old, 50, 1)[1]  # a call without a page
    handlers.forget_page(page)
    assert list(handlers.uploads) == ["other"]
    demo = build_demo(model_dir)  # the upload is noted outside the queue, first; closed pages are forgotten
    noting, = [fn for fn in demo.fns.values() if fn.name == "note_upload"]
    assert noting.queue is False and noting.targets[0][1] == "change" and noting.api_visibility == "private"
    predicting, = [fn for fn in demo.fns.values() if fn.name == "predict"]
    assert predicting.trigger_after == noting._id  # the prediction and its preview follow the note, not race it
    assert any(fn.name == "forget_page" and fn.targets[0][1] == "unload" for fn in demo.fns.values())


def test_previews_are_lossless(model_dir: Path) -> None:
    # WebP (Gradio's default) would show compression artefacts that the model never saw.
    demo = build_demo(model_dir)
    images = [block for block in demo.blocks.values() if isinstance(block, gr.Image)]
    assert len(images) == 2 and all(image.format == "png" for image in images)


def test_batch_csv_cells_that_a_spreadsheet_would_run_are_quoted(model_dir: Path, tmp_path: Path) -> None:
    """An upload named `=HYPERLINK(...).png` became a formula in the downloaded CSV."""
    detector, problem = load_detector(str(model_dir))
    paths = []
    for name in ("=HYPERLINK(1).png", "+1.png", "-photo.png", "plain.png"):
        paths.append(str(shutil.copy(ASSETS / "real_1.png", tmp_path / name)))
    handlers = Handlers(detector, problem)  # kept: its CSV folder goes with it
    rows, csv_path = handlers.batch(paths)
    assert [row[0] for row in rows] == ["=HYPERLINK(1).png", "+1.png", "-photo.png", "plain.png"]  # the table as named
    with open(csv_path, newline="", encoding="utf-8") as handle:
        cells = [row[0] for row in list(csv.reader(handle))[1:]]
    assert cells == ["'=HYPERLINK(1).png", "'+1.png", "'-photo.png", "plain.png"]


def test_a_threshold_away_from_one_half_heads_the_label_with_the_decision(model_dir: Path, tmp_path: Path) -> None:
    """Gradio heads a Label with the likelier class; with the threshold between p(fake) and the other side of 0.5,
    the decision is the other class, and the UI and API clients must get the decision."""
    image = ASSETS / "fake_gan.png"
    p_fake = load_detector(str(model_dir))[0].p_fake(load_rgb_image(image))
    threshold = (p_fake + 1) / 2 if p_fake >= 0.5 else p_fake / 2  # the decision is not the likelier class
    decided = "fake" if p_fake >= threshold else "real"
    assert decided != max({"real": 1 - p_fake, "fake": p_fake}.items(), key=lambda item: item[1])[0]
    moved = tmp_path / "moved-threshold"
    shutil.copytree(model_dir, moved)
    config = json.loads((moved / "config.json").read_text())
    (moved / "config.json").write_text(json.dumps({**config, "detection_threshold": threshold}))
    demo = build_demo(moved, strict=True)
    demo.launch(server_name="127.0.0.1", prevent_thread_lock=True, quiet=True, **launch_kwargs(free_port()))
    try:
        label, decision, _ = Client(demo.local_url, verbose=False).predict(handle_file(str(image)), api_name="/predict")
    finally:
        demo.close()
    assert label["label"] == decided and confidences(label)["fake"] == pytest.approx(p_fake, abs=1e-5)
    shown = float(decision.split("p(fake) = ")[1].split(",")[0])
    assert (shown >= threshold) == (p_fake >= threshold) and f"threshold {threshold:.9g}" in decision
    payload = decision_label().postprocess(("real", {"real": 0.1, "fake": 0.9}))
    assert payload.label == "real" and [c.label for c in payload.confidences] == ["fake", "real"]


@pytest.mark.parametrize("p_fake, threshold, shown", [(0.4996, 0.5, "0.4996"), (0.5004, 0.5, "0.500"),
                                                     (0.25, 0.5, "0.250"), (0.99991, 0.99999, "0.99991")])
def test_p_fake_is_shown_on_the_side_of_the_threshold_it_is_on(p_fake: float, threshold: float, shown: str) -> None:
    assert p_fake_shown(p_fake, threshold) == shown


@pytest.mark.parametrize("name", ["plain.png", "a`b.png", "``x``.png", "`edge.png"])
def test_a_file_name_is_one_code_span_whatever_backticks_it_holds(name: str) -> None:
    from markdown_it import MarkdownIt  # the CommonMark parser Gradio's own dependencies bring

    html = MarkdownIt().renderInline(code_span(name))
    assert html == f"<code>{name}</code>"


def test_the_preview_is_what_the_model_reads(model_dir: Path, tmp_path: Path) -> None:
    """A crop-only detector reads the centre of an upload: a fake pasted there decides; the preview and the text say
    which window was read."""
    detector, problem = load_detector(str(model_dir))
    side = detector.model.config.image_size
    big = Image.fromarray(np.random.default_rng(3).integers(0, 256, (5 * side, 4 * side, 3), dtype=np.uint8))
    big.save(tmp_path / "big.png")
    _, decision, preview = Handlers(detector, problem).predict(str(tmp_path / "big.png"))
    centre = big.crop(((4 * side - side) // 2, (5 * side - side) // 2, (4 * side + side) // 2, (5 * side + side) // 2))
    scale = preview.width // side
    assert preview.size == (side * scale, side * scale)
    assert np.array_equal(np.asarray(preview.resize((side, side), Image.Resampling.NEAREST)), np.asarray(centre))
    assert f"({4 * side}×{5 * side}; the model reads its central {side}×{side} px" in decision
    # a processor that resizes: the whole upload, shrunk, is what the model reads
    from preprocessing import Preprocessing

    processor = detector.processor
    detector.preprocessing = Preprocessing(processor.__class__(**{**processor.to_dict(), "do_resize": True,
                                                                  "size": {"shortest_edge": side}}))
    _, decision, preview = Handlers(detector, problem).predict(str(tmp_path / "big.png"))
    assert f"the model reads it as {side}×{side} px after its processor" in decision
    assert np.abs(np.asarray(preview.resize((side, side)), dtype=int) - np.asarray(centre, dtype=int)).mean() > 20


def test_an_image_smaller_than_the_crop_is_called_weak_evidence(model_dir: Path, tmp_path: Path) -> None:
    """Below the model's size the crop is mostly black border: the decision must not read as one about the image."""
    detector, problem = load_detector(str(model_dir))
    side = detector.model.config.image_size
    for width, height, share in ((side // 2, side // 2, "75%"), (1, 1, "99%"), (side, side // 4, "75%")):
        Image.new("RGB", (width, height), (90, 120, 60)).save(tmp_path / "small.png")
        _, decision, _ = Handlers(detector, problem).predict(str(tmp_path / "small.png"))
        assert f"the model reads it padded with black to {side}×{side} px, {share} of what it reads being padding: " \
               "weak evidence" in decision, decision
        assert "its central" not in decision
    Image.new("RGB", (side, side + 1)).save(tmp_path / "big-enough.png")
    assert "padding" not in Handlers(detector, problem).predict(str(tmp_path / "big-enough.png"))[1]


def test_a_model_whose_scores_are_not_numbers_is_a_message_naming_the_file(model_dir: Path, tmp_path: Path) -> None:
    detector, problem = load_detector(str(model_dir))
    with torch.no_grad():
        detector.model.classifier.weight.fill_(float("nan"))
    with pytest.raises(gr.Error, match="fake_gan.png: the model's scores are not all numbers"):
        Handlers(detector, problem).predict(str(ASSETS / "fake_gan.png"))
    with pytest.raises(gr.Error, match="fake_gan.png: the model's scores are not all numbers"):
        Handlers(detector, problem).robustness(str(ASSETS / "fake_gan.png"), 50, 0)


def test_previews_have_a_small_pool_of_their_own_wait_their_turn_and_old_uploads_are_cleaned(
    model_dir: Path
) -> None:
    demo = build_demo(model_dir)
    predict, = [fn for fn in demo.fns.values() if fn.name == "predict"]
    previews = [fn for fn in demo.fns.values() if fn.name == "robustness"]
    assert len(previews) == 2  # the preview chained to the prediction, the preview on the sliders
    assert (predict.concurrency_id, predict.concurrency_limit) == ("score", PREDICT_CONCURRENCY)
    # each preview re-encodes the whole upload (~1.2 GB for an 81-Mpx PNG): 8 at once could take a Space's memory
    assert {(fn.concurrency_id, fn.concurrency_limit) for fn in previews} == {("preview", PREVIEW_CONCURRENCY)}
    assert PREVIEW_CONCURRENCY <= 2
    # a new upload's preview waits for the previous one still running (was skipped); an upload cancels nothing: the
    # browser sent the cancel after the new upload's own events, and it cancelled them
    assert {fn.trigger_mode for fn in previews} == {"always_last"}
    assert not any(fn.is_cancel_function for fn in demo.fns.values())
    assert demo.delete_cache == CACHE_CLEANUP
