"""PiN-CLIP: a CLIP detector of AI-generated images trained with positive-incentive noise.

Forward pass (x an image, y in {0 real, 1 fake}):

    v     = P(ViT(x).pooled)                          # CLIP image embedding
    T     = frozen CLIP text embeddings of the class prompts (a buffer: no text tower is kept)
    a     = CrossAttention(query=v, key=T, value=T)
    mu    = W_mu a ;  sigma = act(W_s a) + sigma_floor
    eps_j = (mu + sigma * z_j) * r,  z_j ~ N(0, I);  r = 1, or RMS(v) (detached) with noise_scale="feature_rms"
    loss  = CE(h(v), y) + lambda * mean_j CE(h(v + eps_j), y)  [+ kl_weight * KL(N(mu, sigma^2) || N(0, s^2 I))]

This file is remote code: it travels to the Hub alone, so it imports nothing from this repository but its
configuration (flat relative import), and peft is optional.
"""

import copy
import dataclasses
import math
import os
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from huggingface_hub import create_repo
from torch import nn
from transformers import AutoTokenizer, CLIPModel, CLIPVisionModel, PreTrainedConfig
from transformers.image_utils import OPENAI_CLIP_MEAN, OPENAI_CLIP_STD, ChannelDimension, infer_channel_dimension_format
from transformers.modeling_outputs import ImageClassifierOutput
from transformers.models.clip.modeling_clip import CLIPPreTrainedModel

try:  # loaded as remote code (a package made by transformers): the relative import is what gets shipped
    from .configuration_pinclip import PinClipConfig
except ImportError:  # imported from a checkout of this repository
    from configuration_pinclip import PinClipConfig

try:  # the image processor's: the model loads and runs on tensors without Pillow, as CLIP does
    import PIL.Image
    from transformers.models.clip.image_processing_pil_clip import CLIPImageProcessorPil
except ImportError:
    CLIPImageProcessorPil = None

try:  # LoRA fine-tuning only: merged models load and run without peft.
    from peft import LoraConfig, get_peft_model
except ImportError:
    LoraConfig = get_peft_model = None

# `from_clip` takes these config fields from the checkpoint itself.
FIELDS_FROM_CLIP = frozenset({"vision_config", "text_config", "projection_dim"})
# Arguments of `from_pretrained` that `from_clip`, which builds a new model, has no use for.
PRETRAINED_ONLY_KWARGS = frozenset({"attn_implementation", "device_map", "num_labels"})
# The fields whose text the `prompt_embeds` buffer embeds: only `from_clip`, which has the text tower, can change them.
PROMPT_FIELDS = ("class_words", "prompt_templates")
# The config fields that decide which modules a model has and their shapes: fixed once it is built.
MODULE_SHAPING_FIELDS = ("noise_mode", "noise_injection", "sigma_activation", "generator_hidden_size",
                         "generator_num_heads", "projection_dim", "class_words", "prompt_templates",
                         "classifier_dropout")
# Those, then the fields forward() reads at every call, and the labels a pipeline names its scores with (fixed:
# 0 real, 1 fake; softmax over both): checked again whenever one of them has changed.
CHECKED_FIELDS = MODULE_SHAPING_FIELDS + ("inference_noise", "noise_scale", "noise_samples", "noise_loss_weight",
                                          "kl_weight", "random_noise_std", "sigma_floor", "detach_generator_input",
                                          "id2label", "label2id", "problem_type")
# Keyword arguments forward() takes and ignores: transformers' Trainer may pass them; this loss is a batch mean.
IGNORED_FORWARD_KWARGS = frozenset({"num_items_in_batch"})
# The arguments of `from_pretrained` that say where its files are, as transformers takes them.
FILE_LOCATION_KWARGS = ("cache_dir", "force_download", "local_files_only", "token", "revision", "subfolder", "proxies")
# The Hub arguments of `save_pretrained(..., push_to_hub=True)`, as transformers takes them.
HUB_KWARGS = ("repo_id", "commit_message", "commit_description", "private", "token", "revision", "create_pr")


@dataclass
class PinClipOutput(ImageClassifierOutput):
    r"""
    [`ImageClassifierOutput`] plus what PiN-CLIP training monitors.

    image_embeds (`torch.FloatTensor` of shape `(batch_size, projection_dim)`):
        The clean CLIP image embedding `v` (before any noise).
    clean_loss (`torch.FloatTensor`, *optional*):
        CE of the clean logits, present when labels are given (in eval mode it is all of `loss`, unless
        `inference_noise` makes the returned logits noisy: `loss` is then theirs).
    noise_loss / kl_loss (`torch.FloatTensor`, *optional*):
        The noise terms of `loss`, present when labels are given in training mode (KL only with `kl_weight > 0`).
    noise_mu_norm / noise_sigma_mean (`torch.FloatTensor`, *optional*):
        Mean ‖μ‖ and mean σ of the injected noise (training mode), to watch for σ collapse; with
        `noise_scale="feature_rms"` they are fractions of the features' RMS, which the added noise is multiplied by.
    """

    image_embeds: torch.FloatTensor | None = None
    clean_loss: torch.FloatTensor | None = None
    noise_loss: torch.FloatTensor | None = None
    kl_loss: torch.FloatTensor | None = None
    noise_mu_norm: torch.FloatTensor | None = None
    noise_sigma_mean: torch.FloatTensor | None = None


class NoiseHead(nn.Linear):
    """Linear map from the attended prompt features to μ or to σ before its activation; its bias starts at
    `initial_bias` (see `PinClipPreTrainedModel._init_weights`)."""

    def __init__(self, in_features: int, out_features: int, initial_bias: float):
        super().__init__(in_features, out_features)
        self.initial_bias = initial_bias


def initial_sigma_bias(config: PinClipConfig) -> float:
    """Bias for which the σ head outputs `random_noise_std` when its weights are ~0."""
    start = max(float(config.random_noise_std) - float(config.sigma_floor), 1e-4)
    return start + math.log(-math.expm1(-start)) if config.sigma_activation == "softplus" else start  # softplus⁻¹


class PinNoiseGenerator(nn.Module):
    """Cross-attention from visual features (queries) to class-prompt embeddings (keys = values) → (μ, σ).

    Queries may be one image embedding per image `(B, 1, Dq)` or one per token `(B, N, Dq)`; the noise has the
    query's size. Inputs are layer-normalised so the generator does not depend on CLIP's feature scale.
    """

    def __init__(self, config: PinClipConfig, query_dim: int):
        super().__init__()
        width, self.num_heads = config.generator_hidden_size, config.generator_num_heads
        key_dim = config.projection_dim
        self.query_norm = nn.LayerNorm(query_dim)
        self.key_norm = nn.LayerNorm(key_dim)
        self.q_proj = nn.Linear(query_dim, width)
        self.k_proj = nn.Linear(key_dim, width)
        self.v_proj = nn.Linear(key_dim, width)
        self.mu_head = NoiseHead(width, query_dim, initial_bias=0.0)
        self.sigma_head = NoiseHead(width, query_dim, initial_bias=initial_sigma_bias(config))
        self.sigma_activation = config.sigma_activation

    def _split_heads(self, x: torch.Tensor) -> torch.Tensor:
        batch, length, width = x.shape
        return x.view(batch, length, self.num_heads, width // self.num_heads).transpose(1, 2)

    def forward(self, queries: torch.Tensor, prompt_embeds: torch.Tensor,
                sigma_floor: float) -> tuple[torch.Tensor, torch.Tensor]:
        """queries `(B, Dq)` or `(B, N, Dq)`, prompt_embeds `(K, projection_dim)` → μ, σ shaped like queries, σ at least
        `sigma_floor` (the model passes its config's value at every call: an edit of it, or a new config, counts)."""
        if queries.dim() == 2:
            mu, sigma = self.forward(queries.unsqueeze(1), prompt_embeds, sigma_floor)
            return mu.squeeze(1), sigma.squeeze(1)
        batch, length, _ = queries.shape
        keys = self.key_norm(prompt_embeds).unsqueeze(0)
        q = self._split_heads(self.q_proj(self.query_norm(queries)))
        k = self._split_heads(self.k_proj(keys)).expand(batch, -1, -1, -1)
        v = self._split_heads(self.v_proj(keys)).expand(batch, -1, -1, -1)
        attended = F.scaled_dot_product_attention(q, k, v).transpose(1, 2).reshape(batch, length, -1)
        mu = self.mu_head(attended)
        raw_sigma = self.sigma_head(attended)
        sigma = F.softplus(raw_sigma) if self.sigma_activation == "softplus" else raw_sigma.abs()
        return mu, sigma + float(sigma_floor)


if CLIPImageProcessorPil is not None:

    class PinClipImageProcessor(CLIPImageProcessorPil):
        """CLIP's image processor, always on the PIL backend: the preprocessing a PiN-CLIP was trained with.

        With torchvision installed, `AutoImageProcessor` and `pipeline(...)` pick the torchvision twin of a plain
        `CLIPImageProcessor`, which pads an odd margin on the other side (a one-pixel shift of an image smaller than
        the crop) and resizes with other arithmetic: the model would not read the pixels it was trained on. Saved as
        `CLIPImageProcessor` (what loads without remote code, as before) with an `auto_map` entry that
        `trust_remote_code=True` follows to this class, whatever is installed.
        """

        def convert_to_rgb(self, image: Any, input_data_format: Any = None) -> Any:
            """An image as RGB with its alpha channel or transparent colour dropped, where CLIP's processor
            composites them on white: the pixels training and evaluation read (this project's loader drops them), and
            `pipeline(path)` gets a palette image's transparent colour from transformers' `load_image` as such a key.
            An RGBA array (or tensor, which arrives as one) loses its alpha too: the same image, the same pixels."""
            if isinstance(image, np.ndarray) and image.ndim == 3:
                layout = input_data_format or infer_channel_dimension_format(image, num_channels=(1, 3, 4))
                channel_axis = -1 if layout == ChannelDimension.LAST else 0
                if image.shape[channel_axis] == 4:
                    image = np.take(image, [0, 1, 2], axis=channel_axis)
            if not isinstance(image, PIL.Image.Image):  # an array: CLIP's handling (grey to RGB)
                return super().convert_to_rgb(image, input_data_format=input_data_format)
            if "A" in image.getbands() or "transparency" in image.info:
                image = image.convert("RGB")
                image.info.pop("transparency", None)
            return super().convert_to_rgb(image, input_data_format=input_data_format)

        def to_dict(self) -> dict[str, Any]:
            output = super().to_dict()
            output["image_processor_type"] = "CLIPImageProcessor"
            output["auto_map"] = {"AutoImageProcessor": f"{Path(__file__).stem}.{type(self).__name__}"}
            return output


def class_ids(labels: torch.Tensor, batch_size: int) -> torch.Tensor:
    """`labels` as one class id per image, shape (B,): given (B,) or (B, 1), as transformers' heads accept. Soft or
    fractional labels are refused: `.long()` would truncate 0.9 to 0 and train on the other class."""
    if labels.numel() != batch_size:
        raise ValueError(f"labels of shape {tuple(labels.shape)} for {batch_size} images: give one class id per image "
                         "(0 = real, 1 = fake), shape (B,) or (B, 1); soft labels are not supported")
    if labels.is_floating_point() and not torch.equal(labels, labels.round()):
        raise ValueError(f"labels must be whole class ids (0 = real, 1 = fake), got {labels.flatten().tolist()[:8]}")
    return labels.long().view(-1)


class PinClipPreTrainedModel(CLIPPreTrainedModel):
    """Weight initialisation and loading conventions shared by PiN-CLIP models (CLIP's for the CLIP parts)."""

    config: PinClipConfig
    config_class = PinClipConfig
    base_model_prefix = "pinclip"
    main_input_name = "pixel_values"
    input_modalities = ("image",)
    _no_split_modules = ["CLIPEncoderLayer", "CLIPVisionEmbeddings"]

    def _init_weights(self, module: nn.Module) -> None:
        super()._init_weights(module)
        if isinstance(module, NoiseHead):
            # Small, not zero, weights: the noise starts close to `random` noise (μ ≈ 0, σ ≈ s), a known-good
            # point, and gradients reach the attention from the first step.
            nn.init.normal_(module.weight, std=1e-3)
            nn.init.constant_(module.bias, module.initial_bias)


class PinClipForImageClassification(PinClipPreTrainedModel):
    """
    PiN-CLIP real/fake detector: CLIP vision tower + visual projection, a linear head on the image embedding, and
    (in `noise_mode="pin"`) the positive-incentive noise generator used in training.

    Build it from any CLIP checkpoint with [`~PinClipForImageClassification.from_clip`]; reload a saved one with
    `AutoModelForImageClassification.from_pretrained(path, trust_remote_code=True)`. Labels: 0 = real, 1 = fake.
    """

    # The loss is a mean over the batch, not a sum normalised by `num_items_in_batch`: transformers' Trainer must
    # divide it by the gradient-accumulation steps itself (it would not for a model that says it accepts loss kwargs).
    accepts_loss_kwargs = False

    def __init__(self, config: PinClipConfig):
        config.validate_pinclip()  # a config changed after construction (attribute assignment) is checked here
        super().__init__(config)
        vision_config = config.vision_config
        self.vision_model = CLIPVisionModel._from_config(vision_config)
        self.visual_projection = nn.Linear(vision_config.hidden_size, config.projection_dim, bias=False)
        # Frozen text embeddings of the class prompts, computed once by `from_clip` and saved with the weights.
        self.register_buffer("prompt_embeds", torch.zeros(len(config.prompts), config.projection_dim))
        query_dim = config.projection_dim if config.noise_injection == "embedding" else vision_config.hidden_size
        self.noise_generator = PinNoiseGenerator(config, query_dim) if config.noise_mode == "pin" else None
        # The config as last checked (validate_pinclip() just ran): copies, so a list edited in place compares unequal.
        # Its module-shaping part stays what the modules were built from: no later check lets it change.
        self._checked_config = copy.deepcopy(tuple(map(vars(config).get, CHECKED_FIELDS)))
        self.dropout = nn.Dropout(config.classifier_dropout)
        self.classifier = nn.Linear(config.projection_dim, config.num_labels)
        self.post_init()

    # ----------------------------------------------------------------------------------------------- building
    @classmethod
    def from_clip(cls, clip_name_or_path: str, /, **overrides) -> "PinClipForImageClassification":
        """Build PiN-CLIP from a CLIP checkpoint (Hub id or local folder holding its tokenizer).

        The vision tower and visual projection are copied exactly; the class prompts are embedded once with the
        frozen text tower, which is then dropped. `overrides` are [`PinClipConfig`] fields; `lora_r > 0` adds
        LoRA to the vision tower (needs peft). `dtype` (or its older name `torch_dtype`) is the model's dtype, as in
        `from_pretrained` (a `torch.dtype`, its name, or "auto" for the checkpoint's own); default float32. The
        checkpoint is fetched with `from_pretrained`'s file arguments (`revision`, `token`, `cache_dir`,
        `local_files_only`, `force_download`, `proxies`, `subfolder`). The config records the checkpoint as
        `clip_name_or_path` (a local folder by its name), unless that field is given: a local copy of a Hub CLIP can
        record its Hub id, which the model card then links as `base_model`. The model is returned in evaluation mode,
        as `from_pretrained` returns one: call `.train()` to train it.
        """
        hub_kwargs = {name: overrides.pop(name) for name in FILE_LOCATION_KWARGS if name in overrides}
        if overrides.get("dtype") is not None and overrides.get("torch_dtype") is not None:
            raise ValueError("from_clip got both dtype and torch_dtype (its older name): give one")
        dtype, older_name = overrides.pop("dtype", None), overrides.pop("torch_dtype", None)
        dtype = dtype if dtype is not None else older_name
        loading = sorted(set(overrides) & PRETRAINED_ONLY_KWARGS)
        if loading:
            raise ValueError(
                f"from_clip builds a new model and takes no loading argument {loading}: place it with `.to(device)`, "
                "choose attention with `model.set_attn_implementation(...)`; its labels are fixed (0 real, 1 fake)"
            )
        known_fields = {f.name for f in dataclasses.fields(PinClipConfig)}
        unknown = sorted(set(overrides) - known_fields)
        if unknown:
            raise ValueError(f"unknown PinClipConfig field(s) {unknown}; see PinClipConfig's docstring for the fields")
        from_checkpoint = sorted(set(overrides) & FIELDS_FROM_CLIP)
        if from_checkpoint:
            raise ValueError(f"PinClipConfig field(s) {from_checkpoint} come from the CLIP checkpoint and cannot be overridden")
        clip_type = PreTrainedConfig.get_config_dict(clip_name_or_path, **hub_kwargs)[0].get("model_type")
        if clip_type != "clip":
            raise ValueError(
                f"{clip_name_or_path} is not a CLIP checkpoint (model_type {clip_type!r}); from_clip needs a CLIPModel "
                "such as openai/clip-vit-large-patch14 (reload a saved PiN-CLIP with from_pretrained)"
            )
        clip = CLIPModel.from_pretrained(clip_name_or_path, dtype=dtype or torch.float32, **hub_kwargs)
        tokenizer = AutoTokenizer.from_pretrained(clip_name_or_path, **hub_kwargs)
        # a local folder by its name only: config.json is published, and a path would show the user's machine
        local = Path(clip_name_or_path)
        overrides.setdefault("clip_name_or_path", local.resolve().name if local.is_dir() else str(clip_name_or_path))
        config = PinClipConfig(
            vision_config=clip.config.vision_config.to_dict(),
            text_config=clip.config.text_config.to_dict(),
            projection_dim=clip.config.projection_dim,
            **overrides,
        )
        model = cls(config)
        model.vision_model.load_state_dict(clip.vision_model.state_dict())
        model.visual_projection.load_state_dict(clip.visual_projection.state_dict())
        with torch.no_grad():
            tokens = tokenizer(config.prompts, padding=True, return_tensors="pt")
            model.prompt_embeds.copy_(clip.get_text_features(**tokens).pooler_output)
        if clip.dtype != torch.float32:
            model.to(clip.dtype)
            config.dtype = clip.dtype
        if config.lora_r > 0:
            model.add_lora()
        return model.eval()  # as from_pretrained gives it: no dropout, and no training noise when labels are given

    @classmethod
    def from_pretrained(cls, pretrained_model_name_or_path: str | os.PathLike | None, *args, **kwargs):
        """As in transformers, with two refusals where it would give a model that does not do what its config says:
        weights without `prompt_embeds` (a CLIP checkpoint: the buffer would hold uninitialised memory), and prompts
        (`class_words`, `prompt_templates`) other than the saved ones, through keyword overrides, a config or an
        Auto class: the saved `prompt_embeds` embed the saved prompts, and no text tower is kept to embed others."""
        output_loading_info = kwargs.pop("output_loading_info", False)
        model, info = super().from_pretrained(pretrained_model_name_or_path, *args, output_loading_info=True, **kwargs)
        not_loaded = set(info["missing_keys"]) | {entry[0] for entry in info["mismatched_keys"]}
        if "prompt_embeds" in not_loaded:
            raise ValueError(
                f"{pretrained_model_name_or_path}: its weights hold no prompt_embeds of shape "
                f"{tuple(model.prompt_embeds.shape)} (a CLIP checkpoint, or other prompts): build PiN-CLIP from a "
                "CLIP checkpoint with PinClipForImageClassification.from_clip, which embeds the prompts"
            )
        if pretrained_model_name_or_path is not None:  # None: weights from a state_dict argument, no saved config
            hub_kwargs = {name: kwargs[name] for name in FILE_LOCATION_KWARGS if name in kwargs}
            saved = PreTrainedConfig.get_config_dict(pretrained_model_name_or_path, **hub_kwargs)[0]
            _check_saved_prompts(saved, model.config, pretrained_model_name_or_path)
        return (model, info) if output_loading_info else model

    def load_state_dict(self, state_dict: dict[str, torch.Tensor], strict: bool = True, assign: bool = False):
        """As in torch, and a saved (merged) state dict also loads into a model with LoRA active, as transformers'
        Trainer does with the checkpoints it saves through `save_pretrained` (resume, best model at end): each
        merged weight goes to its layer's base weight and that layer's LoRA B is zeroed, so the model computes
        exactly the saved one and trains on from it. The parameters stay the same objects (an optimizer built
        before keeps training them). The LoRA factors themselves are not in a merged file: to resume LoRA training
        exactly, resume from `train.py`'s checkpoints (Accelerate state)."""
        merged = (
            self.has_lora and any(key.startswith("vision_model.") for key in state_dict)
            and not any(key.startswith("vision_model.base_model.") for key in state_dict)  # the LoRA model's own keys
        )
        if not merged:
            return super().load_state_dict(state_dict, strict=strict, assign=assign)
        own = set(self.state_dict())
        translated, merged_layers = {}, set()
        for key, value in state_dict.items():
            if key.startswith("vision_model."):
                inner = "vision_model.base_model.model." + key.removeprefix("vision_model.")
                layer, _, name = inner.rpartition(".")
                if f"{layer}.base_layer.{name}" in own:  # a layer LoRA wraps: its base weight
                    inner = f"{layer}.base_layer.{name}"
                    merged_layers.add(layer)
                key = inner
            translated[key] = value
        lora_keys = {key for key in own if ".lora_" in key}
        missing, unexpected = sorted(own - lora_keys - set(translated)), sorted(set(translated) - own)
        if strict and (missing or unexpected):  # refused before anything changes, as torch refuses (it names both)
            raise RuntimeError(f"Error(s) in loading state_dict for {type(self).__name__}: missing keys {missing}, "
                               f"unexpected keys {unexpected}")
        result = super().load_state_dict(translated, strict=False, assign=assign)
        with torch.no_grad():  # B = 0 on the layers whose merged weight was loaded: they compute exactly that weight
            for name, parameter in self.named_parameters():
                marker = ".lora_B." if ".lora_B." in name else ".lora_embedding_B."  # peft's names for B
                if marker in name and name.split(marker)[0] in merged_layers:
                    parameter.zero_()
        result.missing_keys[:] = missing
        return result

    # ------------------------------------------------------------------------------------------------- LoRA
    @property
    def has_lora(self) -> bool:
        return hasattr(self.vision_model, "merge_and_unload")

    @property
    def vision_tower(self) -> CLIPVisionModel:
        """The CLIP vision model, with LoRA layers in place when LoRA is active."""
        return self.vision_model.get_base_model() if self.has_lora else self.vision_model

    def get_input_embeddings(self) -> nn.Module:
        return self.vision_tower.get_input_embeddings()

    def activation_checkpointing_enable(self, *args: Any, **kwargs: Any) -> None:
        """As in transformers (also reached through `gradient_checkpointing_enable`); with LoRA the patch embeddings'
        output also requires grad, since reentrant checkpointing computes no gradient for a block whose inputs do
        not, and every input of a LoRA tower's block comes from frozen weights."""
        super().activation_checkpointing_enable(*args, **kwargs)
        if self.has_lora:
            self.enable_input_require_grads()

    def set_attn_implementation(self, attn_implementation: str | dict, **kwargs) -> None:
        """As in transformers, a name applying to the vision tower (and the model): the text config is kept for the
        record only, with no module to switch, and transformers warns of "undefined behavior" when asked to set it."""
        if isinstance(attn_implementation, str):
            attn_implementation = {"": attn_implementation, "vision_config": attn_implementation}
        return super().set_attn_implementation(attn_implementation, **kwargs)

    def add_lora(self) -> "PinClipForImageClassification":
        """Wrap the vision tower with LoRA (config's `lora_*` fields) and freeze the rest of CLIP."""
        if get_peft_model is None:
            raise ImportError("LoRA needs peft: `pip install peft` (merged models run without it).")
        if self.has_lora:
            raise ValueError("LoRA is already active on this model")
        if self.config.lora_r < 1:
            raise ValueError(f"PinClipConfig.lora_r={self.config.lora_r} must be >= 1 to add LoRA")
        lora = LoraConfig(
            r=self.config.lora_r,
            lora_alpha=self.config.lora_alpha,
            lora_dropout=self.config.lora_dropout,
            target_modules=list(self.config.lora_target_modules),
        )
        with warnings.catch_warnings():
            # peft asks every model for the `is_gradient_checkpointing` alias, which transformers 5 deprecates with
            # a FutureWarning the user cannot act on; the model's own `is_activation_checkpointing` is read below.
            warnings.filterwarnings(
                "ignore", message="`is_gradient_checkpointing` is deprecated", category=FutureWarning
            )
            self.vision_model = get_peft_model(self.vision_model, lora)
        self.visual_projection.requires_grad_(False)
        if self.is_activation_checkpointing:
            self.enable_input_require_grads()  # see activation_checkpointing_enable
        return self

    def merge_lora(self) -> "PinClipForImageClassification":
        """Fold the LoRA weights into the vision tower in place; the result runs without peft."""
        if self.has_lora:
            self.vision_model = self.vision_model.merge_and_unload()
        return self

    # ------------------------------------------------------------------------------------------- processing
    def image_processor(self) -> "PinClipImageProcessor":
        """The forensic preprocessing: no resize by default (resizing blurs the generator's pixel traces), centre
        crop that pads small images with zeros, CLIP mean/std. Saved beside the model so pipeline, training and
        evaluation see identical pixels (needs Pillow)."""
        if CLIPImageProcessorPil is None:
            raise ImportError("PiN-CLIP's image processor needs Pillow: pip install pillow")
        size = self.config.image_size
        return PinClipImageProcessor(
            do_resize=self.config.resize_images,
            size={"shortest_edge": size},
            do_center_crop=True,
            crop_size={"height": size, "width": size},
            image_mean=list(OPENAI_CLIP_MEAN),
            image_std=list(OPENAI_CLIP_STD),
            do_convert_rgb=True,
        )

    def save_pretrained(
        self, save_directory: str | os.PathLike, is_main_process: bool = True, state_dict: dict | None = None,
        push_to_hub: bool = False, *args, **kwargs,
    ) -> None:
        """Save as a model that loads without peft (LoRA merged into a copy) with its image processor.

        A `state_dict` given for a LoRA model (Accelerate's `state_dict=accelerator.get_state_dict(model)`) holds the
        LoRA model's own keys: it is loaded into the copy, which is then merged and saved. A config field that shaped
        the modules (prompts, noise mode, generator), changed by assignment since the model was built, is refused as
        `forward` refuses it: the saved config would describe other modules or prompts than the saved weights.
        """
        self._check_config_edits()
        # transformers would upload before the image processor is written: the upload is done here, last, of the files
        # this call wrote into `save_directory` (as transformers does: the ones modified since the call started).
        push_to_hub = push_to_hub and is_main_process
        hub_kwargs = {name: kwargs.pop(name) for name in HUB_KWARGS if name in kwargs}
        if push_to_hub:
            os.makedirs(save_directory, exist_ok=True)
            repo_id = create_repo(
                hub_kwargs.get("repo_id") or Path(save_directory).name, exist_ok=True,
                private=hub_kwargs.get("private"), token=hub_kwargs.get("token"),
            ).repo_id
            files_timestamps = self._get_files_timestamps(save_directory)
        model = self
        if self.has_lora:
            model = copy.deepcopy(self)
            if state_dict:  # FSDP gives the processes that do not write an empty one
                model.load_state_dict(state_dict)
            state_dict = None  # the merged copy's own is saved
            model.merge_lora()
        # Only one auto class can be registered per class; AutoModel must map to this class too.
        auto_map = getattr(model.config, "auto_map", None) or {}
        model.config.auto_map = {**auto_map, "AutoModel": "modeling_pinclip.PinClipForImageClassification"}
        super(PinClipForImageClassification, model).save_pretrained(
            save_directory, is_main_process, state_dict, False, *args, **kwargs
        )
        if is_main_process:
            self.image_processor().save_pretrained(save_directory)
        if push_to_hub:
            self._upload_modified_files(
                save_directory, repo_id, files_timestamps, commit_message=hub_kwargs.get("commit_message"),
                token=hub_kwargs.get("token"), create_pr=hub_kwargs.get("create_pr", False),
                revision=hub_kwargs.get("revision"), commit_description=hub_kwargs.get("commit_description"),
            )

    # ---------------------------------------------------------------------------------------------- forward
    def _check_config_edits(self) -> None:
        """A config changed after the model was built (attribute assignment): the values forward() reads are checked
        like the constructor's (a typo must never sample or scale noise by mistake); the fields that shaped the
        modules cannot change. Called by forward and save_pretrained."""
        config = self.config
        # One cheap read of the fields an assignment may have changed (PreTrainedConfig's getattr costs ~2 µs each).
        if tuple(map(vars(config).get, CHECKED_FIELDS)) == self._checked_config:
            return
        config.validate_pinclip()
        built_with = zip(MODULE_SHAPING_FIELDS, self._checked_config)  # CHECKED_FIELDS starts with these
        rebuilt = {name: built for name, built in built_with if getattr(config, name) != built}
        if rebuilt:
            changes = ", ".join(f"{name} {built!r} → {getattr(config, name)!r}" for name, built in rebuilt.items())
            raise ValueError(
                f"PinClipConfig changed after the model was built ({changes}): these fields shape its modules; "
                "load or build a new model with them instead (from_pretrained(path, field=value); new prompts: "
                "from_clip)"
            )
        self._checked_config = copy.deepcopy(tuple(map(vars(config).get, CHECKED_FIELDS)))

    def _noise(
        self, queries: torch.Tensor, samples: int, noise_seeds: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(μ, σ, ε) for `samples` draws; ε has shape `(samples, *queries.shape)`. z comes from torch's global
        generator, or with `noise_seeds` from a generator per image seeded with its seed."""
        if self.noise_generator is not None:
            source = queries.detach() if self.config.detach_generator_input else queries
            mu, sigma = self.noise_generator(source, self.prompt_embeds.to(queries.dtype), self.config.sigma_floor)
        else:  # `random`: fixed isotropic noise, also used by `none` for inference_noise="sample"
            mu = torch.zeros_like(queries)
            sigma = torch.full_like(queries, float(self.config.random_noise_std))
        if noise_seeds is None:
            z = torch.randn((samples, *queries.shape), device=queries.device, dtype=queries.dtype)
        else:
            z = torch.stack([
                torch.randn((samples, *queries.shape[1:]), device=queries.device, dtype=queries.dtype,
                            generator=torch.Generator(queries.device).manual_seed(seed))
                for seed in noise_seeds.tolist()
            ], dim=1)
        return mu, sigma, mu + sigma * z

    def _noise_unit(self, features: torch.Tensor) -> torch.Tensor | float:
        """What one unit of noise is in feature space: 1, or each feature vector's RMS (`noise_scale="feature_rms"`).
        Detached: the backbone must not shrink its features to shrink the noise, nor grow them to escape it."""
        if self.config.noise_scale == "absolute":
            return 1.0
        # in float32: squares of fp16 activations above ~256 overflow to inf
        return features.detach().float().pow(2).mean(dim=-1, keepdim=True).sqrt().to(features.dtype)

    def _tokens_before_last_block(
        self, pixel_values: torch.Tensor, interpolate_pos_encoding: bool = False
    ) -> tuple[torch.Tensor, tuple[torch.Tensor, ...]]:
        """The tokens entering the last vision block, and every hidden state up to them (CLIP's `hidden_states`)."""
        tower = self.vision_tower
        hidden = tower.pre_layrnorm(tower.embeddings(pixel_values, interpolate_pos_encoding=interpolate_pos_encoding))
        states = [hidden]
        for layer in tower.encoder.layers[:-1]:
            hidden = layer(hidden, None)
            states.append(hidden)
        return hidden, tuple(states)

    def _embed_tokens(self, tokens: torch.Tensor) -> torch.Tensor:
        """Last vision block → pooled CLS → projection."""
        tower = self.vision_tower
        last = tower.encoder.layers[-1](tokens, None)
        return self.visual_projection(tower.post_layernorm(last[:, 0]))

    def forward(
        self,
        pixel_values: torch.Tensor,
        labels: torch.Tensor | None = None,
        output_hidden_states: bool | None = None,
        output_attentions: bool | None = None,
        return_dict: bool | None = None,
        interpolate_pos_encoding: bool = False,
        noise_seeds: torch.Tensor | None = None,
        **kwargs,
    ) -> PinClipOutput | tuple:
        r"""
        labels (`torch.LongTensor` of shape `(batch_size,)`, *optional*):
            0 = real, 1 = fake. In training mode the loss is clean CE + λ · noisy CE (+ KL); in eval mode plain CE.
        interpolate_pos_encoding (`bool`): as in CLIP, for images of another size than the model's.
        noise_seeds (`torch.LongTensor` of shape `(batch_size,)`, *optional*):
            one seed per image for the noise it gets (`inference_noise="sample"`, or training noise): its draw then
            depends on its seed alone, not on the batch or the process it is scored in. Default: torch's generator.
        """
        unknown = sorted(set(kwargs) - IGNORED_FORWARD_KWARGS)
        if unknown:  # a misspelt `labels` would silently give no loss
            raise TypeError(f"{type(self).__name__}.forward() got unexpected keyword argument(s) {unknown}")
        config = self.config
        self._check_config_edits()
        if output_attentions is None:
            output_attentions = config.output_attentions
        if return_dict is None:
            return_dict = config.return_dict
        inject = self.training and labels is not None and config.noise_mode != "none"
        eval_noise = not self.training and config.inference_noise != "none"
        samples = config.noise_samples if inject else 1
        hidden_states = attentions = None
        if output_hidden_states is None:
            output_hidden_states = config.output_hidden_states

        if config.noise_injection == "tokens" and (inject or eval_noise):
            if output_attentions:
                raise ValueError("output_attentions is not available while noise is injected into the tokens")
            features, states = self._tokens_before_last_block(pixel_values, interpolate_pos_encoding)
            image_embeds = self._embed_tokens(features)
            to_embeds = self._embed_tokens
            if output_hidden_states:  # the clean last block's output completes CLIP's tuple
                hidden_states = states + (self.vision_tower.encoder.layers[-1](features, None),)
        else:
            vision_outputs = self.vision_model(
                pixel_values=pixel_values, output_hidden_states=output_hidden_states, output_attentions=output_attentions,
                interpolate_pos_encoding=interpolate_pos_encoding,
            )
            hidden_states, attentions = vision_outputs.hidden_states, vision_outputs.attentions
            image_embeds = features = self.visual_projection(vision_outputs.pooler_output)
            to_embeds = nn.Identity()

        if inject or eval_noise:
            if noise_seeds is not None and (tuple(noise_seeds.shape) != (len(features),)
                                            or noise_seeds.is_floating_point() or noise_seeds.is_complex()):
                raise ValueError(f"noise_seeds must hold one integer seed per image ({len(features)}), got "
                                 f"{noise_seeds.dtype} of shape {tuple(noise_seeds.shape)}")
            mu, sigma, eps = self._noise(features, samples, noise_seeds)
            if eval_noise and config.inference_noise == "mean":
                eps = mu.unsqueeze(0)
            noisy_features = (features.unsqueeze(0) + eps * self._noise_unit(features)).flatten(0, 1)
            noisy_embeds = to_embeds(noisy_features).view(samples, *image_embeds.shape)

        logits = self.classifier(noisy_embeds[0] if eval_noise else self.dropout(image_embeds))
        losses = {}
        if labels is not None:
            labels = class_ids(labels, len(logits)).to(logits.device)
            losses["clean_loss"] = losses["loss"] = F.cross_entropy(logits, labels)
            if eval_noise:  # the logits returned are noisy ones: `loss` is theirs, `clean_loss` the clean logits'
                losses["clean_loss"] = F.cross_entropy(self.classifier(image_embeds), labels)
        if labels is not None and inject:
            noisy_logits = self.classifier(self.dropout(noisy_embeds))
            losses["noise_loss"] = F.cross_entropy(noisy_logits.flatten(0, 1), labels.repeat(samples))
            losses["loss"] = losses["loss"] + config.noise_loss_weight * losses["noise_loss"]
            if config.kl_weight > 0:
                losses["kl_loss"] = gaussian_kl(mu, sigma, float(config.random_noise_std))
                losses["loss"] = losses["loss"] + config.kl_weight * losses["kl_loss"]
            losses["noise_mu_norm"] = mu.detach().norm(dim=-1).mean()
            losses["noise_sigma_mean"] = sigma.detach().mean()
        # Built whole, in field order: `return_dict=False` then gives (loss, logits, ...) as transformers' heads do.
        output = PinClipOutput(
            logits=logits, hidden_states=hidden_states, attentions=attentions, image_embeds=image_embeds, **losses
        )
        return output if return_dict else output.to_tuple()


def _check_saved_prompts(saved: dict, config: PinClipConfig, source: str | os.PathLike) -> None:
    """`ValueError` when `config` names other prompts than the saved PiN-CLIP config (`saved`, a dict) whose
    `prompt_embeds` the weights hold; nothing to compare when the saved config is no PiN-CLIP's (weights alone)."""
    if saved.get("model_type") != PinClipConfig.model_type:
        return
    defaults = PinClipConfig()  # a config saved before a field existed holds its default
    changed = [
        f"{name} {saved.get(name, getattr(defaults, name))!r} → {getattr(config, name)!r}" for name in PROMPT_FIELDS
        if list(saved.get(name, getattr(defaults, name))) != list(getattr(config, name))
    ]
    if changed:
        raise ValueError(
            f"{source}: its prompt embeddings embed the saved prompts, not new ones ({', '.join(changed)}), and the "
            "model keeps no text tower: build a model with new prompts with from_clip(clip_checkpoint, ...)"
        )


def gaussian_kl(mu: torch.Tensor, sigma: torch.Tensor, prior_std: float) -> torch.Tensor:
    """KL(N(μ, σ²) ‖ N(0, s²)) per dimension, averaged over dimensions and batch (scale-free in the width)."""
    variance_ratio = (sigma / prior_std) ** 2
    return 0.5 * (variance_ratio + (mu / prior_std) ** 2 - 1 - torch.log(variance_ratio)).mean()


PinClipForImageClassification.register_for_auto_class("AutoModelForImageClassification")

__all__ = ["PinClipForImageClassification", "PinClipPreTrainedModel", "PinNoiseGenerator", "NoiseHead", "PinClipOutput"]
