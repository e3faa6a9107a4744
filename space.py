"""Assemble (and optionally upload) a Hugging Face Space that runs the demo on a saved PiN-CLIP model.

    python space.py --model outputs/pinclip-minigenimage --output space/
    python space.py --model outputs/pinclip-minigenimage --output space/ --repo_id USER/pinclip-demo --upload

The folder holds `app.py` and the modules it imports, the example images, a `requirements.txt` with the
versions this repository pins, a README whose front matter makes it a Gradio Space, and the model in
`model/` (the folder `app.py` loads by default).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import sys
from pathlib import Path

import gradio as gr
from huggingface_hub import HfApi

from hub_push import UPLOAD_IGNORE, repo_id_problem
from inference import Detector

REPO_DIR = Path(__file__).resolve().parent
# The model classes travel too: the demo loads its PiN-CLIP with them, running no code from the model folder.
APP_FILES = (
    "app.py", "configuration_pinclip.py", "corruptions.py", "image_io.py", "inference.py", "labels.py",
    "modeling_pinclip.py", "preprocessing.py",
)
# The demo's run-time packages, at this repository's tested versions (requirements.txt): what it imports, and tqdm,
# which transformers and huggingface_hub use for their progress bars.
RUNTIME_PACKAGES = ("torch", "transformers", "safetensors", "huggingface_hub", "gradio", "pillow", "numpy", "pyyaml", "tqdm")
MODEL_DIR_NAME = "model"
# A Space folder written before holds every entry written below, and may hold the caches `python app.py` leaves.
WRITTEN_ENTRIES = frozenset({*APP_FILES, "assets", MODEL_DIR_NAME, "requirements.txt", "README.md"})
SPACE_ENTRIES = WRITTEN_ENTRIES | {"__pycache__", ".gradio"}
# Spaces run Python 3.10 unless told otherwise; transformers 5.21 and later (required above) need 3.11.
SPACE_PYTHON = "3.11"


def runtime_requirements(requirements: Path = REPO_DIR / "requirements.txt") -> list[str]:
    """The lines of `requirements` that name a runtime package (pins kept), plus any runtime package it lacks."""
    lines = [line.strip() for line in requirements.read_text().splitlines()] if requirements.is_file() else []
    kept, named = [], set()
    for line in lines:
        name = re.split(r"[<>=!~\[; ]", line, maxsplit=1)[0].lower().replace("-", "_")
        if name in RUNTIME_PACKAGES:
            kept.append(line)
            named.add(name)
    return kept + [package for package in RUNTIME_PACKAGES if package not in named]


def space_readme(title: str, model_name: str) -> str:
    """README.md with the front matter the Hub reads to run the folder as a Gradio Space."""
    # JSON strings are YAML strings: a title with ': ', '#', '[' or a word such as `yes` stays the text it is.
    return (
        "---\n"
        f"title: {json.dumps(title, ensure_ascii=False)}\n"
        "emoji: 🔍\n"
        "colorFrom: indigo\n"
        "colorTo: gray\n"
        "sdk: gradio\n"
        f"sdk_version: {gr.__version__}\n"
        f'python_version: "{SPACE_PYTHON}"\n'
        "app_file: app.py\n"
        "pinned: false\n"
        "short_description: Is this image AI-generated? A PiN-CLIP detector\n"
        "tags:\n- ai-generated-image-detection\n- image-forensics\n- clip\n"
        "---\n\n"
        f"# {title}\n\n"
        f"Demo of the PiN-CLIP AI-generated image detector `{model_name}` (in `{MODEL_DIR_NAME}/`): upload an image "
        "for real/fake probabilities and a robustness preview, or scan several files at once. Scores come from a "
        "research model: evidence to weigh, not proof.\n"
    )


def first_names(names: list[str], shown: int = 5) -> str:
    """The first `shown` of `names`, and how many more there are."""
    return ", ".join(names[:shown]) + (f" and {len(names) - shown} more" if len(names) > shown else "")


def build_space(model_dir: str | Path, output_dir: str | Path, title: str = "PiN-CLIP detector") -> Path:
    """Write the Space folder for the saved model in `model_dir` into `output_dir`.

    An existing `output_dir` is replaced only when it holds nothing but what a Space folder written before holds, and
    never when it holds `model_dir` or the working folder: anything else (`--output .`, a typo naming another folder, a
    clone of the Space repository) is refused, not deleted.
    """
    model_dir, output_dir = Path(model_dir), Path(output_dir)
    if not (model_dir / "config.json").is_file():
        raise FileNotFoundError(f"{model_dir} is not a saved model folder (no config.json); run `python train.py` first")
    if output_dir.resolve() == model_dir.resolve() or output_dir.resolve() in model_dir.resolve().parents:
        raise ValueError(f"output {output_dir} holds the model {model_dir}: replacing it would delete the model")
    try:  # as the Space will load it: `python app.py`, no --trust_remote_code, on a CPU
        Detector.load(model_dir, device="cpu")
    except Exception as error:  # noqa: BLE001 - weights that do not fit, a corrupt file, a model with its own code
        raise ValueError(f"{model_dir}: the Space's app could not load this model, so the Space would only show an "
                         f"error: {str(error).removeprefix(f'{model_dir}: ')}") from error
    if output_dir.exists():
        if not output_dir.is_dir():
            raise FileExistsError(f"output {output_dir} exists and is not a folder: not replaced")
        if output_dir.resolve() in (Path.cwd().resolve(), *Path.cwd().resolve().parents):
            raise ValueError(f"output {output_dir} holds the current folder: name a folder of its own, e.g. space/")
        # Only what this function writes (and what running the app there adds) may be deleted: a clone of the Space
        # repository (.git), notes or a checkout that happen to hold an app.py and a model/ folder are refused.
        entries = {path.name for path in output_dir.iterdir()}
        foreign = sorted(entries - SPACE_ENTRIES)
        if foreign:
            raise FileExistsError(f"output {output_dir} is not a Space folder written before: it holds what space.py "
                                  f"does not write ({first_names(foreign)}); not replaced, name a new or empty folder")
        if entries and not WRITTEN_ENTRIES <= entries:  # someone's own app.py, say
            missing = ", ".join(sorted(WRITTEN_ENTRIES - entries))
            raise FileExistsError(f"output {output_dir} is not a Space folder written before (it lacks {missing}): "
                                  "not replaced, name a new or empty folder")
    # Written beside the output and renamed onto it: a build stopped midway (a full disk, Ctrl-C) leaves the earlier
    # Space folder, not a half-written one that a rerun would refuse. A link to a Space folder rebuilds that folder.
    target = output_dir.resolve() if output_dir.is_symlink() else output_dir
    staging = target.with_name(f".{target.name}.{os.getpid()}.building")
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    try:
        for name in APP_FILES:
            shutil.copy2(REPO_DIR / name, staging / name)
        shutil.copytree(REPO_DIR / "assets", staging / "assets", ignore=shutil.ignore_patterns("README.md"))
        # Top-level files only: training checkpoints in sub-folders are not part of the model, nor are what a model
        # upload leaves local (the training log, scratch files).
        (staging / MODEL_DIR_NAME).mkdir()
        for path in sorted(model_dir.iterdir()):
            if path.is_file() and not path.name.startswith(".") and not any(map(path.match, UPLOAD_IGNORE)):
                shutil.copy2(path, staging / MODEL_DIR_NAME / path.name)
        (staging / "requirements.txt").write_text("\n".join(runtime_requirements()) + "\n")
        # Named by its absolute path: `--model .` or `runs/x/..` name the folder itself, not "" or "..".
        (staging / "README.md").write_text(space_readme(title, Path(os.path.abspath(model_dir)).name), encoding="utf-8")
        if target.exists():  # an earlier Space folder (checked above)
            shutil.rmtree(target)
        os.replace(staging, target)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return output_dir


def create_space_repo(repo_id: str, api: HfApi, private: bool = False) -> None:
    """Create the Gradio Space `repo_id` (kept as it is when it exists)."""
    api.create_repo(repo_id, repo_type="space", space_sdk="gradio", private=private, exist_ok=True)


def upload_space(folder: str | Path, repo_id: str, api: HfApi | None = None, private: bool = False) -> str:
    """Create the Space repo if needed and upload `folder` in one commit; returns the Space's URL.

    `api` defaults to `huggingface_hub.HfApi()` (token from `hf auth login` or HF_TOKEN).
    """
    api = api or HfApi()
    create_space_repo(repo_id, api, private)
    return push_space(folder, repo_id, api)


def push_space(folder: str | Path, repo_id: str, api: HfApi) -> str:
    """Upload `folder` to the existing Space `repo_id` in one commit, which also deletes every file an earlier upload
    left there that `folder` lacks (old weights beside new shards, removed examples); returns the Space's URL.

    `ValueError`, before any change, when the Space holds files this script never writes: a `--repo_id` naming
    another of the user's Spaces by mistake would lose them (the local build refuses such a folder the same way)."""
    foreign = sorted(path for path in api.list_repo_files(repo_id, repo_type="space")
                     if path.split("/")[0] not in SPACE_ENTRIES | {".gitattributes"})
    if foreign:
        raise ValueError(f"the Space {repo_id} holds files space.py does not write ({first_names(foreign)}), which the "
                         "upload would delete: name a Space of its own, or remove them there first")
    api.upload_folder(folder_path=str(folder), repo_id=repo_id, repo_type="space", commit_message="Upload PiN-CLIP demo",
                      delete_patterns="*")
    return f"https://huggingface.co/spaces/{repo_id}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="outputs/pinclip-minigenimage", help="saved model folder (default: %(default)s)")
    parser.add_argument("--output", default="space", help="Space folder to write (default: %(default)s)")
    parser.add_argument("--title", default="PiN-CLIP detector")
    parser.add_argument("--repo_id", help="Space id USER/NAME, needed with --upload")
    parser.add_argument("--upload", action="store_true", help="upload the folder to the Hub")
    parser.add_argument("--private", action="store_true")
    args = parser.parse_args(argv)
    if args.upload and (not args.repo_id or "/" not in args.repo_id or repo_id_problem(args.repo_id)):
        # a bare NAME lands under the logged-in user on the Hub, and the Space's address would then be printed wrong
        parser.error(f"--upload needs --repo_id USER/NAME, a Hub Space id (got {args.repo_id!r})")
    try:  # first: a misspelt --model or an occupied --output must not leave an empty Space on the Hub
        folder = build_space(args.model, args.output, args.title)
    except (OSError, ValueError) as error:  # a full disk, an output that cannot be written: one line
        parser.exit(2, f"space.py: error: {error}\n")
    print(f"Space folder written to {folder}; try it with `python {folder / 'app.py'}`")
    if args.upload:
        api = HfApi()
        try:
            create_space_repo(args.repo_id, api, args.private)
        except Exception as error:  # noqa: BLE001 - offline, no login, no rights: one line, not a traceback
            parser.exit(2, f"space.py: error: --upload: cannot create the Space {args.repo_id} on the Hub ({error})\n")
        try:
            print(f"uploaded: {push_space(folder, args.repo_id, api)}")
        except ValueError as error:  # a Space holding someone's own files: nothing was changed
            parser.exit(2, f"space.py: error: {error}\n")
        except Exception as error:  # noqa: BLE001 - the connection may drop during the upload
            parser.exit(1, f"space.py: error: uploading {folder} to {args.repo_id} failed ({error}); the folder is "
                           "complete: rerun the command to retry\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
