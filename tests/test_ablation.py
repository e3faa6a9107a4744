"""ablation.py: runs every mode × seed through train.main, keeps finished runs, and summarises them."""

import json
from pathlib import Path

import pytest

import ablation


@pytest.fixture
def fake_training(monkeypatch: pytest.MonkeyPatch) -> list[list[str]]:
    """train.main replaced by a stand-in that writes a metrics.json (accuracy 0.5 + seed / 10) and records its argv;
    the `none` mode fails while `fail_none` is set."""
    calls: list[list[str]] = []

    def fake_main(argv: list[str]) -> dict:
        calls.append(argv)
        value = lambda name: argv[argv.index(name) + 1]  # noqa: E731
        if value("--noise_mode") == "none" and fake_main.fail_none:
            raise RuntimeError("diverged")
        acc = 0.5 + int(value("--seed")) / 10
        metrics = {"subsets": {"tconv": {"acc": 0.9}, "gan": {"acc": acc}}, "mean": {"acc": (0.9 + acc) / 2},
                   "training": {"generators": ["tconv"]}, "validation": {"mean": {"acc": acc}}}
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
