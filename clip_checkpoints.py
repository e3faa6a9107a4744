"""Random-weight CLIP checkpoints written to a local folder, with a real (tiny) CLIP tokenizer.

They let tests, the default training run and the benchmarks go through exactly the loading code a real
`openai/clip-vit-large-patch14` goes through (`CLIPModel.from_pretrained` + `AutoTokenizer.from_pretrained` on a
folder) without the Hub. Shapes follow the OpenAI checkpoints; weights are random.
"""

import json
from pathlib import Path

import torch
from transformers import CLIPConfig, CLIPModel, CLIPTokenizer
from transformers.convert_slow_tokenizer import bytes_to_unicode

# Vision tower shapes: (image_size, patch_size, hidden, layers, heads, mlp, projection_dim).
CLIP_SHAPES = {
    "tiny": dict(image_size=32, patch_size=8, hidden_size=64, num_hidden_layers=2, num_attention_heads=4,
                 intermediate_size=128, projection_dim=64),
    # MiniGenImage crops are 64 px: the default training run's backbone sees a whole crop, 8x8 patches.
    "tiny-64": dict(image_size=64, patch_size=8, hidden_size=64, num_hidden_layers=2, num_attention_heads=4,
                    intermediate_size=128, projection_dim=64),
    "vit-b-16": dict(image_size=224, patch_size=16, hidden_size=768, num_hidden_layers=12, num_attention_heads=12,
                     intermediate_size=3072, projection_dim=512),
    "vit-l-14": dict(image_size=224, patch_size=14, hidden_size=1024, num_hidden_layers=24, num_attention_heads=16,
                     intermediate_size=4096, projection_dim=768),
}
# A small byte-level BPE vocabulary: every byte, every byte ending a word, and merges for the prompt words.
PROMPT_WORDS = ("a", "real", "fake", "photo", "image", "generated", "by", "ai", "of")


def tiny_clip_tokenizer(folder: Path) -> CLIPTokenizer:
    """Write `vocab.json`/`merges.txt` for a real CLIP tokenizer with a tiny vocabulary and load it."""
    symbols = list(bytes_to_unicode().values())
    vocab_tokens = symbols + [s + "</w>" for s in symbols]
    merges: list[str] = []
    for word in PROMPT_WORDS:
        pieces = list(word[:-1]) + [word[-1] + "</w>"]
        while len(pieces) > 1:
            merges.append(f"{pieces[0]} {pieces[1]}")
            pieces = [pieces[0] + pieces[1]] + pieces[2:]
            if pieces[0] not in vocab_tokens:
                vocab_tokens.append(pieces[0])
    vocab_tokens += ["<|startoftext|>", "<|endoftext|>"]
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "vocab.json").write_text(json.dumps({token: i for i, token in enumerate(vocab_tokens)}))
    unique_merges = list(dict.fromkeys(merges))
    (folder / "merges.txt").write_text("#version: 0.2\n" + "\n".join(unique_merges) + "\n")
    return CLIPTokenizer(vocab=str(folder / "vocab.json"), merges=str(folder / "merges.txt"))


def write_random_clip(folder: str | Path, shape: str = "tiny", seed: int = 0) -> Path:
    """Save a random-weight `CLIPModel` of the named vision shape plus its tokenizer into `folder`."""
    if shape not in CLIP_SHAPES:
        raise ValueError(f"unknown CLIP shape {shape!r}; choose one of {sorted(CLIP_SHAPES)}")
    folder = Path(folder)
    tokenizer = tiny_clip_tokenizer(folder)
    vision = dict(CLIP_SHAPES[shape])
    projection_dim = vision.pop("projection_dim")
    text = dict(
        vocab_size=len(tokenizer), hidden_size=64, intermediate_size=128, num_hidden_layers=2,
        num_attention_heads=4, max_position_embeddings=77,
        bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id,
    )
    torch.manual_seed(seed)
    model = CLIPModel(CLIPConfig(vision_config=vision, text_config=text, projection_dim=projection_dim))
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder
