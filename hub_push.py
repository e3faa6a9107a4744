"""Upload a finished output folder to the Hub as one commit (`model.push_to_hub` alone would publish a stock README
and no image processor)."""

from pathlib import Path

from huggingface_hub import HfApi

# Training state and scratch files stay local; the model, processor, remote code, card, metrics and plots go up.
UPLOAD_IGNORE = ["checkpoints/**", "random-clip/**", "train_log.jsonl", "*.tmp"]
# Files of an earlier upload to the same repository that this one replaces or leaves out: a run without --robustness
# has no grid, a run saved whole no shards. The Hub copy must not keep them beside the new model.
UPLOAD_REPLACES = ["robustness.*", "plots/**", "*.safetensors", "*.safetensors.index.json"]


def create_model_repo(repo_id: str, private: bool = False) -> None:
    """Create `repo_id` (kept as it is when it exists). `train.py` calls it before training, as transformers' Trainer
    does, so that a missing login or network fails in seconds rather than after the run."""
    HfApi().create_repo(repo_id, repo_type="model", private=private, exist_ok=True)


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
