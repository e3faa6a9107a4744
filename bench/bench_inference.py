"""Inference cost of PiN-CLIP against bare CLIP, and the compute utilisation of that inference.

* Inference cost: images/s of `PinClipForImageClassification` (eval mode, `inference_noise="none"`, built with
  `from_clip`) ÷ images/s of `CLIPVisionModelWithProjection` loaded from the same checkpoint folder (the same
  vision weights; the bench checks that both give the same image embedding).
* Compute utilisation: FLOP/s achieved by the PiN-CLIP forward ÷ FLOP/s of a dense fp32 `torch.matmul`
  (N × N by N × N, 2·N³ FLOP) timed in the same process, interleaved with the forwards.

FLOPs of the forward are counted analytically (`vit_flops`, 2 FLOP per multiply-add) and cross-checked with
`torch.utils.flop_counter.FlopCounterMode`. The counter has no formula for the CPU flash-attention kernel that
SDPA dispatches to, so on CPU it misses exactly the attention term (QKᵀ and AV, ~4 % at ViT-B/16); the bench
checks that counter + attention term = analytical count and uses the analytical count.

    python bench/bench_inference.py [--quick]
"""

from __future__ import annotations

import argparse
import statistics

import torch
from torch.utils.flop_counter import FlopCounterMode

from common import Figure, judged, load_average, min_max, random_clip, thread_setting, time_interleaved

COST_TARGET = 0.97
UTILISATION_TARGET = 0.6


def attention_flops(image_size: int, patch_size: int, hidden: int, layers: int) -> int:
    """FLOPs of QKᵀ and AV of one image: 2 · (2 · N² · D) per layer, N tokens of width D."""
    tokens = (image_size // patch_size) ** 2 + 1
    return layers * 2 * (2 * tokens**2 * hidden)


def vit_flops(image_size: int, patch_size: int, hidden: int, layers: int, mlp: int, projection_dim: int) -> int:
    """Analytical FLOPs of one image through a CLIP ViT + projection, counting 2 FLOP per multiply-add.

    With P patches, N = P + 1 tokens (CLS), width D, MLP width M, L layers:
        patch embedding  P · (3 · p²) · D
        per layer        4 · N · D²   (q, k, v, output projections)
                       + 2 · N · D · M (MLP up and down)
                       + 2 · N² · D    (attention scores QKᵀ and the weighted sum AV)
        projection       D · projection_dim (CLS token only)
    LayerNorm, GELU and biases (O(N · D)) and softmax (O(h · N²)) are left out (< 1 % at ViT-B/16).
    """
    patches = (image_size // patch_size) ** 2
    tokens = patches + 1
    per_layer = 4 * tokens * hidden**2 + 2 * tokens * hidden * mlp
    macs = patches * 3 * patch_size**2 * hidden + layers * per_layer + hidden * projection_dim
    return 2 * macs + attention_flops(image_size, patch_size, hidden, layers)


def counted_flops(model: torch.nn.Module, pixel_values: torch.Tensor) -> int:
    """FLOPs of one forward as counted by `FlopCounterMode`."""
    with torch.inference_mode(), FlopCounterMode(display=False) as counter:
        model(pixel_values=pixel_values)
    return counter.get_total_flops()


def bare_clip(model_class: type, clip_dir: str) -> torch.nn.Module:
    """`CLIPVisionModelWithProjection` from a full CLIP checkpoint folder, in eval mode.

    The projection width lives in the top-level CLIP config; the vision sub-config of a checkpoint written from
    `CLIPConfig` keeps its own default (512), so it is set explicitly, as OpenAI's config.json files do.
    """
    from transformers import CLIPConfig
    from transformers.utils import logging

    clip_config = CLIPConfig.from_pretrained(clip_dir)
    vision_config = clip_config.vision_config
    vision_config.projection_dim = clip_config.projection_dim
    verbosity = logging.get_verbosity()
    logging.set_verbosity_error()  # the load report lists every text-tower weight left out, which is the point
    try:
        return model_class.from_pretrained(clip_dir, config=vision_config).eval()
    finally:
        logging.set_verbosity(verbosity)


def run(quick: bool = False) -> list[Figure]:
    """Measure both figures; `quick` uses a tiny CLIP, a small matmul and few rounds (a smoke run)."""
    from transformers import CLIPVisionModelWithProjection

    from modeling_pinclip import PinClipForImageClassification

    # 12 rounds: two whole cycles of the six orders of three functions, so each follows each other one equally often.
    shape, rounds, batch, matmul_size = ("tiny", 6, 8, 512) if quick else ("vit-b-16", 12, 8, 4096)
    clip_dir = random_clip(shape)
    pinclip = PinClipForImageClassification.from_clip(str(clip_dir), noise_mode="pin").eval()
    bare = bare_clip(CLIPVisionModelWithProjection, str(clip_dir))
    vision = pinclip.config.vision_config
    size = pinclip.config.image_size
    pixel_values = torch.randn(batch, 3, size, size, generator=torch.Generator().manual_seed(0))
    with torch.inference_mode():  # same weights, same embedding: the comparison is like for like
        same = torch.allclose(pinclip(pixel_values=pixel_values).image_embeds, bare(pixel_values=pixel_values).image_embeds, atol=1e-4)
    if not same:
        raise RuntimeError("PiN-CLIP and bare CLIP disagree on the image embedding: not the same weights")

    left = torch.randn(matmul_size, matmul_size)
    right = torch.randn(matmul_size, matmul_size)

    @torch.inference_mode()
    def forward_pinclip() -> None:
        pinclip(pixel_values=pixel_values)

    @torch.inference_mode()
    def forward_bare() -> None:
        bare(pixel_values=pixel_values)

    def matmul() -> None:
        torch.matmul(left, right)

    timings = time_interleaved({"pinclip": forward_pinclip, "bare": forward_bare, "matmul": matmul}, rounds=rounds, warmup=2)
    # images/s ratio = inverse time ratio
    throughput_ratio, cost_passed = judged(timings.ratio("bare", "pinclip"), COST_TARGET, 3)
    cpu_ratios = timings.cpu_ratios("bare", "pinclip")

    counted = counted_flops(pinclip, pixel_values)
    flops = batch * vit_flops(size, vision.patch_size, vision.hidden_size, vision.num_hidden_layers,
                              vision.intermediate_size, pinclip.config.projection_dim)
    attention = batch * attention_flops(size, vision.patch_size, vision.hidden_size, vision.num_hidden_layers)
    counter_note = (
        "the counter misses only the attention term" if abs(counted + attention - flops) <= 0.001 * flops
        else "the counter includes attention" if abs(counted - flops) <= 0.001 * flops
        else "MISMATCH with the counter: check `vit_flops`"
    )
    matmul_flops = 2 * matmul_size**3
    utilisations = [
        (flops / t_model) / (matmul_flops / t_matmul)
        for t_model, t_matmul in zip(timings.seconds["pinclip"], timings.seconds["matmul"])
    ]
    utilisation, utilisation_passed = judged(statistics.median(utilisations), UTILISATION_TARGET, 2)
    model_gflops = flops / timings.median("pinclip") / 1e9
    matmul_gflops = matmul_flops / timings.median("matmul") / 1e9
    setup = f"{shape} CLIP, {size} px, batch {batch}, fp32, `torch.inference_mode`, {thread_setting(torch.get_num_threads())}"
    timing_note = f"{rounds} interleaved rounds after 2 warm-ups; 1-min load average at the end: {load_average()}"
    return [
        Figure(
            name="inference cost",
            setup=f"{setup}; PiN-CLIP (no inference noise) ÷ bare `CLIPVisionModelWithProjection` images/s",
            value=f"{throughput_ratio:.3f}×",
            target=f"≥ {COST_TARGET:.2f}×",
            passed=cost_passed,
            details=[
                f"median images/s: PiN-CLIP {batch / timings.median('pinclip'):.2f}, bare CLIP "
                f"{batch / timings.median('bare'):.2f} (per-round ratios {min_max(timings.ratios('bare', 'pinclip'))})",
                f"the same ratio in CPU seconds of this process (time other processes take from it left out): "
                f"{statistics.median(cpu_ratios):.3f}× (per-round {min_max(cpu_ratios)})",
                "both give the same image embedding (atol 1e-4)",
                timing_note,
            ],
        ),
        Figure(
            name="compute utilisation",
            setup=f"{setup}; PiN-CLIP GFLOP/s ÷ fp32 `torch.matmul` {matmul_size}² GFLOP/s",
            value=f"{utilisation:.2f}",
            target=f"≥ {UTILISATION_TARGET}",
            passed=utilisation_passed,
            details=[
                f"PiN-CLIP {model_gflops:.1f} GFLOP/s, matmul {matmul_gflops:.1f} GFLOP/s (medians); per-round "
                f"utilisation {min_max(utilisations)}",
                f"FLOPs per batch: {flops / 1e9:.2f} G analytical (`vit_flops`, used), {counted / 1e9:.2f} G counted "
                f"by FlopCounterMode, attention term {attention / 1e9:.2f} G: {counter_note}",
                timing_note,
            ],
        ),
    ]


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="tiny CLIP, few rounds: checks that it runs")
    for figure in run(parser.parse_args().quick):
        print(figure)
