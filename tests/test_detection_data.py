"""Which rows train, select and test, and what their labels mean: `detection_data.load_detection_data`."""

from pathlib import Path

import datasets
import numpy as np
import pytest
from PIL import Image

from detection_data import load_detection_data, normalize_labels
from training_args import DataArguments


def rows(labels: list, generators: list | None = None, label_feature=None) -> datasets.Dataset:
    pixels = np.zeros((4, 4, 3), dtype=np.uint8)
    data = {"image": [Image.fromarray(pixels)] * len(labels), "label": labels}
    features = {"image": datasets.Image(), "label": label_feature or datasets.ClassLabel(names=["real", "fake"])}
    if generators is not None:
        data["generator"], features["generator"] = generators, datasets.Value("string")
    return datasets.Dataset.from_dict(data, features=datasets.Features(features))


def saved(tmp_path: Path, splits: dict[str, datasets.Dataset]) -> str:
    folder = tmp_path / "converted"
    datasets.DatasetDict(splits).save_to_disk(str(folder))
    return str(folder)


def image_tree(root: Path) -> str:
    for label in ("0_real", "1_fake"):
        (root / label).mkdir(parents=True)
        Image.new("RGB", (4, 4)).save(root / label / "x.png")
    return str(root)


def test_a_lone_test_split_is_never_trained_on(tmp_path):
    args = DataArguments(dataset_name=saved(tmp_path, {"test": rows([0, 1], ["sd", "sd"])}))
    with pytest.raises(ValueError, match="both the training and the test data"):
        load_detection_data(args, need_train=True)
    assert list(load_detection_data(args, need_train=False).test) == ["sd"]  # evaluating it is fine


def test_converted_training_data_with_an_eval_folder(tmp_path):
    # GenImage's conversion has train + validation and no test split: the test data comes from --eval_dir.
    source = saved(tmp_path, {"train": rows([0, 1, 1], ["sd"] * 3), "validation": rows([0, 1], ["sd", "sd"])})
    data = load_detection_data(DataArguments(dataset_name=source, eval_dir=image_tree(tmp_path / "wild")), True)
    assert data.train.num_rows == 3 and list(data.validation) == ["sd"]
    assert list(data.test) == ["wild"] and data.test["wild"].num_rows == 2


@pytest.mark.parametrize(
    "labels, feature, expected",
    [
        (["Real", "AI", "fake"], datasets.Value("string"), [0, 1, 1]),
        ([0, 1, 0], datasets.ClassLabel(names=["fake", "real"]), [1, 0, 1]),
        ([1, 0], datasets.Value("int64"), [1, 0]),
        ([0, 1, 1], datasets.ClassLabel(names=["ai", "nature"]), [1, 0, 0]),
        (["human", "synthetic", "generated", "authentic"], datasets.Value("string"), [0, 1, 1, 0]),
    ],
    ids=["strings", "reversed-class-names", "integers", "genimage-class-names", "synonyms"],
)
def test_labels_are_mapped_by_name(labels, feature, expected):
    normalized = normalize_labels(rows(labels, label_feature=feature), "label")
    assert normalized.features["label"].names == ["real", "fake"] and normalized["label"] == expected


@pytest.mark.parametrize(
    "labels, feature, problem",
    [(["real", "maybe"], datasets.Value("string"), "'maybe'"), ([0, 2], datasets.Value("int64"), r"\[2\]"),
     ([0.0, 1.0], datasets.Value("float32"), "float32")],
)
def test_labels_that_cannot_be_mapped_are_refused(labels, feature, problem):
    with pytest.raises(ValueError, match=problem):
        normalize_labels(rows(labels, label_feature=feature), "label")


def test_rows_without_a_generator_are_an_error_not_a_crash(tmp_path):
    args = DataArguments(dataset_name=saved(tmp_path, {"test": rows([0, 1, 1], [None, "sd", "gan"])}))
    with pytest.raises(ValueError, match="1 rows have no 'generator'"):
        load_detection_data(args, need_train=False)
    args.generator_column = "none"
    assert list(load_detection_data(args, need_train=False).test) == ["test"]



def test_every_selected_training_subset_must_exist(tmp_path):
    train = rows([0, 1, 0, 1], ["progan", "progan", "sdv1.4", "sdv1.4"]).add_column("subset", ["car", "car", "sdv1.4", "sdv1.4"])
    source = saved(tmp_path, {"train": train, "test": rows([0, 1], ["sd", "sd"])})
    args = DataArguments(dataset_name=source, train_subsets=["car", "sdv14"])
    with pytest.raises(ValueError, match=r"no training rows with subset \['sdv14'\]; the training data has \['car', 'sdv1.4'\]"):
        load_detection_data(args, need_train=True)
    args.train_subsets = ["car", "sdv1.4"]
    assert load_detection_data(args, need_train=True).train.num_rows == 4
    args.train_generators = ["progan"]  # both filters together: the ProGAN car rows
    assert load_detection_data(args, need_train=True).train["subset"] == ["car", "car"]
    args.train_subsets = ["sdv1.4"]
    with pytest.raises(ValueError, match="no training rows hold all of"):
        load_detection_data(args, need_train=True)
