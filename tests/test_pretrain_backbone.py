"""pretrain_backbone.py: learns the content task, changes only the vision side, and feeds `from_clip`."""

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from clip_checkpoints import CLIP_SHAPES, write_random_clip
from datasets_scripts.minigenimage import CROP_SIZE, assign_tiles, load_photos, sample_crops
from modeling_pinclip import PinClipForImageClassification
from pretrain_backbone import parse_args, photo_crops, pretrain


def test_crops_are_labelled_with_their_photograph() -> None:
    photos = load_photos()
    pools = assign_tiles(photos, 32, seed=0)
    pixels, labels = photo_crops(photos, pools["train"], 64, 32, np.random.default_rng(0))
    assert pixels.shape == (64, 3, 32, 32) and labels.shape == (64,)
    train_photos = {box[0] for box in pools["train"]}
    assert set(labels.tolist()) <= train_photos  # a label is the index of a photo that has train tiles


def test_pretraining_learns_and_changes_only_the_vision_side(tmp_path: Path) -> None:
    out = tmp_path / "pretrained"
    summary = pretrain(parse_args(["--output_dir", str(out), "--shape", "tiny", "--epochs", "3",
                                   "--crops_per_epoch", "512"]))
    assert summary["held_out_acc"] > 2 * summary["chance_acc"]
    assert json.loads((out / "pretraining.json").read_text())["held_out_acc"] == summary["held_out_acc"]

    random = load_file(write_random_clip(tmp_path / "random", shape="tiny", seed=0) / "model.safetensors")
    trained = load_file(out / "model.safetensors")
    assert random.keys() == trained.keys()
    vision = [name for name in trained if name.startswith(("vision_model.", "visual_projection."))]
    assert any(not torch.equal(random[name], trained[name]) for name in vision if "encoder.layers" in name)
    assert not torch.equal(random["visual_projection.weight"], trained["visual_projection.weight"])
    assert all(torch.equal(random[name], trained[name]) for name in trained if name not in vision)

    model = PinClipForImageClassification.from_clip(str(out))  # the checkpoint train.py would start from
    assert torch.equal(model.visual_projection.weight, trained["visual_projection.weight"])


@pytest.mark.parametrize("argv", [["--epochs", "0"], ["--batch_size", "-1"], ["--crops_per_epoch", "0"],
                                  ["--learning_rate", "0"], ["--learning_rate", "inf"], ["--learning_rate", "nan"],
                                  ["--learning_rate", "4e37"],
                                  ["--seed", "-1"], ["--minigenimage_seed", "-1"]])
def test_bad_arguments_are_refused_by_name(argv: list[str], capsys: pytest.CaptureFixture) -> None:
    with pytest.raises(SystemExit) as exit_:
        parse_args(argv)
    assert exit_.value.code == 2 and argv[0] in capsys.readouterr().err


def test_arguments_are_kept_for_the_summary() -> None:
    assert parse_args(["--epochs", "2"]).argv == ["--epochs", "2"]  # pretraining.json's "command"


def test_crops_come_from_the_benchmarks_own_train_tiles(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A model of another input size (tiny: 32 px) still samples inside the tiles the 64-px benchmark trains on."""
    import pretrain_backbone

    sampled = []

    def recording(photos, pool, count, crop_size, rng):
        crops, boxes = sample_crops(photos, pool, count, crop_size, rng)
        sampled.append((pool, boxes))
        return crops, boxes

    monkeypatch.setattr(pretrain_backbone, "sample_crops", recording)
    pretrain(parse_args(["--output_dir", str(tmp_path), "--shape", "tiny", "--epochs", "1", "--crops_per_epoch", "64"]))
    photos = load_photos()
    benchmark = assign_tiles(photos, CROP_SIZE, seed=0)
    names = [photo.name for photo in photos]
    training_boxes = [box for pool, boxes in sampled if pool == benchmark["train"] for box in boxes]
    assert len(training_boxes) == 64 and len(sampled) == 2  # the held-out set (validation pool), one epoch
    for name, top, left, size in training_boxes:
        assert any(names[index] == name and t <= top and top + size <= t + tile and l <= left and left + size <= l + tile
                   for index, t, l, tile in benchmark["train"])


def test_a_model_larger_than_the_tiles_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(CLIP_SHAPES, "tiny-128", {**CLIP_SHAPES["tiny"], "image_size": 128})
    with pytest.raises(ValueError, match="larger than MiniGenImage's 96-px tiles"):
        pretrain(parse_args(["--output_dir", str(tmp_path / "out"), "--shape", "tiny-128"]))
    assert not any(tmp_path.iterdir())  # refused before anything was written


def test_the_default_output_folder_names_the_shape() -> None:
    assert parse_args([]).output_dir == "outputs/pretrained-clip-tiny-64"
    assert parse_args(["--shape", "tiny"]).output_dir == "outputs/pretrained-clip-tiny"


def test_the_summary_records_chance_level_and_the_command(tmp_path: Path) -> None:
    argv = ["--output_dir", str(tmp_path), "--shape", "tiny", "--epochs", "1", "--crops_per_epoch", "64"]
    summary = pretrain(parse_args(argv))
    assert summary["chance_acc"] == 1 / len(load_photos())
    assert summary["command"] == "python pretrain_backbone.py " + " ".join(argv)
    assert [entry["epoch"] for entry in summary["history"]] == [1]
    assert json.loads((tmp_path / "pretraining.json").read_text())["command"] == summary["command"]



def test_a_backbone_pretrained_on_other_tiles_is_refused_for_this_minigenimage(tmp_path: Path) -> None:
    """Seed 0's training tiles are partly seed 1's validation and test tiles: training and evaluating on seed 1 from
    a backbone pretrained for seed 0 was accepted without a word."""
    import train
    from pretrain_backbone import check_tile_record
    from training_args import DataArguments

    backbone = tmp_path / "backbone"
    pretrain(parse_args(["--output_dir", str(backbone), "--shape", "tiny", "--epochs", "1", "--crops_per_epoch", "64"]))
    assert json.loads((backbone / "pretraining.json").read_text())["minigenimage"]["seed"] == 0
    check_tile_record(backbone, 0)  # the build it was pretrained for
    with pytest.raises(ValueError, match="pretrained on the training tiles of MiniGenImage seed 0 at crop size 64, which "
                                         "--minigenimage_seed 1 deals out"):  # refused before any data is loaded
        train.main(["--model_name_or_path", str(backbone), "--minigenimage_seed", "1", "--output_dir",
                    str(tmp_path / "run")])
    assert not train.trains_on_minigenimage(DataArguments(minigenimage_seed=1, train_dir=str(tmp_path)))  # no MGI
    # trained on a folder but evaluated on MiniGenImage seed 1: its test crops come from seed 0's training tiles too
    with pytest.raises(ValueError, match="pretrained on the training tiles of MiniGenImage seed 0 "):
        train.main(["--model_name_or_path", str(backbone), "--minigenimage_seed", "1", "--train_dir", str(tmp_path),
                    "--dataset_name", "minigenimage", "--output_dir", str(tmp_path / "run2")])
    # seed 1 exported to a folder (`minigenimage.py --output_dir`) and read as --dataset_name: its report names the
    # seed, and the check was skipped (70 of 128 of its validation/test real crops lay in pretraining tiles)
    export = tmp_path / "mgi-seed1"
    export.mkdir()
    (export / "report.json").write_text(json.dumps({"name": "MiniGenImage", "version": "1.4.0", "seed": 1}))
    with pytest.raises(ValueError, match="pretrained on the training tiles of MiniGenImage seed 0 at crop size 64, which "
                                         "--dataset_name .*mgi-seed1 \\(MiniGenImage seed 1"):
        train.main(["--model_name_or_path", str(backbone), "--dataset_name", str(export), "--output_dir",
                    str(tmp_path / "run3")])
    # seed 1 exported as folders (`--export_folders`; report.json above the split folders) read as --train_dir and
    # --eval_dir: 79 of its 144 test tiles were pretraining tiles, and the run went ahead
    folders = tmp_path / "mgi-seed1-folders"
    for split in ("train", "test"):
        (folders / split).mkdir(parents=True)
    (folders / "report.json").write_text((export / "report.json").read_text())
    with pytest.raises(ValueError,
                       match="seed 0 at crop size 64, which --train_dir .*mgi-seed1-folders/train \\(MiniGenImage seed 1"):
        train.main(["--model_name_or_path", str(backbone), "--train_dir", str(folders / "train"), "--eval_dir",
                    str(folders / "test"), "--output_dir", str(tmp_path / "run4")])
    # seed 0 at another crop size tiles the photographs otherwise: 335 of its 604 test tiles overlapped pretraining
    # tiles, and the check (always at the default crop size) let it through
    other_size = tmp_path / "mgi-seed0-crop32"
    other_size.mkdir()
    (other_size / "report.json").write_text(json.dumps({"name": "MiniGenImage", "seed": 0, "crop_size": 32}))
    with pytest.raises(ValueError, match="seed 0 at crop size 64, which --dataset_name .*mgi-seed0-crop32 "
                                         "\\(MiniGenImage seed 0, crop size 32"):
        train.main(["--model_name_or_path", str(backbone), "--dataset_name", str(other_size), "--output_dir",
                    str(tmp_path / "run6")])
    # two builds of different seeds, whatever the backbone: one's test crops come from the other's training tiles
    with pytest.raises(ValueError, match="MiniGenImage builds of different seeds"):
        train.main(["--train_dir", str(folders / "train"), "--dataset_name", "minigenimage", "--output_dir",
                    str(tmp_path / "run5")])


def test_an_output_folder_holding_something_else_is_refused_untouched(tmp_path: Path, capsys) -> None:
    detector = tmp_path / "my-detector"
    detector.mkdir()
    (detector / "model.safetensors").write_bytes(b"trained weights")
    with pytest.raises(SystemExit) as exit_:
        parse_args(["--output_dir", str(detector)])
    assert exit_.value.code == 2 and "holds something other than" in capsys.readouterr().err
    assert (detector / "model.safetensors").read_bytes() == b"trained weights"


def test_the_working_folder_is_refused_as_output(tmp_path: Path, capsys, monkeypatch) -> None:
    """`--output_dir .` in an empty folder failed with "PosixPath('.') has an empty name"."""
    monkeypatch.chdir(tmp_path)
    for given in (".", str(tmp_path.parent)):
        with pytest.raises(SystemExit) as exit_:
            parse_args(["--output_dir", given])
        assert exit_.value.code == 2 and "holds the current folder" in capsys.readouterr().err


def test_an_interrupted_run_leaves_no_checkpoint_and_a_rerun_replaces_its_own_output(tmp_path, monkeypatch) -> None:
    import pretrain_backbone

    out = tmp_path / "pretrained"
    argv = ["--output_dir", str(out), "--shape", "tiny", "--epochs", "1", "--crops_per_epoch", "64"]
    real = pretrain_backbone._pretrain_into

    def killed(output_dir, *args):
        pretrain_backbone.write_random_clip(output_dir, shape="tiny")
        raise KeyboardInterrupt  # after the random CLIP was written, before any training

    monkeypatch.setattr(pretrain_backbone, "_pretrain_into", killed)
    with pytest.raises(KeyboardInterrupt):
        pretrain(parse_args(argv))
    assert sorted(tmp_path.iterdir()) == []  # no random CLIP that train.py would take for a pretrained one
    monkeypatch.setattr(pretrain_backbone, "_pretrain_into", real)
    pretrain(parse_args(argv))
    (out / "stale.txt").write_text("from the first run")
    pretrain(parse_args(argv))  # its own earlier output: replaced whole
    assert (out / "pretraining.json").is_file() and (out / "config.json").is_file() and not (out / "stale.txt").exists()


def test_a_diverging_pretraining_stops_and_saves_no_backbone(tmp_path: Path) -> None:
    # it saved NaN weights and exited 0; train.py then blamed its own learning rate
    out = tmp_path / "pretrained"
    with pytest.raises(ValueError, match=r"the pretraining loss is nan at epoch 1, step \d+: lower --learning_rate"):
        pretrain(parse_args(["--output_dir", str(out), "--shape", "tiny", "--epochs", "1", "--crops_per_epoch", "128",
                             "--batch_size", "32", "--learning_rate", "1e6"]))
    assert sorted(tmp_path.iterdir()) == []
