"""Shared fixtures: a tiny random CLIP checkpoint folder and a saved PiN-CLIP built from it (no Hub)."""

import os
import sys
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

from clip_checkpoints import write_random_clip  # noqa: E402


@pytest.fixture(scope="session")
def tiny_clip_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A CLIP checkpoint folder (random weights, real tiny tokenizer) loaded like `openai/clip-vit-large-patch14`."""
    return write_random_clip(tmp_path_factory.mktemp("clip") / "tiny-clip", shape="tiny", seed=0)


@pytest.fixture(scope="session")
def tiny_model_dir(tiny_clip_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A saved PiN-CLIP (model, remote code, image processor) built with `from_clip`."""
    from modeling_pinclip import PinClipForImageClassification

    out = tmp_path_factory.mktemp("pinclip") / "model"
    PinClipForImageClassification.from_clip(str(tiny_clip_dir)).save_pretrained(out)
    return out
