"""What real/fake labels mean, whatever a dataset or a detector on the Hub calls them: 0 = real, 1 = fake.

Training data's class names ("AI-generated" / "Real photo") are read with `label_meaning`, the same rule as a model's
label names; a detector's outputs are read through `FakeOutput`, so a model whose labels are "AI" / "Not AI" or
"artificial" / "human", or whose one logit is "real", is scored the right way round everywhere (evaluation, the
scanner, the demo). The demo's Space carries this file.
"""

import re
from dataclasses import dataclass

LABEL_NAMES = ["real", "fake"]
# Folder and Hub datasets name the classes in many ways; each maps to 0 = real or 1 = fake.
LABEL_SYNONYMS = {
    "real": 0, "0_real": 0, "nature": 0, "natural": 0, "human": 0, "authentic": 0,
    "fake": 1, "1_fake": 1, "ai": 1, "generated": 1, "synthetic": 1, "artificial": 1,
}
NEGATIONS = ("not", "non", "no", "without")
# A word that turns round the word right before it: "AI-free" is real.
TRAILING_NEGATIONS = ("free",)


def word_meaning(word: str) -> int | None:
    """0 = real, 1 = fake or None for one lower-case word ("deepfake": any word ending in "fake")."""
    return LABEL_SYNONYMS.get(word, 1 if word.endswith("fake") else None)


def label_meaning(name: str) -> int | None:
    """What a label name means, word by word: 0 = real ("Real photo", "not_ai", "Not AI-generated", "Real (not AI)",
    "made without AI", "AI-free"), 1 = fake ("AI", "Fake Image", "deepfake", "not real", "non-human"), None when it
    says neither or both. A negation, a word of its own or a prefix ("nonfake"), turns round the words after it that
    share the first one's meaning ("not AI generated"), up to a word of the other meaning or a clause break (",", ";",
    brackets); a trailing one ("free") turns round the word right before it."""
    meanings: list[int] = []
    negated, negated_meaning, after_meaning = False, None, False
    for word in re.findall(r"[a-z]+|[,;()]", name.lower()):
        if word in TRAILING_NEGATIONS and after_meaning:
            meanings[-1] = 1 - meanings[-1]
            after_meaning = False
            continue
        after_meaning = False
        if word in ",;()":
            negated, negated_meaning = False, None
            continue
        if word in NEGATIONS:
            negated, negated_meaning = True, None
            continue
        prefix = next((p for p in NEGATIONS if word.startswith(p) and word_meaning(word[len(p):]) is not None), None)
        if prefix:
            negated, negated_meaning, word = True, None, word[len(prefix):]
        meaning = word_meaning(word)
        if meaning is None:
            continue
        if negated and negated_meaning in (None, meaning):
            negated_meaning = meaning
            meaning = 1 - meaning
        else:
            negated, negated_meaning = False, None
        meanings.append(meaning)
        after_meaning = True
    return meanings[0] if len(set(meanings)) == 1 else None


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


@dataclass(frozen=True)
class FakeOutput:
    """Which logit of a classifier gives P(fake), and how, as `pipeline("image-classification")` reads it: softmax
    over the labels (PiN-CLIP: output 1), or the sigmoid of that logit for a multi-label config (`problem_type`) or a
    single-logit model, whose one label may name the real class (then P(fake) = 1 - sigmoid)."""

    index: int
    sigmoid: bool = False
    of_real: bool = False

    @classmethod
    def of(cls, config) -> "FakeOutput":
        """From a model config's `id2label` and `problem_type`; `ValueError` when the names do not tell, or for a
        regression model, whose raw output (the pipeline's score) is no probability to decide at a threshold."""
        if config.problem_type == "regression":
            raise ValueError("the model is configured for regression (problem_type='regression'): its raw output is "
                             "not a probability of fake; a detector must be a classifier")
        id2label = config.id2label
        if len(id2label) == 1:  # a softmax over one logit is always 1: its sigmoid is P(that label)
            (index, name), = id2label.items()
            meaning = label_meaning(str(name))
            if meaning is None:
                raise ValueError(f"cannot tell whether the single output of id2label={id2label} means fake or real")
            return cls(int(index), sigmoid=True, of_real=meaning == 0)
        return cls(fake_label_index(id2label), sigmoid=config.problem_type == "multi_label_classification")

    def probability(self, logits):
        """`(B, num_labels)` float logits (a torch tensor) → `(B,)` P(fake)."""
        if not self.sigmoid:
            return logits.softmax(dim=-1)[:, self.index]
        p_label = logits[:, self.index].sigmoid()
        return 1 - p_label if self.of_real else p_label
