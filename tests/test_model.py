"""PiN-CLIP configuration and model: CLIP equivalence, the noise objective, LoRA, saving without a text tower."""

import shutil
import warnings
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from safetensors import safe_open
from safetensors.torch import load_file
from transformers import AutoTokenizer, CLIPModel

from configuration_pinclip import PinClipConfig
from modeling_pinclip import PinClipForImageClassification, gaussian_kl

pytestmark = pytest.mark.filterwarnings("ignore")


def images(batch: int = 4, size: int = 32, seed: int = 0) -> torch.Tensor:
    return torch.randn(batch, 3, size, size, generator=torch.Generator().manual_seed(seed))


@pytest.fixture(scope="module")
def clip(tiny_clip_dir: Path) -> CLIPModel:
    return CLIPModel.from_pretrained(tiny_clip_dir).eval()


def test_noise_off_embeddings_equal_clip_image_embeds(tiny_clip_dir, clip):
    model = PinClipForImageClassification.from_clip(str(tiny_clip_dir)).eval()
    pixels = images()
    with torch.no_grad():
        expected = clip.get_image_features(pixel_values=pixels).pooler_output
        got = model(pixels).image_embeds
    torch.testing.assert_close(got, expected, atol=1e-6, rtol=0)


def test_prompt_embeddings_equal_clip_text_embeddings(tiny_clip_dir, clip):
    model = PinClipForImageClassification.from_clip(str(tiny_clip_dir), prompt_templates=["A {} photo", "{} image"])
    assert model.config.prompts == ["A real photo", "real image", "A fake photo", "fake image"]
    tokens = AutoTokenizer.from_pretrained(tiny_clip_dir)(model.config.prompts, padding=True, return_tensors="pt")
    with torch.no_grad():
        expected = clip.get_text_features(**tokens).pooler_output
    torch.testing.assert_close(model.prompt_embeds, expected, atol=1e-6, rtol=0)
    assert not any("text" in name for name, _ in model.named_parameters())


@pytest.mark.parametrize("inference_noise", ["none", "mean"])
@pytest.mark.parametrize("injection", ["embedding", "tokens"])
def test_eval_mode_is_deterministic(tiny_clip_dir, inference_noise, injection):
    model = PinClipForImageClassification.from_clip(
        str(tiny_clip_dir), inference_noise=inference_noise, noise_injection=injection
    ).eval()
    pixels = images()
    with torch.no_grad():
        first, second = model(pixels).logits, model(pixels).logits
    torch.testing.assert_close(first, second, atol=0, rtol=0)


def test_inference_noise_mean_changes_logits_by_mu(tiny_clip_dir):
    model = PinClipForImageClassification.from_clip(str(tiny_clip_dir), inference_noise="mean").eval()
    with torch.no_grad():
        model.noise_generator.mu_head.bias.fill_(0.3)
        pixels = images()
        out = model(pixels)
        mu, _ = model.noise_generator(out.image_embeds, model.prompt_embeds, model.config.sigma_floor)
        expected = model.classifier(out.image_embeds + mu)
    torch.testing.assert_close(out.logits, expected)
    labels = torch.tensor([0, 1, 1, 0])
    with torch.no_grad():
        out = model(pixels, labels=labels)
    # `loss` is the returned (noisy) logits' CE; `clean_loss` was too, under a name that says clean
    torch.testing.assert_close(out.loss, F.cross_entropy(expected, labels))
    torch.testing.assert_close(out.clean_loss, F.cross_entropy(model.classifier(out.image_embeds), labels))
    assert not torch.allclose(out.loss, out.clean_loss)


@pytest.mark.parametrize("injection", ["embedding", "tokens"])
def test_noise_seeds_give_each_image_its_own_draw_whatever_its_batch(tiny_clip_dir, injection):
    model = PinClipForImageClassification.from_clip(str(tiny_clip_dir), inference_noise="sample",
                                                    noise_injection=injection).eval()
    pixels, seeds = images(), torch.tensor([11, 12, 13, 14])
    with torch.no_grad():
        whole = model(pixels, noise_seeds=seeds).logits
        alone = torch.cat([model(pixels[i:i + 1], noise_seeds=seeds[i:i + 1]).logits for i in range(4)])
        reversed_batch = model(pixels.flip(0), noise_seeds=seeds.flip(0)).logits.flip(0)
        other_seeds = model(pixels, noise_seeds=seeds + 100).logits
    torch.testing.assert_close(alone, whole)
    torch.testing.assert_close(reversed_batch, whole)
    assert not torch.allclose(other_seeds, whole)
    for bad in (torch.tensor([1, 2]), torch.tensor([1.0, 2.0, 3.0, 4.0]), seeds[None]):
        with pytest.raises(ValueError, match="noise_seeds must hold one integer seed per image"):
            model(pixels, noise_seeds=bad)


def noise_shift(model: PinClipForImageClassification, pixels: torch.Tensor) -> torch.Tensor:
    """Logits with one drawn noise (`inference_noise="sample"`, seed 0) minus the clean logits."""
    with torch.no_grad():
        model.config.inference_noise = "none"
        clean = model(pixels).logits
        model.config.inference_noise = "sample"
        torch.manual_seed(0)
        return model(pixels).logits - clean


@pytest.mark.parametrize("mode", ["pin", "random"])
def test_feature_rms_noise_grows_with_the_features_and_absolute_noise_does_not(tiny_clip_dir, mode):
    """The backbone outgrows absolute noise by enlarging its features (bench/NOTES.md §5); with
    noise_scale="feature_rms" the noise's effect on the logits grows with them."""
    pixels, factor = images(), 8.0
    for scale, expected_growth in (("absolute", 1.0), ("feature_rms", factor)):
        model = PinClipForImageClassification.from_clip(str(tiny_clip_dir), noise_mode=mode, noise_scale=scale).eval()
        shift = noise_shift(model, pixels)
        with torch.no_grad():
            model.visual_projection.weight.mul_(factor)  # every embedding `factor` times larger
        torch.testing.assert_close(noise_shift(model, pixels), shift * expected_growth, atol=1e-4, rtol=1e-4)


def test_feature_rms_noise_is_the_drawn_noise_times_each_embeddings_rms(tiny_clip_dir):
    model = PinClipForImageClassification.from_clip(
        str(tiny_clip_dir), noise_mode="random", noise_scale="feature_rms", random_noise_std=0.5
    ).eval()
    pixels = images()
    with torch.no_grad():
        embeds = model(pixels).image_embeds
        torch.manual_seed(0)
        drawn = 0.5 * torch.randn_like(embeds)
        rms = embeds.pow(2).mean(dim=-1, keepdim=True).sqrt()
        expected = model.classifier(embeds + drawn * rms) - model.classifier(embeds)
    torch.testing.assert_close(noise_shift(model, pixels), expected, atol=1e-5, rtol=1e-5)


def test_feature_rms_token_noise_is_the_drawn_noise_times_each_tokens_rms(tiny_clip_dir):
    model = PinClipForImageClassification.from_clip(
        str(tiny_clip_dir), noise_mode="random", noise_scale="feature_rms", noise_injection="tokens"
    ).eval()
    model.config.inference_noise = "sample"
    seen = []
    embed_tokens = model._embed_tokens
    model._embed_tokens = lambda tokens: seen.append(tokens) or embed_tokens(tokens)
    pixels = images()
    with torch.no_grad():
        torch.manual_seed(0)
        model(pixels)
        clean, _ = model._tokens_before_last_block(pixels)
    torch.manual_seed(0)
    drawn = 0.25 * torch.randn_like(clean)
    rms = clean.pow(2).mean(dim=-1, keepdim=True).sqrt()
    torch.testing.assert_close(seen[-1] - clean, drawn * rms, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("mode", ["pin", "random"])
def test_training_loss_is_clean_plus_weighted_noisy_ce(tiny_clip_dir, mode):
    weight, samples = 0.7, 3
    model = PinClipForImageClassification.from_clip(
        str(tiny_clip_dir), noise_mode=mode, noise_loss_weight=weight, noise_samples=samples
    ).train()
    pixels, labels = images(), torch.tensor([0, 1, 1, 0])
    torch.manual_seed(123)
    out = model(pixels, labels=labels)

    with torch.no_grad():
        v = model.visual_projection(model.vision_model(pixel_values=pixels).pooler_output)
        if mode == "pin":
            mu, sigma = model.noise_generator(v, model.prompt_embeds, model.config.sigma_floor)
        else:
            mu, sigma = torch.zeros_like(v), torch.full_like(v, model.config.random_noise_std)
        torch.manual_seed(123)
        z = torch.randn(samples, *v.shape)
        clean = F.cross_entropy(model.classifier(v), labels)
        noisy = torch.stack([F.cross_entropy(model.classifier(v + mu + sigma * z[j]), labels) for j in range(samples)])
        expected = clean + weight * noisy.mean()
    torch.testing.assert_close(out.loss, expected, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(out.noise_sigma_mean, sigma.mean())
    torch.testing.assert_close(out.noise_mu_norm, mu.norm(dim=-1).mean())


def test_none_mode_loss_is_plain_ce_and_has_no_generator(tiny_clip_dir):
    model = PinClipForImageClassification.from_clip(str(tiny_clip_dir), noise_mode="none").train()
    assert model.noise_generator is None
    pixels, labels = images(), torch.tensor([0, 1, 1, 0])
    out = model(pixels, labels=labels)
    torch.testing.assert_close(out.loss, F.cross_entropy(out.logits, labels))
    assert out.noise_loss is None
    assert PinClipForImageClassification.from_clip(str(tiny_clip_dir), noise_mode="random").noise_generator is None


def test_kl_term_added_with_its_weight(tiny_clip_dir):
    model = PinClipForImageClassification.from_clip(str(tiny_clip_dir), kl_weight=0.5).train()
    out = model(images(), labels=torch.tensor([0, 1, 1, 0]))
    assert out.kl_loss is not None and out.kl_loss >= 0
    torch.testing.assert_close(out.loss, out.clean_loss + out.noise_loss + 0.5 * out.kl_loss)


@pytest.mark.parametrize("injection", ["embedding", "tokens"])
def test_gradients_reach_generator_and_lora(tiny_clip_dir, injection):
    model = PinClipForImageClassification.from_clip(str(tiny_clip_dir), lora_r=4, noise_injection=injection).train()
    assert model.has_lora
    model(images(), labels=torch.tensor([0, 1, 1, 0])).loss.backward()
    grads = {name: p.grad for name, p in model.named_parameters() if p.requires_grad}
    generator = [g for name, g in grads.items() if name.startswith("noise_generator.")]
    lora = [g for name, g in grads.items() if "lora_" in name]
    assert generator and all(g is not None and g.abs().sum() > 0 for g in generator)
    # lora_B starts at zero, so lora_A gets no gradient on step one; lora_B must.
    assert lora and all(g is not None for g in lora)
    assert any(g.abs().sum() > 0 for name, g in grads.items() if "lora_B" in name)
    frozen = [name for name, p in model.named_parameters() if not p.requires_grad]
    assert any("q_proj.base_layer" in name for name in frozen) and "visual_projection.weight" in frozen


def randomise_lora(model: PinClipForImageClassification) -> None:
    with torch.no_grad():
        for name, param in model.named_parameters():
            if "lora_B" in name:
                param.normal_(std=0.2)


def test_merged_lora_logits_equal_unmerged(tiny_clip_dir):
    model = PinClipForImageClassification.from_clip(str(tiny_clip_dir), lora_r=4).eval()
    randomise_lora(model)
    pixels = images()
    with torch.no_grad():
        unmerged = model(pixels).logits
        merged = model.merge_lora()(pixels).logits
    assert not model.has_lora
    torch.testing.assert_close(merged, unmerged, atol=1e-5, rtol=0)


def test_a_lora_models_state_dict_given_to_save_is_merged_too(tiny_clip_dir, tmp_path):
    """Accelerate's pattern: `unwrapped.save_pretrained(dir, state_dict=accelerator.get_state_dict(model))`."""
    model = PinClipForImageClassification.from_clip(str(tiny_clip_dir), lora_r=4).eval()
    randomise_lora(model)
    state_dict = {name: tensor.clone() for name, tensor in model.state_dict().items()}
    with torch.no_grad():
        model.classifier.weight.zero_()  # the given state_dict, not the live weights, must be what is saved
    model.save_pretrained(tmp_path, state_dict=state_dict)
    model.load_state_dict(state_dict)
    reloaded = PinClipForImageClassification.from_pretrained(tmp_path).eval()
    with torch.no_grad():
        torch.testing.assert_close(reloaded(images()).logits, model(images()).logits, atol=1e-5, rtol=0)


def test_a_process_that_does_not_write_may_pass_an_empty_state_dict(tiny_clip_dir, tmp_path):
    """FSDP: `accelerator.get_state_dict` is empty on every process but the main one, which alone writes."""
    model = PinClipForImageClassification.from_clip(str(tiny_clip_dir), lora_r=4)
    model.save_pretrained(tmp_path / "other", state_dict={}, is_main_process=False)
    assert not (tmp_path / "other" / "model.safetensors").exists()


@pytest.mark.parametrize("training", [False, True])
def test_hidden_states_are_returned_on_the_token_noise_path(tiny_clip_dir, clip, training):
    model = PinClipForImageClassification.from_clip(str(tiny_clip_dir), noise_injection="tokens", inference_noise="mean")
    model.train(training)
    with torch.no_grad():
        expected = clip.vision_model(pixel_values=images(), output_hidden_states=True).hidden_states
        got = model(images(), labels=torch.tensor([0, 1, 0, 1]), output_hidden_states=True).hidden_states
    assert len(got) == len(expected)
    for mine, clips in zip(got, expected):
        torch.testing.assert_close(mine, clips, atol=1e-5, rtol=0)
    model.config.output_hidden_states = True  # the config's setting counts when the call does not say
    with torch.no_grad():
        assert len(model(images(), labels=torch.tensor([0, 1, 0, 1])).hidden_states) == len(expected)


def test_trainer_divides_the_loss_by_gradient_accumulation(tiny_clip_dir, tmp_path):
    """The model's loss is already a batch mean: transformers' Trainer must treat it as one (no loss kwargs)."""
    from transformers import Trainer, TrainingArguments

    model = PinClipForImageClassification.from_clip(str(tiny_clip_dir))
    trainer = Trainer(model=model, args=TrainingArguments(str(tmp_path), gradient_accumulation_steps=4, report_to=[]))
    assert model.accepts_loss_kwargs is False and trainer.model_accepts_loss_kwargs is False


def test_a_saved_lora_model_loads_back_into_a_lora_model(tiny_clip_dir, tmp_path):
    """transformers' Trainer reloads its checkpoints (written by save_pretrained: merged) with load_state_dict into the
    model it trains, which has LoRA active: the vision tower must be the checkpoint's, not left as it was."""
    trained = PinClipForImageClassification.from_clip(str(tiny_clip_dir), lora_r=4).eval()
    randomise_lora(trained)
    trained.save_pretrained(tmp_path)
    fresh = PinClipForImageClassification.from_clip(str(tiny_clip_dir), lora_r=4).eval()
    with torch.no_grad():
        assert not torch.allclose(fresh(images()).logits, trained(images()).logits, atol=1e-3)
    parameters = dict(fresh.named_parameters())  # what an optimizer built before the load holds
    merged = load_file(tmp_path / "model.safetensors")
    with pytest.raises(RuntimeError, match="missing keys.*classifier.weight"):  # refused before anything changes
        fresh.load_state_dict({key: value for key, value in merged.items() if key != "classifier.weight"})
    assert all(torch.equal(value, parameters[key]) for key, value in fresh.named_parameters())
    result = fresh.load_state_dict(merged)
    assert (result.missing_keys, result.unexpected_keys) == ([], [])
    assert fresh.has_lora and all(not param.any() for name, param in fresh.named_parameters() if "lora_B" in name)
    assert all(param is parameters[name] for name, param in fresh.named_parameters())  # the same objects
    with torch.no_grad():
        torch.testing.assert_close(fresh(images()).logits, trained(images()).logits, atol=1e-5, rtol=0)
    # a partial merged dict: only the layers it holds start over (B = 0); the others keep their LoRA update
    randomise_lora(fresh)
    one_layer = {key: value for key, value in merged.items() if "layers.0.self_attn.q_proj." in key}
    fresh.load_state_dict(one_layer, strict=False)
    zeroed = {name for name, param in fresh.named_parameters() if "lora_B" in name and not param.any()}
    assert zeroed and all("layers.0.self_attn.q_proj." in name for name in zeroed)


def test_a_merged_state_dict_restores_lora_on_an_embedding_too(tiny_clip_dir, tmp_path):
    # peft names an embedding's factors lora_embedding_A/B: their update must start over like a linear layer's
    # (Trainer's best model at end: the model it loads into has trained factors of its own, A and B both non-zero)
    targets = ["q_proj", "position_embedding"]

    def trained_lora(seed: int) -> PinClipForImageClassification:
        model = PinClipForImageClassification.from_clip(str(tiny_clip_dir), lora_r=2, lora_target_modules=targets)
        generator = torch.Generator().manual_seed(seed)
        with torch.no_grad():
            for name, param in model.named_parameters():
                if ".lora_" in name:
                    param.copy_(torch.randn(param.shape, generator=generator) * 0.2)
        return model.eval()

    saved = trained_lora(0)
    saved.save_pretrained(tmp_path)
    other = trained_lora(1)
    other.load_state_dict(load_file(tmp_path / "model.safetensors"))
    with torch.no_grad():
        torch.testing.assert_close(other(images()).logits, saved(images()).logits, atol=1e-5, rtol=0)


def test_weights_without_a_saved_config_load_with_the_config_given(tiny_model_dir, tmp_path):
    # from_pretrained(folder of weights only, config=...): no saved prompts to compare the config's with
    config = PinClipConfig.from_pretrained(tiny_model_dir)
    config.class_words = ["real", "ai"]
    (tmp_path / "model.safetensors").write_bytes((tiny_model_dir / "model.safetensors").read_bytes())
    model = PinClipForImageClassification.from_pretrained(tmp_path, config=config)
    assert model.config.class_words == ["real", "ai"]


def test_trainer_resumes_and_keeps_the_best_model_of_a_lora_run(tiny_clip_dir, tmp_path):
    from transformers import Trainer, TrainingArguments

    rows = [{"pixel_values": pixels, "labels": index % 2} for index, pixels in enumerate(images(8, seed=1))]
    settings = dict(per_device_train_batch_size=4, learning_rate=5e-2, report_to=[], use_cpu=True, save_steps=1,
                    eval_strategy="steps", eval_steps=1, load_best_model_at_end=True, metric_for_best_model="loss",
                    disable_tqdm=True)

    def lora_model() -> PinClipForImageClassification:
        torch.manual_seed(0)
        return PinClipForImageClassification.from_clip(str(tiny_clip_dir), lora_r=2, noise_mode="none")

    def loss_on(model, rows) -> float:
        model.eval()
        with torch.no_grad():
            return model(torch.stack([r["pixel_values"] for r in rows]), labels=torch.tensor([r["labels"] for r in rows])).loss.item()

    # the best model at the end: an evaluation set on which the loss rises after the first step keeps step 1
    model = lora_model()
    trainer = Trainer(model=model, args=TrainingArguments(str(tmp_path / "best"), max_steps=3, **settings),
                      train_dataset=rows, eval_dataset=rows[:1])
    trainer.train()
    best = PinClipForImageClassification.from_pretrained(trainer.state.best_model_checkpoint)
    assert abs(loss_on(model, rows[:1]) - loss_on(best, rows[:1])) < 1e-5
    # resuming from step 2 of 3 continues on the checkpoint's model, and its fresh LoRA layers are the ones trained
    resumed = lora_model()
    settings.update(eval_strategy="no", load_best_model_at_end=False)
    Trainer(model=resumed, args=TrainingArguments(str(tmp_path / "resumed"), max_steps=3, **settings),
            train_dataset=rows).train(resume_from_checkpoint=str(tmp_path / "best" / "checkpoint-2"))
    assert any(param.any() for name, param in resumed.named_parameters() if "lora_B" in name)


def test_from_pretrained_refuses_what_the_saved_prompt_embeddings_cannot_give(tiny_clip_dir, tiny_model_dir):
    from transformers import AutoModelForImageClassification

    for override in ({"class_words": ["fake", "real"]}, {"prompt_templates": ["a {} picture"]}):
        with pytest.raises(ValueError, match="embed the saved prompts.*from_clip"):
            PinClipForImageClassification.from_pretrained(tiny_model_dir, **override)
        with pytest.raises(ValueError, match="embed the saved prompts"):  # the README's path: an Auto class
            AutoModelForImageClassification.from_pretrained(tiny_model_dir, trust_remote_code=True, **override)
        config = PinClipConfig.from_pretrained(tiny_model_dir, **override)
        with pytest.raises(ValueError, match="embed the saved prompts"):
            PinClipForImageClassification.from_pretrained(tiny_model_dir, config=config)
    assert PinClipForImageClassification.from_pretrained(tiny_model_dir, class_words=["real", "fake"])  # unchanged
    # a CLIP checkpoint through the wrapper's from_pretrained: no prompt embeddings (they would be uninitialised memory)
    config = PinClipForImageClassification.from_pretrained(tiny_model_dir).config
    with pytest.raises(ValueError, match="no prompt_embeds.*from_clip"):
        PinClipForImageClassification.from_pretrained(str(tiny_clip_dir), config=config)
    model, info = PinClipForImageClassification.from_pretrained(tiny_model_dir, output_loading_info=True)
    assert not any(info.values()) and torch.isfinite(model.prompt_embeds).all()


def test_from_clip_names_loading_arguments_it_does_not_take(tiny_clip_dir):
    for argument in ("attn_implementation", "device_map", "num_labels"):
        with pytest.raises(ValueError, match=f"builds a new model.*{argument}"):
            PinClipForImageClassification.from_clip(str(tiny_clip_dir), **{argument: None})
    with pytest.raises(ValueError, match="both dtype and torch_dtype"):
        PinClipForImageClassification.from_clip(str(tiny_clip_dir), dtype=torch.float32, torch_dtype=torch.float32)


def test_saved_weights_hold_no_text_tower_and_no_lora(tiny_clip_dir, tmp_path):
    model = PinClipForImageClassification.from_clip(str(tiny_clip_dir), lora_r=4)
    randomise_lora(model)
    model.save_pretrained(tmp_path)
    assert model.has_lora, "saving must not merge the model being trained"
    with safe_open(tmp_path / "model.safetensors", "pt") as weights:
        keys = list(weights.keys())
    assert "prompt_embeds" in keys and "classifier.weight" in keys
    assert not [k for k in keys if "text" in k or "lora" in k or "base_layer" in k]
    saved = {p.name for p in tmp_path.iterdir()}
    assert {"config.json", "configuration_pinclip.py", "modeling_pinclip.py", "preprocessor_config.json"} <= saved


@pytest.mark.parametrize(
    "field, value",
    [("noise_mode", "learned"), ("noise_injection", "pixels"), ("inference_noise", "always"),
     ("sigma_activation", "relu"), ("noise_samples", 0), ("random_noise_std", -1.0),
     ("generator_num_heads", 3), ("prompt_templates", ["no placeholder"]), ("lora_dropout", 1.5),
     ("noise_loss_weight", float("nan")), ("kl_weight", float("inf")), ("lora_r", 2.5), ("prompt_templates", [1]),
     ("resize_images", "false"), ("lora_target_modules", "q_proj"), ("id2label", {0: "fake", 1: "real"}),
     ("noise_scale", "relative"), ("sigma_floor", -0.1), ("sigma_floor", float("nan")),
     ("detach_generator_input", "false"), ("detach_generator_input", 1), ("projection_dim", 0),
     ("generator_hidden_size", 0), ("label2id", {"real": 1, "fake": 0}), ("label2id", {"cat": 0, "dog": 1}),
     ("label2id", {"real": "0", "fake": "x"}), ("label2id", {"real": 0, "fake": True}),
     ("class_words", "rf"), ("class_words", ["real", "real"]), ("class_words", ["real", " "]),
     ("problem_type", "multi_label_classification"), ("problem_type", "regression")],
)
def test_bad_config_value_names_the_field(field, value):
    with pytest.raises(ValueError, match=field):
        PinClipConfig(**{field: value})


@pytest.mark.parametrize(
    "values, problem",
    [({"kl_weight": 0.5, "random_noise_std": 0.0}, "random_noise_std > 0"),
     ({"lora_r": 4, "lora_alpha": 0}, "lora_alpha=0")],
)
def test_settings_that_cannot_work_together_are_refused(values, problem):
    with pytest.raises(ValueError, match=problem):
        PinClipConfig(**values)


@pytest.mark.parametrize("dtype", [torch.bfloat16, "bfloat16"])
def test_from_clip_honours_dtype_like_from_pretrained(tiny_clip_dir, tmp_path, dtype):
    model = PinClipForImageClassification.from_clip(str(tiny_clip_dir), dtype=dtype)
    reference = PinClipForImageClassification.from_clip(str(tiny_clip_dir))
    assert model.dtype == torch.bfloat16 and reference.dtype == torch.float32
    assert torch.equal(model.visual_projection.weight, reference.visual_projection.weight.to(torch.bfloat16))
    model.save_pretrained(tmp_path)
    assert PinClipForImageClassification.from_pretrained(tmp_path).dtype == torch.bfloat16


def test_config_labels_and_round_trip(tmp_path):
    config = PinClipConfig(noise_mode="random", random_noise_std=1)
    assert config.id2label == {0: "real", 1: "fake"} and config.label2id == {"real": 0, "fake": 1}
    config.save_pretrained(tmp_path)
    loaded = PinClipConfig.from_pretrained(tmp_path)
    assert (loaded.noise_mode, loaded.random_noise_std, loaded.id2label) == ("random", 1, {0: "real", 1: "fake"})
    # the maps as transformers' guides build them, indices as strings: accepted, kept as numbers
    strings = PinClipConfig(id2label={"0": "real", "1": "fake"}, label2id={"real": "0", "fake": "1"})
    assert strings.id2label == {0: "real", 1: "fake"} and strings.label2id == {"real": 0, "fake": 1}


def test_from_clip_fetches_with_the_hub_arguments_and_records_the_name_given(tiny_clip_dir, tmp_path, monkeypatch):
    # a CLIP in a subfolder of a repository: `subfolder` (like revision, token, cache_dir) reaches every loader
    repo = tmp_path / "mirror"
    shutil.copytree(tiny_clip_dir, repo / "clip")
    model = PinClipForImageClassification.from_clip(str(repo), subfolder="clip", local_files_only=True)
    reference = PinClipForImageClassification.from_clip(str(tiny_clip_dir))
    assert torch.equal(model.prompt_embeds, reference.prompt_embeds)
    assert model.config.clip_name_or_path == "mirror"
    # a local copy of a Hub CLIP records the Hub id it stands for (was: "got multiple values for argument")
    named = PinClipForImageClassification.from_clip(str(tiny_clip_dir), clip_name_or_path="openai/clip-vit-base-patch16")
    assert named.config.clip_name_or_path == "openai/clip-vit-base-patch16"
    monkeypatch.chdir(tiny_clip_dir)
    assert PinClipForImageClassification.from_clip(".").config.clip_name_or_path == Path(tiny_clip_dir).name  # was ""


def test_attention_switches_on_the_vision_tower_without_a_warning_about_the_text_config(tiny_clip_dir, caplog):
    # from_clip's own message points here; transformers warned of "undefined behavior" for the text config it keeps
    import transformers

    model = PinClipForImageClassification.from_clip(str(tiny_clip_dir))
    expected = model(images()).logits
    transformers.logging.enable_propagation()
    try:
        with caplog.at_level("WARNING"):
            model.set_attn_implementation("eager")
    finally:
        transformers.logging.disable_propagation()
    assert "text_config" not in caplog.text
    assert model.vision_model.config._attn_implementation == "eager" == model.config._attn_implementation
    out = model(images(), output_attentions=True)
    assert len(out.attentions) == model.config.vision_config.num_hidden_layers
    torch.testing.assert_close(out.logits, expected, atol=1e-5, rtol=1e-5)


def test_from_clip_rejects_unknown_override(tiny_clip_dir):
    with pytest.raises((TypeError, ValueError), match="noise_std"):
        PinClipForImageClassification.from_clip(str(tiny_clip_dir), noise_std=0.1)


@pytest.mark.parametrize("activation, floor, std", [("softplus", 0.0, 0.25), ("softplus", 0.1, 0.25), ("abs", 0.1, 0.5)])
def test_generator_starts_where_random_noise_is(tiny_clip_dir, activation, floor, std):
    """README: "The generator starts at μ ≈ 0, σ ≈ s", whatever the σ activation and floor."""
    model = PinClipForImageClassification.from_clip(
        str(tiny_clip_dir), sigma_activation=activation, sigma_floor=floor, random_noise_std=std
    ).eval()
    with torch.no_grad():
        mu, sigma = model.noise_generator(model(images()).image_embeds, model.prompt_embeds, model.config.sigma_floor)
    assert mu.abs().max() < 0.05
    torch.testing.assert_close(sigma, torch.full_like(sigma, std), atol=0.02, rtol=0)


def backbone_gradient(model: PinClipForImageClassification, pixels, labels) -> torch.Tensor:
    model.zero_grad()
    torch.manual_seed(123)
    model(pixels, labels=labels).loss.backward()
    return model.visual_projection.weight.grad.clone()


def test_by_default_the_backbone_learns_only_through_v_plus_noise(tiny_clip_dir):
    """detach_generator_input (default True): the generator sees a detached v, so the backbone's gradient is that of
    CE(h(v)) + λ CE(h(v + ε)) with ε a constant; without the detach, gradients also flow back through the generator."""
    model = PinClipForImageClassification.from_clip(str(tiny_clip_dir)).train()
    with torch.no_grad():  # a generator that depends visibly on v
        for head in (model.noise_generator.mu_head, model.noise_generator.sigma_head):
            head.weight.normal_(std=0.5, generator=torch.Generator().manual_seed(1))
    pixels, labels = images(), torch.tensor([0, 1, 1, 0])
    got = backbone_gradient(model, pixels, labels)

    model.zero_grad()
    v = model.visual_projection(model.vision_model(pixel_values=pixels).pooler_output)
    mu, sigma = model.noise_generator(v.detach(), model.prompt_embeds, model.config.sigma_floor)
    torch.manual_seed(123)
    eps = mu + sigma * torch.randn(1, *v.shape)[0]
    (F.cross_entropy(model.classifier(v), labels) + F.cross_entropy(model.classifier(v + eps), labels)).backward()
    torch.testing.assert_close(got, model.visual_projection.weight.grad)

    model.config.detach_generator_input = False
    assert not torch.allclose(backbone_gradient(model, pixels, labels), got, atol=1e-6, rtol=1e-4)


@pytest.mark.parametrize("mode", ["pin", "random"])
def test_eval_mode_loss_with_labels_is_plain_ce(tiny_clip_dir, mode):
    """Trainer's evaluation calls the model in eval mode with labels: eval_loss must be the clean CE, no noise."""
    model = PinClipForImageClassification.from_clip(str(tiny_clip_dir), noise_mode=mode).eval()
    labels = torch.tensor([0, 1, 1, 0])
    with torch.no_grad():
        out = model(images(), labels=labels)
    torch.testing.assert_close(out.loss, F.cross_entropy(out.logits, labels))
    assert out.noise_loss is None and out.noise_sigma_mean is None


@pytest.mark.parametrize("injection", ["embedding", "tokens"])
def test_inference_noise_does_not_touch_the_training_clean_loss(tiny_clip_dir, injection):
    """inference_noise is for evaluation only: in training the logits and the clean CE are those of the clean v."""
    model = PinClipForImageClassification.from_clip(
        str(tiny_clip_dir), inference_noise="mean", noise_injection=injection
    ).train()
    with torch.no_grad():
        model.noise_generator.mu_head.bias.fill_(0.3)
        labels = torch.tensor([0, 1, 1, 0])
        out = model(images(), labels=labels)
        torch.testing.assert_close(out.logits, model.classifier(out.image_embeds))
        torch.testing.assert_close(out.clean_loss, F.cross_entropy(model.classifier(out.image_embeds), labels))


@pytest.mark.parametrize("training", [False, True])
def test_token_noise_path_embeds_like_clip(tiny_clip_dir, clip, training):
    """With token injection the last block is run by hand: its pooled CLS embedding must still be CLIP's, and zero
    noise must give CLIP's logits."""
    model = PinClipForImageClassification.from_clip(str(tiny_clip_dir), noise_injection="tokens", inference_noise="mean")
    model.train(training)
    with torch.no_grad():
        model.noise_generator.mu_head.weight.zero_()
        model.noise_generator.mu_head.bias.zero_()
        expected = clip.get_image_features(pixel_values=images()).pooler_output
        out = model(images(), labels=torch.tensor([0, 1, 1, 0]))
    torch.testing.assert_close(out.image_embeds, expected, atol=1e-5, rtol=0)
    torch.testing.assert_close(out.logits, model.classifier(expected), atol=1e-5, rtol=0)


def test_kl_term_is_the_gaussian_kl_to_the_prior():
    """kl_loss = KL(N(μ, σ²) ‖ N(0, s²)) per dimension, averaged (checked against torch.distributions)."""
    from torch.distributions import Normal, kl_divergence

    generator = torch.Generator().manual_seed(0)
    mu, sigma = torch.randn(4, 8, generator=generator), torch.rand(4, 8, generator=generator) + 0.1
    prior = Normal(torch.zeros_like(mu), torch.full_like(mu, 0.5))
    torch.testing.assert_close(gaussian_kl(mu, sigma, 0.5), kl_divergence(Normal(mu, sigma), prior).mean())
    assert gaussian_kl(torch.zeros(3), torch.full((3,), 0.5), 0.5) == 0


def test_a_bfloat16_model_is_bfloat16_throughout_and_runs(tiny_clip_dir):
    """dtype=bfloat16 converts the whole model (head, generator, prompt embeddings), not just the CLIP tower."""
    model = PinClipForImageClassification.from_clip(str(tiny_clip_dir), dtype=torch.bfloat16).eval()
    tensors = [*model.parameters(), *model.buffers()]
    assert {t.dtype for t in tensors if t.is_floating_point()} == {torch.bfloat16}
    assert model.config.dtype == torch.bfloat16
    with torch.no_grad():
        logits = model(images().to(torch.bfloat16)).logits
    assert logits.dtype == torch.bfloat16 and torch.isfinite(logits.float()).all()


def test_lora_r_1_adds_lora(tiny_clip_dir):
    """lora_r >= 1 is a valid LoRA rank: r = 1 must not silently fall back to full fine-tuning. Adding it warns of
    nothing the user could change (peft reads a deprecated transformers alias)."""
    with warnings.catch_warnings():
        warnings.simplefilter("error", FutureWarning)
        model = PinClipForImageClassification.from_clip(str(tiny_clip_dir), lora_r=1)
    assert model.has_lora and not model.visual_projection.weight.requires_grad


@pytest.mark.parametrize(
    "field, value",
    [("classifier_dropout", 1.0), ("class_words", ["real"]), ("prompt_templates", []),
     ("prompt_templates", ["{} and {}"])],
)
def test_more_bad_config_values_name_the_field(field, value):
    with pytest.raises(ValueError, match=field):
        PinClipConfig(**{field: value})


def test_defaults_are_the_documented_ones():
    """README's configuration table (and its 's = 0.25 (the default)' results) describe these defaults."""
    config = PinClipConfig()
    documented = {
        "noise_mode": "pin", "noise_injection": "embedding", "noise_scale": "absolute", "inference_noise": "none",
        "noise_loss_weight": 1.0,
        "noise_samples": 1, "random_noise_std": 0.25, "sigma_activation": "softplus", "sigma_floor": 0.0,
        "kl_weight": 0.0, "generator_hidden_size": 256, "generator_num_heads": 4, "detach_generator_input": True,
        "class_words": ["real", "fake"], "prompt_templates": ["A {} photo"], "lora_r": 0, "lora_alpha": 6,
        "lora_dropout": 0.0, "lora_target_modules": ["q_proj", "k_proj", "v_proj"], "resize_images": False,
    }
    assert {name: getattr(config, name) for name in documented} == documented


def test_a_process_that_does_not_write_saves_no_image_processor_either(tiny_clip_dir, tmp_path):
    """Multi-process saving: only the main process writes; the others must not race it on preprocessor_config.json."""
    model = PinClipForImageClassification.from_clip(str(tiny_clip_dir))
    model.save_pretrained(tmp_path / "other", is_main_process=False)
    assert not (tmp_path / "other" / "preprocessor_config.json").exists()


def test_overrides_given_to_from_pretrained_are_validated(tiny_model_dir):
    from transformers import AutoConfig

    # transformers sets from_pretrained's keyword overrides on the config after it was built
    for name, value in (("noise_mode", "bogus"), ("inference_noise", "Mean"), ("noise_samples", 0),
                        ("random_noise_std", -1.0)):
        with pytest.raises(ValueError, match=f"PinClipConfig.{name}="):
            PinClipForImageClassification.from_pretrained(tiny_model_dir, **{name: value})
        with pytest.raises(ValueError, match=f"PinClipConfig.{name}="):
            AutoConfig.from_pretrained(tiny_model_dir, trust_remote_code=True, **{name: value})
    assert PinClipForImageClassification.from_pretrained(tiny_model_dir, inference_noise="mean").config.inference_noise == "mean"


def test_a_config_changed_by_assignment_is_checked_before_it_is_used_or_saved(tiny_model_dir, tmp_path):
    config = PinClipConfig()
    config.noise_mode = "bogus"
    with pytest.raises(ValueError, match="PinClipConfig.noise_mode='bogus'"):
        PinClipForImageClassification(config)
    with pytest.raises(ValueError, match="PinClipConfig.noise_mode='bogus'"):
        config.save_pretrained(tmp_path / "config")
    assert not (tmp_path / "config" / "config.json").exists()
    model = PinClipForImageClassification.from_pretrained(tiny_model_dir).eval()
    model.config.inference_noise = "Mean"  # a typo must not turn on random sampling at evaluation
    with pytest.raises(ValueError, match="inference_noise='Mean'"):
        model(images(2, model.config.image_size))
    model.config.inference_noise = "mean"
    model.config.noise_scale = "rms"  # was taken for feature_rms
    with pytest.raises(ValueError, match="noise_scale='rms'"):
        model(images(2, model.config.image_size))


def test_labels_edited_on_a_built_model_are_refused_at_its_next_forward(tiny_model_dir):
    """Unchecked, a pipeline named the scores with swapped labels (or read them as sigmoids) without a word."""
    for name, value in (("id2label", {0: "fake", 1: "real"}), ("problem_type", "multi_label_classification")):
        model = PinClipForImageClassification.from_pretrained(tiny_model_dir).eval()
        pixels = images(2, model.config.image_size)
        model(pixels)
        setattr(model.config, name, value)
        with pytest.raises(ValueError):
            model(pixels)
    model = PinClipForImageClassification.from_pretrained(tiny_model_dir).eval()
    model.config.id2label = {0: "real", 1: "fake"}  # the same labels, assigned again: accepted
    model(pixels)


def test_from_clip_takes_torch_dtype_none_beside_dtype_as_from_pretrained_does(tiny_clip_dir):
    model = PinClipForImageClassification.from_clip(str(tiny_clip_dir), dtype=torch.float16, torch_dtype=None)
    assert model.dtype == torch.float16


def test_a_config_field_that_shaped_the_modules_is_refused_at_save_as_in_forward(tiny_model_dir, tmp_path):
    """Saved, the edit described prompts the weights do not embed (or dropped the trained generator, or could not
    be loaded back)."""
    for name, value in (("class_words", ["real", "ai"]), ("noise_mode", "none")):
        model = PinClipForImageClassification.from_pretrained(tiny_model_dir)
        setattr(model.config, name, value)
        with pytest.raises(ValueError, match=f"changed after the model was built \\({name} "):
            model.save_pretrained(tmp_path / name)
        assert not (tmp_path / name / "config.json").exists()
    model = PinClipForImageClassification.from_pretrained(tiny_model_dir)
    model.config.inference_noise = "mean"  # read by forward, shapes nothing: saved
    model.save_pretrained(tmp_path / "mean")
    assert PinClipForImageClassification.from_pretrained(tmp_path / "mean").config.inference_noise == "mean"


def test_save_pretrained_reads_its_arguments_by_position_as_transformers_does(tiny_clip_dir, tmp_path):
    model = PinClipForImageClassification.from_clip(str(tiny_clip_dir), lora_r=4)
    randomise_lora(model)
    model.save_pretrained(tmp_path / "other", False)  # is_main_process: writes nothing
    assert not (tmp_path / "other").exists() or not any((tmp_path / "other").iterdir())
    state_dict = {name: tensor.clone() for name, tensor in model.state_dict().items()}
    model.save_pretrained(tmp_path / "main", True, state_dict)  # the LoRA keys were saved unmerged
    with safe_open(tmp_path / "main" / "model.safetensors", "pt") as saved:
        assert not [key for key in saved.keys() if "lora" in key]
    reloaded = PinClipForImageClassification.from_pretrained(tmp_path / "main").eval()
    with torch.no_grad():
        torch.testing.assert_close(reloaded(images()).logits, model(images()).logits, atol=1e-5, rtol=0)


def test_from_clip_returns_a_model_in_evaluation_mode_as_from_pretrained_does(tiny_clip_dir):
    model = PinClipForImageClassification.from_clip(str(tiny_clip_dir), classifier_dropout=0.5, lora_r=2)
    assert not model.training and not any(module.training for module in model.modules())
    pixels, labels = images(), torch.tensor([0, 1, 1, 0])
    with torch.no_grad():
        first, second = model(pixels, labels=labels), model(pixels, labels=labels)
    assert torch.equal(first.logits, second.logits) and torch.equal(first.loss, second.loss)


def test_the_remote_code_loads_and_runs_without_pillow(tiny_model_dir, tmp_path):
    """Pillow is the image processor's, not the model's: transformers runs CLIP on tensors without it."""
    import shutil
    import subprocess
    import sys

    folder = tmp_path / "model"
    shutil.copytree(tiny_model_dir, folder)
    script = (
        "import sys; sys.modules['PIL'] = None\n"  # as if Pillow were not installed
        "import torch\n"
        "from transformers import AutoModelForImageClassification\n"
        f"model = AutoModelForImageClassification.from_pretrained({str(folder)!r}, trust_remote_code=True)\n"
        "size = model.config.image_size\n"
        "print(tuple(model(torch.zeros(1, 3, size, size)).logits.shape))\n"
    )
    done = subprocess.run([sys.executable, "-c", script], cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip().endswith("(1, 2)")


def test_a_template_that_cannot_be_formatted_is_refused_up_front():
    for template in ("A {} photo {x}", "A {} photo {", "{} {0}", "A {{}} photo", "A photo"):
        with pytest.raises(ValueError, match="prompt_templates"):
            PinClipConfig(prompt_templates=[template])
    assert PinClipConfig(prompt_templates=["A {} photo {{x}}"]).prompts == ["A real photo {x}", "A fake photo {x}"]
    assert PinClipConfig(prompt_templates=["A {} photo {{}}"]).prompts == ["A real photo {}", "A fake photo {}"]


def test_from_clip_refuses_fields_of_the_checkpoint_and_checkpoints_that_are_not_clip(tiny_clip_dir, tiny_model_dir):
    for name, value in (("projection_dim", 32), ("vision_config", {}), ("text_config", {})):
        with pytest.raises(ValueError, match=f"{name}.*come from the CLIP checkpoint"):
            PinClipForImageClassification.from_clip(str(tiny_clip_dir), **{name: value})
    with pytest.raises(ValueError, match="not a CLIP checkpoint \\(model_type 'pinclip'\\)"):
        PinClipForImageClassification.from_clip(str(tiny_model_dir))


def test_return_dict_false_gives_a_tuple_and_labels_may_be_a_column(tiny_clip_dir):
    model = PinClipForImageClassification.from_clip(str(tiny_clip_dir)).train()
    pixels, labels = images(4, model.config.image_size), torch.tensor([0, 1, 1, 0])
    torch.manual_seed(0)
    output = model(pixels, labels=labels)
    torch.manual_seed(0)
    loss, logits, *_ = model(pixels, labels=labels.view(-1, 1), return_dict=False)
    torch.testing.assert_close(loss, output.loss)
    torch.testing.assert_close(logits, output.logits)
    torch.manual_seed(0)  # whole numbers as floats are class ids too
    torch.testing.assert_close(model(pixels, labels=labels.float()).loss, output.loss)


@pytest.mark.parametrize("labels, message", [
    ([0.9, 0.2, 1.0, 0.0], "labels must be whole class ids"),  # was truncated to 0, 0, 1, 0: a silently wrong loss
    ([[0.1, 0.9]] * 4, r"labels of shape \(4, 2\) for 4 images: give one class id per image"),  # soft labels
])
def test_fractional_or_soft_labels_are_refused(tiny_clip_dir, labels, message):
    model = PinClipForImageClassification.from_clip(str(tiny_clip_dir)).train()
    with pytest.raises(ValueError, match=message):
        model(images(4, model.config.image_size), labels=torch.tensor(labels))


def test_trainer_predictions_are_the_logits_only():
    # Trainer drops these keys from EvalPrediction.predictions; anything else the output carries would be stacked
    # next to the logits and break the usual `np.argmax(predictions, axis=1)`.
    from modeling_pinclip import PinClipOutput

    fields = {field.name for field in __import__("dataclasses").fields(PinClipOutput)}
    assert fields - set(PinClipConfig.keys_to_ignore_at_inference) == {"loss", "logits"}


@pytest.mark.parametrize("order", ["checkpointing first", "lora first"])
def test_lora_trains_under_reentrant_activation_checkpointing(tiny_clip_dir, order):
    model = PinClipForImageClassification.from_clip(str(tiny_clip_dir), lora_r=0 if order == "checkpointing first" else 4)
    model.train()
    model.activation_checkpointing_enable(activation_checkpointing_kwargs={"use_reentrant": True})
    if order == "checkpointing first":
        model.config.lora_r = 4
        model.add_lora()
    model(images(2, model.config.image_size), labels=torch.tensor([0, 1])).loss.backward()
    lora_b = [param for name, param in model.named_parameters() if "lora_B" in name]
    assert lora_b and all(param.grad is not None and param.grad.abs().sum() > 0 for param in lora_b)


def test_save_pretrained_with_push_to_hub_uploads_what_it_wrote_with_the_image_processor(tiny_model_dir, tmp_path,
                                                                                       monkeypatch):
    import modeling_pinclip
    from transformers.utils import hub

    created, uploaded = {}, {}

    def fake_create_repo(repo_id, **kwargs):
        created[repo_id] = kwargs
        return type("Repo", (), {"repo_id": repo_id})()

    def record_upload(self, working_dir, repo_id, files_timestamps, **kwargs):
        changed = [p.name for p in Path(working_dir).iterdir() if files_timestamps.get(p.name) != p.stat().st_mtime]
        uploaded[repo_id] = (Path(working_dir), sorted(changed), kwargs)

    monkeypatch.setattr(modeling_pinclip, "create_repo", fake_create_repo)
    monkeypatch.setattr(hub.PushToHubMixin, "_upload_modified_files", record_upload)
    (tmp_path / "detector").mkdir()
    (tmp_path / "detector" / "notes.txt").write_text("not part of the model")  # there before: not uploaded
    model = PinClipForImageClassification.from_pretrained(tiny_model_dir)
    model.save_pretrained(tmp_path / "detector", push_to_hub=True, repo_id="someone/detector", private=True,
                          commit_message="first")
    folder, files, kwargs = uploaded["someone/detector"]
    assert folder == tmp_path / "detector" and created["someone/detector"]["private"] is True
    assert {"config.json", "model.safetensors", "preprocessor_config.json", "modeling_pinclip.py"} <= set(files)
    assert "notes.txt" not in files and kwargs["commit_message"] == "first"


def test_a_local_backbone_is_recorded_by_its_folder_name_not_its_path(tiny_clip_dir, tmp_path):
    """config.json is published with the model: the absolute path of the backbone showed the user's machine."""
    model = PinClipForImageClassification.from_clip(str(tiny_clip_dir.resolve()))
    assert model.config.clip_name_or_path == tiny_clip_dir.name
    model.save_pretrained(tmp_path / "saved")
    assert str(tiny_clip_dir.parent.resolve()) not in (tmp_path / "saved" / "config.json").read_text()


def test_noise_values_set_by_assignment_take_effect_and_module_shaping_ones_are_refused(tiny_clip_dir):
    """sigma_floor was copied at construction (an edit changed nothing but config.json); noise_mode "random" on a
    `pin` model still ran its generator; noise_samples=0 gave a NaN loss."""
    model = PinClipForImageClassification.from_clip(str(tiny_clip_dir)).train()
    labels = torch.tensor([0, 1, 0, 1])
    torch.manual_seed(0)
    before = model(images(), labels=labels).noise_sigma_mean
    model.config.sigma_floor = 1.0
    torch.manual_seed(0)
    assert model(images(), labels=labels).noise_sigma_mean == pytest.approx(float(before) + 1.0)
    # a whole new config counts too (the generator kept the config it was built with, and its floor)
    model.config = PinClipConfig.from_dict({**model.config.to_dict(), "sigma_floor": 0.0})
    torch.manual_seed(0)
    assert model(images(), labels=labels).noise_sigma_mean == pytest.approx(float(before))
    model.config.noise_samples = 0
    with pytest.raises(ValueError, match="PinClipConfig.noise_samples=0 must be an integer >= 1"):
        model(images(), labels=labels)
    model.config.noise_samples = 1
    for name, value in (("noise_mode", "random"), ("noise_injection", "tokens"), ("sigma_activation", "abs")):
        built = getattr(model.config, name)
        setattr(model.config, name, value)
        with pytest.raises(ValueError, match=f"changed after the model was built \\({name} '{built}' → '{value}'\\)"):
            model(images(), labels=labels)
        setattr(model.config, name, built)
    model(images(), labels=labels)


@pytest.mark.parametrize("injection", ["embedding", "tokens"])
def test_forward_takes_interpolate_pos_encoding_and_refuses_unknown_arguments(tiny_clip_dir, injection):
    model = PinClipForImageClassification.from_clip(str(tiny_clip_dir), noise_injection=injection).train()
    size = model.config.image_size
    labels = torch.tensor([0, 1])
    out = model(images(2, size + 16), labels=labels, interpolate_pos_encoding=True)  # it was dropped: a size error
    assert out.logits.shape == (2, 2) and out.noise_loss is not None
    with pytest.raises(TypeError, match=r"unexpected keyword argument\(s\) \['labls'\]"):
        model(images(2, size), labls=labels)  # a misspelt labels returned no loss, silently
    assert model(images(2, size), labels=labels, num_items_in_batch=2).loss is not None  # what Trainer may pass


LABELS = torch.tensor([0, 1, 1, 0])


def test_abs_activation_turns_a_negative_raw_sigma_positive(tiny_clip_dir):
    model = PinClipForImageClassification.from_clip(str(tiny_clip_dir), sigma_activation="abs", sigma_floor=0.1).eval()
    with torch.no_grad():
        model.noise_generator.sigma_head.weight.zero_()
        model.noise_generator.sigma_head.bias.fill_(-0.4)
        _, sigma = model.noise_generator(model(images()).image_embeds, model.prompt_embeds, model.config.sigma_floor)
    torch.testing.assert_close(sigma, torch.full_like(sigma, 0.5))  # |-0.4| + 0.1


def test_kl_loss_is_measured_against_the_configured_prior(tiny_clip_dir):
    model = PinClipForImageClassification.from_clip(str(tiny_clip_dir), kl_weight=0.5, random_noise_std=0.5).train()
    with torch.no_grad():
        model.noise_generator.mu_head.bias.fill_(0.3)  # a KL visibly above 0
        out = model(images(), labels=LABELS)
        mu, sigma = model.noise_generator(out.image_embeds, model.prompt_embeds, model.config.sigma_floor)
    torch.testing.assert_close(out.kl_loss, gaussian_kl(mu, sigma, 0.5))
    torch.testing.assert_close(out.loss, out.clean_loss + out.noise_loss + 0.5 * out.kl_loss)


def test_the_feature_rms_unit_is_detached(tiny_clip_dir):
    model = PinClipForImageClassification.from_clip(str(tiny_clip_dir), noise_mode="random", noise_scale="feature_rms")
    features = torch.randn(4, model.config.projection_dim, requires_grad=True)
    unit = model._noise_unit(features)
    torch.testing.assert_close(unit, features.detach().pow(2).mean(-1, keepdim=True).sqrt())
    assert not unit.requires_grad


def test_classifier_dropout_is_applied_in_training_and_not_in_eval(tiny_clip_dir):
    model = PinClipForImageClassification.from_clip(str(tiny_clip_dir), noise_mode="none", classifier_dropout=0.5)
    pixels = images()
    with torch.no_grad():
        model.train()
        torch.manual_seed(0)
        logits, embeds = model(pixels).logits, model(pixels).image_embeds
        assert not torch.allclose(logits, model.classifier(embeds))  # half the embedding dropped
        model.eval()
        torch.testing.assert_close(model(pixels).logits, model.classifier(embeds))


class DropEverything(torch.nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.zeros_like(x)


@pytest.mark.parametrize("mode", ["pin", "random"])
def test_the_noisy_embeddings_go_through_the_dropout_too(tiny_clip_dir, mode):
    model = PinClipForImageClassification.from_clip(str(tiny_clip_dir), noise_mode=mode).train()
    model.dropout = DropEverything()  # both cross-entropies then see only the head's bias
    out = model(images(), labels=LABELS)
    expected = F.cross_entropy(model.classifier.bias.expand(4, -1), LABELS)
    torch.testing.assert_close(out.clean_loss, expected)
    torch.testing.assert_close(out.noise_loss, expected)


@pytest.mark.parametrize("field,where", [("image_size", "vision_config.image_size"),
                                         ("prompts", "class_words and prompt_templates")])
def test_a_derived_config_field_passed_as_a_setting_names_where_it_lives(field, where, tmp_path):
    # was: AttributeError "property 'image_size' of 'PinClipConfig' object has no setter" from inside transformers
    with pytest.raises(ValueError, match=f"cannot set {field}=.*{where}"):
        PinClipConfig(**{field: 64})
    PinClipConfig().save_pretrained(tmp_path)
    with pytest.raises(ValueError, match=f"cannot set {field}=.*{where}"):
        PinClipConfig.from_pretrained(tmp_path, **{field: 64})
    assert PinClipConfig.from_pretrained(tmp_path).image_size == 224
