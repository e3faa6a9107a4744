"""Training-step cost of PiN noise: one optimiser step of `noise_mode="pin"` ÷ the same step with `"none"`.

Setup: ViT-B/16-shaped CLIP with random weights from a local checkpoint folder, 224 px, batch 8, LoRA
(r = 6, α = 6 on q/k/v, the authors' setting) on. A step is forward with labels, backward and an AdamW step on the
trainable parameters, what `train.py` does per batch but for its gradient clipping and scheduler step (about a
millisecond of a seven-second step at ViT-B/16). Both models start from the same checkpoint and see
the same batch; their steps are interleaved.

    python bench/bench_train_step.py [--quick]
"""

from __future__ import annotations

import argparse
from collections.abc import Callable

import torch

from common import Figure, judged, load_average, min_max, random_clip, thread_setting, time_interleaved

TARGET = 1.10


def make_step(model: torch.nn.Module, pixel_values: torch.Tensor, labels: torch.Tensor) -> Callable[[], None]:
    """A closure running one full training step of `model` on a fixed batch."""
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-4)
    model.train()

    def step() -> None:
        loss = model(pixel_values=pixel_values, labels=labels).loss
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)

    return step


def run(quick: bool = False) -> list[Figure]:
    """Measure the pin/none step-time ratio; `quick` uses a tiny CLIP and few rounds (a smoke run)."""
    from modeling_pinclip import PinClipForImageClassification

    shape, rounds = ("tiny", 3) if quick else ("vit-b-16", 8)
    clip_dir = random_clip(shape)
    models = {
        mode: PinClipForImageClassification.from_clip(str(clip_dir), noise_mode=mode, lora_r=6, lora_alpha=6)
        for mode in ("pin", "none")
    }
    size = models["pin"].config.image_size
    generator = torch.Generator().manual_seed(0)
    pixel_values = torch.randn(8, 3, size, size, generator=generator)
    labels = torch.tensor([0, 1] * 4)
    steps = {mode: make_step(model, pixel_values, labels) for mode, model in models.items()}
    timings = time_interleaved(steps, rounds=rounds, warmup=1)
    ratio, passed = judged(timings.ratio("pin", "none"), TARGET, 3, at_most=True)
    trainable = {mode: sum(p.numel() for p in m.parameters() if p.requires_grad) for mode, m in models.items()}
    return [
        Figure(
            name="training-step cost of PiN noise",
            setup=f"{shape} CLIP, {size} px, batch 8, LoRA r=6 on q/k/v, AdamW, {thread_setting(torch.get_num_threads())}; "
            "`pin` ÷ `none` step time",
            value=f"{ratio:.3f}×",
            target=f"≤ {TARGET:.2f}×",
            passed=passed,
            details=[
                f"median step: pin {timings.median('pin'):.3f} s, none {timings.median('none'):.3f} s "
                f"({rounds} interleaved rounds after 1 warm-up; per-round ratios {min_max(timings.ratios('pin', 'none'))})",
                f"trainable parameters: pin {trainable['pin']:,}, none {trainable['none']:,} "
                "(the difference is the noise generator)",
                f"1-min load average at the end: {load_average()}",
            ],
        )
    ]


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="tiny CLIP, few rounds: checks that it runs")
    for figure in run(parser.parse_args().quick):
        print(figure)
