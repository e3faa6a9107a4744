"""Real/fake image data for training and evaluation: where it comes from and how it becomes pixels.

Sources (one `DatasetDict` with `image`, `label` 0 = real / 1 = fake, `generator`): the embedded MiniGenImage
benchmark, a converter's `save_to_disk` folder, a Hub dataset id, or a raw folder tree (`--train_dir/--eval_dir`).
Test subsets are the `test_<subset>` splits, else the `test` split (or a folder's only split) grouped by generator.

Preprocessing never resizes by default (resizing blurs the generator's pixel traces). Training takes a random
crop of the model size (zero padding when the image is smaller) and an optional horizontal flip; evaluation uses
the model's image processor (centre crop with zero padding). Both end in the same `Collator`
(`preprocessing.Preprocessing` of the processor), so normalisation is identical. Crops and flips are drawn from a
generator seeded by (seed, epoch, image index): the data a step sees does not depend on what ran before it, which
makes resuming from a checkpoint exact.
"""

import logging
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import datasets
import numpy as np
import torch
from PIL import Image
from tqdm.auto import tqdm
from transformers import BaseImageProcessor

from image_io import ImageLoadError, load_rgb_image
from labels import LABEL_NAMES, label_meaning
from preprocessing import Preprocessing
from training_args import MINIGENIMAGE, DataArguments, reads_dataset_name

logger = logging.getLogger(__name__)
# What other datasets call their model-selection split, tried when the default `validation` is absent.
VALIDATION_ALIASES = ("validation", "valid", "val", "dev")
NO_VALIDATION = "none"  # --validation_split none: no model-selection data, even where a validation split exists
EVAL_SAMPLE_SEED = 0  # which rows --max_eval_samples keeps, fixed


@dataclass
class DetectionData:
    """Training split, validation subsets (model selection) and test subsets (the reported numbers)."""

    train: datasets.Dataset | None = None
    validation: dict[str, datasets.Dataset] = field(default_factory=dict)
    test: dict[str, datasets.Dataset] = field(default_factory=dict)
    train_split: str | None = None  # the split trained on (a folder's only split may have another name)


def load_source(name: str | None, config_name: str | None, data_args: DataArguments) -> datasets.DatasetDict:
    """A `DatasetDict` from MiniGenImage, a `save_to_disk` folder, a folder `datasets.load_dataset` reads, or the Hub;
    a class-label generator or subset column reads as its class names."""
    source = read_source(name, config_name, data_args)
    return datasets.DatasetDict({
        split: names_as_strings(dataset, [data_args.generator_column, "subset"]) for split, dataset in source.items()
    })


def names_as_strings(dataset: datasets.Dataset, columns: list[str]) -> datasets.Dataset:
    """`ClassLabel` columns among `columns` (how Hub datasets often store a generator: ids 0, 1, 2 named "Real",
    "ProGAN", ...) as their names: the tables then name generators, `--train_generators` takes the names, and the
    recorded training family can be compared with the test subsets' names."""
    for column in columns:
        feature = dataset.features.get(column)
        if isinstance(feature, datasets.ClassLabel):
            # the column alone, swapped in memory: a `map` would write the whole dataset (images too) again
            names = [None if i is None or i < 0 else feature.int2str(i) for i in dataset[column]]
            dataset = dataset.remove_columns(column).add_column(column, names, feature=datasets.Value("string"))
    return dataset


def read_source(name: str | None, config_name: str | None, data_args: DataArguments) -> datasets.DatasetDict:
    """The `DatasetDict` that `name` holds, as datasets reads it."""
    if name in (None, MINIGENIMAGE):
        from datasets_scripts.minigenimage import build_minigenimage

        return build_minigenimage(
            seed=data_args.minigenimage_seed,
            reduced=data_args.minigenimage_reduced,
            cache_dir=data_args.minigenimage_cache_dir,
        )
    folder = Path(name)
    if folder.is_dir():
        # `save_to_disk` output, or files `load_dataset` reads (a Hub dataset repository downloaded whole: parquet)
        from_disk = (folder / "dataset_dict.json").is_file() or (folder / "state.json").is_file()
        try:
            loaded = datasets.load_from_disk(name) if from_disk else datasets.load_dataset(name, config_name)
        except Exception as error:  # noqa: BLE001 - datasets raises anything (an empty saved split: IndexError)
            raise ValueError(f"--dataset_name {name}: cannot load this folder ({type(error).__name__}: {error})") from error
        return loaded if isinstance(loaded, datasets.DatasetDict) else datasets.DatasetDict({"test": loaded})
    try:
        return datasets.load_dataset(name, config_name)
    except Exception as error:  # noqa: BLE001 - offline, misspelt, private: say which name and why
        raise ValueError(f"--dataset_name {name}: no such folder, and loading it from the Hub failed ({error})") from error


def load_folder(raw_dir: str, data_args: DataArguments, default_split: str = "train") -> datasets.DatasetDict:
    """A raw real/fake folder tree (0_real/1_fake, nature/ai or real/fake leaves), its columns named as the
    `--image_column`/`--label_column`/`--generator_column` of the run, so that a Hub dataset's column names given
    for `--dataset_name` find the folder's columns too. Images under no split folder go to `default_split`."""
    from datasets_scripts.folder import load_folder_dataset

    if (Path(raw_dir) / "dataset_dict.json").is_file():  # else "no usable images found ... (no label folder)"
        raise ValueError(f"{raw_dir} holds a saved dataset (dataset_dict.json: a converter's output), not image "
                         "folders: give it as --dataset_name")
    names = {"image": data_args.image_column, "label": data_args.label_column, "generator": data_args.generator_column}
    folder = load_folder_dataset(raw_dir, default_split)
    columns = next(iter(folder.values())).column_names
    renamed = {old: new for old, new in names.items() if old != new and new not in columns}
    return folder.rename_columns(renamed) if renamed else folder


def normalize_labels(dataset: datasets.Dataset, label_column: str) -> datasets.Dataset:
    """Rename the label column to `label` and make it a `ClassLabel` with 0 = real, 1 = fake.

    Named classes (a `ClassLabel` or strings such as "real" / "AI") are mapped by name; integer labels must be
    0 or 1 already. Anything else is an error: a guessed mapping could flip the classes.
    """
    if label_column not in dataset.column_names:
        # datasets' imagefolder gives images alone when the label folders are not all at one depth
        hint = (" (a folder of images read by datasets' imagefolder, which found no label folders at one depth: give "
                "a real/fake tree as --train_dir/--eval_dir, read at any depth)") if dataset.column_names == ["image"] else ""
        raise ValueError(f"no label column {label_column!r}: the data has columns {dataset.column_names}{hint}")
    if label_column != "label":
        # a `label` column beside the named one (a content class, say) is not the real/fake label: it gives way
        dataset = dataset.remove_columns([name for name in ["label"] if name in dataset.column_names])
        dataset = dataset.rename_column(label_column, "label")
    feature = dataset.features["label"]
    numbered = isinstance(feature, datasets.ClassLabel) and feature.names == ["0", "1"]  # ClassLabel(num_classes=2)
    stored = None  # the class id of every row, when the column holds strings
    if isinstance(feature, datasets.Value) and feature.dtype in ("string", "large_string"):
        names = distinct_values(dataset, "label")
        if None in names:
            raise ValueError(f"{dataset['label'].count(None)} of {len(dataset)} rows have no label")
        # strings become the class names of a ClassLabel, mapped by name below like any named classes
        feature = datasets.ClassLabel(names=sorted(names))
        id_of = {name: feature.str2int(name) for name in names}
        stored = [id_of[name] for name in column_values(dataset, "label")]
    elif isinstance(feature, (datasets.ClassLabel, datasets.Value)):
        ids = distinct_values(dataset, "label")
        if None in ids or (isinstance(feature, datasets.ClassLabel) and any(i < 0 for i in ids)):
            missing = sum(i is None or i < 0 for i in dataset["label"])  # a ClassLabel stores a missing one as -1
            raise ValueError(f"{missing} of {len(dataset)} rows have no label")
    if isinstance(feature, datasets.ClassLabel):
        if feature.names == LABEL_NAMES and stored is None:
            return dataset
        if numbered:  # ids named by themselves: the 0/1 integers (strings "0"/"1" are names, refused below)
            return with_real_fake_labels(dataset, column_values(dataset, "label"))
        # read the way model labels are ("AI-generated", "Real photo", "not_ai"), so data and models agree
        new_ids = [label_meaning(name) for name in feature.names]
        unknown = [name for name, meaning in zip(feature.names, new_ids) if meaning is None]
        if unknown:
            raise ValueError(f"label names {feature.names}: cannot tell real from fake for {unknown}")
        # each id to the id of its class name, not cast_column: a cast would keep the ids and silently flip the classes
        # (align_labels_with_mapping, too, fails on a subset of one class: its ClassLabel keeps one name)
        stored = column_values(dataset, "label") if stored is None else stored
        return with_real_fake_labels(dataset, [new_ids[label] for label in stored])
    elif isinstance(feature, datasets.Value) and feature.dtype.startswith(("int", "uint")):
        unexpected = sorted(value for value in ids if value not in (0, 1))
        if unexpected:
            raise ValueError(f"integer labels must be 0 = real or 1 = fake; found {unexpected}")
    else:
        raise ValueError(f"label column of type {feature}: want class names, strings or 0/1 integers")
    return with_real_fake_labels(dataset, column_values(dataset, "label"))


def with_real_fake_labels(dataset: datasets.Dataset, labels: list[int]) -> datasets.Dataset:
    """`dataset` with `labels` (0 = real, 1 = fake) as its `label` column, a real/fake `ClassLabel`, in its place.
    The new column is built in memory beside the untouched others: `cast_column` and `map` would write a cache file
    into the folder of a saved dataset (a run must leave it as it found it), and `map` would copy every image.
    Called on whole splits: on a selection (`select`, `filter`) `add_column` writes such a copy too."""
    columns, new = dataset.column_names, "label (real/fake)"  # added first: a table of no columns has no rows
    dataset = dataset.add_column(new, labels, feature=datasets.ClassLabel(names=LABEL_NAMES))
    return dataset.remove_columns("label").rename_column(new, "label").select_columns(columns)


def group_by_generator(dataset: datasets.Dataset, generator_column: str, fallback: str) -> dict[str, datasets.Dataset]:
    """One subset per generator value (reals carry the generator of their subset); `fallback` when there is none."""
    if generator_column not in dataset.column_names or len(dataset) == 0:  # an empty split stays in sight
        return {fallback: dataset}
    generators = distinct_values(dataset, generator_column)
    if None in generators or "" in generators:
        missing = sum(value is None or value == "" for value in dataset[generator_column])
        raise ValueError(
            f"{missing} rows have no {generator_column!r}: to report per generator, every row (reals included) needs "
            "the generator of its subset; fill it in, or give --generator_column a name the data lacks to report "
            "the split as one subset"
        )
    if len(generators) == 1:
        return {str(generators[0]): dataset}
    column = dataset[generator_column]
    return {  # each an index of its rows in memory, not a cache file in the data's folder (select_rows)
        str(name): dataset.select([i for i, value in enumerate(column) if value == name], keep_in_memory=True)
        for name in sorted(generators)
    }


def eval_split_names(splits: list[str], data_args: DataArguments) -> list[str]:
    """Which splits hold test data: explicit ones, else `test_*`, else `test`, else a folder's only split."""
    if data_args.eval_splits:
        missing = [name for name in data_args.eval_splits if name not in splits]
        if missing:
            folder = (" (an --eval_dir folder's images under no split folder are its 'test' split)"
                      if data_args.eval_dir and "test" in splits else "")
            raise ValueError(f"--eval_splits {missing} not found; the dataset has splits {splits}{folder}")
        return list(data_args.eval_splits)
    prefixed = [name for name in splits if name.startswith(data_args.test_split_prefix)]
    if prefixed:
        if "test" in splits:  # never dropped silently
            logger.warning(f"split 'test' is not evaluated: the {data_args.test_split_prefix}* splits {prefixed} are the "
                           "test data; name the splits to evaluate with --eval_splits")
        return prefixed
    if "test" in splits:
        return ["test"]
    if len(splits) == 1:
        return splits
    raise ValueError(f"no test split among {splits}: name them with --eval_splits")


def test_subsets(source: Mapping[str, datasets.Dataset], data_args: DataArguments) -> dict[str, datasets.Dataset]:
    """Named test subsets: one per split, or one per generator when there is a single split."""
    names = eval_split_names(list(source), data_args)
    if len(names) == 1:
        return group_by_generator(source[names[0]], data_args.generator_column, fallback=names[0])
    prefix = data_args.test_split_prefix
    subset_of = {name: name.removeprefix(prefix) for name in names}
    for subset in set(subset_of.values()):  # `test_sd` and `sd` would both be `sd`, one silently replacing the other
        splits = sorted(name for name, other in subset_of.items() if other == subset)
        if len(splits) > 1:
            raise ValueError(f"splits {splits} would all be reported as subset {subset!r}: evaluate one of them "
                             "(--eval_splits)")
    return {subset: source[name] for name, subset in subset_of.items()}


def distinct_values(dataset: datasets.Dataset, column: str) -> list:
    """The values of `column`, each once, in order of first appearance. Unlike `Dataset.unique`, which first copies
    a selection's rows (every image) into a cache file beside a saved dataset's own, this reads the one column."""
    return dataset.with_format("arrow")[column].unique().to_pylist()


def column_values(dataset: datasets.Dataset, column: str) -> list:
    """Every row's value of `column`, read as one Arrow column (indexing the dataset converts it row by row)."""
    return dataset.with_format("arrow")[column].to_pylist()


def select_rows(dataset: datasets.Dataset, wanted: dict[str, list[str] | None]) -> datasets.Dataset:
    """Rows whose every `column` holds one of its `wanted` values (a column given None or [] is not filtered).

    Each value must occur in the data (a misspelt one, `sdv14` for AIGIBench's `sdv1.4`, would otherwise quietly
    train on the rest), and the selection must leave some rows.
    """
    wanted = {column: set(values) for column, values in wanted.items() if values}
    for column, values in wanted.items():
        if column not in dataset.column_names:
            raise ValueError(f"cannot filter on {column!r}: the training data has columns {dataset.column_names}")
        found = set(map(str, distinct_values(dataset, column)))  # the command line gives strings; a column may hold numbers
        if values - found:
            raise ValueError(
                f"no training rows with {column} {sorted(values - found)}; the training data has {sorted(map(str, found))}"
            )
    if not wanted:
        return dataset
    columns = list(wanted)
    # keep_in_memory: only an index of the kept rows, which would otherwise be written as a cache file into a
    # dataset folder given to --dataset_name (a run must leave that folder as it found it)
    kept = dataset.filter(lambda *row: all(str(value) in wanted[c] for c, value in zip(columns, row)),
                          input_columns=columns, keep_in_memory=True)
    if len(kept) == 0:
        raise ValueError(f"no training rows hold all of {({c: sorted(v) for c, v in wanted.items()})} at once")
    return kept


def truncate(dataset: datasets.Dataset, limit: int | None, seed: int) -> datasets.Dataset:
    """`limit` rows drawn at random (seeded), as transformers' example scripts do: the first rows of a converted
    folder are all of one class, so taking them would train or test on reals only."""
    if limit is None or limit >= len(dataset):
        return dataset
    # An index of the drawn rows, held in memory (not a cache file in the data's folder, nor a copy of the images)
    return dataset.shuffle(seed=seed, keep_in_memory=True).select(range(limit), keep_in_memory=True)


def validation_split_of(asked: str, splits: list[str], reported: list[str]) -> str | None:
    """The split that selects the model, or None: `--validation_split none`, or the default `validation` when the
    data has none (nor `valid`/`val`/`dev`) or reports it as test data. A split named otherwise must exist and must
    not be test data: selecting the model on test images would flatter the reported result."""
    if asked == NO_VALIDATION:
        return None
    if asked == VALIDATION_ALIASES[0]:  # the default
        found = next((name for name in VALIDATION_ALIASES if name in splits), None)
        if found in reported:
            logger.warning(f"no validation: split {found!r} is test data")
            return None
        return found
    if asked not in splits:
        raise ValueError(f"--validation_split {asked!r}: no such split among {splits}")
    if asked in reported:
        raise ValueError(f"--validation_split {asked!r} is also test data: choose another split, or leave it out of "
                         "the test splits (--eval_splits)")
    return asked


def load_detection_data(data_args: DataArguments, need_train: bool, seed: int = 0) -> DetectionData:
    """Load the train split (when training), the validation subsets and the test subsets (`seed`: which rows
    `max_train_samples` keeps; `max_eval_samples` always keeps the same ones)."""

    def prepare(dataset: datasets.Dataset, name: str) -> datasets.Dataset:
        if data_args.image_column not in dataset.column_names:  # found now, not by datasets' own error later
            raise ValueError(f"{name}: no image column {data_args.image_column!r} (--image_column); its columns are "
                             f"{dataset.column_names}")
        try:
            return normalize_labels(dataset, data_args.label_column)
        except ValueError as error:  # which of the splits and subsets it is
            raise ValueError(f"{name}: {error}") from None

    source = load_source(data_args.dataset_name, data_args.dataset_config_name, data_args) if reads_dataset_name(
        data_args, need_train) else None
    same_folder = data_args.eval_dir is not None and data_args.train_dir is not None and (
        Path(data_args.train_dir).resolve() == Path(data_args.eval_dir).resolve()
    )
    eval_source = source
    if data_args.eval_dir:  # its images under no split folder are test data, unless it is the training folder too
        eval_source = load_folder(data_args.eval_dir, data_args, "train" if same_folder else "test")
    if eval_source is None:
        same = f" (a test/ folder inside --train_dir: --eval_dir {data_args.train_dir})" if data_args.train_dir else ""
        raise ValueError(f"nothing to evaluate on: give --eval_dir or --dataset_name{same}")
    test_names = eval_split_names(list(eval_source), data_args)
    left_out = [name for name in eval_source if name not in test_names]
    if data_args.eval_dir and not same_folder and not data_args.eval_splits and left_out:  # never dropped silently
        counts = ", ".join(f"{name!r} ({len(eval_source[name])} images)" for name in left_out)
        logger.warning(f"--eval_dir {data_args.eval_dir}: split(s) {counts} not evaluated, only {test_names}; name the "
                       "splits to evaluate with --eval_splits")
    data = DetectionData()
    train_source = None
    if need_train:
        if same_folder:
            train_source = eval_source
        else:
            train_source = load_folder(data_args.train_dir, data_args) if data_args.train_dir else source
        if train_source is None:
            raise ValueError("no training data: give --train_dir or --dataset_name (--eval_dir is the test data only)")
        # the only split stands in for the default name, never for one given (a misspelt one was ignored)
        asked = data_args.train_split != DataArguments.train_split
        if data_args.train_split not in train_source and (len(train_source) != 1 or asked):
            raise ValueError(f"no training split {data_args.train_split!r} among {list(train_source)}: give "
                             "--train_split, or --train_dir")
        split = data_args.train_split if data_args.train_split in train_source else next(iter(train_source))
        # a split that is reported as test data is never trained on, nor used for model selection
        reported = test_names if train_source is eval_source else []
        if split in reported:
            raise ValueError(
                f"split {split!r} would be both the training and the test data: give separate test data "
                "(--eval_dir, --eval_splits) or training data (--train_dir, --train_split)"
            )
        # labels read on whole splits, before any selection: rebuilding the label column of a selection would write
        # a copy of its rows (every image) into a saved dataset's folder
        train = select_rows(
            prepare(train_source[split], f"training split {split!r}"),
            {data_args.generator_column: data_args.train_generators, "subset": data_args.train_subsets},
        )
        data.train = truncate(train, data_args.max_train_samples, seed)
        data.train_split = split
        classes = set(distinct_values(data.train, "label"))
        if not classes:
            raise ValueError(f"the training split {split!r} holds no rows")
        if classes != {0, 1}:
            only = ", ".join(LABEL_NAMES[label] for label in sorted(classes))
            drawn = f" (in the {data_args.max_train_samples} rows --max_train_samples drew)" if data_args.max_train_samples else ""
            raise ValueError(f"the training data holds {only} images only{drawn}: a detector needs both real and fake ones")
        validation_split = validation_split_of(data_args.validation_split, list(train_source), reported)
        if validation_split == split:  # model selection on the training images would say nothing
            logger.warning(f"no validation: split {split!r} is the training data")
        elif validation_split is not None:
            validation = prepare(train_source[validation_split], f"validation split {validation_split!r}")
            data.validation = {  # --max_eval_samples limits it as transformers' example scripts do
                name: truncate(subset, data_args.max_eval_samples, EVAL_SAMPLE_SEED)
                for name, subset in group_by_generator(validation, data_args.generator_column, "validation").items()
            }
    subsets = test_subsets({**eval_source, **{name: prepare(eval_source[name], f"test split {name!r}")
                                              for name in test_names}}, data_args)
    # found now, not when their metrics fail after the training
    remedies = {"validation": "train without validation (--validation_split none)",
                "test": "leave them out with --eval_splits"}
    for kind, group in (("validation", data.validation), ("test", subsets)):
        empty = [name for name, subset in group.items() if len(subset) == 0]
        if empty:
            raise ValueError(f"{kind} subset(s) {', '.join(empty)} hold no rows: {remedies[kind]}, or fill them")
    # the same test rows whatever the run's seed: runs over seeds (the ablation) are compared on the same images
    data.test = {name: truncate(ds, data_args.max_eval_samples, EVAL_SAMPLE_SEED) for name, ds in subsets.items()}
    if data.train is not None and train_source is not eval_source:
        # Training (and validation) and test data read from two sources: two folders may still hold the same files
        # (one inside the other, the same folder given as --train_dir and --dataset_name, or a tree copied with hard
        # links).
        train_root = data_args.train_dir or data_args.dataset_name
        test_flag = "--eval_dir" if data_args.eval_dir else "--dataset_name"
        test_root = data_args.eval_dir or data_args.dataset_name
        if train_root and test_root and Path(train_root).is_dir() and Path(test_root).is_dir():
            check_no_shared_files({"training": [data.train], "validation": list(data.validation.values())}, train_root,
                                  data.test, test_root, data_args.image_column, test_flag)
    if data.train is not None and data_args.train_dir:
        warn_lsun_classes_as_generators(data.train, data.test, data_args.generator_column, data_args.train_dir)
    warn_single_class(data.validation, "validation")
    warn_single_class(data.test, "test")
    return data


def image_files(dataset: datasets.Dataset, image_column: str, root: str) -> dict[tuple[int, int] | str, str]:
    """The files a dataset read from a folder holds, keyed as the converters tell files apart (`file_identity`:
    device and inode, the same under every symbolic or hard link; the path with its links resolved for a file that
    cannot be reached) → path. Paths are relative to `root` from this repository's folder reader, absolute from
    datasets' imagefolder; read in Arrow batches, without decoding an image."""
    from datasets_scripts.convert_common import file_identity

    paths = dataset.select_columns([image_column]).cast_column(image_column, datasets.Image(decode=False))
    files = {}
    for batch in paths.with_format("arrow").iter(batch_size=1024):
        for path in batch.column(image_column).combine_chunks().field("path").to_pylist():
            if path:  # links followed: a folder link inside the training tree reaches the test files themselves
                full = os.path.join(root, path)
                identity = file_identity(Path(full))
                files[os.path.realpath(full) if isinstance(identity, str) else identity] = full
    return files


# Why a test image may be neither a training nor a validation image, and what to do about it.
SHARED_FILE_REMEDIES = {
    "training": "give test images that are not in the training data",
    "validation": "the model would be selected on test images; give test images that are not in the validation data, "
                  "or --validation_split none",
}


def check_no_shared_files(kinds: dict[str, list[datasets.Dataset]], train_root: str, test: dict[str, datasets.Dataset],
                          test_root: str, image_column: str, test_flag: str = "--eval_dir") -> None:
    """`ValueError` when a training or validation image (`kinds`: "training" / "validation" → datasets read from
    `train_root`) is also a test image: a test folder inside the training folder (or the training folder inside it,
    or the same folder named twice) puts the same files in both, as does a tree copied with hard links, and the test
    numbers would be measured on trained, or model-selecting, images. Folders beside each other (train/ and test/ of
    one tree) share none."""
    tested = {}
    for subset in test.values():
        tested.update(image_files(subset, image_column, test_root))
    for kind, group in kinds.items():
        shared = set().union(*(image_files(dataset, image_column, train_root).keys() for dataset in group)) & tested.keys()
        if shared:
            example = min(tested[key] for key in shared)
            raise ValueError(f"{len(shared)} test images from {test_flag} {test_root} are also {kind} images (e.g. "
                             f"{example}): {SHARED_FILE_REMEDIES[kind]}")


def warn_lsun_classes_as_generators(train: datasets.Dataset, test: dict[str, datasets.Dataset], generator_column: str,
                                    train_dir: str) -> None:
    """Warn when a training folder's generators are ProGAN's LSUN classes and a test subset is ProGAN: ForenSynths'
    and AIGIBench's ProGAN training data is one folder per class, which a generic folder tree reads as generators of
    their own, so the training family's test subset would count as an unseen generator (the converters of those
    benchmarks name the classes `progan`; a tree of another origin may use such names as it likes)."""
    from datasets_scripts.convert_common import PROGAN_CLASSES
    from reporting import generator_family

    if generator_column not in train.column_names:
        return
    classes = sorted(str(name) for name in distinct_values(train, generator_column) if str(name).lower() in PROGAN_CLASSES)
    progan = [name for name in test if generator_family(name) == "progan"]
    if classes and progan:
        logger.warning(f"--train_dir {train_dir}: its generators {classes} are ProGAN's LSUN classes, so test subset(s) "
                       f"{progan} count as unseen generators; for ForenSynths or AIGIBench, convert the tree with "
                       "datasets_scripts/forensynths.py or aigibench.py, which name those classes progan")


def warn_single_class(subsets: dict[str, datasets.Dataset], kind: str) -> None:
    """Warn about subsets of one class among several: their accuracy is one class's and they have no AP or AUC,
    yet they count in the mean like a generator. The usual cause is reals carrying a generator value of their own
    ("Real") instead of the generator of the subset they belong to."""
    if len(subsets) < 2:
        return
    single = {name: LABEL_NAMES[classes[0]] for name, subset in subsets.items()
              if len(classes := distinct_values(subset, "label")) == 1}
    if single:
        listed = ", ".join(f"{name!r} ({label} only)" for name, label in single.items())
        logger.warning(f"{kind} subset(s) {listed} hold one class: they count in the mean row like a generator, with "
                       "one class's accuracy and no AP/AUC. If reals carry a generator value of their own, give each "
                       "real the generator of its subset")


# ------------------------------------------------------------------------------------------------ pixels
def resize_short_side(image: Image.Image, size: int) -> Image.Image:
    """The short side to `size`, the long one in proportion (rounded down), bicubic: what a CLIP image processor with
    `do_resize` does before its centre crop, so that training crops come from images of the evaluation scale."""
    width, height = image.size
    short, long = min(width, height), max(width, height)
    long = int(size * long / short)
    return image.resize((size, long) if width <= height else (long, size), Image.Resampling.BICUBIC)


def random_crop(image: Image.Image, size: int, rng: np.random.Generator) -> Image.Image:
    """A `size`×`size` crop at a random position; smaller sides are zero-padded (as the eval centre crop does)."""
    width, height = image.size
    left = int(rng.integers(0, width - size + 1)) if width > size else (width - size) // 2
    top = int(rng.integers(0, height - size + 1)) if height > size else (height - size) // 2
    return image.crop((left, top, left + size, top + size))  # PIL fills outside the image with zeros


class ImageRows(torch.utils.data.Dataset):
    """(RGB image, label) of each row, opened by `image_io.load_rgb_image` from the stored bytes or path.

    An image column of `datasets.Image` type is read undecoded: datasets would otherwise decode it with Pillow first,
    and a corrupt image would stop the run with Pillow's error, naming neither the row nor the file. An image that
    cannot be read raises `ImageLoadError` (a ValueError: train.py's exit status 2) naming `name` and the row.
    """

    def __init__(self, dataset: datasets.Dataset, image_column: str, name: str):
        if image_column not in dataset.column_names:
            raise ValueError(f"no image column {image_column!r} in {name}: the data has columns {dataset.column_names}")
        feature = dataset.features[image_column]
        if isinstance(feature, datasets.Image) and feature.decode:
            dataset = dataset.cast_column(image_column, datasets.Image(decode=False))
        self.dataset, self.image_column, self.name = dataset, image_column, name

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, index: int) -> tuple[Image.Image, int]:
        row = self.dataset[index]
        try:
            image = load_rgb_image(row[self.image_column])
        except ImageLoadError as error:
            raise ImageLoadError(f"{self.name}, row {index}: {error}") from None
        return image, int(row["label"])


def check_images(subsets: dict[str, datasets.Dataset], image_column: str, kind: str, process_index: int = 0,
                 num_processes: int = 1) -> None:
    """Open every image of `subsets` once and raise `ImageLoadError` naming the first that cannot be read; with
    several processes each opens every `num_processes`-th image from `process_index` on.

    `train.py` runs it on the validation and test data before training: a corrupt test image would otherwise stop
    the run only at evaluation, after all the training. Split over the processes it takes a fraction of the time,
    and no process waits at a barrier while one alone decodes a benchmark's test set (NCCL's timeout is minutes).
    """
    for name, dataset in subsets.items():
        rows = ImageRows(dataset.select_columns([image_column, "label"]), image_column, f"{kind} subset {name!r}")
        shard = range(process_index, len(rows), num_processes)
        for index in tqdm(shard, desc=f"checking {kind} images: {name}", leave=False, mininterval=2,
                          disable=process_index != 0):
            rows[index]


class TrainImages(ImageRows):
    """Training examples as (cropped PIL image, label), resized first when the model's processor resizes
    (`resize`); set `epoch` before each epoch."""

    def __init__(self, dataset: datasets.Dataset, image_column: str, size: int, seed: int, flip: bool,
                 name: str = "training data", resize: bool = False):
        super().__init__(dataset, image_column, name)
        self.size, self.seed, self.flip, self.resize = size, seed, flip, resize
        self.epoch = 0

    def __getitem__(self, index: int) -> tuple[Image.Image, int]:
        image, label = super().__getitem__(index)
        rng = np.random.default_rng([self.seed, self.epoch, index])
        if self.resize:
            image = resize_short_side(image, self.size)
        image = random_crop(image, self.size, rng)
        if self.flip and rng.random() < 0.5:
            image = image.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
        return image, label


class EvalImages(ImageRows):
    """Evaluation examples as (PIL image, label, row), optionally degraded (robustness protocol) before preprocessing;
    the row seeds the image's test noise (`train.row_noise_seeds`)."""

    def __init__(
        self, dataset: datasets.Dataset, image_column: str, corruption: Callable[[Image.Image], Image.Image] | None = None,
        name: str = "test data",
    ):
        super().__init__(dataset, image_column, name)
        self.corruption = corruption

    def __getitem__(self, index: int) -> tuple[Image.Image, int, int]:
        image, label = super().__getitem__(index)
        return (self.corruption(image) if self.corruption else image), label, index


class Collator:
    """Batch of (image, label) or (image, label, row) → `pixel_values`, `labels` (and `rows`) through the model's
    image processor (`Preprocessing`: its crop-only split when it has one, the same floats at a fraction of the
    cost)."""

    def __init__(self, processor: BaseImageProcessor):
        self.preprocessing = Preprocessing(processor)

    def __call__(self, examples: list[tuple]) -> dict[str, torch.Tensor]:
        images, labels, *rows = zip(*examples)
        batch = {"pixel_values": self.preprocessing(images), "labels": torch.tensor(labels, dtype=torch.long)}
        if rows:
            batch["rows"] = torch.tensor(rows[0], dtype=torch.long)
        return batch
