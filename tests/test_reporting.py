"""reporting: the mean row, the results and robustness tables and the model-index entries, cell by cell."""

from pathlib import Path

import pytest

import reporting


def cells(line: str) -> list[str]:
    return [cell.strip() for cell in line.strip().strip("|").split("|")]


def test_the_mean_row_is_the_unweighted_mean_over_the_subsets_that_define_each_metric():
    subsets = {
        "a": {"acc": 0.5, "r_acc": 0.4, "f_acc": 0.6, "ap": 0.5, "auc": 0.5, "n": 10},
        "b": {"acc": 0.6, "r_acc": 0.8, "f_acc": 0.4, "ap": 0.7, "auc": 0.6, "n": 30},
        "only_fake": {"acc": 1.0, "r_acc": None, "f_acc": 1.0, "ap": None, "auc": None, "n": 2},
    }
    mean = reporting.mean_metrics(subsets)
    assert mean["acc"] == pytest.approx(0.7) and mean["f_acc"] == pytest.approx(2 / 3)
    assert mean["r_acc"] == pytest.approx(0.6) and mean["ap"] == pytest.approx(0.6) and mean["auc"] == pytest.approx(0.55)
    assert mean["n"] == 42
    assert reporting.mean_metrics({"only_fake": subsets["only_fake"]})["r_acc"] is None


def test_results_table_puts_each_number_under_its_title():
    gan = {"acc": 0.71, "r_acc": 0.98, "f_acc": 0.44, "ap": 0.83, "auc": 0.85, "n": 32}
    only_fake = {"acc": 0.5, "r_acc": None, "f_acc": 0.5, "ap": None, "auc": None, "n": 2}
    lines = reporting.results_table({"subsets": {"gan": gan, "only_fake": only_fake}, "mean": gan}).splitlines()
    header = cells(lines[0])
    assert header == ["subset", "Acc", "R.Acc", "F.Acc", "AP", "AUC", "images"]
    assert dict(zip(header, cells(lines[2]))) == {
        "subset": "gan", "Acc": "71.0", "R.Acc": "98.0", "F.Acc": "44.0", "AP": "83.0", "AUC": "85.0", "images": "32"}
    assert cells(lines[3]) == ["only_fake", "50.0", "–", "50.0", "–", "–", "2"]
    assert cells(lines[4])[0] == "**mean**" and len(lines) == 5


def test_results_table_marks_the_subsets_of_a_training_family():
    """README's table of the default run says "tconv (training family)"; the files it quotes said plain "tconv"."""
    values = {"acc": 0.9, "r_acc": 0.9, "f_acc": 0.9, "ap": 0.9, "auc": 0.9, "n": 4}
    metrics = {"subsets": {"ProGAN": values, "sd_v1.4": values, "SDXL": values}, "mean": values}
    lines = reporting.results_table(metrics, ["progan", "sdv1.4"]).splitlines()
    assert [cells(line)[0] for line in lines[2:]] == [
        "ProGAN (training family)", "sd_v1.4 (training family)", "SDXL", "**mean**"]
    assert "training family" not in reporting.results_table(metrics)  # an evaluation of a saved model: not known


def test_robustness_table_holds_accuracy_per_subset_then_mean_acc_and_mean_ap():
    def condition(acc_a: float, acc_b: float, mean_ap: float) -> dict:
        subsets = {"a": {"acc": acc_a, "ap": 0.99}, "b": {"acc": acc_b, "ap": 0.98}}
        return {"subsets": subsets, "mean": {"acc": (acc_a + acc_b) / 2, "ap": mean_ap}}

    lines = reporting.robustness_table({"clean": condition(0.9, 0.7, 0.95), "jpeg_q50": condition(0.6, 0.5, 0.65)})
    assert lines.splitlines()[0] == "| condition | a | b | mean Acc | mean AP |"
    assert lines.splitlines()[2:] == ["| clean | 90.0 | 70.0 | 80.0 | 95.0 |", "| jpeg_q50 | 60.0 | 50.0 | 55.0 | 65.0 |"]


def test_model_index_leaves_out_undefined_metrics_and_types_the_others():
    only_fake = {"acc": 0.5, "r_acc": None, "f_acc": 0.5, "ap": None, "auc": None, "n": 2}
    both = {"acc": 0.75, "r_acc": 1.0, "f_acc": 0.5, "ap": 0.8, "auc": 0.9, "n": 4}
    results = reporting.eval_results({"subsets": {"gan": only_fake, "sd": both}, "mean": both}, "Mini", "minigenimage")
    got = {r.metric_name: (r.metric_type, r.metric_value) for r in results}
    assert len(results) == 2 + 5 + 5 and "R.Acc (gan)" not in got and "AP (gan)" not in got
    assert got["Acc (gan)"] == ("accuracy", 0.5) and got["R.Acc (sd)"] == ("accuracy", 1.0)
    assert got["AP (sd)"] == ("average_precision", 0.8) and got["AUC (mean)"] == ("roc_auc", 0.9)


def test_public_command_names_absolute_and_home_paths_by_their_last_component():
    from reporting import public_command

    command = ("python train.py --dataset_name /srv/alice/data/genimage --output_dir=/scratch/run 'x y' "
               "--model_name_or_path openai/clip-vit-large-patch14 --eval_dir ~/wild --train_dir data/train")
    assert public_command(command) == (
        "python train.py --dataset_name genimage --output_dir=run 'x y' "
        "--model_name_or_path openai/clip-vit-large-patch14 --eval_dir wild --train_dir data/train"
    )


@pytest.mark.parametrize("mode", ["pin", "random", "none"])
def test_the_card_describes_the_noise_the_model_was_trained_with(tmp_path, mode):
    """The ablation's `none` and `random` runs said they were trained with learned noise (and `none` listed λ and s)."""
    from configuration_pinclip import PinClipConfig

    config = PinClipConfig(noise_mode=mode, clip_name_or_path="openai/clip-vit-large-patch14")
    metrics = {"subsets": {"gan": {"acc": 0.7, "r_acc": 0.8, "f_acc": 0.6, "ap": 0.8, "auc": 0.8, "n": 4}}}
    metrics["mean"] = metrics["subsets"]["gan"]
    card = reporting.write_model_card(tmp_path, metrics, config, "MiniGenImage", "minigenimage", {"data": "MiniGenImage"},
                                      "python train.py").text
    intro = card.split("## Usage")[0]
    noise_line = next(line for line in card.splitlines() if line.startswith("- noise:"))
    assert ("learned feature-space noise" in intro) == (mode == "pin")
    assert ("fixed Gaussian feature-space noise" in intro) == (mode == "random")
    assert ("no noise: plain fine-tuning" in intro) == (mode == "none")
    assert noise_line.startswith(f"- noise: `{mode}`") and ("λ =" in noise_line) == (mode != "none")


def test_a_card_written_into_dot_is_named_after_the_folder(tmp_path, monkeypatch):
    from configuration_pinclip import PinClipConfig

    monkeypatch.chdir(tmp_path)  # `--output_dir .` gave the card the title "# " and model-index name ''
    metrics = {"subsets": {"gan": {"acc": 0.7, "r_acc": 0.8, "f_acc": 0.6, "ap": 0.8, "auc": 0.8, "n": 4}}}
    metrics["mean"] = metrics["subsets"]["gan"]
    card = reporting.write_model_card(Path("."), metrics, PinClipConfig(), "MiniGenImage", "minigenimage", {},
                                      "python train.py")
    assert card.data.model_name == tmp_path.name and f"\n# {tmp_path.name}\n" in card.text


def test_roc_plot_of_single_class_subsets_says_why_it_has_no_curve(tmp_path: Path) -> None:
    """With no subset of both classes matplotlib warned "No artists with labels found to put in legend" and wrote an
    empty plot."""
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        reporting.plot_roc_curves({"only_fake": {"labels": [1, 1], "scores": [0.2, 0.9]}}, tmp_path / "roc.png", "t")
    assert (tmp_path / "roc.png").stat().st_size > 0


def test_subset_names_stay_in_their_cell_and_family_and_plot_literally(tmp_path: Path) -> None:
    """Were: `SD|XL` split its row (numbers under the wrong headings); every all-Chinese name was the family "" (one
    training generator marked them all, and the ablation left them out of the unseen mean); `$\\foo$` failed the
    bar plot after the model was saved, and a name starting with `_` had no ROC legend entry."""
    values = {"acc": 0.9, "r_acc": 0.8, "f_acc": 1.0, "ap": 0.95, "auc": 0.96, "n": 40}
    table = reporting.results_table({"subsets": {"SD|XL": values, "文心一格": values}, "mean": values}, ["可图"])
    rows = [line for line in table.splitlines() if line.startswith("| SD") or line.startswith("| 文")]
    assert rows[0].startswith(r"| SD\|XL | 90.0 | 80.0 | 100.0 |")
    assert rows[1].startswith("| 文心一格 | 90.0")  # not "(training family)"
    assert reporting.generator_family("文心一格") != reporting.generator_family("通义万相")
    assert reporting.generator_family("Pro-GAN") == reporting.generator_family("progan")
    reporting.plot_accuracy_bars({"subsets": {r"$\foo$": values}, "mean": values}, tmp_path / "bars.png", "t")
    assert (tmp_path / "bars.png").stat().st_size > 0
    assert reporting.plot_label("_sd") != "_sd" and reporting.plot_label("_sd").endswith("_sd")
