"""clip_checkpoints: the local random CLIP checkpoints the tests and the default run load like a Hub CLIP."""

from pathlib import Path

import pytest
from transformers import AutoTokenizer

from clip_checkpoints import PROMPT_WORDS, write_random_clip


def test_the_tiny_tokenizer_reads_each_prompt_word_as_one_token(tiny_clip_dir: Path) -> None:
    tokenizer = AutoTokenizer.from_pretrained(tiny_clip_dir)
    for word in PROMPT_WORDS:
        assert tokenizer.tokenize(word) == [f"{word}</w>"], word
    real, fake = (tokenizer(f"a {word} photo")["input_ids"] for word in ("real", "fake"))
    assert len(real) == len(fake) == 5 and real != fake  # <start> a real/fake photo <end>


def test_an_unknown_clip_shape_is_refused_before_writing(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="unknown CLIP shape 'huge'.*tiny-64"):
        write_random_clip(tmp_path / "clip", shape="huge")
    assert not (tmp_path / "clip").exists()
