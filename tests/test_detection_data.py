"""Which rows train, select and test, and what their labels mean: `detection_data.load_detection_data`."""

import os
import shutil
from pathlib import Path

import datasets
import numpy as np
import pytest
from PIL import Image

from detection_data import TrainImages, load_detection_data, normalize_labels, random_crop, resize_short_side
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
        # Hub datasets' phrasings, read like model labels are (refused when names had to match a word exactly)
        ([0, 1, 1], datasets.ClassLabel(names=["AI-generated", "Real photo"]), [1, 0, 0]),
        (["not_ai", "ai_generated", "not_ai"], datasets.Value("string"), [0, 1, 0]),
    ],
    ids=["strings", "reversed-class-names", "integers", "genimage-class-names", "synonyms", "hub-phrasings",
         "negated-names"],
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


def test_each_generator_subset_holds_only_its_own_rows(tmp_path):
    args = DataArguments(dataset_name=saved(tmp_path, {"test": rows([0, 1, 0, 1, 1], ["sd", "sd", "gan", "gan", "gan"])}))
    test = load_detection_data(args, need_train=False).test
    assert list(test) == ["gan", "sd"]
    assert test["gan"]["generator"] == ["gan"] * 3 and test["gan"]["label"] == [0, 1, 1]
    assert test["sd"]["generator"] == ["sd"] * 2 and test["sd"]["label"] == [0, 1]


@pytest.mark.parametrize("need_train", [False, True])
def test_data_without_a_test_split_is_refused_not_evaluated(tmp_path, need_train):
    # train + validation and no test split: evaluating "every split" would report numbers on the training data
    source = saved(tmp_path, {"train": rows([0, 1], ["sd", "sd"]), "validation": rows([0, 1], ["sd", "sd"])})
    with pytest.raises(ValueError, match="no test split among"):
        load_detection_data(DataArguments(dataset_name=source), need_train=need_train)


def test_max_samples_keep_exactly_that_many_rows(tmp_path):
    source = saved(tmp_path, {"train": rows([0, 1, 0, 1, 1], ["sd"] * 5), "test": rows([0, 1, 0, 1], ["sd"] * 4)})
    data = load_detection_data(DataArguments(dataset_name=source, max_train_samples=3, max_eval_samples=2), True)
    assert data.train.num_rows == 3 and data.test["sd"].num_rows == 2
    data = load_detection_data(DataArguments(dataset_name=source, max_train_samples=50, max_eval_samples=50), True)
    assert data.train.num_rows == 5 and data.test["sd"].num_rows == 4


def test_a_validation_split_reported_as_test_data_is_not_also_validation(tmp_path):
    source = saved(tmp_path, {"train": rows([0, 1], ["sd", "sd"]), "validation": rows([0, 1], ["gan", "gan"])})
    data = load_detection_data(DataArguments(dataset_name=source, eval_splits=["validation"]), need_train=True)
    assert list(data.test) == ["gan"] and data.validation == {}


def images(pictures: list[Image.Image]) -> datasets.Dataset:
    features = datasets.Features({"image": datasets.Image(), "label": datasets.ClassLabel(names=["real", "fake"])})
    return datasets.Dataset.from_dict({"image": pictures, "label": [0] * len(pictures)}, features=features)


def test_a_small_training_image_is_padded_evenly_like_the_eval_crop():
    white = Image.new("RGB", (4, 6), (255, 255, 255))
    crop = np.asarray(random_crop(white, 8, np.random.default_rng(0)))[..., 0]
    # centred: two zero columns left and right, one zero row above and below
    assert crop.shape == (8, 8) and (crop[1:7, 2:6] == 255).all() and crop.sum() == 255 * 4 * 6


def test_training_flips_about_half_the_images_and_only_when_asked():
    pixels = np.zeros((8, 8, 3), dtype=np.uint8)
    pixels[:, :4] = 255  # left half white: a flipped crop starts with a black pixel
    dataset = images([Image.fromarray(pixels)] * 40)

    def flipped(flip: bool) -> list[bool]:
        train = TrainImages(dataset, "image", size=8, seed=0, flip=flip)
        return [np.asarray(train[i][0])[0, 0, 0] == 0 for i in range(len(train))]

    assert not any(flipped(False))
    assert 10 <= sum(flipped(True)) <= 30


def test_crops_repeat_within_an_epoch_and_change_with_it():
    noise = Image.fromarray(np.random.default_rng(0).integers(0, 256, (32, 32, 3), dtype=np.uint8))
    train = TrainImages(images([noise] * 4), "image", size=8, seed=0, flip=False)
    first = [np.asarray(train[i][0]) for i in range(4)]
    assert all(np.array_equal(crop, np.asarray(train[i][0])) for i, crop in enumerate(first))  # exact resume
    train.epoch = 1
    assert not any(np.array_equal(crop, np.asarray(train[i][0])) for i, crop in enumerate(first))


def test_the_same_folder_as_training_and_test_data_is_refused(tmp_path, monkeypatch):
    tree = image_tree(tmp_path / "flat")
    monkeypatch.chdir(tmp_path)
    for train_dir, eval_dir in ((tree, tree), ("flat", str(tmp_path / "flat" / ".." / "flat"))):
        with pytest.raises(ValueError, match="both the training and the test data"):
            load_detection_data(DataArguments(train_dir=train_dir, eval_dir=eval_dir), need_train=True)


def test_max_samples_draw_rows_at_random_not_the_first_ones(tmp_path):
    # a converter writes each subset reals first: the first rows would be one class only
    labels = [0] * 20 + [1] * 20
    source = saved(tmp_path, {"train": rows(labels, ["sd"] * 40), "test": rows(labels, ["sd"] * 40)})
    draws = [load_detection_data(DataArguments(dataset_name=source, max_train_samples=8, max_eval_samples=8), True, seed)
             for seed in (0, 1)]
    for data in draws:
        assert data.train.num_rows == 8 and set(data.train["label"]) == {0, 1} and set(data.test["sd"]["label"]) == {0, 1}
    again = load_detection_data(DataArguments(dataset_name=source, max_train_samples=8, max_eval_samples=8), True, 0)
    assert again.train["label"] == draws[0].train["label"]  # the seed decides which rows
    assert draws[0].train["label"] != draws[1].train["label"] or draws[0].test["sd"]["label"] != draws[1].test["sd"]["label"]


def test_selecting_rows_leaves_the_dataset_folder_as_it_was(tmp_path):
    # cache files written beside a saved dataset's own made `datasets.load_dataset(folder)` fail on them afterwards
    labels = [0] * 20 + [1] * 20
    source = saved(tmp_path, {"train": rows(labels, ["sd", "gan"] * 20), "test": rows(labels, ["sd"] * 40)})
    before = sorted(path.relative_to(source) for path in Path(source).rglob("*"))
    data = load_detection_data(DataArguments(dataset_name=source, max_train_samples=8, max_eval_samples=8,
                                             train_generators=["sd"]), True, 0)
    assert data.train.num_rows == 8 and set(data.train["generator"]) == {"sd"}
    assert sorted(path.relative_to(source) for path in Path(source).rglob("*")) == before


@pytest.mark.parametrize("labels, only", [([0, 0, 0], "real"), ([1, 1], "fake")])
def test_training_data_of_one_class_is_refused(tmp_path, labels, only):
    source = saved(tmp_path, {"train": rows(labels, ["sd"] * len(labels)), "test": rows([0, 1], ["sd"] * 2)})
    with pytest.raises(ValueError, match=f"holds {only} images only"):
        load_detection_data(DataArguments(dataset_name=source), need_train=True)
    assert load_detection_data(DataArguments(dataset_name=source), need_train=False).test["sd"].num_rows == 2


def png_bytes(seed: int = 0) -> bytes:
    import io

    buffer = io.BytesIO()
    Image.fromarray(np.random.default_rng(seed).integers(0, 256, (8, 8, 3), dtype=np.uint8)).save(buffer, "PNG")
    return buffer.getvalue()


def test_a_corrupt_or_missing_image_names_its_split_and_row_not_pillow():
    from detection_data import EvalImages

    good = png_bytes()
    data = {"image": [{"bytes": good, "path": None}, {"bytes": good[:60], "path": "cut.png"},
                      {"bytes": b"", "path": None}, None],
            "label": [0, 1, 0, 1]}
    dataset = datasets.Dataset.from_dict(data, features=datasets.Features(
        {"image": datasets.Image(), "label": datasets.ClassLabel(names=["real", "fake"])}))
    train = TrainImages(dataset, "image", size=8, seed=0, flip=False, name="training split 'train'")
    assert train[0][0].size == (8, 8)
    for index, problem in ((1, "truncated or corrupt"), (2, "missing|empty"), (3, "missing")):
        with pytest.raises(ValueError, match=f"training split 'train', row {index}: image: .*({problem})"):
            train[index]
    with pytest.raises(ValueError, match="subset 'sd', row 1: image: truncated"):
        EvalImages(dataset, "image", name="subset 'sd'")[1]


@pytest.mark.parametrize("feature", [datasets.Image(decode=False), None], ids=["undecoded-image", "bytes-path-struct"])
def test_undecoded_image_columns_are_read(feature):
    good = png_bytes(1)
    features = {"label": datasets.ClassLabel(names=["real", "fake"])}
    if feature is not None:
        features["image"] = feature
    dataset = datasets.Dataset.from_dict({"image": [{"bytes": good, "path": "a.png"}], "label": [1]},
                                         features=datasets.Features(features) if feature is not None else None)
    image, label = TrainImages(dataset, "image", size=8, seed=0, flip=False)[0]
    assert label == 1 and np.array_equal(np.asarray(image), np.asarray(Image.open(__import__("io").BytesIO(good))))


def test_a_test_subset_of_fakes_with_string_labels_is_evaluated(tmp_path):
    source = saved(tmp_path, {"test_mj": rows(["fake", "fake"], ["mj", "mj"], datasets.Value("string")),
                              "test_sd": rows(["real", "fake"], ["sd", "sd"], datasets.Value("string"))})
    test = load_detection_data(DataArguments(dataset_name=source), need_train=False).test
    assert test["mj"]["label"] == [1, 1] and test["mj"].features["label"].names == ["real", "fake"]
    assert test["sd"]["label"] == [0, 1]


@pytest.mark.parametrize("labels, feature", [([None, 2, 0], datasets.Value("int64")),
                                             ([-1, 0, 1], datasets.ClassLabel(names=["fake", "real"]))])
def test_missing_labels_are_named_whatever_else_is_wrong(labels, feature):
    with pytest.raises(ValueError, match="1 of 3 rows have no label"):
        normalize_labels(rows(labels, label_feature=feature), "label")


def test_numeric_generators_can_be_selected_and_empty_ones_are_refused(tmp_path):
    numeric = rows([0, 1, 0, 1], label_feature=None).add_column("generator", [1, 1, 2, 2])
    source = saved(tmp_path, {"train": numeric, "test": rows([0, 1], ["sd", "sd"])})
    data = load_detection_data(DataArguments(dataset_name=source, train_generators=["1"]), need_train=True)
    assert data.train["generator"] == [1, 1]
    with pytest.raises(ValueError, match="1 rows have no 'generator'"):
        load_detection_data(DataArguments(dataset_name=saved(tmp_path / "b", {"test": rows([0, 1], ["sd", ""])})),
                            need_train=False)


def test_a_test_split_beside_prefixed_ones_is_named_in_a_warning(tmp_path, caplog):
    source = saved(tmp_path, {"test": rows([0, 1], ["mj", "mj"]), "test_sd": rows([0, 1], ["sd", "sd"])})
    with caplog.at_level("WARNING"):
        assert list(load_detection_data(DataArguments(dataset_name=source), need_train=False).test) == ["sd"]
    assert "split 'test' is not evaluated" in caplog.text


def test_a_split_named_valid_is_the_validation_data(tmp_path):
    source = saved(tmp_path, {"train": rows([0, 1], ["sd", "sd"]), "valid": rows([0, 1], ["sd", "sd"]),
                              "test": rows([0, 1], ["sd", "sd"])})
    assert list(load_detection_data(DataArguments(dataset_name=source), need_train=True).validation) == ["sd"]


def test_a_label_column_named_beside_a_label_column_is_the_label(tmp_path):
    """Many datasets keep a content class in `label` beside the real/fake column: naming the latter used to fail
    with "New column name label already in the dataset"."""
    content = datasets.ClassLabel(names=["cat", "dog", "car"])
    split = rows([2, 0, 1, 1], ["sd"] * 4, label_feature=content).add_column("is_fake", [0, 1, 1, 0])
    data = load_detection_data(DataArguments(dataset_name=saved(tmp_path, {"train": split, "test": split}),
                                             label_column="is_fake", eval_splits=["test"]), need_train=False)
    assert data.test["sd"]["label"] == [0, 1, 1, 0]


@pytest.mark.parametrize("generators", [True, False])
def test_an_empty_evaluation_subset_is_refused_before_training(tmp_path, generators):
    """It passed, and the run died after training when its ROC curve was drawn."""
    def split(labels):
        return rows(labels, ["sd"] * len(labels) if generators else None)
    def empty():  # filtered to nothing (datasets cannot load back an empty split saved from `select([])`)
        return split([0, 1]).filter(lambda row: False)
    source = saved(tmp_path, {"train": split([0, 1, 0, 1]), "test_sd": split([0, 1]), "test_midjourney": empty()})
    with pytest.raises(ValueError, match="subset.*midjourney hold no rows"):
        load_detection_data(DataArguments(dataset_name=source), need_train=True)
    lone = saved(tmp_path / "lone", {"train": split([0, 1]), "test": empty()})
    with pytest.raises(ValueError, match="test hold no rows"):
        load_detection_data(DataArguments(dataset_name=lone), need_train=False)
    # an empty validation split: --eval_splits (the advice given before) does not choose it
    validated = saved(tmp_path / "validated", {"train": split([0, 1]), "validation": empty(), "test": split([0, 1])})
    with pytest.raises(ValueError, match=r"validation subset\(s\) .*hold no rows: train without validation "
                                         r"\(--validation_split none\)"):
        load_detection_data(DataArguments(dataset_name=validated), need_train=True)
    assert load_detection_data(DataArguments(dataset_name=validated, validation_split="none"), True).validation == {}


def test_an_empty_training_split_is_named_as_such(tmp_path):
    source = saved(tmp_path, {"train": rows([0], ["sd"]).filter(lambda row: False), "test": rows([0, 1], ["sd"] * 2)})
    with pytest.raises(ValueError, match="training split 'train' holds no rows"):
        load_detection_data(DataArguments(dataset_name=source), need_train=True)


def test_a_downloaded_hub_dataset_folder_loads_like_a_saved_one(tmp_path):
    """A Hub dataset repository fetched whole (parquet under data/, what `push_to_hub` writes) was refused as
    "neither a Dataset directory nor a DatasetDict directory"."""
    folder = tmp_path / "downloaded"
    (folder / "data").mkdir(parents=True)
    for split, labels in {"train": [0, 1, 1, 0], "test": [1, 0]}.items():
        rows(labels, ["sd"] * len(labels)).to_parquet(str(folder / "data" / f"{split}-00000-of-00001.parquet"))
    data = load_detection_data(DataArguments(dataset_name=str(folder)), need_train=True)
    assert data.train["label"] == [0, 1, 1, 0] and data.test["sd"]["label"] == [1, 0]


def test_a_saved_folder_datasets_cannot_read_back_is_a_clear_error(tmp_path):
    source = saved(tmp_path, {"train": rows([0, 1], ["sd"] * 2), "test": rows([0, 1], ["sd"] * 2).select([])})
    with pytest.raises(ValueError, match="cannot load this folder"):
        load_detection_data(DataArguments(dataset_name=source), need_train=True)


def test_a_class_label_generator_column_is_read_as_its_names(tmp_path):
    """Hub datasets store generators as class ids: the subsets were named "0", "1", and the recorded training
    family (an id) never matched a subset name, so the ablation counted it as unseen."""
    from ablation import unseen_mean

    names = datasets.ClassLabel(names=["ProGAN", "SD14"])
    def split(labels, generators):
        return rows(labels).add_column("generator", generators, feature=names)
    source = saved(tmp_path, {"train": split([0, 1, 0, 1], [0, 0, 1, 1]), "test": split([0, 1, 0, 1], [0, 0, 1, 1])})
    data = load_detection_data(DataArguments(dataset_name=source, train_generators=["ProGAN"]), need_train=True)
    assert list(data.test) == ["ProGAN", "SD14"] and data.train["generator"] == ["ProGAN", "ProGAN"]
    metrics = {"subsets": {"ProGAN": {"acc": 1.0}, "SD14": {"acc": 0.5}},
               "training": {"generators": sorted(data.train.unique("generator"))}}
    assert unseen_mean(metrics) == 0.5
    assert unseen_mean({**metrics, "training": {"generators": [0]}}) == 0.75  # a numeric column: compared as text
    assert unseen_mean({**metrics, "training": {"generators": ["0"]}}) == 0.75


def test_a_subset_of_one_class_among_several_is_named_in_a_warning(tmp_path, caplog):
    source = saved(tmp_path, {"test": rows([0, 0, 1, 1], ["Real", "Real", "sd", "sd"])})
    with caplog.at_level("WARNING"):
        assert list(load_detection_data(DataArguments(dataset_name=source), need_train=False).test) == ["Real", "sd"]
    assert "test subset(s) 'Real' (real only), 'sd' (fake only) hold one class" in caplog.text
    caplog.clear()
    with caplog.at_level("WARNING"):
        load_detection_data(DataArguments(dataset_name=saved(tmp_path / "b", {"test": rows([0, 1], ["sd"] * 2)})), False)
    assert "hold one class" not in caplog.text


def test_lsun_class_folders_trained_on_beside_a_progan_test_subset_are_named_in_a_warning(tmp_path, caplog):
    """AIGIBench's tree read as raw folders: its ProGAN training data is one folder per LSUN class, so the ablation
    counted the ProGAN test subset among the unseen families, without a word."""
    for name in ("train/car", "train/cat", "test/ProGAN", "test/SDXL"):
        image_tree(tmp_path / "aigibench" / name)
    with caplog.at_level("WARNING"):
        load_detection_data(DataArguments(train_dir=str(tmp_path / "aigibench"),
                                          eval_dir=str(tmp_path / "aigibench" / "test")), need_train=True)
    assert "its generators ['car', 'cat'] are ProGAN's LSUN classes, so test subset(s) ['ProGAN'] count as unseen" \
        in caplog.text
    caplog.clear()
    with caplog.at_level("WARNING"):  # the whole tree given as both, as a raw benchmark tree usually is
        load_detection_data(DataArguments(train_dir=str(tmp_path / "aigibench"), eval_dir=str(tmp_path / "aigibench")),
                            need_train=True)
    assert "are ProGAN's LSUN classes" in caplog.text
    caplog.clear()
    with caplog.at_level("WARNING"):  # the same folders without a ProGAN test subset: a tree of another origin
        load_detection_data(DataArguments(train_dir=str(tmp_path / "aigibench" / "train"),
                                          eval_dir=str(tmp_path / "aigibench" / "test" / "SDXL")), need_train=True)
    assert "LSUN" not in caplog.text


def test_resizing_keeps_an_images_orientation():
    assert resize_short_side(Image.new("RGB", (300, 100)), 50).size == (150, 50)
    assert resize_short_side(Image.new("RGB", (100, 300)), 50).size == (50, 150)


@pytest.mark.parametrize("size", [(100, 20), (20, 100)])
def test_a_random_crop_pads_a_short_side_evenly_and_moves_only_along_the_long_one(size):
    """As the evaluation's centre crop: zero rows (or columns) split evenly on both sides of the short side."""
    image = Image.new("RGB", size, "white")
    for seed in range(5):
        crop = np.asarray(random_crop(image, 40, np.random.default_rng(seed)))[..., 0]
        along = crop if size[0] > size[1] else crop.T  # rows across the short side
        assert (along[:10] == 0).all() and (along[10:30] == 255).all() and (along[30:] == 0).all(), seed


def test_max_eval_samples_keeps_the_same_test_rows_for_every_seed(tmp_path):
    test = rows([0, 1] * 20, ["sd"] * 40).add_column("index", list(range(40)))
    source = saved(tmp_path, {"train": rows([0, 1] * 20, ["sd"] * 40).add_column("index", list(range(40))),
                              "test": test})
    args = DataArguments(dataset_name=source, max_train_samples=8, max_eval_samples=8)
    first, second = (load_detection_data(args, need_train=True, seed=seed) for seed in (0, 1))
    assert first.test["sd"]["index"] == second.test["sd"]["index"]
    assert first.train["index"] != second.train["index"]  # the training draw follows the seed


def test_random_crops_reach_every_position_including_the_last():
    columns = np.arange(10, dtype=np.uint8)  # pixel value = its column
    image = Image.fromarray(np.broadcast_to(columns[None, :, None], (8, 10, 3)).copy())
    lefts = {int(np.asarray(random_crop(image, 8, np.random.default_rng(seed)))[0, 0, 0]) for seed in range(60)}
    assert lefts == {0, 1, 2}
    tall = image.transpose(Image.Transpose.TRANSPOSE)  # pixel value = its row: the vertical position is drawn too
    tops = {int(np.asarray(random_crop(tall, 8, np.random.default_rng(seed)))[0, 0, 0]) for seed in range(60)}
    assert tops == {0, 1, 2}


def test_reading_generator_names_does_not_write_the_dataset_again(tmp_path):
    names = datasets.ClassLabel(names=["ProGAN", "SD14"])
    folder = saved(tmp_path, {"test": rows([0, 1, 0, 1]).add_column("generator", [0, 0, 1, 1], feature=names)})
    before = sorted(path.name for path in Path(folder).rglob("*"))
    test = load_detection_data(DataArguments(dataset_name=folder), need_train=False).test
    assert list(test) == ["ProGAN", "SD14"]
    assert sorted(path.name for path in Path(folder).rglob("*")) == before  # no cache file of a rewritten copy


def test_a_dataset_of_labels_alone_keeps_its_rows():
    # the label column was removed first, and a table of no columns has no rows to add the new one to
    alone = normalize_labels(datasets.Dataset.from_dict({"label": ["fake", "real", "fake"]}), "label")
    assert list(alone["label"]) == [1, 0, 1] and alone.column_names == ["label"]


@pytest.mark.parametrize("labels, feature", [
    (["real", "fake", "real", "fake"], datasets.Value("string")),
    ([0, 1, 0, 1], datasets.ClassLabel(names=["ai", "nature"])),  # ids flipped by name: 0 = ai is fake
    ([0, 1, 0, 1], datasets.Value("int64")),
    ([0, 1, 0, 1], datasets.ClassLabel(num_classes=2)),
])
def test_labels_of_every_kind_are_read_without_writing_into_the_saved_dataset(tmp_path, labels, feature):
    split = rows(labels * 2, ["sd"] * 4 + ["gan"] * 4, label_feature=feature).add_column("index", list(range(8)))
    folder = saved(tmp_path, {"train": split, "test": split})
    before = sorted(path.name for path in Path(folder).rglob("*"))
    # subsets per generator and a selected training generator are selections: their labels were written out too
    data = load_detection_data(DataArguments(dataset_name=folder, train_generators=["sd"]), need_train=True)
    assert sorted(path.name for path in Path(folder).rglob("*")) == before  # was a cache-*.arrow from cast/map
    flipped = feature == datasets.ClassLabel(names=["ai", "nature"])
    for subset, indices in ((data.test["sd"], [0, 1, 2, 3]), (data.test["gan"], [4, 5, 6, 7]), (data.train, [0, 1, 2, 3])):
        assert subset.features["label"] == datasets.ClassLabel(names=["real", "fake"])
        assert subset.column_names == ["image", "label", "generator", "index"]  # in their places
        assert list(subset["index"]) == indices
        assert list(subset["label"]) == ([1, 0, 1, 0] if flipped else [0, 1, 0, 1])


def test_a_test_folder_inside_the_training_folder_is_refused(tmp_path):
    # train/ holds 0_real, 1_fake and a generator folder whose images the --eval_dir then names again
    train = Path(image_tree(tmp_path / "train"))
    heldout = image_tree(train / "heldout")
    with pytest.raises(ValueError, match="2 test images from --eval_dir .* are also training images"):
        load_detection_data(DataArguments(train_dir=str(train), eval_dir=heldout), need_train=True)
    # the same folder as a raw --dataset_name (datasets' imagefolder) and as --eval_dir (--train_dir D --eval_dir D
    # was refused already)
    flat = image_tree(tmp_path / "flat")
    with pytest.raises(ValueError, match="also training images"):
        load_detection_data(DataArguments(dataset_name=flat, eval_dir=flat), need_train=True)
    # a folder link in the training tree that leads to the test folder: the same files under other paths
    wild = image_tree(tmp_path / "wild")
    linked = Path(image_tree(tmp_path / "linked"))
    (linked / "more").symlink_to(wild, target_is_directory=True)
    with pytest.raises(ValueError, match="2 test images .* are also training images"):
        load_detection_data(DataArguments(train_dir=str(linked), eval_dir=wild), need_train=True)
    # the same folder as --train_dir and as a raw --dataset_name that gives the test data
    with pytest.raises(ValueError, match="test images from --dataset_name .* are also training images"):
        load_detection_data(DataArguments(train_dir=flat, dataset_name=flat), need_train=True)
    # a test tree copied from the training tree with hard links (`cp -al`): the same files under other names
    copied = tmp_path / "copied"
    shutil.copytree(train, copied, copy_function=os.link)
    with pytest.raises(ValueError, match="test images from --eval_dir .* are also training images"):
        load_detection_data(DataArguments(train_dir=str(train), eval_dir=str(copied)), need_train=True)
    # folders beside each other in one tree share no file
    tree = tmp_path / "tree"
    image_tree(tree / "train")
    image_tree(tree / "test")
    data = load_detection_data(DataArguments(train_dir=str(tree / "train"), eval_dir=str(tree / "test")), True)
    assert data.train.num_rows == 2 and sum(len(s) for s in data.test.values()) == 2


def test_a_validation_folder_that_is_also_test_data_is_refused(tmp_path):
    # was: train_dir=X (train/ and val/) with eval_dir=X/val selected the model on its very test images, unwarned
    root = tmp_path / "sd14"
    image_tree(root / "train")
    image_tree(root / "val")
    with pytest.raises(ValueError, match="2 test images from --eval_dir .* are also validation images .* "
                                         "--validation_split none"):
        load_detection_data(DataArguments(train_dir=str(root), eval_dir=str(root / "val")), need_train=True)
    data = load_detection_data(DataArguments(train_dir=str(root), eval_dir=str(root / "val"), validation_split="none"),
                               need_train=True)
    assert data.validation == {} and sum(len(subset) for subset in data.test.values()) == 2
    # a test folder beside the training tree: validation from val/, nothing shared
    data = load_detection_data(DataArguments(train_dir=str(root), eval_dir=image_tree(tmp_path / "wild")), True)
    assert sum(len(subset) for subset in data.validation.values()) == 2


def test_the_training_split_is_never_also_the_validation_split(tmp_path, caplog):
    # a folder with only val/ subfolders: its one split, "validation", is trained on
    root = tmp_path / "only-val"
    image_tree(root / "val")
    data = load_detection_data(DataArguments(train_dir=str(root), eval_dir=image_tree(tmp_path / "test")), True)
    assert data.train_split == "validation" and data.train.num_rows == 2 and data.validation == {}
    assert "no validation: split 'validation' is the training data" in caplog.text
    source = saved(tmp_path, {"train": rows([0, 1]), "test": rows([0, 1])})
    data = load_detection_data(DataArguments(dataset_name=source, validation_split="train"), True)
    assert data.train_split == "train" and data.validation == {}


def test_folders_take_the_column_names_given_for_the_dataset(tmp_path):
    # a Hub dataset with its own column names, tested on a folder (whose columns are image/label/generator)
    hub_style = rows([0, 1, 0, 1], ["sd", "sd", "gan", "gan"]).rename_columns(
        {"image": "img", "label": "is_fake", "generator": "model"})
    source = saved(tmp_path, {"train": hub_style, "validation": hub_style})
    wild = tmp_path / "wild"
    for generator in ("sdv14", "gan"):
        image_tree(wild / generator)
    args = DataArguments(dataset_name=source, eval_dir=str(wild), image_column="img", label_column="is_fake",
                         generator_column="model")
    data = load_detection_data(args, need_train=True)
    assert {name: len(subset) for name, subset in data.test.items()} == {"gan": 2, "sdv14": 2}
    assert list(data.validation) == ["gan", "sd"] and "img" in data.test["gan"].column_names


def test_splits_reported_under_one_subset_name_are_refused(tmp_path):
    source = saved(tmp_path, {"test_sd": rows([0, 1]), "sd": rows([0, 1, 1])})
    with pytest.raises(ValueError, match=r"splits \['sd', 'test_sd'\] would all be reported as subset 'sd'"):
        load_detection_data(DataArguments(dataset_name=source, eval_splits=["test_sd", "sd"]), need_train=False)


def test_max_eval_samples_limits_the_validation_subsets_too(tmp_path):
    source = saved(tmp_path, {"train": rows([0, 1] * 4), "validation": rows([0, 1] * 20), "test": rows([0, 1] * 20)})
    data = load_detection_data(DataArguments(dataset_name=source, max_eval_samples=4), need_train=True)
    assert [len(s) for s in data.validation.values()] == [4] and [len(s) for s in data.test.values()] == [4]


def test_messages_name_the_split_and_what_to_give(tmp_path):
    source = saved(tmp_path, {"test": rows([-1, -1])})
    with pytest.raises(ValueError, match="test split 'test': 2 of 2 rows have no label"):
        load_detection_data(DataArguments(dataset_name=source), need_train=False)
    with pytest.raises(ValueError, match="no training data: give --train_dir or --dataset_name"):
        load_detection_data(DataArguments(eval_dir=image_tree(tmp_path / "test")), need_train=True)
    # ClassLabel(num_classes=2) names its ids "0" and "1": the 0/1 integers that plain int labels are
    numbered = rows([0, 1, 1], label_feature=datasets.ClassLabel(num_classes=2))
    assert normalize_labels(numbered, "label").features["label"].names == ["real", "fake"]
    for strings in (["0", "1", "1"], ["1", "1"]):  # digit strings are names saying nothing: refused alike
        with pytest.raises(ValueError, match="cannot tell real from fake"):
            normalize_labels(rows(strings, label_feature=datasets.Value("string")), "label")


def test_an_image_folder_without_labels_points_to_the_folder_arguments(tmp_path):
    # label folders at two depths: datasets' imagefolder gives the images without labels
    image_tree(tmp_path / "mixed")
    image_tree(tmp_path / "mixed" / "gan")
    with pytest.raises(ValueError, match="no label column 'label'.*give a real/fake tree as --train_dir/--eval_dir"):
        load_detection_data(DataArguments(dataset_name=str(tmp_path / "mixed")), need_train=False)


def test_a_saved_dataset_given_as_a_folder_of_images_points_to_dataset_name(tmp_path):
    source = saved(tmp_path, {"train": rows([0, 1], ["sd"] * 2), "test": rows([0, 1], ["sd"] * 2)})
    for args in (DataArguments(train_dir=source, eval_dir=image_tree(tmp_path / "test")),
                 DataArguments(eval_dir=source)):
        with pytest.raises(ValueError, match=r"holds a saved dataset \(dataset_dict.json.*give it as --dataset_name"):
            load_detection_data(args, need_train=args.train_dir is not None)


def test_a_folder_whose_own_name_is_not_utf8_is_read(tmp_path):
    evaluated = image_tree(tmp_path / os.fsdecode(b"test-\xff"))
    data = load_detection_data(DataArguments(train_dir=image_tree(tmp_path / "train"), eval_dir=evaluated), True)
    assert list(data.test) == ["test-\\xff"] and len(data.test["test-\\xff"]) == 2


def test_a_validation_split_named_must_exist_and_must_not_be_test_data(tmp_path):
    source = saved(tmp_path, {"train": rows([0, 1], ["sd", "sd"]), "val": rows([0, 1], ["sd", "sd"]),
                              "test": rows([0, 1], ["gan", "gan"])})
    with pytest.raises(ValueError, match=r"--validation_split 'valdation': no such split among \['train', 'val', 'test'\]"):
        load_detection_data(DataArguments(dataset_name=source, validation_split="valdation"), need_train=True)
    with pytest.raises(ValueError, match="--validation_split 'test' is also test data"):
        load_detection_data(DataArguments(dataset_name=source, validation_split="test"), need_train=True)
    named = load_detection_data(DataArguments(dataset_name=source, validation_split="val"), need_train=True)
    assert list(named.validation) == ["sd"] and list(named.test) == ["gan"]
    assert list(load_detection_data(DataArguments(dataset_name=source), need_train=True).validation) == ["sd"]
    off = load_detection_data(DataArguments(dataset_name=source, validation_split="none"), need_train=True)
    assert off.validation == {} and list(off.test) == ["gan"]  # switched off although `val` exists


def test_a_misspelt_image_column_names_the_argument_before_any_image_is_read(tmp_path):
    source = saved(tmp_path, {"train": rows([0, 1], ["sd", "sd"]), "test": rows([0, 1], ["gan", "gan"])})
    with pytest.raises(ValueError, match=r"no image column 'im' \(--image_column\); its columns are \['image', "):
        load_detection_data(DataArguments(dataset_name=source, image_column="im"), need_train=True)


def test_a_training_folder_without_test_data_points_at_its_own_test_folder(tmp_path):
    folder = image_tree(tmp_path / "photos")
    with pytest.raises(ValueError, match=f"nothing to evaluate on: .*--eval_dir {folder}"):
        load_detection_data(DataArguments(train_dir=folder), need_train=True)


def test_processes_check_a_share_of_the_images_each_and_together_all(monkeypatch):
    from detection_data import ImageRows, check_images

    good = png_bytes()
    data = {"image": [{"bytes": good, "path": None}] * 6, "label": [0, 1] * 3}
    data["image"][3] = {"bytes": good[:60], "path": None}
    dataset = datasets.Dataset.from_dict(data, features=datasets.Features(
        {"image": datasets.Image(), "label": datasets.ClassLabel(names=["real", "fake"])}))
    opened = []
    read = ImageRows.__getitem__
    monkeypatch.setattr(ImageRows, "__getitem__", lambda rows, index: (opened.append(index), read(rows, index))[1])
    check_images({"sd": dataset}, "image", "test", process_index=0, num_processes=2)  # rows 0, 2, 4
    with pytest.raises(ValueError, match="test subset 'sd', row 3: image: truncated"):
        check_images({"sd": dataset}, "image", "test", process_index=1, num_processes=2)
    assert opened == [0, 2, 4, 1, 3]
    with pytest.raises(ValueError, match="row 3"):
        check_images({"sd": dataset}, "image", "test")  # one process: every row


def test_every_image_of_an_eval_folder_is_evaluated_or_named_in_a_warning(tmp_path, caplog):
    # one generator in a test/ folder, one under no split folder: both are test data (the second was read as a
    # `train` split and silently left out, since a `test` split existed)
    wild = tmp_path / "wild"
    image_tree(wild / "midjourney")
    image_tree(wild / "dalle3" / "test")
    data = load_detection_data(DataArguments(eval_dir=str(wild)), need_train=False)
    assert {name: len(subset) for name, subset in data.test.items()} == {"dalle3": 2, "midjourney": 2}
    # a split that is not test data is named, with its size, not dropped silently
    image_tree(wild / "sd" / "val")
    with caplog.at_level("WARNING"):
        data = load_detection_data(DataArguments(eval_dir=str(wild)), need_train=False)
    assert sorted(data.test) == ["dalle3", "midjourney"]
    assert "split(s) 'validation' (2 images) not evaluated" in caplog.text
    # the training folder given as --eval_dir too keeps its unfoldered images as training data
    tree = tmp_path / "tree"
    image_tree(tree / "sd")
    image_tree(tree / "test" / "gan")
    data = load_detection_data(DataArguments(train_dir=str(tree), eval_dir=str(tree)), need_train=True)
    assert data.train.num_rows == 2 and list(data.test) == ["gan"]
    # `--eval_splits train` named a plain folder's images before they became its test split: the error says so
    with pytest.raises(ValueError, match="images under no split folder are its 'test' split"):
        load_detection_data(DataArguments(eval_dir=str(tmp_path / "wild" / "midjourney"), eval_splits=["train"]), False)


def test_folders_for_both_training_and_test_data_replace_the_dataset(tmp_path: Path) -> None:
    """A preset's --dataset_name was loaded (and failed when absent) although --train_dir and --eval_dir replace it;
    such a run also recorded a MiniGenImage version it never read."""
    from training_args import reads_minigenimage

    tree = tmp_path / "tree"
    image_tree(tree / "train")
    image_tree(tree / "test")
    folders = {"train_dir": str(tree / "train"), "eval_dir": str(tree / "test")}
    data = load_detection_data(DataArguments(dataset_name=str(tmp_path / "no-such-dataset"), **folders), True)
    assert len(data.train) > 0 and list(data.test) != []
    assert not reads_minigenimage(DataArguments(dataset_name="minigenimage", **folders))
    assert reads_minigenimage(DataArguments(dataset_name="minigenimage", eval_dir=folders["eval_dir"]))  # trains on it
    assert reads_minigenimage(DataArguments()) and not reads_minigenimage(DataArguments(train_dir=folders["train_dir"]))


def test_a_training_split_given_by_name_must_exist_even_when_the_data_has_one(tmp_path):
    source = saved(tmp_path, {"train": rows([0, 1] * 4), "test": rows([0, 1] * 4)})
    only = saved(tmp_path / "only", {"photos": rows([0, 1] * 4)})
    assert load_detection_data(DataArguments(dataset_name=only, eval_dir=image_tree(tmp_path / "t")),
                               need_train=True).train_split == "photos"  # the default name: the only split stands in
    for data_args in (DataArguments(dataset_name=source, train_split="trian"),  # was ignored: it trained on "photos"
                      DataArguments(dataset_name=only, eval_dir=image_tree(tmp_path / "t2"), train_split="validaton")):
        with pytest.raises(ValueError, match="no training split '(trian|validaton)' among"):
            load_detection_data(data_args, need_train=True)
