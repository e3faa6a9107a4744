"""What real/fake labels mean, whatever a dataset or a detector on the Hub calls them: 0 = real, 1 = fake.

Training data maps its label names with `LABEL_SYNONYMS`; a detector's outputs are read through `fake_label_index`,
so a model whose labels are "AI" / "Not AI" or "artificial" / "human" is scored the right way round everywhere
(evaluation, the scanner, the demo). The demo's Space carries this file.
"""

import re

LABEL_NAMES = ["real", "fake"]
# Folder and Hub datasets name the classes in many ways; each maps to 0 = real or 1 = fake.
LABEL_SYNONYMS = {
    "real": 0, "0_real": 0, "nature": 0, "natural": 0, "human": 0, "authentic": 0,
    "fake": 1, "1_fake": 1, "ai": 1, "generated": 1, "synthetic": 1, "artificial": 1,
}
NEGATIONS = {"not", "non", "no"}


def label_meaning(name: str) -> int | None:
    """What a label name means, word by word: 0 = real ("Real photo", "not_ai"), 1 = fake ("AI", "Fake Image",
    "deepfake"), None when it says neither or both."""
    words = re.findall(r"[a-z]+", name.lower())
    fake = any(LABEL_SYNONYMS.get(word) == 1 or word.endswith("fake") for word in words)
    real = any(LABEL_SYNONYMS.get(word) == 0 for word in words)
    if fake and any(word in NEGATIONS for word in words):
        fake, real = False, True
    return None if fake == real else int(fake)


def fake_label_index(id2label: dict) -> int:
    """Which output of a classifier is P(fake) (PiN-CLIP: 1): the one label that means fake, or, of two labels,
    the one that is not the real one. Raises `ValueError` when the names do not tell."""
    meanings = {int(index): label_meaning(str(name)) for index, name in id2label.items()}
    fakes = [index for index, meaning in meanings.items() if meaning == 1]
    reals = [index for index, meaning in meanings.items() if meaning == 0]
    if len(fakes) == 1:
        return fakes[0]
    if not fakes and len(reals) == 1 and len(meanings) == 2:
        return next(index for index in meanings if index != reals[0])
    raise ValueError(f"cannot tell which label means fake in id2label={id2label}")
