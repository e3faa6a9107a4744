"""labels: which output of any real/fake classifier is P(fake), and the detector that reads it."""

import pytest
import torch
from PIL import Image
from transformers import ViTConfig, ViTForImageClassification, ViTImageProcessor

from inference import Detector
from labels import FakeOutput, fake_label_index, label_meaning


@pytest.mark.parametrize(
    "id2label, fake_index",
    [({0: "real", 1: "fake"}, 1), ({0: "not_ai", 1: "ai"}, 1), ({0: "AI", 1: "Not AI"}, 0),
     ({0: "Fake Image", 1: "Real Image"}, 0), ({0: "Deepfake", 1: "Realism"}, 0), ({0: "human", 1: "machine"}, 1),
     ({"0": "LABEL_0", "1": "LABEL_1"}, None), ({0: "fake", 1: "ai"}, None)],
)
def test_the_fake_output_of_any_classifier(id2label, fake_index):
    if fake_index is None:
        with pytest.raises(ValueError, match="cannot tell which label means fake"):
            fake_label_index(id2label)
    else:
        assert fake_label_index(id2label) == fake_index


def ai_not_ai_detector(threshold: float = 0.5) -> Detector:
    """A Hub-style classifier whose output 0 is "AI" (fake) and output 1 "Not AI"."""
    config = ViTConfig(image_size=16, patch_size=8, hidden_size=32, num_hidden_layers=1, num_attention_heads=2,
                       intermediate_size=32, id2label={0: "AI", 1: "Not AI"}, label2id={"AI": 0, "Not AI": 1})
    torch.manual_seed(0)
    return Detector(ViTForImageClassification(config), ViTImageProcessor(size={"height": 16, "width": 16}), threshold)


def test_a_detector_with_other_label_names_scores_the_fake_output():
    """A Hub-style classifier whose labels are "AI" / "Not AI": the scanner and demo read output 0 as P(fake)."""
    detector = ai_not_ai_detector()
    image = Image.new("RGB", (20, 20), (120, 30, 200))
    with torch.no_grad():
        pixels = detector.processor(images=image, return_tensors="pt")["pixel_values"]
        expected = detector.model(pixel_values=pixels).logits.softmax(-1)[0, 0].item()
    scores = detector.score_images([image])[0]
    assert scores["fake"] == pytest.approx(expected) and scores["real"] == pytest.approx(1 - expected)
    assert detector.label_of(scores["fake"]) == ("fake" if expected >= 0.5 else "real")


@pytest.mark.parametrize(
    "name, meaning",
    [("Not AI", 0), ("non-AI", 0), ("no_ai", 0), ("not fake", 0), ("Real", 0), ("AI generated", 1),
     ("deepfake", 1), ("LABEL_0", None), ("real or fake", None),
     # a negated real word is fake (it read as real), and a negation may be a prefix
     ("Not Real", 1), ("non-human", 1), ("nonfake", 0), ("NotReal", 1), ("nothing", None), ("nature", 0),
     # a negation turns round the next word only
     ("Real (not AI)", 0), ("human, not AI", 0), ("AI (not human)", 1), ("fake, not real", 1), ("real, not real", None),
     ("Not AI-generated", 0), ("not_ai_generated", 0), ("non-AI-generated", 0), ("not fake/AI", 0)],
)
def test_label_meaning_reads_negations(name, meaning):
    assert label_meaning(name) == meaning


@pytest.mark.parametrize(
    "id2label, fake_index",
    [({0: "Not AI", 1: "LABEL_1"}, 1), ({0: "non_ai", 1: "class_1"}, 1),
     ({0: "real", 1: "sd", 2: "midjourney"}, None)],
)
def test_the_fake_output_when_only_the_real_label_is_named(id2label, fake_index):
    if fake_index is None:  # three outputs and only the real one named: which is P(fake) cannot be told
        with pytest.raises(ValueError, match="cannot tell which label means fake"):
            fake_label_index(id2label)
    else:
        assert fake_label_index(id2label) == fake_index


def test_the_scanner_reads_the_fake_output_of_a_detector_with_other_label_names(tmp_path):
    detector = ai_not_ai_detector()
    path = tmp_path / "x.png"
    Image.new("RGB", (20, 20), (120, 30, 200)).save(path)
    with torch.no_grad():
        pixels = detector.processor(images=Image.open(path).convert("RGB"), return_tensors="pt")["pixel_values"]
        expected = detector.model(pixel_values=pixels).logits.softmax(-1)[0, 0].item()
    assert abs(expected - 0.5) > 1e-3  # the two outputs differ, so reading the wrong one shows
    (result,) = detector.scan([path])
    assert result.error is None and result.p_fake == pytest.approx(expected, abs=1e-6)


@pytest.mark.parametrize("threshold", [-0.1, 1.5, 50])
def test_a_threshold_outside_zero_one_is_refused(threshold):
    with pytest.raises(ValueError, match=r"must be in \[0, 1\]"):
        ai_not_ai_detector(threshold)


def test_a_score_at_the_threshold_counts_as_fake():
    """The scanner and the demo decide p(fake) >= threshold, as evaluation does (train.score_subsets)."""
    detector = ai_not_ai_detector(threshold=0.5)
    assert (detector.label_of(0.5), detector.label_of(0.4999)) == ("fake", "real")


@pytest.mark.parametrize(
    "id2label, problem_type",
    [({0: "AI generated"}, None), ({0: "real photo"}, None), ({0: "Not Real"}, None),
     ({0: "Not AI", 1: "AI"}, "multi_label_classification"),
     ({0: "AI", 1: "Not AI"}, "single_label_classification")],
)
def test_p_fake_is_the_score_the_pipeline_gives_the_fake_label(id2label, problem_type):
    """One logit, or a multi-label config: the pipeline takes sigmoids (a softmax over one logit is always 1, which
    called every image fake); a single logit named real gives P(fake) = 1 - its sigmoid."""
    from transformers import pipeline

    config = ViTConfig(image_size=16, patch_size=8, hidden_size=32, num_hidden_layers=1, num_attention_heads=2,
                       intermediate_size=32, id2label=id2label, label2id={v: k for k, v in id2label.items()},
                       problem_type=problem_type)
    torch.manual_seed(0)
    model = ViTForImageClassification(config).eval()
    torch.nn.init.normal_(model.classifier.bias, std=2.0)  # scores far from 0.5 and from each other
    processor = ViTImageProcessor(size={"height": 16, "width": 16})
    detector = Detector(model, processor)
    classify = pipeline("image-classification", model=model, image_processor=processor)
    for colour in [(120, 30, 200), (10, 240, 90)]:
        image = Image.new("RGB", (20, 20), colour)
        scores = {item["label"]: item["score"] for item in classify(image, top_k=None)}
        fake = next(name for name in scores if label_meaning(name) == 1) if len(scores) > 1 else None
        expected = scores[fake] if fake else (scores[id2label[0]] if label_meaning(id2label[0]) else 1 - scores[id2label[0]])
        assert detector.p_fake(image) == pytest.approx(expected, abs=1e-6)


def test_a_single_output_whose_name_says_neither_is_refused():
    config = ViTConfig(id2label={0: "LABEL_0"}, label2id={"LABEL_0": 0})
    with pytest.raises(ValueError, match="single output.*means fake or real"):
        FakeOutput.of(config)
