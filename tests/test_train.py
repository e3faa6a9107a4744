"""train.py end to end on a reduced MiniGenImage and tiny folders: outputs, exact reload, resume, two processes,
eval-only, robustness, Hub upload (fake client), argument parsing and errors."""

import json
import os
import shutil
import subprocess
import sys
from fnmatch import fnmatch
from pathlib import Path
from types import SimpleNamespace

import datasets
import numpy as np
import pytest
import torch
from huggingface_hub import ModelCard
from PIL import Image
from safetensors.torch import load_file
from sklearn.metrics import average_precision_score, roc_auc_score

import hub_push
from inference import Detector, display_name
import train
from training_args import DataArguments, parse_arguments, unread_data_arguments

REPO_ROOT = Path(__file__).resolve().parents[1]
ACCELERATE = Path(sys.executable).with_name("accelerate")


@pytest.fixture(autouse=True)
def fresh_accelerate_state():
    """Each in-process run builds its own Accelerator; the state singletons must not leak between runs."""
    from accelerate.state import AcceleratorState

    yield
    AcceleratorState._reset_state(reset_partial_state=True)


@pytest.fixture(scope="session")
def minigen_cache(tmp_path_factory) -> str:
    """A reduced MiniGenImage built once per session into a private cache."""
    from datasets_scripts.minigenimage import build_minigenimage

    cache = tmp_path_factory.mktemp("minigen-cache")
    build_minigenimage(reduced=True, cache_dir=str(cache), show_progress=False)
    return str(cache)


def reduced_args(cache: str, output_dir: Path, *extra: str) -> list[str]:
    return [
        "--minigenimage_reduced", "--minigenimage_cache_dir", cache, "--output_dir", str(output_dir),
        "--per_device_eval_batch_size", "16", *extra,
    ]


class FakeHubApi:
    """Stands in for `huggingface_hub.HfApi`: records calls and the files an upload would send."""

    calls: list[tuple[str, dict]] = []
    remote: dict[str, set[str]] = {}  # the files each repository holds after the calls

    def __init__(self, *args, **kwargs):
        pass

    def create_repo(self, repo_id, **kwargs):
        self.calls.append(("create_repo", {"repo_id": repo_id, **kwargs}))
        # as the Hub's RepoUrl: a bare NAME lands under the logged-in user
        return SimpleNamespace(repo_id=repo_id if "/" in repo_id else f"someone/{repo_id}")

    def upload_folder(self, folder_path, repo_id, ignore_patterns=(), delete_patterns=(), **kwargs):
        root = Path(folder_path)
        files = sorted(
            p.relative_to(root).as_posix()
            for p in root.rglob("*")
            if p.is_file() and not any(fnmatch(p.relative_to(root).as_posix(), pat) for pat in ignore_patterns)
        )
        self.calls.append(("upload_folder", {"repo_id": repo_id, "files": files, **kwargs}))
        kept = {f for f in self.remote.get(repo_id, set()) if not any(fnmatch(f, pat) for pat in delete_patterns)}
        self.remote[repo_id] = kept | set(files)  # as the Hub does: deletions first, then the upload, one commit
        return f"https://huggingface.co/{repo_id}/commit/fake"


@pytest.fixture(scope="module")
def trained_run(minigen_cache, tmp_path_factory):
    """One tiny training run (6 steps, checkpoints every 2) uploaded to a fake Hub."""
    out = tmp_path_factory.mktemp("run") / "out"
    FakeHubApi.calls = []
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(hub_push, "HfApi", FakeHubApi)
        metrics = train.main(
            reduced_args(
                minigen_cache, out, "--num_train_epochs", "2", "--checkpointing_steps", "2",
                "--checkpoints_total_limit", "5", "--push_to_hub", "--hub_model_id", "someone/pinclip-test",
            )
        )
    from accelerate.state import AcceleratorState

    AcceleratorState._reset_state(reset_partial_state=True)
    return out, metrics, list(FakeHubApi.calls)


def test_end_to_end_outputs(trained_run):
    out, metrics, _ = trained_run
    for name in (
        "config.json", "model.safetensors", "preprocessor_config.json", "modeling_pinclip.py",
        "configuration_pinclip.py", "README.md", "metrics.json", "results.md", "train_log.jsonl",
        "plots/accuracy_per_generator.png", "plots/roc_curves.png",
    ):
        assert (out / name).is_file(), name
    saved = json.loads((out / "metrics.json").read_text())
    families = ["tconv", "nearest", "bilinear", "pixelshuffle", "gan", "diffusion"]
    assert list(saved["subsets"]) == families
    assert saved["subsets"] == json.loads(json.dumps(metrics["subsets"]))
    assert all(saved["subsets"][f]["n"] == 32 for f in families)
    assert saved["training"]["steps"] == 6 and saved["training"]["images_seen"] == 2 * 96
    threads = torch.get_num_threads()  # the last bits of the weights depend on it: recorded, and in the card
    assert saved["training"]["hardware"] == f"cpu ({threads} torch thread{'s' if threads > 1 else ''})"
    assert saved["training"]["torch"] == torch.__version__
    assert f"hardware = {saved['training']['hardware']}, torch = {torch.__version__}" in (out / "README.md").read_text()
    assert set(saved["validation"]["subsets"]) == {"tconv", "vqae"}
    assert [c.name for c in train.list_checkpoints(out)] == ["checkpoint-2", "checkpoint-4", "checkpoint-6"]
    config = json.loads((out / "config.json").read_text())
    assert config["lora_r"] == 0 and config["noise_mode"] == "pin" and "AutoModel" in config["auto_map"]
    log = [json.loads(line) for line in (out / "train_log.jsonl").read_text().splitlines()]
    assert log[-1]["step"] == 6 and log[-1]["noise_sigma_mean"] > 0 and log[-1]["noise_mu_norm"] > 0  # collapse watch


def test_reloaded_model_reproduces_reported_metrics(trained_run, minigen_cache):
    """Reload with the Auto classes (remote code) and recompute every test metric independently."""
    from transformers import AutoImageProcessor, AutoModelForImageClassification

    from datasets_scripts.minigenimage import build_minigenimage

    out, _, _ = trained_run
    model = AutoModelForImageClassification.from_pretrained(out, trust_remote_code=True).eval()
    processor = AutoImageProcessor.from_pretrained(out, backend="pil")
    data = build_minigenimage(reduced=True, cache_dir=minigen_cache, show_progress=False)
    reported = json.loads((out / "metrics.json").read_text())["subsets"]
    for family, numbers in reported.items():
        split = data[f"test_{family}"]
        labels = np.array(split["label"])
        with torch.no_grad():
            pixels = processor(images=[img.convert("RGB") for img in split["image"]], return_tensors="pt")["pixel_values"]
            scores = model(pixel_values=pixels).logits.softmax(-1)[:, 1].numpy()
        predictions = (scores >= 0.5).astype(int)
        assert numbers["acc"] == pytest.approx(float((predictions == labels).mean()), abs=1e-12)
        assert numbers["r_acc"] == pytest.approx(float((predictions[labels == 0] == 0).mean()), abs=1e-12)
        assert numbers["ap"] == pytest.approx(average_precision_score(labels, scores), abs=1e-6)
        assert numbers["auc"] == pytest.approx(roc_auc_score(labels, scores), abs=1e-6)


def test_a_second_upload_leaves_no_file_of_the_first_that_it_lacks(tmp_path, monkeypatch):
    """A run with --robustness, then one without, pushed to one repository: the Hub kept the first grid beside the
    second model (train.py removes it locally for that very reason)."""
    monkeypatch.setattr(hub_push, "HfApi", FakeHubApi)
    FakeHubApi.remote = {}
    folder = tmp_path / "run"
    (folder / "plots").mkdir(parents=True)
    for name in ("model-00001-of-00002.safetensors", "model.safetensors.index.json", "robustness.json",
                 "robustness.md", "plots/robustness.png", "plots/roc_curves.png", "config.json", "notes.txt",
                 "README.md", "metrics.json", "results.md"):
        (folder / name).write_text("first")
    hub_push.push_folder(folder, "someone/detector")
    # the second is a bare save_pretrained folder: the first's card, metrics and results stayed beside its weights
    for name in ("model-00001-of-00002.safetensors", "model.safetensors.index.json", "robustness.json",
                 "robustness.md", "plots/robustness.png", "notes.txt", "README.md", "metrics.json", "results.md"):
        (folder / name).unlink()
    (folder / "model.safetensors").write_text("second")
    hub_push.push_folder(folder, "someone/detector")
    # what the second run wrote, plus a file no run writes (a user's own upload stays)
    assert FakeHubApi.remote["someone/detector"] == {"model.safetensors", "plots/roc_curves.png", "config.json", "notes.txt"}


def test_push_to_hub_uploads_one_folder_with_card(trained_run):
    out, metrics, calls = trained_run
    assert [name for name, _ in calls] == ["create_repo", "upload_folder"]
    assert calls[0][1]["repo_id"] == "someone/pinclip-test"
    files = calls[1][1]["files"]
    for name in ("config.json", "model.safetensors", "preprocessor_config.json", "modeling_pinclip.py",
                 "configuration_pinclip.py", "README.md", "metrics.json", "plots/roc_curves.png"):
        assert name in files
    assert not any(f.startswith(("checkpoints/", "random-clip/")) for f in files)
    card = ModelCard.load(out / "README.md")
    assert card.data.pipeline_tag == "image-classification"
    results = {(r.dataset_split, r.metric_name): r.metric_value for r in card.data.eval_results}
    assert results[("mean", "Acc (mean)")] == round(metrics["mean"]["acc"], 4)
    assert results[("tconv", "AP (tconv)")] == round(metrics["subsets"]["tconv"]["ap"], 4)
    assert "someone/pinclip-test" in card.text
    # neither the backbone (a local folder) nor the data (built locally) is on the Hub: named in the text only
    assert card.data.datasets is None and card.data.base_model is None
    from datasets_scripts.minigenimage import VERSION

    assert f"- data: MiniGenImage, split `train`\n- MiniGenImage version: {VERSION}\n" in card.text
    training = json.loads((out / "metrics.json").read_text())["training"]
    assert (training["data"], training["minigenimage_version"]) == ("MiniGenImage", VERSION)
    assert "- backbone: `random-clip` (a local folder) (fully fine-tuned)" in card.text
    assert "s = 0.25, scale `absolute`)" in card.text
    assert str(out / "random-clip") not in card.text
    assert str(out.parent) not in card.text and "--output_dir out " in card.text  # the command, without local paths


def test_card_lists_only_hub_datasets(tmp_path):
    """The card's `datasets` links Hub dataset pages: a Hub id goes there, MiniGenImage and folders on disk do not."""
    local = tmp_path / "genimage-converted"
    local.mkdir()
    cases = [(DataArguments(), None, "MiniGenImage"),
             (DataArguments(dataset_name="org/genimage-sdv14"), "org/genimage-sdv14", "org/genimage-sdv14"),
             (DataArguments(dataset_name=str(local)), None, "genimage-converted"),
             (DataArguments(train_dir=str(local)), None, "genimage-converted")]
    for data_args, hub_id, name in cases:
        assert (train.hub_training_dataset(data_args), train.training_data(data_args)) == (hub_id, name), data_args


@pytest.mark.parametrize("workers", ["0", "2"])
def test_resume_from_checkpoint_is_exact(trained_run, minigen_cache, tmp_path, workers):
    """A run that stopped after step 4 (mid-epoch, a half-written save beside it) and resumes with `latest`
    ends with exactly the weights and metrics of the uninterrupted run, also with DataLoader workers that run
    did not have (a resume on another machine)."""
    full, _, _ = trained_run
    resumed = tmp_path / "resumed"
    (resumed / "checkpoints").mkdir(parents=True)
    shutil.copytree(full / "checkpoints" / "checkpoint-4", resumed / "checkpoints" / "checkpoint-4")
    shutil.copytree(full / "random-clip", resumed / "random-clip")
    (resumed / "checkpoints" / "checkpoint-6.tmp").mkdir()  # a save killed half-way: must be ignored
    shutil.copy(full / "train_log.jsonl", resumed)  # the killed run had logged step 6 before dying...
    with (resumed / "train_log.jsonl").open("a") as log:
        log.write('{"step": 7, "epoch": 2, "lr"')  # ...and was cut short while writing a record
    metrics = train.main(
        reduced_args(minigen_cache, resumed, "--num_train_epochs", "2", "--checkpointing_steps", "2",
                     "--resume_from_checkpoint", "latest", "--dataloader_num_workers", workers)
    )
    expected, got = load_file(full / "model.safetensors"), load_file(resumed / "model.safetensors")
    assert expected.keys() == got.keys()
    for name in expected:
        assert torch.equal(expected[name], got[name]), name
    reported = json.loads((full / "metrics.json").read_text())
    assert metrics["subsets"] == reported["subsets"]
    assert json.loads((resumed / "metrics.json").read_text())["training"] == reported["training"]
    # the killed run's record of step 6 is dropped, and the resumed run's record of step 6 averages steps 1-6 as the
    # uninterrupted one did (the checkpoint carries the values logged since the last record)
    assert (resumed / "train_log.jsonl").read_text() == (full / "train_log.jsonl").read_text()


def test_resuming_an_earlier_checkpoint_replaces_the_later_ones(trained_run, minigen_cache, tmp_path):
    full, _, _ = trained_run
    resumed = shutil.copytree(full, tmp_path / "resumed")  # checkpoints 2, 4 and 6 of the finished run
    train.main(reduced_args(minigen_cache, resumed, "--num_train_epochs", "2", "--checkpointing_steps", "2",
                            "--checkpoints_total_limit", "5", "--resume_from_checkpoint",
                            str(resumed / "checkpoints" / "checkpoint-2")))
    assert [c.name for c in train.list_checkpoints(resumed)] == ["checkpoint-2", "checkpoint-4", "checkpoint-6"]
    expected, got = load_file(full / "model.safetensors"), load_file(resumed / "model.safetensors")
    assert all(torch.equal(expected[name], got[name]) for name in expected)


def test_resuming_the_last_checkpoint_trains_no_further(trained_run, minigen_cache, tmp_path):
    full, _, _ = trained_run
    resumed = tmp_path / "resumed"
    shutil.copytree(full / "checkpoints" / "checkpoint-6", resumed / "checkpoints" / "checkpoint-6")
    shutil.copytree(full / "random-clip", resumed / "random-clip")
    # 6 steps, 3 per epoch: the last checkpoint is also the end of training (the run's own settings: a resume with
    # others is refused; not publishing again is a change a resume may make)
    train.main(reduced_args(minigen_cache, resumed, "--num_train_epochs", "2", "--checkpointing_steps", "2",
                            "--resume_from_checkpoint", "latest"))
    expected, got = load_file(full / "model.safetensors"), load_file(resumed / "model.safetensors")
    assert all(torch.equal(expected[name], got[name]) for name in expected)
    training = json.loads((resumed / "metrics.json").read_text())["training"]
    assert training["steps"] == 6 and training["images_seen"] == 2 * 96


def test_a_checkpoint_from_another_folder_never_replaces_that_folders_run_and_keeps_its_own_log(
    trained_run, minigen_cache, tmp_path
):
    """Resuming run A's checkpoint into a folder holding run B's checkpoints deleted B's later ones ("a later
    checkpoint of the run resumed") and logged A's steps after B's; into a new folder the log lost A's first records."""
    full, _, _ = trained_run
    checkpoint = full / "checkpoints" / "checkpoint-4"
    other = shutil.copytree(full, tmp_path / "other")  # stands for another run's folder
    with pytest.raises(ValueError, match="is not one of .*other/checkpoints, which holds another run's checkpoints"):
        train.main(reduced_args(minigen_cache, other, "--num_train_epochs", "2", "--checkpointing_steps", "2",
                                "--resume_from_checkpoint", str(checkpoint)))
    assert [c.name for c in train.list_checkpoints(other)] == ["checkpoint-2", "checkpoint-4", "checkpoint-6"]
    moved = tmp_path / "moved"  # from its last checkpoint: the log records up to it are all of the run's log
    train.main(reduced_args(minigen_cache, moved, "--num_train_epochs", "2", "--checkpointing_steps", "2",
                            "--resume_from_checkpoint", str(full / "checkpoints" / "checkpoint-6")))
    assert (moved / "train_log.jsonl").read_text() == (full / "train_log.jsonl").read_text()
    expected, got = load_file(full / "model.safetensors"), load_file(moved / "model.safetensors")
    assert all(torch.equal(expected[name], got[name]) for name in expected)


def test_a_run_resumed_from_its_own_checkpoint_by_its_real_path_keeps_its_log(trained_run, minigen_cache, tmp_path):
    """checkpoints/ a link to a scratch disk, the checkpoint named by its real path: the log's records up to it were
    read from the scratch disk's parent (none there) and dropped."""
    full, _, _ = trained_run
    run, scratch = tmp_path / "run", tmp_path / "scratch"
    run.mkdir()
    shutil.copytree(full / "checkpoints", scratch)
    (run / "checkpoints").symlink_to(scratch, target_is_directory=True)
    shutil.copy(full / "train_log.jsonl", run)
    train.main(reduced_args(minigen_cache, run, "--num_train_epochs", "2", "--checkpointing_steps", "2",
                            "--checkpoints_total_limit", "5", "--resume_from_checkpoint", str(scratch / "checkpoint-6")))
    assert (run / "train_log.jsonl").read_text() == (full / "train_log.jsonl").read_text()


def test_a_fresh_run_does_not_overwrite_an_earlier_runs_checkpoints(trained_run, minigen_cache, monkeypatch):
    full, _, _ = trained_run
    with pytest.raises(ValueError, match="earlier run's checkpoints: continue it with --resume_from_checkpoint latest"):
        train.main(reduced_args(minigen_cache, full, "--num_train_epochs", "2", "--checkpointing_steps", "2"))
    # refused before the Hub is asked: the repository was created first and left empty
    monkeypatch.setattr(hub_push, "HfApi", FakeHubApi)
    FakeHubApi.calls = []
    with pytest.raises(ValueError, match="earlier run's checkpoints"):
        train.main(reduced_args(minigen_cache, full, "--push_to_hub", "--hub_model_id", "someone/new-detector"))
    assert FakeHubApi.calls == []
    assert [c.name for c in train.list_checkpoints(full)] == ["checkpoint-2", "checkpoint-4", "checkpoint-6"]


def test_two_processes_match_one(minigen_cache, tmp_path):
    """`accelerate launch` with two CPU processes (gloo) sees the same images and reports the same metrics, with
    sampled test noise too (each process restarted the same noise stream for its own shard: another mean AP)."""
    common = ["--noise_mode", "none", "--num_train_epochs", "1", "--inference_noise", "sample"]
    one = tmp_path / "one"
    two = tmp_path / "two"
    env = {**os.environ, "ACCELERATE_USE_CPU": "true", "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1"}
    launch = [str(ACCELERATE), "launch", "--multi_gpu", "--num_processes", "2", "--num_machines", "1",
              "--mixed_precision", "no", "--dynamo_backend", "no", "--main_process_port", "29533"]
    result = subprocess.run(
        launch + ["train.py", *reduced_args(minigen_cache, two, "--per_device_train_batch_size", "16", *common)],
        cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=240,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "32 x 1 process" not in result.stdout and "16 x 2 process(es)" in result.stdout
    train.main(reduced_args(minigen_cache, one, "--per_device_train_batch_size", "32", *common))
    a, b = (json.loads((d / "metrics.json").read_text()) for d in (one, two))
    assert a["training"]["images_seen"] == b["training"]["images_seen"] == 96
    assert a["training"]["steps"] == b["training"]["steps"] == 3
    for family, numbers in a["subsets"].items():
        assert b["subsets"][family]["n"] == numbers["n"] == 32
        for key in ("acc", "r_acc", "f_acc", "ap", "auc"):
            assert b["subsets"][family][key] == pytest.approx(numbers[key], abs=1e-6), (family, key)


def test_two_processes_count_each_training_image_once(minigen_cache, tmp_path):
    """22 images in global batches of 8: accelerate pads the last batch with 2 repeats, which images_seen counted."""
    env = {**os.environ, "ACCELERATE_USE_CPU": "true", "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1"}
    launch = [str(ACCELERATE), "launch", "--multi_gpu", "--num_processes", "2", "--num_machines", "1",
              "--mixed_precision", "no", "--dynamo_backend", "no", "--main_process_port", "29534"]
    quick = ("--max_train_samples", "22", "--per_device_train_batch_size", "4", "--max_eval_samples", "4",
             "--random_clip_shape", "tiny", "--noise_mode", "none", "--num_train_epochs", "2")
    result = subprocess.run(launch + ["train.py", *reduced_args(minigen_cache, tmp_path, *quick)],
                            cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=240)
    assert result.returncode == 0, result.stderr[-3000:]
    training = json.loads((tmp_path / "metrics.json").read_text())["training"]
    assert (training["steps"], training["images_seen"]) == (6, 44)
    assert (training["processes"], training["mixed_precision"], training["hardware"]) == (2, "no", "cpu (1 torch thread)")
    # the card's command repeats this run: `python train.py` would train one process on batches of 4
    # (the launch above, with its port and no dynamo, is this command: `--multi_gpu` is what starts two processes)
    assert ("ACCELERATE_USE_CPU=true accelerate launch --multi_gpu --num_processes 2 --mixed_precision no train.py "
            "--minigenimage_reduced") in (tmp_path / "README.md").read_text()


def test_the_ablation_trains_several_runs_in_one_two_process_launch(minigen_cache, tmp_path):
    """ablation.py calls train.main once per run in the same processes: train.main took the process group down at
    its end, and the second run's group then failed to connect (gloo: connection refused)."""
    env = {**os.environ, "ACCELERATE_USE_CPU": "true", "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1"}
    launch = [str(ACCELERATE), "launch", "--multi_gpu", "--num_processes", "2", "--num_machines", "1",
              "--mixed_precision", "no", "--dynamo_backend", "no", "--main_process_port", "29535"]
    quick = ("--max_train_samples", "16", "--per_device_train_batch_size", "4", "--max_eval_samples", "4",
             "--random_clip_shape", "tiny", "--num_train_epochs", "1")
    ablation_args = ["--ablation_seeds", "1", "--modes", "pin", "none"]
    result = subprocess.run(launch + ["ablation.py", *ablation_args, *reduced_args(minigen_cache, tmp_path, *quick)],
                            cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=240)
    assert result.returncode == 0, result.stderr[-3000:]
    summary = json.loads((tmp_path / "ablation.json").read_text())
    assert summary["launch"] == {"processes": 2, "mixed_precision": "no"} and list(summary["accuracy"]) == ["pin", "none"]
    assert result.stdout.count("| **test mean** |") == 1  # the table, printed by the main process only


# ------------------------------------------------------------------------------------- folders, eval-only
@pytest.fixture
def image_folder(tmp_path) -> Path:
    """`eval/<gen>/{0_real,1_fake}`: 6 images per class and generator, 40–72 px (smaller ones get padded)."""
    rng = np.random.default_rng(0)
    root = tmp_path / "eval"
    for generator in ("alpha", "beta"):
        for label in ("0_real", "1_fake"):
            folder = root / generator / label
            folder.mkdir(parents=True)
            for i in range(6):
                side = int(rng.choice([40, 64, 72]))
                pixels = rng.integers(0, 256, (side, side, 3), dtype=np.uint8)
                Image.fromarray(pixels).save(folder / f"{i}.png")
    return root


def test_eval_only_on_a_folder(tiny_model_dir, image_folder, tmp_path):
    out = tmp_path / "eval-out"
    metrics = train.main(
        ["--eval_only", "--model_name_or_path", str(tiny_model_dir), "--eval_dir", str(image_folder),
         "--output_dir", str(out)]
    )
    saved = json.loads((out / "metrics.json").read_text())
    assert set(saved["subsets"]) == {"alpha", "beta"}
    assert saved["mean"]["n"] == 24 and all(m["n"] == 12 for m in saved["subsets"].values())
    assert set(saved["subsets"]["alpha"]) >= {"acc", "r_acc", "f_acc", "ap", "auc", "n"}
    assert saved["mean"]["acc"] == pytest.approx(np.mean([m["acc"] for m in metrics["subsets"].values()]))
    assert (out / "results.md").read_text().count("\n| ") >= 3
    assert saved["minigenimage_version"] is None  # a folder


def test_eval_only_on_a_folder_reads_no_dataset_name(tiny_model_dir, image_folder, tmp_path, caplog):
    # was: a preset's --dataset_name (configs/genimage.yaml: data/genimage) was loaded anyway and, not being there,
    # stopped the run; MiniGenImage was built for nothing
    metrics = train.main(["--eval_only", "--model_name_or_path", str(tiny_model_dir), "--eval_dir", str(image_folder),
                          "--dataset_name", str(tmp_path / "not-here"), "--output_dir", str(tmp_path / "eval")])
    assert set(metrics["subsets"]) == {"alpha", "beta"}
    assert f"not read: --dataset_name {tmp_path / 'not-here'}" in caplog.text
    assert unread_data_arguments(DataArguments(dataset_name="d", eval_dir="e"), training=False) == ["--dataset_name d"]
    assert unread_data_arguments(DataArguments(dataset_name="d", eval_dir="e")) == []  # training data of a run
    # --train_dir alone gives an evaluation no test data: not MiniGenImage in its place, unnamed
    from detection_data import load_detection_data
    from training_args import minigenimage_version

    with pytest.raises(ValueError, match="nothing to evaluate on"):
        load_detection_data(DataArguments(train_dir=str(image_folder)), need_train=False)
    assert minigenimage_version(DataArguments(eval_dir=str(image_folder)), training=False) is None
    assert minigenimage_version(DataArguments(dataset_name="minigenimage", eval_dir="e"), training=False) is None


def test_eval_only_names_the_model_settings_it_does_not_use(tiny_model_dir, image_folder, tmp_path, caplog):
    # a config file's model settings, or --inference_noise, describe no saved model: they were ignored without a word
    train.main(["--eval_only", "--model_name_or_path", str(tiny_model_dir), "--eval_dir", str(image_folder),
                "--output_dir", str(tmp_path / "eval"), "--inference_noise", "sample", "--lora_r", "6",
                "--learning_rate", "0.5"])
    warned = [record.getMessage() for record in caplog.records if "--eval_only evaluates" in record.getMessage()]
    assert len(warned) == 1 and "ignored: --inference_noise sample, --lora_r 6 (" in warned[0]
    assert "learning_rate" not in warned[0]  # a training setting says nothing about the model evaluated
    caplog.clear()
    train.main(["--eval_only", "--model_name_or_path", str(tiny_model_dir), "--eval_dir", str(image_folder),
                "--output_dir", str(tmp_path / "eval2")])
    assert not [record for record in caplog.records if "--eval_only evaluates" in record.getMessage()]


def test_eval_only_on_minigenimage_names_its_version(tiny_model_dir, minigen_cache, tmp_path):
    from datasets_scripts.minigenimage import VERSION

    out = tmp_path / "eval-mgi"
    train.main(["--eval_only", "--model_name_or_path", str(tiny_model_dir), "--minigenimage_reduced",
                "--minigenimage_cache_dir", str(minigen_cache), "--max_eval_samples", "4", "--output_dir", str(out)])
    assert json.loads((out / "metrics.json").read_text())["minigenimage_version"] == VERSION
    # the same build written out (`minigenimage.py --output_dir`) and read as --dataset_name recorded none, which the
    # README reads as version 1.2
    from datasets_scripts.minigenimage import build_minigenimage

    export = tmp_path / "mgi-export"
    build_minigenimage(str(export), reduced=True, cache_dir=str(minigen_cache), show_progress=False)
    train.main(["--eval_only", "--model_name_or_path", str(tiny_model_dir), "--dataset_name", str(export),
                "--max_eval_samples", "4", "--output_dir", str(tmp_path / "eval-export")])
    assert json.loads((tmp_path / "eval-export" / "metrics.json").read_text())["minigenimage_version"] == VERSION


def test_eval_only_reproduces_a_runs_figures_with_sampled_inference_noise(minigen_cache, tmp_path):
    """The test noise of `--inference_noise sample` was drawn from what training left of the RNG: the training run
    reported 51.6 % where --eval_only of its saved model gave 53.1 %, every time."""
    run = tmp_path / "run"
    common = ["--max_eval_samples", "32", "--seed", "3"]
    trained = train.main(reduced_args(minigen_cache, run, "--inference_noise", "sample", "--max_steps", "2", *common))
    again = train.main(["--eval_only", "--model_name_or_path", str(run), "--minigenimage_reduced",
                        "--minigenimage_cache_dir", minigen_cache, "--output_dir", str(tmp_path / "eval"), *common])
    assert again["subsets"] == trained["subsets"]


def test_sampled_test_noise_of_an_image_does_not_depend_on_its_batch(tiny_model_dir):
    from accelerate import Accelerator

    detector = Detector.load(tiny_model_dir)
    detector.model.config.inference_noise = "sample"
    rows = [Image.fromarray(np.random.default_rng(i).integers(0, 256, (40, 40, 3), dtype=np.uint8)) for i in range(7)]
    dataset = datasets.Dataset.from_dict({"image": rows, "label": [0, 1] * 3 + [0]},
                                         features=datasets.Features({"image": datasets.Image(),
                                                                     "label": datasets.ClassLabel(names=["real", "fake"])}))
    scored = {size: train.score_dataset(detector, dataset, Accelerator(cpu=True), "image", size, seed=5)["scores"]
              for size in (1, 3, 7)}
    assert scored[1] == pytest.approx(scored[3], abs=1e-6) and scored[1] == pytest.approx(scored[7], abs=1e-6)
    other_seed = train.score_dataset(detector, dataset, Accelerator(cpu=True), "image", 3, seed=6)["scores"]
    assert other_seed != pytest.approx(scored[3], abs=1e-6)  # the noise is drawn, not left out


def test_robustness_grid(tiny_model_dir, image_folder, tmp_path):
    out = tmp_path / "robust"
    train.main(
        ["--eval_only", "--robustness", "--model_name_or_path", str(tiny_model_dir), "--eval_dir", str(image_folder),
         "--output_dir", str(out)]
    )
    grid = json.loads((out / "robustness.json").read_text())
    assert list(grid) == ["clean", "jpeg_q95", "jpeg_q90", "jpeg_q75", "jpeg_q60", "jpeg_q50",
                          "blur_s0.5", "blur_s1", "blur_s2", "blur_s3"]
    assert grid["clean"]["subsets"] == json.loads((out / "metrics.json").read_text())["subsets"]
    # the degradations reach the model: blur changes at least one score-based metric
    assert any(grid["blur_s3"]["subsets"][s]["auc"] != grid["clean"]["subsets"][s]["auc"] for s in ("alpha", "beta"))
    assert (out / "plots" / "robustness.png").is_file()
    assert (out / "robustness.md").read_text().count("| jpeg_q") == 5


def test_detection_metric_formulas_on_an_imbalanced_subset():
    """ACC counts images (it is not the mean of R.Acc and F.Acc), AP and AUC rank by the fake score (not the hard
    predictions, not the real class), and n counts every image."""
    import evaluate

    metric = evaluate.load(str(REPO_ROOT / "metrics" / "detection_metric"), keep_in_memory=True)
    result = metric.compute(predictions=[0, 0, 1, 1, 0], references=[0, 0, 0, 1, 1], scores=[0.1, 0.3, 0.7, 0.9, 0.2])
    assert result["n"] == 5
    assert result["acc"] == pytest.approx(3 / 5)
    assert result["r_acc"] == pytest.approx(2 / 3) and result["f_acc"] == pytest.approx(1 / 2)
    # by score: 0.9 fake, 0.7 real, 0.3 real, 0.2 fake, 0.1 real: precision 1 at recall 1/2, 2/4 at recall 1
    assert result["ap"] == pytest.approx(1 / 2 * 1 + 1 / 2 * 2 / 4)
    assert result["auc"] == pytest.approx(4 / 6)  # fake 0.9 outranks all three reals, fake 0.2 only 0.1


def test_detection_metric_single_class_subset():
    import evaluate

    metric = evaluate.load(str(REPO_ROOT / "metrics" / "detection_metric"), keep_in_memory=True)
    result = metric.compute(predictions=[1, 1, 0], references=[1, 1, 1], scores=[0.9, 0.8, 0.2])
    assert result["acc"] == pytest.approx(2 / 3) and result["f_acc"] == pytest.approx(2 / 3)
    assert result["r_acc"] is None and result["ap"] is None and result["auc"] is None
    assert "only fake" in result["note"]
    both = metric.compute(predictions=[0, 1, 1, 0], references=[0, 0, 1, 1], scores=[0.1, 0.6, 0.9, 0.4])
    assert both["r_acc"] == 0.5 and both["f_acc"] == 0.5 and both["auc"] == 0.75
    with pytest.raises(ValueError, match="1 of 2 scores are NaN or infinite"):
        metric.compute(predictions=[0, 1], references=[0, 1], scores=[0.1, float("nan")])
    # classes other than 0/1 counted in `acc` and in neither class (1 passing for "fake" beside them): refused
    with pytest.raises(ValueError, match=r"references must be 0 \(real\) or 1 \(fake\); found \[2\]"):
        metric.compute(predictions=[1, 1, 0, 0], references=[1, 1, 2, 2], scores=[0.1, 0.2, 0.8, 0.9])
    with pytest.raises(ValueError, match=r"predictions must be 0 \(real\) or 1 \(fake\); found \[-1\]"):
        metric.compute(predictions=[0, -1], references=[0, 1], scores=[0.1, 0.2])
    assert metric.compute(predictions=[], references=[], scores=[])["note"] == "no images: AP and AUC are undefined"


def test_accuracy_plot_leaves_undefined_values_out(tmp_path, monkeypatch):
    import matplotlib.axes

    import reporting

    drawn = []
    original_bar = matplotlib.axes.Axes.bar
    monkeypatch.setattr(matplotlib.axes.Axes, "bar", lambda ax, x, values, **kw: drawn.append(list(values))
                        or original_bar(ax, x, values, **kw))
    only_fake = {"acc": 0.7, "r_acc": None, "f_acc": 0.7}
    reporting.plot_accuracy_bars({"subsets": {"gan": only_fake}, "mean": only_fake}, tmp_path / "bars.png", "t")
    acc, r_acc, f_acc = drawn
    assert acc == pytest.approx([70.0, 70.0]) and all(np.isnan(r_acc)) and (tmp_path / "bars.png").is_file()


# ----------------------------------------------------------------------------------------------- arguments
def test_config_files_and_overrides(tmp_path):
    yaml_file = tmp_path / "run.yaml"
    yaml_file.write_text("learning_rate: 0.0001\nlora_r: 6\noptimizer: adam\nlora_target_modules: [q_proj, v_proj]\n"
                         "robustness: true\noutput_dir: from-file\n")
    model_args, data_args, args = parse_arguments([str(yaml_file)])
    assert (args.learning_rate, model_args.lora_r, args.optimizer, args.robustness) == (1e-4, 6, "adam", True)
    assert model_args.lora_target_modules == ["q_proj", "v_proj"] and args.output_dir == "from-file"
    json_file = tmp_path / "run.json"
    json_file.write_text(json.dumps({"per_device_train_batch_size": 8, "noise_mode": "random"}))
    model_args, _, args = parse_arguments(["--config", str(json_file), "--per_device_train_batch_size", "4"])
    assert args.per_device_train_batch_size == 4 and model_args.noise_mode == "random"  # command line wins


def test_a_config_file_first_is_overridden_by_the_rest_of_the_command_line():
    _, _, args = parse_arguments([str(REPO_ROOT / "configs" / "aigibench_setting2.yaml"), "--num_train_epochs", "1",
                                  "--resume_from_checkpoint", "latest"])
    assert (args.num_train_epochs, args.optimizer, args.resume_from_checkpoint) == (1, "adam", "latest")


@pytest.mark.parametrize("name", ["genimage.yaml", "aigibench_setting2.yaml"])
def test_paper_presets_parse(name):
    model_args, data_args, args = parse_arguments([str(REPO_ROOT / "configs" / name)])
    assert (model_args.lora_r, model_args.lora_alpha, args.optimizer, args.learning_rate) == (6, 6, "adam", 1e-4)
    assert model_args.model_name_or_path == "openai/clip-vit-large-patch14"
    assert args.per_device_train_batch_size * args.gradient_accumulation_steps == 32


def test_weight_decay_defaults_to_each_optimizers_own():
    assert parse_arguments([])[2].weight_decay == 0.05  # AdamW's, as before
    assert parse_arguments(["--optimizer", "adam"])[2].weight_decay == 0.0
    assert parse_arguments(["--optimizer", "adam", "--weight_decay", "0"])[2].weight_decay == 0.0
    assert parse_arguments(["--weight_decay", "0.1"])[2].weight_decay == 0.1


@pytest.mark.parametrize(
    "argv, message",
    [(["--logging_steps", "0"], "--logging_steps 0: must be at least 1"),
     (["--num_train_epochs", "0"], "--num_train_epochs 0: must be at least 1"),
     (["--max_steps", "0"], "--max_steps 0: must be at least 1"),
     (["--checkpointing_steps", "0"], "--checkpointing_steps 0: must be at least 1"),
     (["--max_train_samples", "0"], "--max_train_samples 0: must be at least 1"),  # was taken for "every row"
     (["--max_eval_samples", "-1"], "--max_eval_samples -1: must be at least 1"),
     (["--optimizer", "sgd"], "--optimizer sgd: choose one of adam, adamw"),
     # Adam gets no weight decay from make_optimizer: a value given for it was silently ignored
     (["--optimizer", "adam", "--weight_decay", "0.01"], "--weight_decay 0.01: --optimizer adam applies no weight decay"),
     (["--learning_rate", "nan"], "--learning_rate nan: must be a positive number"),
     (["--learning_rate", "4e37"], "--learning_rate 4e+37: must be at most 3.4e+37: Adam's first step is 10×"),
     (["--warmup_ratio", "1.5"], "--warmup_ratio 1.5: must be in [0, 1)"),
     (["--lr_scheduler_type", "cosinus"], "--lr_scheduler_type cosinus: not a transformers scheduler"),
     (["--noise_mode", "pinn"], "--noise_mode='pinn' is not allowed; choose one of ('pin', 'random', 'none')"),
     (["--generator_hidden_size", "255"], "--generator_hidden_size=255 must be divisible by generator_num_heads=4"),
     # transformers schedules this loop cannot drive: stepped on a metric, or needing settings it does not pass
     (["--lr_scheduler_type", "reduce_lr_on_plateau"], "needs metrics or settings this loop does not give it"),
     (["--lr_scheduler_type", "warmup_stable_decay"], "needs metrics or settings this loop does not give it"),
     # these failed after the data had loaded: a KeyError-like message, a traceback, one not naming --seed
     (["--random_clip_shape", "huge"], "--random_clip_shape huge: choose one of tiny, "),
     (["--seed", "-1"], "--seed -1: must be in [0, 2**32)"),
     (["--seed", str(2**32)], f"--seed {2**32}: must be in [0, 2**32)"),
    (["--minigenimage_seed", "-1"], "--minigenimage_seed -1: must be in [0, 2**32)")],
)
def test_out_of_range_values_fail_before_any_work(argv, message, capsys):
    with pytest.raises(SystemExit) as exit_info:
        parse_arguments(argv)
    assert exit_info.value.code == 2 and message in capsys.readouterr().err


def test_an_output_dir_that_is_a_file_fails_before_any_work(tmp_path, capsys):
    (tmp_path / "notes.txt").write_text("kept")
    with pytest.raises(SystemExit) as exit_info:
        parse_arguments(["--output_dir", str(tmp_path / "notes.txt")])
    assert exit_info.value.code == 2 and "notes.txt: a file, not a folder" in capsys.readouterr().err
    assert (tmp_path / "notes.txt").read_text() == "kept"
    with pytest.raises(SystemExit) as exit_info:  # inside a file: a traceback once the reports were written
        parse_arguments(["--output_dir", str(tmp_path / "notes.txt" / "run")])
    assert exit_info.value.code == 2 and f"{tmp_path / 'notes.txt'} is a file, not a folder" in capsys.readouterr().err


def test_a_partial_accumulation_window_takes_the_mean_gradient_of_its_batches():
    """`accelerator.backward` divides every loss by the accumulation: an epoch of 3 batches with accumulation 2 ended
    with a step of half a mean gradient."""
    model = torch.nn.Linear(3, 1, bias=False)
    batches = [torch.randn(4, 3, generator=torch.Generator().manual_seed(index)) for index in range(3)]
    accumulation = 2
    gradients = []
    for window in ([0, 1], [2]):
        model.zero_grad()
        for index in window:  # as accelerator.backward scales it, then ours
            loss = model(batches[index]).sum() / accumulation
            (loss * train.partial_window_scale(index, len(batches), accumulation)).backward()
        mean = torch.stack([torch.autograd.grad(model(batches[i]).sum(), model.weight)[0] for i in window]).mean(0)
        gradients.append((model.weight.grad.clone(), mean))
    for got, mean in gradients:
        assert torch.allclose(got, mean)
    assert [train.partial_window_scale(i, 7, 3) for i in range(7)] == [1.0] * 6 + [3.0]
    assert [train.partial_window_scale(i, 6, 3) for i in range(6)] == [1.0] * 6  # whole windows: unchanged


def test_the_command_that_repeats_a_resumed_run_leaves_the_checkpoint_out():
    # the card showed `--resume_from_checkpoint checkpoint-4` (a path cut to its last folder), which fails
    one_process = SimpleNamespace(num_processes=1, mixed_precision="no")
    for resume in (["--resume_from_checkpoint", "/runs/a/checkpoints/checkpoint-4"], ["--resume-from-checkpoint=latest"]):
        argv = ["--lora_r", "6", *resume, "--seed", "1"]
        assert train.launch_command(argv, one_process) == "python train.py --lora_r 6 --seed 1"


def test_the_repeat_command_drops_a_resume_set_by_a_config_file_and_abbreviations_are_refused(tmp_path, capsys,
                                                                                               monkeypatch):
    one_process = SimpleNamespace(num_processes=1, mixed_precision="no")
    plain, resuming = tmp_path / "plain.yaml", tmp_path / "resuming.yaml"
    plain.write_text("lora_r: 6\n")
    resuming.write_text("lora_r: 6\nresume_from_checkpoint: latest\n")
    # a config file outside the repository is written out: the card named it `plain.yaml` (its last folder only), a
    # file published with neither the model nor the repository, so the card's command failed
    assert train.launch_command([str(plain), "--seed", "1"], one_process) == "python train.py --lora_r 6 --seed 1"
    assert train.launch_command(["--config", str(plain)], one_process) == "python train.py --lora_r 6"
    # the repository's own config, named from the repository root (where the card's command runs), stays a name
    monkeypatch.chdir(train.REPO_ROOT)
    assert (train.launch_command(["configs/genimage.yaml", "--seed", "1"], one_process)
            == "python train.py configs/genimage.yaml --seed 1")
    # was `python train.py resuming.yaml --seed 1`: the repeat resumed from whatever checkpoint the folder then held
    assert train.launch_command([str(resuming), "--seed", "1"], one_process) == "python train.py --lora_r 6 --seed 1"
    # nor does it upload: anyone else's rerun trained, then failed to upload; the owner's replaced the published model
    uploading = tmp_path / "uploading.yaml"
    uploading.write_text("lora_r: 6\npush_to_hub: true\nhub_model_id: alice/pinclip\n")
    for argv in (["--push_to_hub", "--hub_model_id", "alice/pinclip", "--seed", "1"],
                 ["--push_to_hub", "true", "--hub_private_repo", "--hub_model_id=alice/pinclip", "--seed", "1"],
                 ["--seed", "1", "--push-to-hub", "--hub_private_repo", "False"]):
        assert train.launch_command(argv, one_process) == "python train.py --seed 1", argv
    assert train.launch_command([str(uploading), "--seed", "1"], one_process) == "python train.py --lora_r 6 --seed 1"
    for abbreviated in ("--resume_from", "--lora"):  # --resume_from was read as --resume_from_checkpoint, unseen
        with pytest.raises(SystemExit) as exit_:
            parse_arguments([abbreviated, "latest"])
        assert exit_.value.code == 2 and f"unknown arguments: {abbreviated} latest" in capsys.readouterr().err


def test_a_folder_given_as_dot_is_named_by_its_own_name(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # `--eval_dir .` titled the results "folder " and `--output_dir .` the card "# "
    assert train.dataset_title(DataArguments(eval_dir=".")) == f"folder {tmp_path.name}"


def test_data_arguments_given_but_not_read_are_named():
    # a config file's --dataset_name beside --train_dir and --eval_dir, MiniGenImage settings for a run of other data
    both = DataArguments(train_dir="a", eval_dir="b", dataset_name="user/data", minigenimage_reduced=True)
    assert unread_data_arguments(both) == ["--dataset_name user/data", "--minigenimage_reduced True"]
    assert unread_data_arguments(DataArguments(dataset_name="user/data", minigenimage_seed=3)) == ["--minigenimage_seed 3"]
    assert unread_data_arguments(DataArguments(train_dir="a", dataset_name="user/data")) == []  # its test data
    assert unread_data_arguments(DataArguments(minigenimage_reduced=True, minigenimage_seed=3)) == []


def test_a_model_folder_that_cannot_serve_the_run_fails_before_any_work(tiny_model_dir, tmp_path, capsys):
    """These failed once the data had loaded and every evaluation image had been decoded: minutes on a benchmark."""
    (tmp_path / "notes").mkdir()
    (tmp_path / "notes" / "x.txt").write_text("not a model")
    cases = [(["--model_name_or_path", str(tmp_path / "notes")], "no config.json in this folder: not a saved model"),
             (["--eval_only", "--model_name_or_path", str(tmp_path / "notes"), "--output_dir", str(tmp_path / "e")],
              "no config.json in this folder"),
             (["--model_name_or_path", str(tiny_model_dir)], "a saved PiN-CLIP detector: training starts from a CLIP")]
    for argv, message in cases:
        with pytest.raises(SystemExit) as exit_info:
            parse_arguments(argv)
        assert exit_info.value.code == 2 and message in capsys.readouterr().err


def test_evaluation_only_into_a_saved_model_folder_is_refused(tiny_model_dir, tmp_path, monkeypatch, capsys):
    """Without --output_dir it wrote into the default run's folder, replacing its reports (the card then
    contradicted metrics.json) and deleting its robustness grid."""
    monkeypatch.chdir(tmp_path)
    shutil.copytree(tiny_model_dir, tmp_path / "outputs" / "pinclip-minigenimage")  # the default run, trained here
    for output_dir in ([], ["--output_dir", str(tiny_model_dir)]):
        with pytest.raises(SystemExit) as exit_info:
            parse_arguments(["--eval_only", "--model_name_or_path", str(tiny_model_dir), *output_dir])
        assert exit_info.value.code == 2 and "holds a saved model" in capsys.readouterr().err
    parse_arguments(["--eval_only", "--model_name_or_path", str(tiny_model_dir), "--output_dir", "eval"])


def test_resume_needs_a_checkpoint_folder(tmp_path, capsys):
    (tmp_path / "checkpoint-4.tmp").mkdir()
    with pytest.raises(SystemExit):
        parse_arguments(["--resume_from_checkpoint", str(tmp_path / "checkpoint-4.tmp")])
    assert "not a checkpoint folder" in capsys.readouterr().err


def test_max_steps_overrides_epochs_even_when_epochs_are_zero():
    assert parse_arguments(["--max_steps", "5", "--num_train_epochs", "0"])[2].max_steps == 5


def test_unknown_arguments_and_missing_paths_fail_clearly(tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_info:
        parse_arguments(["--learning_rate", "1e-4", "--lerning_rate", "3"])
    assert exit_info.value.code == 2 and "unknown arguments: --lerning_rate 3" in capsys.readouterr().err
    bad_file = tmp_path / "bad.yaml"
    bad_file.write_text("not_an_option: 1\n")
    with pytest.raises(SystemExit):
        parse_arguments([str(bad_file)])
    assert "--not_an_option" in capsys.readouterr().err
    missing = tmp_path / "nowhere"
    with pytest.raises(SystemExit):
        parse_arguments(["--eval_dir", str(missing), "--train_dir", str(missing / "train")])
    err = capsys.readouterr().err
    assert f"--eval_dir {missing}: no such directory" in err and "--train_dir" in err


def test_command_line_error_exit_status(tmp_path):
    result = subprocess.run(
        [sys.executable, "train.py", "--eval_only", "--eval_dir", str(tmp_path / "missing")],
        cwd=REPO_ROOT, capture_output=True, text=True, timeout=120, env={**os.environ, "HF_HUB_OFFLINE": "1"},
    )
    assert result.returncode == 2
    assert "no such directory" in result.stderr and "--eval_only needs --model_name_or_path" in result.stderr


def test_data_that_cannot_work_exits_with_a_message_not_a_traceback(tmp_path):
    """Found after parsing (here: a dataset folder that does not exist, so a Hub id, offline): status 2 too."""
    result = subprocess.run(
        [sys.executable, "train.py", "--dataset_name", str(tmp_path / "not-converted-yet"), "--output_dir",
         str(tmp_path / "out")],
        cwd=REPO_ROOT, capture_output=True, text=True, timeout=120, env={**os.environ, "HF_HUB_OFFLINE": "1"},
    )
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert f"train.py: error: --dataset_name {tmp_path / 'not-converted-yet'}: no such folder" in result.stderr



def test_the_random_backbone_follows_shape_and_seed_in_a_reused_folder(tmp_path):
    from accelerate import Accelerator
    from transformers import CLIPConfig

    from training_args import ModelArguments, TrainingArguments

    def backbone(shape: str, seed: int) -> tuple[int, torch.Tensor]:
        folder = train.backbone_path(ModelArguments(random_clip_shape=shape),
                                     TrainingArguments(output_dir=str(tmp_path), seed=seed), Accelerator(cpu=True))
        weights = load_file(Path(folder) / "model.safetensors")["visual_projection.weight"]
        return CLIPConfig.from_pretrained(folder).vision_config.image_size, weights

    size, first = backbone("tiny", 0)
    assert size == 32 and torch.equal(backbone("tiny", 0)[1], first)  # a resume reuses it
    assert backbone("tiny-64", 0)[0] == 64
    assert not torch.equal(backbone("tiny", 1)[1], first)


def test_reports_name_a_local_dataset_folder_not_its_path(tmp_path):
    assert display_name(str(tmp_path)) == tmp_path.name
    assert display_name("HorizonTEL/AIGIBench") == "HorizonTEL/AIGIBench"


def test_the_log_holds_each_steps_rate_and_the_kl_term(minigen_cache, tmp_path):
    out = tmp_path / "kl"
    train.main(reduced_args(minigen_cache, out, "--max_steps", "1", "--kl_weight", "0.1", "--max_eval_samples", "4"))
    (record,) = [json.loads(line) for line in (out / "train_log.jsonl").read_text().splitlines()]
    assert record["lr"] == pytest.approx(1e-3)  # the rate step 1 used, not the next one (0 at the cosine's end)
    assert record["kl_loss"] > 0


# ---------------------------------------------------------------------------------------- arguments
@pytest.mark.parametrize(
    "argv, message",
    [(["--push_to_hub"], "--push_to_hub needs --hub_model_id"),
     # was: the real/fake label took the name `label` and became the generator: subsets '0' and '1'
     (["--label_column", "is_fake", "--generator_column", "label"],
      "--generator_column label names the column that --label_column is_fake replaces"),
     (["--seed", "1", "--config"], "--config needs a file name"),
     (["--config", "--seed", "1"], "--config needs a file name")],
)
def test_argument_combinations_that_cannot_work_fail_before_any_work(argv, message, capsys):
    with pytest.raises(SystemExit) as exit_info:
        parse_arguments(argv)
    assert exit_info.value.code == 2 and message in capsys.readouterr().err


def test_config_file_forms_and_mistakes(tmp_path, capsys):
    config = tmp_path / "run.yaml"
    config.write_text("seed: 3\n")
    assert parse_arguments([f"--config={config}"])[2].seed == 3
    for argv, message in (([str(config), "--config", str(config)], "one config file per run, got 2"),
                          ([str(tmp_path / "broken.yaml")], f"config file {tmp_path / 'broken.yaml'}: not valid YAML"),
                          ([str(tmp_path / "empty.yaml")], "--train_generators is an empty list: leave it out")):
        (tmp_path / "broken.yaml").write_text("seed: [1\n")
        (tmp_path / "empty.yaml").write_text("train_generators: []\n")
        with pytest.raises(SystemExit) as exit_info:
            parse_arguments(argv)
        assert exit_info.value.code == 2 and message in capsys.readouterr().err


def test_an_accumulation_set_by_accelerate_that_differs_from_the_argument_is_refused(tmp_path, monkeypatch):
    """`accelerate launch --gradient_accumulation_steps` sets it in the environment, and Accelerator prefers it: the
    run would take fewer optimizer steps than it sized its schedule and reports for."""
    monkeypatch.setenv("ACCELERATE_GRADIENT_ACCUMULATION_STEPS", "4")
    with pytest.raises(ValueError, match=r"accumulates gradients over 4 steps .* --gradient_accumulation_steps is 1"):
        train.main(["--output_dir", str(tmp_path / "run"), "--max_steps", "2"])
    assert not (tmp_path / "run").exists()


def test_null_values_in_a_config_file_keep_the_default(tmp_path):
    config = tmp_path / "run.yaml"
    config.write_text("max_steps: null\nhub_model_id: ~\nseed: 3\n")
    _, _, args = parse_arguments([str(config)])
    assert (args.max_steps, args.hub_model_id, args.seed) == (None, None, 3)


# ------------------------------------------------------------------------------- checkpoints, eval-only
def test_the_latest_checkpoint_is_the_highest_step_not_the_last_name(tmp_path):
    for name in ("checkpoint-2", "checkpoint-10", "checkpoint-9", "checkpoint-12.tmp"):
        (tmp_path / "checkpoints" / name).mkdir(parents=True)
    assert [c.name for c in train.list_checkpoints(tmp_path)] == ["checkpoint-2", "checkpoint-9", "checkpoint-10"]
    assert train.resolve_checkpoint("latest", tmp_path).name == "checkpoint-10"
    assert train.resolve_checkpoint("latest", tmp_path / "no-run-yet") is None


def test_only_the_newest_checkpoints_are_kept(tmp_path):
    from accelerate import Accelerator

    accelerator = Accelerator(cpu=True)
    for step in (2, 4, 8, 10):  # 8 and 10: the newest by step, though "10" < "8" as text
        train.save_checkpoint(accelerator, tmp_path, step, keep=2, progress={"images_seen": step}, settings={})
    assert [c.name for c in train.list_checkpoints(tmp_path)] == ["checkpoint-8", "checkpoint-10"]
    assert json.loads((tmp_path / "checkpoints" / "checkpoint-10" / train.PROGRESS_FILE).read_text()) == {"images_seen": 10}
    train.save_checkpoint(accelerator, tmp_path, 12, keep=0, progress={"images_seen": 12}, settings={})  # 0: keep all
    assert [c.name for c in train.list_checkpoints(tmp_path)] == ["checkpoint-8", "checkpoint-10", "checkpoint-12"]


def test_a_checkpoint_resumes_only_with_the_settings_it_was_saved_with(minigen_cache, tmp_path):
    """A rerun with another learning rate resumed the old run's last checkpoint, trained nothing, and reported the
    old weights under the new settings (ablation.py passes --resume_from_checkpoint through)."""
    out = tmp_path / "run"
    quick = ("--max_steps", "2", "--max_train_samples", "8", "--per_device_train_batch_size", "4",
             "--max_eval_samples", "4", "--random_clip_shape", "tiny", "--checkpointing_steps", "2")
    train.main(reduced_args(minigen_cache, out, *quick))
    weights = (out / "model.safetensors").read_bytes()
    with pytest.raises(ValueError, match=r"saved by a run with other settings \(learning_rate 0.001 → 1e-06\)"):
        train.main(reduced_args(minigen_cache, out, *quick, "--resume_from_checkpoint", "latest", "--learning_rate", "1e-6"))
    assert (out / "model.safetensors").read_bytes() == weights
    # nor on another number of processes (it skipped the rest of an epoch and froze the schedule)
    saved = out / "checkpoints" / "checkpoint-2" / train.SETTINGS_FILE
    recorded = json.loads(saved.read_text())
    saved.write_text(json.dumps({**recorded, "processes": 2}))
    with pytest.raises(ValueError, match=r"other settings \(processes 2 → 1\)"):
        train.main(reduced_args(minigen_cache, out, *quick, "--resume_from_checkpoint", "latest"))
    saved.write_text(json.dumps(recorded))
    # and the other way round the cause is named too (was: "lacks random_states_1.pkl", the file a 2nd process reads)
    with pytest.raises(ValueError, match=r"other settings \(processes 1 → 2\)"):
        train.check_same_run(out / "checkpoints" / "checkpoint-2", {**recorded, "processes": 2})
    # a checkpoint written while the cache folder was still a setting resumes with the same command
    saved.write_text(json.dumps({**recorded, "minigenimage_cache_dir": minigen_cache}))
    train.check_same_run(out / "checkpoints" / "checkpoint-2", recorded)
    saved.write_text(json.dumps(recorded))
    # nor without one of its files: a missing random state made the resume inexact, a missing progress.json halved
    # images_seen, a missing run_settings.json let other settings through and recorded them as the run's
    checkpoint = out / "checkpoints" / "checkpoint-2"
    for name in ("run_settings.json", "progress.json", "random_states_0.pkl", "model.safetensors"):
        kept = (checkpoint / name).read_bytes()
        (checkpoint / name).unlink()
        with pytest.raises(ValueError, match=f"checkpoint-2 lacks {name}: it cannot resume this run exactly"):
            train.main(reduced_args(minigen_cache, out, *quick, "--resume_from_checkpoint", "latest"))
        (checkpoint / name).write_bytes(kept)
    # what a resume may change: logging, checkpointing, evaluation batches, robustness, publishing, where the same
    # MiniGenImage build is cached (was refused, though PINCLIP_CACHE could move it unseen)
    moved = shutil.copytree(minigen_cache, tmp_path / "moved-cache")
    train.main(reduced_args(str(moved), out, *quick, "--resume_from_checkpoint", "latest", "--logging_steps", "1",
                            "--per_device_eval_batch_size", "2", "--checkpoints_total_limit", "1"))
    assert (out / "model.safetensors").read_bytes() == weights


def test_max_steps_mid_epoch_and_resuming_its_last_checkpoint_train_no_further(minigen_cache, tmp_path):
    # 12 training images in batches of 4: 3 steps an epoch, so --max_steps 2 ends mid-epoch, at a checkpoint
    first, resumed = tmp_path / "first", tmp_path / "resumed"
    quick = ("--max_steps", "2", "--max_train_samples", "12", "--per_device_train_batch_size", "4",
             "--max_eval_samples", "4", "--random_clip_shape", "tiny")
    train.main(reduced_args(minigen_cache, first, *quick, "--checkpointing_steps", "2"))
    shutil.copytree(first / "checkpoints", resumed / "checkpoints")
    shutil.copytree(first / "random-clip", resumed / "random-clip")
    train.main(reduced_args(minigen_cache, resumed, *quick, "--resume_from_checkpoint", "latest"))
    for run in (first, resumed):  # --max_steps stops mid-epoch, and a resume at the last step trains no further
        training = json.loads((run / "metrics.json").read_text())["training"]
        assert (training["steps"], training["images_seen"]) == (2, 8), run.name
    expected, got = load_file(first / "model.safetensors"), load_file(resumed / "model.safetensors")
    assert all(torch.equal(expected[name], got[name]) for name in expected)


def test_eval_only_scores_the_fake_output_of_a_detector_with_other_label_names(image_folder, tmp_path):
    """A Hub-style detector whose output 0 is "AI": metrics are those of P(fake) = output 0, not output 1."""
    from transformers import ViTConfig, ViTForImageClassification, ViTImageProcessor

    config = ViTConfig(image_size=16, patch_size=8, hidden_size=32, num_hidden_layers=1, num_attention_heads=2,
                       intermediate_size=32, id2label={0: "AI", 1: "Not AI"}, label2id={"AI": 0, "Not AI": 1})
    torch.manual_seed(0)
    model = ViTForImageClassification(config).eval()
    processor = ViTImageProcessor(size={"height": 16, "width": 16})
    folder = tmp_path / "hub-detector"
    model.save_pretrained(folder)
    processor.save_pretrained(folder)
    metrics = train.main(["--eval_only", "--model_name_or_path", str(folder), "--eval_dir", str(image_folder),
                          "--output_dir", str(tmp_path / "out")])
    for generator in ("alpha", "beta"):
        paths = sorted((image_folder / generator).rglob("*.png"))
        labels = [int(path.parent.name == "1_fake") for path in paths]
        with torch.no_grad():
            pixels = processor(images=[Image.open(p).convert("RGB") for p in paths], return_tensors="pt")["pixel_values"]
            p_fake = model(pixel_values=pixels).logits.softmax(-1)[:, 0].numpy()
        reported = metrics["subsets"][generator]
        assert reported["auc"] == pytest.approx(roc_auc_score(labels, p_fake), abs=1e-6)
        assert reported["ap"] == pytest.approx(average_precision_score(labels, p_fake), abs=1e-6)
        assert reported["acc"] == pytest.approx(np.mean((p_fake >= 0.5) == np.array(labels)))


def test_a_resumed_log_keeps_the_records_up_to_and_including_the_checkpoint_step(tmp_path):
    log = tmp_path / "train_log.jsonl"
    log.write_text('{"step": 2, "loss": 1.0}\n{"step": 4, "loss": 0.5}\n{"step": 6, "loss": 0.2}\n{"step": 8, "lo')
    assert train.log_records_until(log, 4) == [{"step": 2, "loss": 1.0}, {"step": 4, "loss": 0.5}]
    assert train.log_records_until(log, 8) == [{"step": 2, "loss": 1.0}, {"step": 4, "loss": 0.5}, {"step": 6, "loss": 0.2}]
    assert train.log_records_until(tmp_path / "missing.jsonl", 4) == []


# 12 training images in batches of 4: 3 batches an epoch; with 2 batches per optimizer step, an epoch is 2 steps
# (batches 1+2, then batch 3 alone at the end of the data).
QUICK = ("--max_train_samples", "12", "--per_device_train_batch_size", "4", "--max_eval_samples", "4",
         "--random_clip_shape", "tiny", "--warmup_ratio", "0")
ACCUMULATE = (*QUICK, "--gradient_accumulation_steps", "2", "--max_steps", "3", "--logging_steps", "1")


def log_of(run) -> list[dict]:
    return [json.loads(line) for line in (run / "train_log.jsonl").read_text().splitlines()]


def test_gradient_accumulation_counts_optimizer_steps_and_sizes_the_schedule_in_them(minigen_cache, tmp_path):
    out = tmp_path / "accumulate"
    train.main(reduced_args(minigen_cache, out, *ACCUMULATE))
    training = json.loads((out / "metrics.json").read_text())["training"]
    # 3 optimizer steps: 2 in epoch 0 (12 images), 1 in epoch 1 (8 images); a step is 2 batches of 4
    assert (training["steps"], training["images_seen"], training["batch"]) == (3, 20, 8)
    log = log_of(out)
    assert [(record["step"], record["epoch"]) for record in log] == [(1, 0), (2, 0), (3, 1)]
    # cosine over the 3 optimizer steps, no warm-up: the rate each step used
    assert [record["lr"] for record in log] == pytest.approx([1e-3, 0.75e-3, 0.25e-3])


def test_each_log_record_averages_the_steps_since_the_previous_one(minigen_cache, tmp_path):
    every, pairs = tmp_path / "every", tmp_path / "pairs"
    train.main(reduced_args(minigen_cache, every, *QUICK, "--max_steps", "3", "--logging_steps", "1"))
    train.main(reduced_args(minigen_cache, pairs, *QUICK, "--max_steps", "3", "--logging_steps", "2"))
    one, two = log_of(every), log_of(pairs)
    assert [record["step"] for record in two] == [2, 3]  # every 2 steps, and the last step
    for name in ("loss", "clean_loss", "noise_loss", "noise_sigma_mean"):
        assert two[0][name] == pytest.approx((one[0][name] + one[1][name]) / 2, rel=1e-6), name
        assert two[1][name] == pytest.approx(one[2][name], rel=1e-6), name


def test_the_loop_reads_the_logged_values_once_per_record_or_checkpoint_not_per_step(minigen_cache, tmp_path,
                                                                                      monkeypatch):
    """Reading a device tensor waits for the step that computed it, and averaging over processes is a collective:
    per step, that kept the host from queueing the next step while an accelerator ran this one."""
    from accelerate import Accelerator

    reductions = []
    reduce = Accelerator.reduce

    def counted(self, tensor, *args, **kwargs):
        reductions.append(tuple(tensor.shape))
        return reduce(self, tensor, *args, **kwargs)

    monkeypatch.setattr(Accelerator, "reduce", counted)
    out = tmp_path / "run"
    train.main(reduced_args(minigen_cache, out, *QUICK, "--max_steps", "5", "--logging_steps", "3",
                            "--checkpointing_steps", "2"))
    names = len(train.LOGGED_OUTPUTS) - 1  # no kl_loss at kl_weight 0
    # steps 1-2 at checkpoint 2, step 3 at the record of step 3, step 4 at checkpoint 4, step 5 at the last record
    assert reductions == [(2, names), (1, names), (1, names), (1, names)]
    assert [record["step"] for record in log_of(out)] == [3, 5]


def test_resuming_mid_epoch_with_gradient_accumulation_is_exact(minigen_cache, tmp_path):
    full, resumed = tmp_path / "full", tmp_path / "resumed"
    train.main(reduced_args(minigen_cache, full, *ACCUMULATE, "--checkpointing_steps", "1", "--checkpoints_total_limit", "0"))
    # checkpoint-1 is after batches 1 and 2 of epoch 0: the resumed run must skip 2 batches, not 1
    shutil.copytree(full / "checkpoints" / "checkpoint-1", resumed / "checkpoints" / "checkpoint-1")
    shutil.copytree(full / "random-clip", resumed / "random-clip")
    train.main(reduced_args(minigen_cache, resumed, *ACCUMULATE, "--resume_from_checkpoint", "latest"))
    expected, got = load_file(full / "model.safetensors"), load_file(resumed / "model.safetensors")
    assert all(torch.equal(expected[name], got[name]) for name in expected)
    assert json.loads((resumed / "metrics.json").read_text())["training"]["images_seen"] == 20


def test_a_training_run_with_robustness_reports_it_in_the_card(minigen_cache, tmp_path):
    out = tmp_path / "robust"
    train.main(reduced_args(minigen_cache, out, *QUICK, "--max_steps", "1", "--robustness"))
    assert (out / "robustness.json").is_file()
    card = (out / "README.md").read_text()
    assert "## Robustness (mean over test subsets)" in card and "jpeg_q" in card.lower()


def test_push_folder_keeps_training_state_local_and_a_private_repo_private(tmp_path: Path, monkeypatch) -> None:
    for name in ("config.json", "README.md", "train_log.jsonl", "model.safetensors.tmp", "checkpoints/checkpoint-2/x",
                 "random-clip/config.json", "plots/roc_curves.png"):
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text("x")
    FakeHubApi.calls = []
    monkeypatch.setattr(hub_push, "HfApi", FakeHubApi)
    hub_push.create_model_repo("someone/detector", private=True)
    url = hub_push.push_folder(tmp_path, "someone/detector")
    (_, created), (_, uploaded) = FakeHubApi.calls
    assert created["private"] is True and created["repo_type"] == "model" and uploaded["repo_type"] == "model"
    assert uploaded["files"] == ["README.md", "config.json", "plots/roc_curves.png"]
    assert url == "https://huggingface.co/someone/detector/commit/fake"


MODEL_FILES = ["config.json", "configuration_pinclip.py", "model.safetensors", "modeling_pinclip.py",
               "preprocessor_config.json"]


def copy_of_model_files(run: Path, folder: Path) -> Path:
    """The files of a saved model that hub_push.py checks, copied from a trained run (weights stubbed: not read)."""
    folder.mkdir()
    for name in MODEL_FILES:
        (folder / name).write_bytes(b"x" if name.endswith(".safetensors") else (run / name).read_bytes())
    return folder


def test_hub_push_refuses_a_folder_the_hub_could_not_load_before_creating_the_repository(
        trained_run, tmp_path: Path, monkeypatch, capsys) -> None:
    FakeHubApi.calls = []
    monkeypatch.setattr(hub_push, "HfApi", FakeHubApi)
    for left_out in ("preprocessor_config.json", "modeling_pinclip.py"):  # were uploaded; the Hub copy failed to load
        folder = copy_of_model_files(trained_run[0], tmp_path / left_out.replace(".", "-"))
        (folder / left_out).unlink()
        assert hub_push.main([str(folder), "--hub_model_id", "someone/detector"]) == 2
        assert f"{folder} lacks {left_out}: the uploaded model could not be loaded" in capsys.readouterr().err
    folder = copy_of_model_files(trained_run[0], tmp_path / "broken-config")
    for not_json in (b"{not json", b"\xef\xbb\xbf" + (trained_run[0] / "config.json").read_bytes()):  # BOM: refused
        (folder / "config.json").write_bytes(not_json)  # by transformers; json.loads of the bytes accepted it
        assert hub_push.main([str(folder), "--hub_model_id", "someone/detector"]) == 2
        assert "config.json is not a JSON config" in capsys.readouterr().err
    folder = copy_of_model_files(trained_run[0], tmp_path / "latin-1-card")
    card = (trained_run[0] / "README.md").read_bytes() + "Trained by Détecteurs SA\n".encode("latin-1")
    (folder / "README.md").write_bytes(card)  # was a UnicodeDecodeError traceback
    assert hub_push.main([str(folder), "--hub_model_id", "someone/detector"]) == 2
    assert f"{folder / 'README.md'} is not UTF-8 text (invalid continuation byte at byte" in capsys.readouterr().err
    assert FakeHubApi.calls == [] and (folder / "README.md").read_bytes() == card


def test_hub_push_uploads_a_folder_trained_before(trained_run, tmp_path: Path, monkeypatch, capsys) -> None:
    folder = copy_of_model_files(trained_run[0], tmp_path / "pinclip-minigenimage")
    (folder / "train_log.jsonl").write_text("x")
    card = trained_run[0] / "README.md"  # a run's card, named after its repository: name it after the folder
    (folder / "README.md").write_text(card.read_text().replace("pinclip-test", "pinclip-minigenimage")
                                      .replace("someone/pinclip-minigenimage", "pinclip-minigenimage"))
    FakeHubApi.calls = []
    monkeypatch.setattr(hub_push, "HfApi", FakeHubApi)
    assert hub_push.main([str(folder), "--hub_model_id", "someone/detector", "--private"]) == 0
    (_, created), (_, uploaded) = FakeHubApi.calls
    assert created["repo_id"] == "someone/detector" and created["private"] is True
    assert uploaded["files"] == ["README.md", *MODEL_FILES]
    pushed = ModelCard.load(folder / "README.md")  # named as a run trained with --push_to_hub names it
    assert 'model="someone/detector"' in pushed.text and "\n# detector\n" in pushed.text
    assert pushed.data.model_name == "detector" and "# pinclip-minigenimage" not in pushed.text
    # edited as text: a hand-edited card keeps its line endings and anything the Hub's parser would reject
    hand_edited = "---\r\nmodel-index:\r\n- name: mine\r\n  results: oops\r\n---\r\n# mine\r\n"
    (folder / "README.md").write_bytes(hand_edited.encode())
    FakeHubApi.calls = []
    assert hub_push.main([str(folder), "--hub_model_id", "someone/detector"]) == 0
    assert (folder / "README.md").read_bytes() == hand_edited.replace("mine", "detector").encode()
    assert "someone/detector/commit/fake" in capsys.readouterr().out

    class OfflineHubApi(FakeHubApi):
        def create_repo(self, repo_id, **kwargs):
            raise ConnectionError("offline mode is enabled")

    FakeHubApi.calls = []
    monkeypatch.setattr(hub_push, "HfApi", OfflineHubApi)
    before = (folder / "README.md").read_bytes()
    assert hub_push.main([str(folder), "--hub_model_id", "someone/typo"]) == 2
    assert "cannot create someone/typo on the Hub (offline" in capsys.readouterr().err and FakeHubApi.calls == []
    assert (folder / "README.md").read_bytes() == before  # the card named a repository that was never created
    assert hub_push.main([str(tmp_path), "--hub_model_id", "someone/detector"]) == 2  # no model in it
    assert "is not a saved model folder" in capsys.readouterr().err

    class DroppingHubApi(FakeHubApi):
        def upload_folder(self, *args, **kwargs):
            raise ConnectionError("connection reset")

    monkeypatch.setattr(hub_push, "HfApi", DroppingHubApi)
    assert hub_push.main([str(folder), "--hub_model_id", "someone/detector"]) == 1
    assert "failed (connection reset); rerun to retry" in capsys.readouterr().err


def test_hub_push_names_the_repository_as_yaml_reads_it_and_refuses_ids_before_touching_anything(
        trained_run, tmp_path: Path, monkeypatch, capsys) -> None:
    folder = copy_of_model_files(trained_run[0], tmp_path / "2024")  # a name YAML would read as a number: quoted
    card = (trained_run[0] / "README.md").read_text().replace("- name: pinclip-test", "- name: '2024'")
    (folder / "README.md").write_text(card.replace("# pinclip-test", "# 2024"))
    monkeypatch.setattr(hub_push, "HfApi", FakeHubApi)
    before = (folder / "README.md").read_bytes()
    for bad, message in (("someone/pinclip v2", "is not a Hub repository id"), ("pinclip-v2", "give USER/NAME")):
        with pytest.raises(SystemExit) as exit_:
            hub_push.main([str(folder), "--hub_model_id", bad])
        assert exit_.value.code == 2 and message in capsys.readouterr().err
        assert (folder / "README.md").read_bytes() == before  # the card was renamed before the id was refused
    for repo_id, name in (("someone/null", "null"), ("someone/2025", "2025"), ("someone/pinclip-v2", "pinclip-v2")):
        assert hub_push.main([str(folder), "--hub_model_id", repo_id]) == 0
        pushed = ModelCard.load(folder / "README.md")  # `- name: null` failed to load; `2025` read as a number
        assert pushed.data.model_name == name and f"\n# {name}\n" in pushed.text, repo_id


def test_push_to_hub_with_a_bare_name_names_the_users_repository(minigen_cache, tmp_path, monkeypatch):
    FakeHubApi.calls = []
    monkeypatch.setattr(hub_push, "HfApi", FakeHubApi)
    out = tmp_path / "run"
    train.main(reduced_args(minigen_cache, out, *QUICK, "--max_steps", "1", "--push_to_hub", "--hub_model_id",
                            "detector"))
    (_, created), (_, uploaded) = FakeHubApi.calls
    assert created["repo_id"] == "detector" and uploaded["repo_id"] == "someone/detector"
    assert 'model="someone/detector"' in (out / "README.md").read_text()  # was model="detector"
    with pytest.raises(SystemExit):
        parse_arguments(["--push_to_hub", "--hub_model_id", "someone/a b"])


def test_an_upload_that_fails_after_training_names_the_saved_run_and_the_retry(minigen_cache, tmp_path, monkeypatch,
                                                                                 capsys):
    class DroppedConnection(FakeHubApi):
        def upload_folder(self, *args, **kwargs):
            raise ConnectionError("connection reset")

    monkeypatch.setattr(hub_push, "HfApi", DroppedConnection)
    out = tmp_path / "run"
    with pytest.raises(ValueError) as error:  # was a traceback, after which the results were never printed
        train.main(reduced_args(minigen_cache, out, *QUICK, "--max_steps", "1", "--push_to_hub", "--hub_model_id",
                                "someone/detector"))
    assert f"the run is saved in {out}, but uploading it to someone/detector failed (ConnectionError: connection " \
           f"reset); retry with `python hub_push.py {out} --hub_model_id someone/detector`" == str(error.value)
    assert "mean accuracy" in capsys.readouterr().out and (out / "model.safetensors").is_file()


def test_an_evaluation_is_not_uploaded_as_if_it_were_a_trained_model(tmp_path: Path, capsys) -> None:
    argv = ["--eval_only", "--model_name_or_path", str(tmp_path), "--output_dir", str(tmp_path / "eval"),
            "--push_to_hub", "--hub_model_id", "someone/x"]
    with pytest.raises(SystemExit) as exit_:
        parse_arguments(argv)
    assert exit_.value.code == 2 and "python hub_push.py FOLDER" in capsys.readouterr().err


@pytest.mark.parametrize("max_grad_norm, clipped_steps", [("0.5", 3), ("0", 0)])
def test_gradients_are_clipped_once_per_optimizer_step_when_asked(minigen_cache, tmp_path, monkeypatch, max_grad_norm,
                                                                 clipped_steps):
    from accelerate import Accelerator

    norms = []
    clip = Accelerator.clip_grad_norm_
    monkeypatch.setattr(Accelerator, "clip_grad_norm_",
                        lambda self, parameters, max_norm, **kw: norms.append(max_norm) or clip(self, parameters, max_norm, **kw))
    train.main(reduced_args(minigen_cache, tmp_path / "run", *ACCUMULATE, "--max_grad_norm", max_grad_norm))
    assert norms == [float(max_grad_norm)] * clipped_steps


def test_a_rerun_without_robustness_drops_the_earlier_grid(tiny_model_dir, image_folder, tmp_path):
    out = tmp_path / "eval"
    common = ["--eval_only", "--model_name_or_path", str(tiny_model_dir), "--eval_dir", str(image_folder),
              "--output_dir", str(out)]
    train.main(common + ["--robustness"])
    assert (out / "robustness.json").is_file() and (out / "plots" / "robustness.png").is_file()
    train.main(common)
    assert not [path.name for path in (out / "robustness.json", out / "robustness.md", out / "plots" / "robustness.png")
                if path.exists()]
    assert (out / "metrics.json").is_file()


def test_evaluation_scores_the_saved_model_even_under_mixed_precision(tiny_model_dir, image_folder, tmp_path, monkeypatch):
    from accelerate.state import AcceleratorState

    scores = []
    score_dataset = train.score_dataset
    monkeypatch.setattr(train, "score_dataset", lambda *args, **kwargs: _record(scores, score_dataset(*args, **kwargs)))
    common = ["--eval_only", "--model_name_or_path", str(tiny_model_dir), "--eval_dir", str(image_folder)]
    train.main(common + ["--output_dir", str(tmp_path / "fp32")])
    full, scores[:] = list(scores), []
    AcceleratorState._reset_state(reset_partial_state=True)
    monkeypatch.setenv("ACCELERATE_MIXED_PRECISION", "bf16")  # what `accelerate launch --mixed_precision bf16` sets
    try:
        train.main(common + ["--output_dir", str(tmp_path / "bf16")])
    finally:
        AcceleratorState._reset_state(reset_partial_state=True)
    assert len(full) == 2 and scores == full  # bit for bit: the fp32 model users download, not an autocast one


def _record(store: list, output: dict) -> dict:
    store.append(output["scores"])
    return output


def test_a_missing_model_folder_is_refused_before_any_data_is_loaded(tmp_path, capsys):
    for argv in (["--model_name_or_path", str(tmp_path / "no_such_model")],
                 ["--eval_only", "--model_name_or_path", "./no_such_model", "--eval_dir", str(tmp_path)],
                 ["--eval_only", "--model_name_or_path", "tests/no-such-run", "--eval_dir", str(tmp_path)]):
        with pytest.raises(SystemExit) as exit_:
            parse_arguments(argv)
        assert exit_.value.code == 2 and "no such folder (and not a Hub id)" in capsys.readouterr().err
    parse_arguments(["--model_name_or_path", "openai/clip-vit-large-patch14"])  # a Hub id is fetched later


def test_push_to_hub_that_cannot_reach_the_hub_fails_before_training(minigen_cache, tmp_path, monkeypatch):
    class OfflineHubApi(FakeHubApi):
        def create_repo(self, repo_id, **kwargs):
            raise ConnectionError("offline mode is enabled")

    monkeypatch.setattr(hub_push, "HfApi", OfflineHubApi)
    monkeypatch.setattr(train, "load_detection_data", lambda *a, **k: pytest.fail("data loaded before the Hub check"))
    with pytest.raises(ValueError, match="--push_to_hub: cannot create someone/x on the Hub .*offline"):
        train.main(reduced_args(minigen_cache, tmp_path / "out", "--push_to_hub", "--hub_model_id", "someone/x"))
    from accelerate.state import AcceleratorState

    AcceleratorState._reset_state(reset_partial_state=True)


def test_a_rerun_into_the_same_folder_gives_the_weights_of_a_fresh_run(minigen_cache, tmp_path):
    # the folder keeps the first run's random-clip/: the rerun must not start from other initial weights
    quick = ("--max_steps", "1", "--max_train_samples", "8", "--per_device_train_batch_size", "4",
             "--max_eval_samples", "4", "--random_clip_shape", "tiny")
    fresh, rerun = tmp_path / "fresh", tmp_path / "rerun"
    for out in (fresh, rerun, rerun):
        train.main(reduced_args(minigen_cache, out, *quick))
    expected, got = load_file(fresh / "model.safetensors"), load_file(rerun / "model.safetensors")
    assert all(torch.equal(expected[name], got[name]) for name in expected)


def dataset_with_an_unreadable_test_image(folder: Path, row: int | None) -> Path:
    """A saved dataset of 4 training and 4 test PNGs, test row `row` cut short (None: all readable)."""
    import datasets
    from PIL import Image as PILImage

    def png(seed: int) -> bytes:
        buffer = __import__("io").BytesIO()
        PILImage.fromarray(np.random.default_rng(seed).integers(0, 256, (16, 16, 3), dtype=np.uint8)).save(buffer, "PNG")
        return buffer.getvalue()

    features = datasets.Features({"image": datasets.Image(), "label": datasets.ClassLabel(names=["real", "fake"]),
                                  "generator": datasets.Value("string")})
    good = {"image": [{"bytes": png(i), "path": None} for i in range(4)], "label": [0, 1, 0, 1], "generator": ["sd"] * 4}
    broken = good if row is None else {
        **good, "image": [*good["image"][:row], {"bytes": png(9)[:50], "path": None}, *good["image"][row + 1:]]}
    datasets.DatasetDict({"train": datasets.Dataset.from_dict(good, features=features),
                          "test": datasets.Dataset.from_dict(broken, features=features)}).save_to_disk(str(folder))
    return folder


@pytest.mark.parametrize("problem", ["unreadable image", "unreadable image, --eval_only", "hub offline"])
def test_a_problem_one_process_finds_stops_every_one_with_the_reason(tmp_path, problem, tiny_model_dir):
    """Test row 3 is in the second process's share of the image check; only the main process creates the Hub repo:
    both processes stop with the message, neither with a connection error at its next collective (`--eval_only`
    checked no image first: the main process failed in gloo while the other named the image)."""
    data = dataset_with_an_unreadable_test_image(tmp_path / "data", row=None if problem == "hub offline" else 3)
    extra, message = (["--validation_split", "train"], "test subset 'sd', row 3: image: truncated or corrupt")
    if problem == "hub offline":
        extra, message = (["--push_to_hub", "--hub_model_id", "someone/x"], "--push_to_hub: cannot create someone/x")
    elif problem.endswith("--eval_only"):
        extra = ["--eval_only", "--model_name_or_path", str(tiny_model_dir), "--per_device_eval_batch_size", "1"]
    env = {**os.environ, "ACCELERATE_USE_CPU": "true", "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1"}
    launch = [str(ACCELERATE), "launch", "--multi_gpu", "--num_processes", "2", "--num_machines", "1",
              "--mixed_precision", "no", "--dynamo_backend", "no", "--main_process_port", "29535"]
    result = subprocess.run(launch + ["train.py", "--dataset_name", str(data), "--output_dir", str(tmp_path / "out"),
                                      "--random_clip_shape", "tiny", "--max_steps", "1", *extra],
                            cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=240)
    assert result.returncode != 0
    assert result.stderr.count(f"train.py: error: {message}") == 2, result.stderr[-3000:]
    if problem == "unreadable image":  # a data warning once, not once per process
        assert result.stderr.count("no validation: split 'train' is the training data") == 1, result.stderr[-3000:]
    assert "Connection closed" not in result.stderr and not (tmp_path / "out" / "model.safetensors").exists()


def test_an_unreadable_test_image_stops_the_run_before_training(tmp_path, monkeypatch):
    dataset_with_an_unreadable_test_image(tmp_path / "data", row=2)
    monkeypatch.setattr(train, "make_optimizer", lambda *a: pytest.fail("training started"))
    with pytest.raises(ValueError, match="test subset 'sd', row 2: image: truncated or corrupt"):
        train.main(["--dataset_name", str(tmp_path / "data"), "--output_dir", str(tmp_path / "out"),
                    "--random_clip_shape", "tiny", "--max_steps", "1"])
    from accelerate.state import AcceleratorState

    AcceleratorState._reset_state(reset_partial_state=True)


def test_a_run_on_folders_names_its_training_and_evaluation_folders_in_the_card(image_folder, tmp_path):
    """The card's data line named the evaluation folder, and its model-index called the data MiniGenImage."""
    train_folder = shutil.copytree(image_folder / "alpha", tmp_path / "my-train-photos")
    out = tmp_path / "run"
    train.main(["--train_dir", str(train_folder), "--eval_dir", str(image_folder), "--output_dir", str(out),
                "--max_steps", "1", "--per_device_train_batch_size", "4", "--random_clip_shape", "tiny"])
    card = (out / "README.md").read_text()
    assert "- data: my-train-photos, split `train`" in card
    assert "type: eval" in card and "minigenimage" not in card.lower()
    assert json.loads((out / "metrics.json").read_text())["training"]["minigenimage_version"] is None


def test_a_diverging_rerun_stops_and_leaves_no_report_of_the_earlier_run(minigen_cache, tmp_path, capsys):
    """A rerun into a folder overwrote the weights and, when it then failed, left the earlier run's metrics and card
    beside them; a diverged run trained on to the end and logged NaN (not JSON)."""
    from accelerate.state import AcceleratorState

    out = tmp_path / "out"
    quick = ("--max_train_samples", "8", "--per_device_train_batch_size", "4", "--max_eval_samples", "4",
             "--random_clip_shape", "tiny", "--logging_steps", "1")
    train.main(reduced_args(minigen_cache, out, *quick, "--max_steps", "1"))
    assert {"metrics.json", "README.md", "model.safetensors", "plots"} <= {path.name for path in out.iterdir()}
    AcceleratorState._reset_state(reset_partial_state=True)
    with pytest.raises(ValueError, match=r"the training loss is (nan|inf) at step \d \(lr .*\): training diverged"):
        train.main(reduced_args(minigen_cache, out, *quick, "--max_steps", "4", "--learning_rate", "1e30",
                                "--optimizer", "adam"))
    assert "removed the earlier run's model and reports" in capsys.readouterr().out
    left = {path.name for path in out.iterdir()}
    assert not left & {"metrics.json", "README.md", "results.md", "model.safetensors", "config.json", "plots"}, left
    for line in (out / "train_log.jsonl").read_text().splitlines():
        json.loads(line, parse_constant=lambda name: pytest.fail(f"{name} in the log"))
    AcceleratorState._reset_state(reset_partial_state=True)


def test_a_folder_without_a_pinclip_model_keeps_its_files(tmp_path):
    (tmp_path / "README.md").write_text("mine")
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "vit"}))
    assert train.remove_earlier_run(tmp_path) == [] and (tmp_path / "README.md").read_text() == "mine"


def test_eval_only_decides_at_the_threshold_the_scanner_and_demo_use(image_folder, tmp_path):
    """A detector whose config carries `detection_threshold`: its accuracies were those of 0.5, not of the decisions
    predict.py and the demo make."""
    from transformers import ViTConfig, ViTForImageClassification, ViTImageProcessor

    config = ViTConfig(image_size=16, patch_size=8, hidden_size=32, num_hidden_layers=1, num_attention_heads=2,
                       intermediate_size=32, id2label={0: "real", 1: "fake"}, label2id={"real": 0, "fake": 1})
    torch.manual_seed(0)
    model = ViTForImageClassification(config).eval()
    processor = ViTImageProcessor(size={"height": 16, "width": 16})
    paths = sorted((image_folder / "alpha").rglob("*.png"))
    labels = np.array([int(path.parent.name == "1_fake") for path in paths])
    with torch.no_grad():
        pixels = processor(images=[Image.open(p).convert("RGB") for p in paths], return_tensors="pt")["pixel_values"]
        p_fake = model(pixel_values=pixels).logits.softmax(-1)[:, 1].numpy()
    at_half = np.mean((p_fake >= 0.5) == labels)
    # a threshold at one of the scores whose decisions score differently from 0.5's: the test can tell them apart
    threshold = next(float(t) for t in np.sort(p_fake) if np.mean((p_fake >= t) == labels) != at_half)
    model.config.detection_threshold = threshold
    model.save_pretrained(tmp_path / "detector")
    processor.save_pretrained(tmp_path / "detector")
    metrics = train.main(["--eval_only", "--model_name_or_path", str(tmp_path / "detector"), "--eval_dir",
                          str(image_folder), "--output_dir", str(tmp_path / "out")])
    assert metrics["subsets"]["alpha"]["acc"] == pytest.approx(np.mean((p_fake >= threshold) == labels))
    saved = json.loads((tmp_path / "out" / "metrics.json").read_text())
    assert saved["threshold"] == pytest.approx(threshold)
    assert f"decisions at its threshold {threshold:g}" in (tmp_path / "out" / "results.md").read_text()


def test_every_method_setting_of_the_config_can_be_set_from_the_command_line(tiny_clip_dir):
    """`--sigma_activation abs` (the PiNI variant of the ablation), prompt templates, the generator's size, ... were
    config fields that train.py refused as unknown arguments."""
    from configuration_pinclip import PinClipConfig
    from modeling_pinclip import PinClipForImageClassification

    model_args, _, _ = parse_arguments([
        "--sigma_activation", "abs", "--inference_noise", "mean", "--generator_hidden_size", "32",
        "--generator_num_heads", "2", "--no_detach_generator_input", "--class_words", "natural", "synthetic",
        "--prompt_templates", "A {} photo", "a {} picture", "--resize_images",
    ])
    config = PinClipForImageClassification.from_clip(str(tiny_clip_dir), **model_args.config_overrides()).config
    assert (config.sigma_activation, config.inference_noise, config.generator_hidden_size, config.generator_num_heads,
            config.detach_generator_input, config.class_words, config.prompt_templates, config.resize_images) == (
        "abs", "mean", 32, 2, False, ["natural", "synthetic"], ["A {} photo", "a {} picture"], True)
    # and each default is the config's own
    defaults = PinClipConfig()
    assert all(getattr(defaults, name) == value for name, value in parse_arguments([])[0].config_overrides().items())


def test_training_crops_come_from_images_resized_as_evaluation_resizes_them(tiny_clip_dir):
    """With `resize_images` the processor resizes at evaluation; training cropped the full-size image."""
    from detection_data import TrainImages, resize_short_side
    from modeling_pinclip import PinClipForImageClassification

    model = PinClipForImageClassification.from_clip(str(tiny_clip_dir), resize_images=True)
    size, processor = model.config.image_size, model.image_processor()
    cropping = processor.__class__(**{**processor.to_dict(), "do_resize": False})
    for width, height in ((3 * size + 5, 2 * size + 1), (size // 2, size + 3), (size, size)):
        image = Image.fromarray(np.random.default_rng(width).integers(0, 256, (height, width, 3), dtype=np.uint8))
        resized = resize_short_side(image, size)
        assert min(resized.size) == size
        expected = processor(images=image, return_tensors="pt")["pixel_values"]
        assert torch.equal(cropping(images=resized, return_tensors="pt")["pixel_values"], expected)
    import datasets

    rows = datasets.Dataset.from_dict({"image": [image.resize((4 * size, 2 * size))], "label": [1]},
                                      features=datasets.Features({"image": datasets.Image(),
                                                                  "label": datasets.ClassLabel(names=["real", "fake"])}))
    crop, _ = TrainImages(rows, "image", size, seed=0, flip=False, resize=True)[0]
    from detection_data import random_crop

    expected = random_crop(resize_short_side(rows[0]["image"], size), size, np.random.default_rng([0, 0, 0]))
    assert crop.tobytes() == expected.tobytes()
    assert crop.tobytes() != TrainImages(rows, "image", size, seed=0, flip=False)[0][0].tobytes()  # not resizing


def test_each_epoch_draws_its_own_crops_and_flips(minigen_cache, tmp_path, monkeypatch):
    """The resume test cannot see a loop that never sets the epoch: both its runs would share the fault."""
    seen = set()
    getitem = train.TrainImages.__getitem__

    def record(self, index):
        seen.add(self.epoch)
        return getitem(self, index)

    monkeypatch.setattr(train.TrainImages, "__getitem__", record)
    train.main(reduced_args(minigen_cache, tmp_path / "out", *QUICK, "--max_steps", "4"))  # 3 steps an epoch
    assert seen == {0, 1}


def test_adamw_decays_weights_but_not_biases_or_norms(tiny_clip_dir, tmp_path):
    from modeling_pinclip import PinClipForImageClassification
    from training_args import TrainingArguments

    model = PinClipForImageClassification.from_clip(str(tiny_clip_dir))
    optimizer = train.make_optimizer(model, TrainingArguments(output_dir=str(tmp_path), weight_decay=0.05))
    decay = {id(p): group["weight_decay"] for group in optimizer.param_groups for p in group["params"]}
    assert decay[id(model.classifier.weight)] == 0.05 and decay[id(model.noise_generator.q_proj.weight)] == 0.05
    assert decay[id(model.classifier.bias)] == 0.0 and decay[id(model.noise_generator.query_norm.weight)] == 0.0
    assert len(decay) == sum(p.requires_grad for p in model.parameters())


def test_warm_up_is_counted_in_optimizer_steps_under_accumulation(minigen_cache, tmp_path):
    out = tmp_path / "warm"
    train.main(reduced_args(minigen_cache, out, *ACCUMULATE, "--warmup_ratio", "0.34"))  # int(0.34 * 3) = 1 step
    assert [record["lr"] for record in log_of(out)] == pytest.approx([0.0, 1e-3, 0.5e-3])


def test_evaluation_counts_a_score_of_one_half_as_fake(monkeypatch):
    class Half:
        threshold = 0.5

    monkeypatch.setattr(train, "score_dataset", lambda *args, **kwargs: {"labels": [1, 0], "scores": [0.5, 0.25]})
    metrics, _ = train.score_subsets(Half(), {"s": None}, None, "image", 1)
    assert metrics["subsets"]["s"]["f_acc"] == 1.0 and metrics["subsets"]["s"]["acc"] == 1.0


def test_a_setting_recorded_on_one_side_only_compares_as_its_default():
    """A checkpoint or finished ablation run recorded before an argument existed is the same run when the argument
    is left at its default (ablation.py retrained finished runs after arguments were added)."""
    from training_args import changed_settings

    before = {"learning_rate": 1e-3}
    assert changed_settings(before, {"learning_rate": 1e-3, "sigma_activation": "softplus"}) == []
    assert changed_settings(before, {"learning_rate": 1e-3, "sigma_activation": "abs"}) == [
        "sigma_activation softplus → abs"]
    assert changed_settings(before, {"learning_rate": 1e-3, "processes": 2}) == []  # no default: not known before
    assert changed_settings({"processes": 1}, {"processes": 2}) == ["processes 1 → 2"]


def test_an_adam_run_recorded_with_adamws_default_decay_is_the_same_run():
    """Before the decay defaulted to 0 for Adam, its runs recorded 0.05, which Adam never applied: resuming one was
    refused (weight_decay 0.05 → 0.0), and --weight_decay 0.05 with adam is refused now."""
    from training_args import changed_settings

    old, new = {"optimizer": "adam", "weight_decay": 0.05}, {"optimizer": "adam", "weight_decay": 0.0}
    assert changed_settings(old, new) == []
    assert changed_settings({"optimizer": "adamw", "weight_decay": 0.05}, {"optimizer": "adamw", "weight_decay": 0.0}) == [
        "weight_decay 0.05 → 0.0"]
    assert changed_settings(old, {"optimizer": "adamw", "weight_decay": 0.05}) == [
        "optimizer adam → adamw", "weight_decay 0.0 → 0.05"]  # the decay Adam applied (none) against AdamW's


def test_seeds_shuffle_the_training_data_in_orders_no_other_seed_uses(tmp_path, monkeypatch):
    """Accelerate shuffles epoch e with data_seed + e: with data_seed = seed, seed 1 replayed seed 0's orders one
    epoch later, so the ablation's seeds shared 39 of their 40 epochs' data orders."""
    from accelerate.data_loader import SeedableRandomSampler

    class Stop(Exception):
        pass

    seeds = {}

    def recording_config(**kwargs):
        seeds[current] = kwargs["data_seed"]
        raise Stop

    monkeypatch.setattr(train, "DataLoaderConfiguration", recording_config)
    for current in range(4):
        with pytest.raises(Stop):
            train.main(["--seed", str(current), "--output_dir", str(tmp_path / f"seed{current}")])
    assert seeds[0] == 0  # seed 0, the default run, keeps its order

    def orders(seed: int) -> list[tuple[int, ...]]:
        sampler = SeedableRandomSampler(range(50), data_seed=seeds[seed])
        epochs = []
        for epoch in range(8):
            sampler.set_epoch(epoch)
            epochs.append(tuple(sampler))
        return epochs

    shared = set(orders(0))
    for seed in (1, 2, 3):
        assert not shared & set(orders(seed)), seed
        shared |= set(orders(seed))


def test_a_run_recorded_before_data_seed_is_the_same_run_for_seed_0_only():
    # its checkpoints resume and the ablation keeps it only if it ordered its data as this code would
    from training_args import changed_settings, run_settings

    for seed, changed in ((0, []), (1, ["data_seed 1 → 1000003"])):
        now = run_settings(parse_arguments(["--seed", str(seed)]), leave_out=())
        before = {name: value for name, value in now.items() if name != "data_seed"}  # as recorded before it existed
        assert changed_settings(before, now) == changed


def test_reals_without_a_generator_name_no_training_family():
    # sorting None beside names raised TypeError after training and evaluation, before any report was written
    import datasets

    rows = datasets.Dataset.from_dict({"label": [0, 1, 0, 1], "generator": [None, "sd14", None, "sd14"]})
    assert train.training_generators(rows, "generator") == ["sd14"]
    assert train.training_generators(rows, "source") is None  # no such column


@pytest.mark.parametrize("scheduler", ["linear", "cosine", "cosine_with_restarts", "polynomial", "constant",
                                       "constant_with_warmup", "inverse_sqrt"])
@pytest.mark.parametrize("warmup_ratio", [0.0, 0.1])
@pytest.mark.filterwarnings("ignore:Detected call of `lr_scheduler.step\\(\\)` before")  # no optimiser step here
def test_the_schedule_gives_every_process_count_the_same_learning_rates(scheduler, warmup_ratio):
    # Accelerate steps a prepared scheduler once per process per optimizer step; inverse_sqrt without warm-up kept
    # transformers' 10,000-step timescale unscaled, so two processes decayed faster than one
    args = parse_arguments(["--lr_scheduler_type", scheduler, "--warmup_ratio", str(warmup_ratio)])[2]

    def rates(processes: int) -> list[float]:
        optimizer = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=1e-3)
        schedule = train.make_scheduler(optimizer, args, max_steps=40, processes=processes)
        seen = []
        for _ in range(40):
            seen.append(schedule.get_last_lr()[0])
            for _ in range(processes):
                schedule.step()
        return seen

    assert rates(2) == pytest.approx(rates(1), rel=1e-12)
