"""Upload a finished output folder to the Hub as one commit (`model.push_to_hub` alone would publish a stock README
and no image processor)."""

from pathlib import Path

from huggingface_hub import HfApi

# Training state and scratch files stay local; the model, processor, remote code, card, metrics and plots go up.
UPLOAD_IGNORE = ["checkpoints/**", "random-clip/**", "train_log.jsonl", "*.tmp"]


def push_folder(folder: str | Path, repo_id: str, private: bool = False) -> str:
    """Create `repo_id` if needed and upload `folder` in one `upload_folder` call; returns the commit URL."""
    api = HfApi()
    api.create_repo(repo_id, repo_type="model", private=private, exist_ok=True)
    commit = api.upload_folder(
        folder_path=str(folder),
        repo_id=repo_id,
        repo_type="model",
        commit_message="Upload PiN-CLIP detector (model, processor, remote code, card)",
        ignore_patterns=UPLOAD_IGNORE,
    )
    return str(getattr(commit, "commit_url", commit))
