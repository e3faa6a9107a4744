"""PiN-CLIP model configuration.

PiN-CLIP (Positive-Incentive Noise for CLIP, Yan et al. 2025) detects AI-generated images with a CLIP
vision tower, a linear real/fake head and a noise generator: cross-attention between the image embedding
and the frozen text embeddings of class prompts ("A real photo" / "A fake photo") yields a Gaussian noise
that is injected into the visual features during training.

This file is remote code: it travels to the Hub alone, so it imports nothing from this repository.
"""

import math
import string
from dataclasses import field
from typing import Any

from transformers import CLIPTextConfig, CLIPVisionConfig, PreTrainedConfig

NOISE_MODES = ("pin", "random", "none")
NOISE_INJECTIONS = ("embedding", "tokens")
INFERENCE_NOISES = ("none", "mean", "sample")
SIGMA_ACTIVATIONS = ("softplus", "abs")
NOISE_SCALES = ("absolute", "feature_rms")
LABELS = {0: "real", 1: "fake"}
LABEL2ID = {name: index for index, name in LABELS.items()}


class PinClipConfig(PreTrainedConfig):
    r"""
    Configuration of [`PinClipForImageClassification`].

    Args:
        vision_config (`dict` or `CLIPVisionConfig`): the CLIP vision tower.
        text_config (`dict` or `CLIPTextConfig`): the CLIP text tower the prompt embeddings came from. Only its
            configuration is kept (for provenance); the saved model holds no text-tower weights.
        projection_dim (`int`): size of the CLIP joint embedding space (768 for ViT-L/14).
        noise_mode (`str`): `"pin"` (learned noise from the generator), `"random"` (ε ~ N(0, s²I), no
            generator) or `"none"` (plain fine-tuning). The three rows of the paper's ablation.
        noise_injection (`str`): `"embedding"` adds the noise to the projected image embedding; `"tokens"` adds
            per-token noise to the tokens entering the last vision block (the class token and the patch tokens).
        noise_scale (`str`): `"absolute"`: ε is added as drawn; `"feature_rms"`: ε is multiplied by each feature
            vector's root-mean-square (detached), so μ, σ and s are fractions of the feature's own size and the
            backbone cannot outgrow the noise by enlarging its features.
        inference_noise (`str`): noise at evaluation: `"none"`, `"mean"` (add μ) or `"sample"` (add μ + σz).
        noise_loss_weight (`float`): λ in `L = CE(clean) + λ · mean_j CE(noisy_j)`.
        noise_samples (`int`): m, the number of noise samples per image in training.
        random_noise_std (`float`): s, the std of the `"random"` noise, of the KL prior N(0, s²I) and the
            initial σ of the generator (so `"pin"` starts where `"random"` is).
        sigma_activation (`str`): `"softplus"` or `"abs"` (PiNI-style) to make σ positive.
        sigma_floor (`float`): added to σ, so that minimising the noisy loss cannot collapse σ to zero.
        kl_weight (`float`): weight of KL(N(μ, σ²) ‖ N(0, s²I)), averaged over dimensions; 0 disables it.
        generator_hidden_size (`int`) / generator_num_heads (`int`): width and heads of the cross-attention.
        detach_generator_input (`bool`): the generator sees a detached image feature, so the backbone gets no
            gradient through the generator: it learns from CE(h(v)) + λ·CE(h(v + ε)) with ε taken as given.
        class_words (`list[str]`): the word of each class, in label order (0 = real, 1 = fake).
        prompt_templates (`list[str]`): phrasings with one `{}` for the class word; every template of every
            class becomes one key/value of the cross-attention.
        lora_r / lora_alpha / lora_dropout / lora_target_modules: LoRA on the vision tower (r = 0: none). Saved
            models are merged, so these record how the model was trained.
        clip_name_or_path (`str`): the CLIP checkpoint this model was built from (provenance for model cards): a
            Hub id, or a local folder's name (never its path).
        resize_images (`bool`): resize the short side to the model size before the centre crop. Off by
            default: resizing destroys generator artifacts.
        classifier_dropout (`float`): dropout on the image embedding before the head.
    """

    model_type = "pinclip"
    # Outputs that are not predictions: transformers' Trainer leaves them out of `EvalPrediction.predictions`.
    keys_to_ignore_at_inference = [
        "hidden_states", "attentions", "image_embeds", "clean_loss", "noise_loss", "kl_loss", "noise_mu_norm",
        "noise_sigma_mean",
    ]
    sub_configs_defaults = {"vision_config": CLIPVisionConfig, "text_config": CLIPTextConfig}

    vision_config: dict | CLIPVisionConfig | None = None
    text_config: dict | CLIPTextConfig | None = None
    projection_dim: int = 768
    noise_mode: str = "pin"
    noise_injection: str = "embedding"
    noise_scale: str = "absolute"
    inference_noise: str = "none"
    noise_loss_weight: float | int = 1.0
    noise_samples: int = 1
    random_noise_std: float | int = 0.25
    sigma_activation: str = "softplus"
    sigma_floor: float | int = 0.0
    kl_weight: float | int = 0.0
    generator_hidden_size: int = 256
    generator_num_heads: int = 4
    detach_generator_input: bool = True
    class_words: list[str] = field(default_factory=lambda: ["real", "fake"])
    prompt_templates: list[str] = field(default_factory=lambda: ["A {} photo"])
    lora_r: int = 0
    lora_alpha: float | int = 6
    lora_dropout: float | int = 0.0
    lora_target_modules: list[str] = field(default_factory=lambda: ["q_proj", "k_proj", "v_proj"])
    resize_images: bool = False
    clip_name_or_path: str | None = None
    classifier_dropout: float | int = 0.0
    initializer_factor: float | int = 1.0
    initializer_range: float | int = 0.02

    def __post_init__(self, **kwargs: Any) -> None:
        _refuse_derived_fields(kwargs)
        # Labels are part of the method, not a user choice: always name both directions.
        if self.id2label is None:
            self.id2label = dict(LABELS)
        if self.label2id is None:
            self.label2id = {name: int(idx) for idx, name in self.id2label.items()}
        super().__post_init__(**kwargs)
        self.validate_pinclip()

    @classmethod
    def from_dict(cls, config_dict: dict[str, Any], **kwargs: Any) -> Any:
        """As in transformers, then validated: `from_pretrained(..., noise_mode=...)` sets its overrides on the
        config after construction, which `__post_init__` never sees."""
        _refuse_derived_fields({**config_dict, **kwargs})
        result = super().from_dict(config_dict, **kwargs)
        (result[0] if isinstance(result, tuple) else result).validate_pinclip()
        return result

    def validate(self) -> None:
        """transformers' checks plus `validate_pinclip`; `save_pretrained` runs it, so a config changed by attribute
        assignment is checked before it is written."""
        super().validate()
        self.validate_pinclip()

    def validate_pinclip(self) -> None:
        """Raise `ValueError` naming the field and its allowed values for any bad setting."""
        choices = {
            "noise_mode": NOISE_MODES,
            "noise_injection": NOISE_INJECTIONS,
            "noise_scale": NOISE_SCALES,
            "inference_noise": INFERENCE_NOISES,
            "sigma_activation": SIGMA_ACTIVATIONS,
        }
        for name, allowed in choices.items():
            if getattr(self, name) not in allowed:
                raise ValueError(f"PinClipConfig.{name}={getattr(self, name)!r} is not allowed; choose one of {allowed}")
        for name in ("noise_loss_weight", "random_noise_std", "sigma_floor", "kl_weight", "lora_alpha"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value < math.inf:
                raise ValueError(f"PinClipConfig.{name}={value!r} must be a finite number >= 0")
        minimum = {
            "lora_r": 0, "noise_samples": 1, "generator_hidden_size": 1, "generator_num_heads": 1, "projection_dim": 1,
        }
        for name, low in minimum.items():
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < low:
                raise ValueError(f"PinClipConfig.{name}={value!r} must be an integer >= {low}")
        for name in ("detach_generator_input", "resize_images"):
            if not isinstance(getattr(self, name), bool):
                raise ValueError(f"PinClipConfig.{name}={getattr(self, name)!r} must be True or False")
        if self.kl_weight > 0 and self.random_noise_std == 0:
            raise ValueError("PinClipConfig.kl_weight > 0 needs random_noise_std > 0 (the KL prior's s)")
        if self.lora_r > 0 and self.lora_alpha == 0:
            raise ValueError("PinClipConfig.lora_alpha=0 with lora_r > 0 would scale the LoRA update to nothing")
        # Indices as numbers or digit strings: transformers' guides and example scripts build both maps with str(i)
        if _with_int_indices({name: index for index, name in self.id2label.items()}) != LABEL2ID:
            raise ValueError(f"PinClipConfig.id2label={self.id2label!r}: PiN-CLIP's labels are fixed, {LABELS}")
        if _with_int_indices(self.label2id) != LABEL2ID:  # the pipeline reads both maps
            raise ValueError(f"PinClipConfig.label2id={self.label2id!r}: PiN-CLIP's labels are fixed, {LABELS}")
        self.id2label, self.label2id = dict(LABELS), dict(LABEL2ID)  # saved with numbers, as the pipeline reads them
        # forward() computes a softmax cross-entropy, and the pipeline picks softmax or sigmoid from problem_type
        if self.problem_type not in (None, "single_label_classification"):
            raise ValueError(f"PinClipConfig.problem_type={self.problem_type!r}: PiN-CLIP is a single-label classifier "
                             "(None or 'single_label_classification')")
        for name in ("lora_dropout", "classifier_dropout"):
            value = getattr(self, name)
            if not isinstance(value, (int, float)) or not 0 <= value < 1:
                raise ValueError(f"PinClipConfig.{name}={value!r} must be in [0, 1)")
        if self.generator_hidden_size % self.generator_num_heads:
            raise ValueError(
                f"PinClipConfig.generator_hidden_size={self.generator_hidden_size} must be divisible by "
                f"generator_num_heads={self.generator_num_heads}"
            )
        words = self.class_words
        if (not isinstance(words, (list, tuple)) or len(words) != len(self.id2label)
                or not all(isinstance(word, str) and word.strip() for word in words) or len(set(words)) != len(words)):
            raise ValueError(
                f"PinClipConfig.class_words={words!r} must list one distinct, non-empty word per label {self.id2label}"
            )
        templates = self.prompt_templates
        if not templates or any(not isinstance(t, str) or not _one_class_word_field(t) for t in templates):
            raise ValueError(
                f"PinClipConfig.prompt_templates={self.prompt_templates!r} must be a non-empty list of strings "
                "that each contain exactly one '{}' for the class word (write other braces as '{{' and '}}')"
            )
        targets = self.lora_target_modules
        if not isinstance(targets, (list, tuple)) or not targets or not all(isinstance(t, str) for t in targets):
            raise ValueError(f"PinClipConfig.lora_target_modules={targets!r} must list module names, e.g. ['q_proj']")

    @property
    def prompts(self) -> list[str]:
        """Every prompt, class-major: all templates of class 0, then of class 1."""
        return [template.format(word) for word in self.class_words for template in self.prompt_templates]

    @property
    def image_size(self) -> int:
        size = self.vision_config.image_size
        return size if isinstance(size, int) else int(size[0])


# Read-only properties of the config and where their values are set: transformers would fail on them with a bare
# "property has no setter".
DERIVED_FIELDS = {
    "image_size": "it is vision_config.image_size (the CLIP backbone's input size)",
    "prompts": "they are built from class_words and prompt_templates",
}


def _refuse_derived_fields(fields: dict[str, Any]) -> None:
    """`ValueError` naming where a derived field's value lives when one is passed to the config."""
    for name, where in DERIVED_FIELDS.items():
        if name in fields:
            raise ValueError(f"PinClipConfig cannot set {name}={fields[name]!r}: {where}")


def _with_int_indices(label2id: dict) -> dict | None:
    """`label2id` with digit-string indices read as ints (`"1"` → 1); None when an index is neither."""
    def as_int(index: Any) -> int | None:
        if isinstance(index, str) and index.isdigit():
            return int(index)
        return index if isinstance(index, int) and not isinstance(index, bool) else None

    indices = {name: as_int(index) for name, index in label2id.items()}
    return None if None in indices.values() else indices


def _one_class_word_field(template: str) -> bool:
    """Whether `template` has exactly one replacement field, `{}`, and formats: `{x}`, a lone `{` or `{{}}` (literal
    braces, no class word: real and fake prompts would be identical) would fail or mislead only later."""
    try:
        fields = [name for _, name, _, _ in string.Formatter().parse(template) if name is not None]
        template.format("word")
    except (KeyError, IndexError, ValueError):
        return False
    return fields == [""]


PinClipConfig.register_for_auto_class()

__all__ = ["PinClipConfig"]
