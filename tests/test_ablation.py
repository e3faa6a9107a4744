"""ablation.py: runs every mode × seed through train.main, keeps finished runs, and summarises them."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

import ablation
from datasets_scripts.minigenimage import VERSION


@pytest.fixture
def fake_training(monkeypatch: pytest.MonkeyPatch) -> list[list[str]]:
    """train.main replaced by a stand-in that writes a metrics.json (accuracy 0.5 + seed / 10) and records its argv;
    the `none` mode fails during training (an earlier run's metrics.json removed) while `fail_none` is set."""
    calls: list[list[str]] = []

    def fake_main(argv: list[str]) -> dict:
        calls.append(argv)
        value = lambda name: argv[argv.index(name) + 1]  # noqa: E731
        if value("--noise_mode") == "none" and fake_main.fail_none:
            (Path(value("--output_dir")) / "metrics.json").unlink(missing_ok=True)  # train.py's start removed it
            raise RuntimeError("diverged")
        acc = 0.5 + int(value("--seed")) / 10
        metrics = {"subsets": {"tconv": {"acc": 0.9}, "gan": {"acc": acc}}, "mean": {"acc": (0.9 + acc) / 2},
                   "training": {"generators": ["tconv"], "processes": 1, "mixed_precision": "no"},
                   "validation": {"mean": {"acc": acc}}}
        Path(value("--output_dir")).mkdir(parents=True, exist_ok=True)
        (Path(value("--output_dir")) / "metrics.json").write_text(json.dumps(metrics))
        return metrics

    fake_main.fail_none = False
    monkeypatch.setattr(ablation.train, "main", fake_main)
    return calls


def test_finished_runs_are_kept_and_a_failed_run_is_trained_again(fake_training, tmp_path: Path) -> None:
    argv = ["--ablation_seeds", "2", "--modes", "pin", "none", "--output_dir", str(tmp_path), "--max_steps", "5"]
    ablation.train.main.fail_none = True
    with pytest.raises(RuntimeError, match="diverged"):
        ablation.main(argv)
    assert len(fake_training) == 3  # pin seeds 0 and 1, then none seed 0 failed
    ablation.train.main.fail_none = False
    summary = ablation.main(argv)
    assert [call[call.index("--output_dir") + 1] for call in fake_training[3:]] == [
        str(tmp_path / "none-seed0"), str(tmp_path / "none-seed1")]
    assert summary["pin"]["unseen"]["mean"] == pytest.approx(0.55) and summary["none"]["unseen"]["values"] == [0.5, 0.6]
    ablation.main(argv + ["--resume_from_checkpoint", "latest"])  # how to continue a crash, not what to train
    ablation.main(argv + ["--resume_from_checkpoint=latest"])
    assert len(fake_training) == 5
    ablation.main(argv + ["--learning_rate", "0.01"])  # other train.py arguments: every run is trained again
    assert len(fake_training) == 5 + 4


def test_zero_seeds_is_refused(capsys: pytest.CaptureFixture) -> None:
    with pytest.raises(SystemExit):
        ablation.main(["--ablation_seeds", "0"])
    assert "--ablation_seeds must be at least 1" in capsys.readouterr().err


def test_summary_is_mean_and_sample_std_over_seeds_and_the_table_shows_it(fake_training, tmp_path: Path) -> None:
    # per seed: gan acc 0.5 / 0.6 / 0.7 (also the validation mean), tconv 0.9, test mean (0.9 + gan) / 2
    summary = ablation.main(["--ablation_seeds", "3", "--modes", "pin", "--output_dir", str(tmp_path)])
    pin = summary["pin"]
    assert pin["subsets"]["gan"]["values"] == [0.5, 0.6, 0.7]
    assert pin["subsets"]["gan"]["mean"] == pytest.approx(0.6) and pin["subsets"]["gan"]["std"] == pytest.approx(0.1)
    assert pin["subsets"]["tconv"] == {"mean": pytest.approx(0.9), "std": pytest.approx(0.0), "values": [0.9] * 3}
    assert pin["mean"]["mean"] == pytest.approx(0.75) and pin["mean"]["std"] == pytest.approx(0.05)  # ddof=1
    assert pin["validation"]["values"] == [0.5, 0.6, 0.7]  # the validation mean, not the test mean
    assert pin["unseen"]["values"] == [0.5, 0.6, 0.7]  # gan only: tconv was trained on
    assert json.loads((tmp_path / "ablation.json").read_text())["accuracy"] == json.loads(json.dumps(summary))
    table = (tmp_path / "ablation.md").read_text()
    assert table.startswith(f"Accuracy (%), mean ± sample std (n − 1) over 3 seeds (MiniGenImage {VERSION})\n")
    for line in ("| subset | pin |", "| tconv | 90.0 ± 0.0 |", "| gan | 60.0 ± 10.0 |", "| **test mean** | 75.0 ± 5.0 |",
                 "| **unseen-family mean** | 60.0 ± 10.0 |", "| validation mean | 60.0 ± 10.0 |"):
        assert line in table.splitlines(), line


def test_one_seed_has_no_std(fake_training, tmp_path: Path) -> None:
    summary = ablation.main(["--ablation_seeds", "1", "--modes", "pin", "--output_dir", str(tmp_path)])
    assert summary["pin"]["mean"] == {"mean": pytest.approx(0.7), "std": None, "values": [pytest.approx(0.7)]}
    table = (tmp_path / "ablation.md").read_text()
    assert table.startswith(f"Accuracy (%), mean ± sample std (n − 1) over 1 seed (MiniGenImage {VERSION})\n") and "| **test mean** | 70.0 ± – |" in table


def test_no_unseen_family_mean_without_the_training_generators_of_every_run(monkeypatch, tmp_path: Path) -> None:
    """Without `training.generators` every subset would count as unseen: the row is "–", not the test mean."""
    def fake_main(argv: list[str]) -> None:
        out, seed = Path(argv[argv.index("--output_dir") + 1]), int(argv[argv.index("--seed") + 1])
        metrics = {"subsets": {"tconv": {"acc": 0.9}, "gan": {"acc": 0.5}}, "mean": {"acc": 0.7},
                   "training": {"generators": ["tconv"] if seed == 0 else None}, "validation": None}
        out.mkdir(parents=True, exist_ok=True)
        (out / "metrics.json").write_text(json.dumps(metrics))

    monkeypatch.setattr(ablation.train, "main", fake_main)
    assert ablation.unseen_mean({"subsets": {"gan": {"acc": 0.5}}, "training": {"generators": None}}) is None
    summary = ablation.main(["--ablation_seeds", "2", "--modes", "pin", "--output_dir", str(tmp_path)])
    assert summary["pin"]["unseen"] is None and summary["pin"]["validation"] is None  # seed 1 lacks it: no partial mean
    table = (tmp_path / "ablation.md").read_text()
    assert "| **unseen-family mean** | – |" in table and "| validation mean | – |" in table


def test_a_run_started_over_with_other_arguments_is_no_longer_finished(fake_training, tmp_path: Path) -> None:
    """A finished run's folder reused by a run with other arguments that crashed holds neither run: it is trained again."""
    argv = ["--ablation_seeds", "1", "--modes", "none", "--output_dir", str(tmp_path)]
    ablation.main(argv)
    ablation.train.main.fail_none = True
    with pytest.raises(RuntimeError, match="diverged"):
        ablation.main(argv + ["--learning_rate", "0.01"])
    ablation.train.main.fail_none = False
    ablation.main(argv)
    assert len(fake_training) == 3 and "--learning_rate" not in fake_training[-1]


def test_a_config_file_edited_between_two_runs_trains_again(fake_training, tmp_path: Path) -> None:
    config = tmp_path / "run.yaml"
    config.write_text("max_steps: 2\n")
    argv = [str(config), "--ablation_seeds", "1", "--modes", "none", "--output_dir", str(tmp_path / "abl")]
    ablation.main(argv)
    ablation.main(argv)
    assert len(fake_training) == 1  # unchanged: kept
    config.write_text("max_steps: 4\n")
    ablation.main(argv)
    assert len(fake_training) == 2


def test_the_same_settings_spelled_otherwise_are_the_same_run(fake_training, tmp_path: Path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    ablation.main(["--ablation_seeds", "1", "--modes", "none", "--output_dir", "abl", "--max_steps", "2"])
    ablation.main(["--ablation_seeds", "1", "--modes", "none", "--output_dir", str(tmp_path / "abl"), "--max_steps=2"])
    assert len(fake_training) == 1


def test_a_backbone_folder_written_again_is_a_new_run(fake_training, tmp_path: Path) -> None:
    import os

    backbone = tmp_path / "pretrained"
    backbone.mkdir()
    (backbone / "config.json").write_text(json.dumps({"model_type": "clip"}))
    (backbone / "model.safetensors").write_bytes(b"first")
    argv = ["--ablation_seeds", "1", "--modes", "none", "--output_dir", str(tmp_path / "abl"),
            "--model_name_or_path", str(backbone)]
    ablation.main(argv)
    ablation.main(argv)
    assert len(fake_training) == 1
    (backbone / "model.safetensors").write_bytes(b"again")
    os.utime(backbone / "model.safetensors", ns=(1, 1))
    ablation.main(argv)
    assert len(fake_training) == 2


@pytest.mark.parametrize("argv, message", [
    (["--seed", "5"], "--seed"), (["--noise_mode=pin"], "--noise_mode=pin"), (["--modes", "pin", "pin"], "twice"),
    (["--output-dir", "x"], "--output-dir"), (["--noise-mode=pin"], "--noise-mode=pin"),  # train.py's dash aliases
    # one model's scores under every mode; every run uploaded to one repository in turn
    (["--eval_only"], "--eval_only: evaluates one model"),
    (["--push_to_hub", "--hub_model_id", "me/x"], "--push_to_hub: would upload every run to one repository"),
    (["--hub-model-id=me/x"], "--hub-model-id=me/x: would upload every run"),
])
def test_arguments_the_ablation_would_override_or_double_are_refused(argv, message, capsys) -> None:
    with pytest.raises(SystemExit) as exit_:
        ablation.main(argv)
    assert exit_.value.code == 2 and message in capsys.readouterr().err


@pytest.mark.parametrize("config, message", [
    ("eval_only: true\nmodel_name_or_path: some/model\n", "--eval_only (set by the config file): evaluates one model"),
    ("push_to_hub: true\nhub_model_id: me/x\n", "--push_to_hub (set by the config file): would upload every run"),
    ("seed: 4\n", "--seed (set by the config file): the ablation sets"),
    ("noise_mode: none\n", "--noise_mode (set by the config file): the ablation sets"),
])
def test_a_config_file_cannot_set_what_the_ablation_refuses_or_sets(config, message, tmp_path, capsys) -> None:
    """Only the command line's tokens were checked: a config file's eval_only scored one model under every mode, and
    its seed or noise_mode were silently overridden."""
    (tmp_path / "run.yaml").write_text(config)
    with pytest.raises(SystemExit) as exit_:
        ablation.main([str(tmp_path / "run.yaml"), "--output_dir", str(tmp_path / "out")])
    assert exit_.value.code == 2 and message in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_a_misspelt_rerun_keeps_the_summary_and_a_file_is_no_output_folder(fake_training, tmp_path: Path,
                                                                         capsys) -> None:
    """The summaries were removed before train.py's arguments were checked; a file as --output_dir was a
    NotADirectoryError traceback."""
    argv = ["--ablation_seeds", "1", "--modes", "pin", "--output_dir", str(tmp_path / "out")]
    ablation.main(argv)
    with pytest.raises(SystemExit) as exit_:
        ablation.main(argv + ["--max_stesp", "2"])
    assert exit_.value.code == 2 and "unknown arguments: --max_stesp 2" in capsys.readouterr().err
    assert (tmp_path / "out" / "ablation.json").is_file() and (tmp_path / "out" / "ablation.md").is_file()
    (tmp_path / "a-file").write_text("")
    with pytest.raises(SystemExit) as exit_:
        ablation.main(["--modes", "pin", "--output_dir", str(tmp_path / "a-file")])
    assert exit_.value.code == 2 and "is a file" in capsys.readouterr().err


def test_a_record_cut_short_is_a_run_to_train_again(fake_training, tmp_path: Path) -> None:
    """An empty ablation_run.json stopped every rerun with "Expecting value: line 1 column 1", naming no file."""
    argv = ["--ablation_seeds", "2", "--modes", "none", "--output_dir", str(tmp_path)]
    ablation.main(argv)
    (tmp_path / "none-seed1" / ablation.RUN_RECORD).write_text("")
    ablation.main(argv)
    assert len(fake_training) == 3  # seed 1 again, seed 0 kept
    assert not list(tmp_path.glob("*/.*.partial"))


def test_the_recorded_command_quotes_what_needs_quoting(fake_training, tmp_path: Path) -> None:
    out = tmp_path / "with space"
    ablation.main(["--ablation_seeds", "1", "--modes", "none", "--output_dir", str(out)])
    assert json.loads((out / "ablation.json").read_text())["command"].endswith(f"--output_dir '{out}'")


def test_a_run_that_cannot_work_is_a_message_with_status_2(tmp_path: Path) -> None:
    repo = Path(__file__).resolve().parents[1]
    result = subprocess.run(
        [sys.executable, "ablation.py", "--ablation_seeds", "1", "--modes", "none", "--output_dir", str(tmp_path),
         "--dataset_name", str(tmp_path / "not-converted-yet")],
        cwd=repo, capture_output=True, text=True, timeout=300, env={**os.environ, "HF_HUB_OFFLINE": "1"},
    )
    assert result.returncode == 2 and "ablation.py: error: --dataset_name" in result.stderr
    assert "Traceback" not in result.stderr


def test_the_training_family_is_recognised_whatever_its_case_and_punctuation() -> None:
    """AIGIBench trains on `progan` and tests on `ProGAN`: the seen family counted as unseen."""
    metrics = {"subsets": {"ProGAN": {"acc": 1.0}, "SD-v1.4": {"acc": 0.9}, "FLUX1-dev": {"acc": 0.5}},
               "training": {"generators": ["progan", "sdv1.4"]}}
    assert ablation.unseen_subsets(metrics) == ["FLUX1-dev"] and ablation.unseen_mean(metrics) == 0.5


def test_the_table_names_the_unseen_families(fake_training, tmp_path: Path) -> None:
    summary = ablation.main(["--ablation_seeds", "1", "--modes", "pin", "--output_dir", str(tmp_path)])
    assert summary["pin"]["unseen_subsets"] == ["gan"]
    assert "Unseen families: gan.\n" in (tmp_path / "ablation.md").read_text()


def test_ablations_on_two_datasets_default_to_two_folders(fake_training, tmp_path: Path, monkeypatch) -> None:
    """Both presets' ablations went to outputs/ablation-minigenimage, the second replacing the first's runs."""
    monkeypatch.chdir(tmp_path)
    for name in ("genimage", "aigibench"):
        (tmp_path / "data" / name).mkdir(parents=True)
        ablation.main(["--ablation_seeds", "1", "--modes", "pin", "--dataset_name", str(tmp_path / "data" / name)])
    ablation.main(["--ablation_seeds", "1", "--modes", "pin"])
    # a reduced build and another seed's are other data: they replaced the full seed-0 ablation's runs
    ablation.main(["--ablation_seeds", "1", "--modes", "pin", "--minigenimage_reduced"])
    ablation.main(["--ablation_seeds", "1", "--modes", "pin", "--minigenimage_seed", "1"])
    # two folders of one name (`a/train`, `b/train`): the second replaced the first's runs
    for parent in ("a", "b"):
        (tmp_path / parent / "train").mkdir(parents=True)
        ablation.main(["--ablation_seeds", "1", "--modes", "pin", "--train_dir", str(tmp_path / parent / "train"),
                       "--dataset_name", "minigenimage"])
    names = sorted(path.name for path in (tmp_path / "outputs").iterdir())
    assert len(names) == 7 and {"ablation-minigenimage", "ablation-minigenimage-reduced",
                                "ablation-minigenimage-seed1"} <= set(names)
    assert sum(name.startswith(("ablation-aigibench-", "ablation-genimage-")) for name in names) == 2
    assert sum(name.startswith("ablation-train-") for name in names) == 2
    assert len(fake_training) == 7


def test_a_folder_trained_into_since_or_left_without_metrics_is_trained_again(fake_training, tmp_path: Path) -> None:
    """The record vouches for the metrics.json its run wrote: `train.py --output_dir OUT/pin-seed0` by hand since
    (another mode, other steps) or a run killed after clearing the folder must not be counted as the ablation's."""
    argv = ["--ablation_seeds", "2", "--modes", "pin", "--output_dir", str(tmp_path)]
    ablation.main(argv)
    assert len(fake_training) == 2
    (tmp_path / "pin-seed0" / "metrics.json").write_text(json.dumps({"subsets": {}, "by": "another run"}))
    (tmp_path / "pin-seed1" / "metrics.json").unlink()
    ablation.main(argv)
    assert [call[call.index("--output_dir") + 1] for call in fake_training[2:]] == [
        str(tmp_path / "pin-seed0"), str(tmp_path / "pin-seed1")]
    ablation.main(argv)
    assert len(fake_training) == 4  # both finished again: kept


def test_a_rerun_refused_before_training_keeps_the_finished_run(fake_training, tmp_path: Path, monkeypatch) -> None:
    argv = ["--ablation_seeds", "1", "--modes", "pin", "--output_dir", str(tmp_path)]
    ablation.main(argv)
    trained = ablation.train.main

    def refused(run_args: list[str]) -> None:  # as train.py refuses a folder holding another run's checkpoints
        raise SystemExit(2)

    monkeypatch.setattr(ablation.train, "main", refused)
    with pytest.raises(SystemExit):
        ablation.main(argv + ["--learning_rate", "0.002"])
    monkeypatch.setattr(ablation.train, "main", trained)
    ablation.main(argv)  # the original command again: its run is untouched, so kept
    assert len(fake_training) == 1 and (tmp_path / "ablation.md").is_file()


def test_a_rerun_that_fails_leaves_no_summary_of_other_runs(fake_training, tmp_path: Path) -> None:
    argv = ["--ablation_seeds", "1", "--modes", "pin", "none", "--output_dir", str(tmp_path)]
    ablation.main(argv)
    assert (tmp_path / "ablation.json").is_file() and (tmp_path / "ablation.md").is_file()
    ablation.train.main.fail_none = True
    with pytest.raises(RuntimeError, match="diverged"):
        ablation.main(argv + ["--max_steps", "7"])  # pin retrained, then none fails
    assert not (tmp_path / "ablation.json").exists() and not (tmp_path / "ablation.md").exists()


def test_runs_on_another_minigenimage_version_are_trained_again(fake_training, tmp_path: Path, monkeypatch) -> None:
    from datasets_scripts import minigenimage

    argv = ["--ablation_seeds", "1", "--modes", "none", "--output_dir", str(tmp_path)]
    ablation.main(argv)
    record = tmp_path / "none-seed0" / ablation.RUN_RECORD
    assert json.loads(record.read_text())["settings"]["minigenimage_version"] == minigenimage.VERSION
    assert json.loads((tmp_path / "ablation.json").read_text())["minigenimage_version"] == minigenimage.VERSION
    assert f"(MiniGenImage {minigenimage.VERSION})" in (tmp_path / "ablation.md").read_text().splitlines()[0]
    ablation.main(argv)
    assert len(fake_training) == 1
    monkeypatch.setattr(minigenimage, "VERSION", "9.0.0")  # the benchmark's images changed
    ablation.main(argv)
    assert len(fake_training) == 2
    # a record from before the version was recorded read an earlier build
    settings = json.loads(record.read_text())
    del settings["settings"]["minigenimage_version"]
    record.write_text(json.dumps(settings))
    ablation.main(argv)
    assert len(fake_training) == 3


def test_folder_runs_record_no_minigenimage_version(fake_training, tmp_path: Path) -> None:
    data = tmp_path / "data"
    for split in ("train", "test"):
        for label in ("0_real", "1_fake"):
            (data / split / label).mkdir(parents=True)
    ablation.main(["--ablation_seeds", "1", "--modes", "none", "--output_dir", str(tmp_path / "abl"),
                   "--train_dir", str(data), "--eval_dir", str(data / "test")])
    record = json.loads((tmp_path / "abl" / "none-seed0" / ablation.RUN_RECORD).read_text())
    assert "minigenimage_version" not in record["settings"]
    assert json.loads((tmp_path / "abl" / "ablation.json").read_text())["minigenimage_version"] is None


def test_runs_of_another_launch_layout_are_trained_again(fake_training, tmp_path: Path) -> None:
    # e.g. seeds trained earlier under `accelerate launch --mixed_precision bf16` (or --num_processes 2): a plain
    # `python ablation.py --ablation_seeds 5` must not average them with fp32 single-process seeds
    argv = ["--ablation_seeds", "1", "--modes", "none", "--output_dir", str(tmp_path)]
    ablation.main(argv)
    metrics_file = tmp_path / "none-seed0" / "metrics.json"
    metrics = json.loads(metrics_file.read_text())
    metrics["training"].update(processes=2, mixed_precision="bf16")
    metrics_file.write_text(json.dumps(metrics))
    record = tmp_path / "none-seed0" / ablation.RUN_RECORD
    settings = json.loads(record.read_text())["settings"]
    record.write_text(json.dumps(ablation.finished_record(tmp_path / "none-seed0", settings)))  # consistent record
    assert not ablation.is_finished(tmp_path / "none-seed0", settings, {"processes": 1, "mixed_precision": "no"})
    ablation.main(argv)
    assert len(fake_training) == 2
    assert json.loads((tmp_path / "ablation.json").read_text())["launch"] == {"processes": 1, "mixed_precision": "no"}


def test_mode_differences_give_the_gap_and_its_welch_t() -> None:
    # a: mean 0.8, sample variance 0.01 over 3; b: mean 0.7, sample variance 0.005 over 2
    a, b = [0.7, 0.8, 0.9], [0.65, 0.75]
    assert ablation.welch_t(a, b) == pytest.approx(0.1 / (0.01 / 3 + 0.005 / 2) ** 0.5)
    assert ablation.welch_t([0.8], b) is None and ablation.welch_t([0.5, 0.5], [0.5, 0.5]) is None
    summary = {mode: {"unseen": ablation.mean_std(values), "validation": None}
               for mode, values in (("pin", a), ("random", [0.7, 0.7]), ("none", b))}
    differences = ablation.mode_differences(summary)
    assert [entry["modes"] for entry in differences] == [["pin", "random"], ["pin", "none"], ["random", "none"]]
    assert differences[1]["unseen"]["difference"] == pytest.approx(0.1) and differences[1]["validation"] is None
    text = ablation.differences_text(differences)
    assert "- `pin` − `none`: unseen families +10.0 points (Welch t 1.31)\n" in text
    assert "- `random` − `none`: unseen families +0.0 points (Welch t 0.00)\n" in text
