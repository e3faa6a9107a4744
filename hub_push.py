"""Upload a finished output folder to the Hub as one commit (`model.push_to_hub` alone would publish a stock README
and no image processor). `train.py --push_to_hub` uploads the run it trains; a folder trained before:

    python hub_push.py outputs/pinclip-minigenimage --hub_model_id you/pinclip-minigenimage [--private]
"""

import argparse
import json
import re
import sys
from pathlib import Path

import yaml
from huggingface_hub import HfApi
from huggingface_hub.utils import HFValidationError, validate_repo_id

# Training state and scratch files stay local; the model, processor, remote code, card, metrics and plots go up.
UPLOAD_IGNORE = ["checkpoints/**", "random-clip/**", "train_log.jsonl", "*.tmp"]
# Files of an earlier upload to the same repository that this one replaces or leaves out: a run without --robustness
# has no grid, a run saved whole no shards, a bare `save_pretrained` folder no card, metrics or results. The Hub copy
# must not keep them beside the new model (an earlier card's figures would describe weights they never scored).
UPLOAD_REPLACES = ["robustness.*", "plots/**", "*.safetensors", "*.safetensors.index.json", "README.md",
                   "metrics.json", "results.md"]


def repo_id_problem(repo_id: str) -> str | None:
    """Why `repo_id` cannot name a Hub repository (checked here, before any file or the Hub is touched), or None."""
    try:
        validate_repo_id(repo_id)
    except HFValidationError as error:
        return f"--hub_model_id {repo_id!r} is not a Hub repository id ({error})"
    return None


def create_model_repo(repo_id: str, private: bool = False) -> str:
    """Create `repo_id` (kept as it is when it exists) and return its full id: the Hub puts a bare NAME under the
    logged-in user. `train.py` calls it before training, as transformers' Trainer does, so that a missing login or
    network fails in seconds rather than after the run."""
    return HfApi().create_repo(repo_id, repo_type="model", private=private, exist_ok=True).repo_id


def push_folder(folder: str | Path, repo_id: str) -> str:
    """Upload `folder` to the existing model repo `repo_id` in one `upload_folder` call, removing an earlier upload's
    `UPLOAD_REPLACES` files in the same commit; returns the commit URL."""
    commit = HfApi().upload_folder(
        folder_path=str(folder),
        repo_id=repo_id,
        repo_type="model",
        commit_message="Upload PiN-CLIP detector (model, processor, remote code, card)",
        ignore_patterns=UPLOAD_IGNORE,
        delete_patterns=UPLOAD_REPLACES,
    )
    return str(getattr(commit, "commit_url", commit))


def upload_problem(folder: Path) -> str | None:
    """Why `folder` would not upload as a model users can load with `pipeline("image-classification", model=...,
    trust_remote_code=True)`, or None: config, weights, image processor and the remote code its config names."""
    if not (folder / "config.json").is_file() or not any(folder.glob("*.safetensors")):
        return f"{folder} is not a saved model folder (no config.json and weights); train one with `python train.py`"
    try:
        # as transformers reads it, UTF-8 text (json.loads of bytes would also take a BOM or UTF-16, which it refuses)
        config = json.loads((folder / "config.json").read_text(encoding="utf-8"))
    except ValueError as error:  # UnicodeDecodeError and JSONDecodeError are both ValueErrors
        return f"{folder / 'config.json'} is not a JSON config ({error})"
    if not isinstance(config, dict):
        return f"{folder / 'config.json'} is not a JSON config (it holds a {type(config).__name__}, not an object)"
    needed = ["preprocessor_config.json"]  # without it the Hub's pipeline has no image processor to build
    needed += sorted({f"{reference.split('.')[0]}.py" for reference in (config.get("auto_map") or {}).values()
                      if isinstance(reference, str) and "--" not in reference})  # "other/repo--module.Class" lives elsewhere
    missing = [name for name in needed if not (folder / name).is_file()]
    if missing:
        return (f"{folder} lacks {', '.join(missing)}: the uploaded model could not be loaded from the Hub; upload the "
                "output folder train.py wrote, which has them")
    return None


def card_named_for(card_path: Path, repo_id: str) -> bytes | None:
    """The model card named after `repo_id`, as the card of a run trained with --push_to_hub is: its model-index
    entry and title (the folder's name) and its usage snippet (`pipeline(..., model="...")`); None without a card.
    Edited as text, line by line, so a card edited by hand keeps everything else as it was."""
    if not card_path.is_file():
        return None
    try:  # not read_text: its newline translation would rewrite CRLF lines
        text = card_path.read_bytes().decode("utf-8")
    except UnicodeDecodeError as error:  # the Hub reads a card as UTF-8 too: say which file, change nothing
        raise ValueError(f"{card_path} is not UTF-8 text ({error.reason} at byte {error.start}); save it as UTF-8 "
                         "and rerun") from error
    new_name = repo_id.split("/")[-1]
    entry = re.search(r"^model-index:\r?\n- name: (.+?)\r?$", text, flags=re.MULTILINE)  # as train.py writes it
    if entry:
        # YAML on both sides: a name such as 2024 or null is written quoted, and read back as the string it is
        old_name = str(yaml.safe_load(f"name: {entry.group(1)}")["name"])
        entry_name = yaml.safe_dump({"name": new_name}, allow_unicode=True, width=10**6).strip().removeprefix("name: ")
        text = re.sub(r"^(model-index:\r?\n- name: ).+?(\r?)$", lambda match: f"{match.group(1)}{entry_name}{match.group(2)}",
                      text, count=1, flags=re.MULTILINE)
        text = re.sub(rf"^(# ){re.escape(old_name)}(\r?)$", lambda match: f"{match.group(1)}{new_name}{match.group(2)}",
                      text, count=1, flags=re.MULTILINE)
    text = re.sub(r'(pipeline\("image-classification", model=)"[^"]*"', lambda match: f'{match.group(1)}"{repo_id}"', text)
    return text.encode("utf-8")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("folder", type=Path, help="an output folder of train.py (model, processor, code, card)")
    parser.add_argument("--hub_model_id", required=True, help="the model repository, USER/NAME")
    parser.add_argument("--private", action="store_true", help="create the repository private (if it is new)")
    args = parser.parse_args(argv)
    problem = repo_id_problem(args.hub_model_id)
    if problem or "/" not in args.hub_model_id:  # the card must name the repository users load: USER/NAME
        parser.error(problem or f"--hub_model_id {args.hub_model_id}: give USER/NAME (or ORG/NAME)")
    problem = upload_problem(args.folder)
    card = args.folder / "README.md"
    try:  # before the Hub: a card it cannot read leaves no empty repository
        named_card = None if problem else card_named_for(card, args.hub_model_id)
    except ValueError as error:
        problem = str(error)
    if problem:
        print(f"error: {problem}", file=sys.stderr)
        return 2
    try:
        create_model_repo(args.hub_model_id, private=args.private)
    except Exception as error:  # noqa: BLE001 - offline, no login, no rights: said in one line, nothing changed
        print(f"error: cannot create {args.hub_model_id} on the Hub ({error})", file=sys.stderr)
        return 2
    if named_card is not None:  # the repository exists: the card may name it
        card.write_bytes(named_card)
    try:
        print(f"uploaded {args.folder} → {push_folder(args.folder, args.hub_model_id)}")
    except Exception as error:  # noqa: BLE001 - the connection may drop during the upload: rerunning retries it
        print(f"error: uploading {args.folder} to {args.hub_model_id} failed ({error}); rerun to retry", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
