"""The speed ratios of the CPU suite on an accelerator: ViT-L/14 (random weights) in bf16 autocast.

* training-step cost of PiN noise: `pin` ÷ `none` step time, LoRA r = 6 on q/k/v, batch 32 (the authors' batch),
  plus the training images/s of each;
* inference cost: PiN-CLIP (no inference noise) ÷ bare `CLIPVisionModelWithProjection` images/s, batch 64;
* compute utilisation: PiN-CLIP inference TFLOP/s (analytical count, `bench_inference.vit_flops`) ÷ TFLOP/s of a
  bf16 `torch.matmul` (8192²) timed in the same process; for the autocast model above, and for a deployment form
  of it (weights cast to bf16 once, batch 256, with and without `torch.compile`), since autocast re-casts every
  weight on every call and batch 64 leaves the GPU partly idle.

Timed calls are interleaved (`common.time_interleaved`) and end with a device synchronisation. Run through
`bench/gpu.sh` on the accelerator machine; `--device cpu --quick` checks the whole path on a CPU in a minute.
Prints a Markdown table and writes it to `--output` (gpu.sh: `$OUT/gpu_results.md`).

    python bench/bench_gpu.py --device cuda [--output gpu_results.md]
    python bench/bench_gpu.py --device cpu --quick
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.util
import platform
import statistics
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch

from bench_inference import COST_TARGET, UTILISATION_TARGET, bare_clip, vit_flops
from bench_train_step import TARGET as STEP_COST_TARGET
from common import Timings, judged, min_max, time_interleaved


@dataclass
class Settings:
    """What one run measures; `--quick` shrinks everything to a smoke run."""

    shape: str
    train_batch: int
    infer_batch: int
    deploy_batch: int  # batch of the bf16-weight deployment variants
    matmul_size: int
    rounds: int
    calls_per_round: int  # several calls per timed sample, so a sample is long enough to time on a GPU


# 18 rounds: with 7, the H200's per-round training ratios spread over 0.95-1.28 and the median moved by 0.09 between
# two runs of the same code (bench/NOTES.md §6); that run took 85 s of gpu.sh's 260, compilation included. 18 is a
# whole number of cycles of the orders of two functions (2) and of three (6), so each runs first as often as the other.
FULL = Settings(shape="vit-l-14", train_batch=32, infer_batch=64, deploy_batch=256, matmul_size=8192, rounds=18,
                calls_per_round=5)
QUICK = Settings(shape="tiny", train_batch=8, infer_batch=8, deploy_batch=16, matmul_size=512, rounds=3,
                 calls_per_round=2)


def synchronise(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def repeated(function: Callable[[], object], calls: int, device: torch.device) -> Callable[[], None]:
    """`function` run `calls` times and then waited for (GPU work is asynchronous)."""

    def run() -> None:
        for _ in range(calls):
            function()
        synchronise(device)

    return run


def autocast(device: torch.device) -> contextlib.AbstractContextManager:
    return torch.autocast(device_type=device.type, dtype=torch.bfloat16)


def training_steps(clip_dir: Path, settings: Settings, device: torch.device, lora: bool) -> dict[str, Callable[[], None]]:
    """One timed training step (forward with labels, backward, AdamW) per noise mode, on a fixed batch."""
    from clip_checkpoints import CLIP_SHAPES
    from modeling_pinclip import PinClipForImageClassification

    overrides = dict(lora_r=6, lora_alpha=6) if lora else {}
    size = CLIP_SHAPES[settings.shape]["image_size"]
    pixel_values = torch.randn(settings.train_batch, 3, size, size, device=device)
    labels = torch.arange(settings.train_batch, device=device) % 2
    steps = {}
    for mode in ("pin", "none"):
        model = PinClipForImageClassification.from_clip(str(clip_dir), noise_mode=mode, **overrides).to(device).train()
        optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-4)

        def step(model=model, optimizer=optimizer) -> None:
            with autocast(device):
                loss = model(pixel_values=pixel_values, labels=labels).loss
            loss.backward()
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)

        steps[mode] = repeated(step, settings.calls_per_round, device)
    return steps


def timed_forward(model: Callable, pixel_values: torch.Tensor, settings: Settings, device: torch.device,
                  bf16_autocast: bool) -> Callable[[], None]:
    """`calls_per_round` inference forwards of `model` on a fixed batch, under bf16 autocast or as they are."""

    @torch.inference_mode()
    def call() -> None:
        with autocast(device) if bf16_autocast else contextlib.nullcontext():
            model(pixel_values=pixel_values)

    return repeated(call, settings.calls_per_round, device)


def matmul_call(settings: Settings, device: torch.device) -> Callable[[], None]:
    """The reference: 4 × `calls_per_round` bf16 square matmuls of `matmul_size`."""
    left = torch.randn(settings.matmul_size, settings.matmul_size, device=device, dtype=torch.bfloat16)
    right = torch.randn(settings.matmul_size, settings.matmul_size, device=device, dtype=torch.bfloat16)
    return repeated(lambda: torch.matmul(left, right), settings.calls_per_round * 4, device)


def batch_flops(model: torch.nn.Module, batch: int) -> int:
    """Analytical FLOPs of one inference batch of a PiN-CLIP model."""
    vision = model.config.vision_config
    return batch * vit_flops(model.config.image_size, vision.patch_size, vision.hidden_size,
                             vision.num_hidden_layers, vision.intermediate_size, model.config.projection_dim)


def inference_calls(clip_dir: Path, settings: Settings, device: torch.device) -> tuple[dict[str, Callable[[], None]], int]:
    """Timed PiN-CLIP / bare CLIP forwards and bf16 matmul; also the analytical FLOPs of one PiN-CLIP batch."""
    from transformers import CLIPVisionModelWithProjection

    from modeling_pinclip import PinClipForImageClassification

    pinclip = PinClipForImageClassification.from_clip(str(clip_dir)).to(device).eval()
    bare = bare_clip(CLIPVisionModelWithProjection, str(clip_dir)).to(device)
    size = pinclip.config.image_size
    pixel_values = torch.randn(settings.infer_batch, 3, size, size, device=device)
    calls = {
        "pinclip": timed_forward(pinclip, pixel_values, settings, device, bf16_autocast=True),
        "bare": timed_forward(bare, pixel_values, settings, device, bf16_autocast=True),
        "matmul": matmul_call(settings, device),
    }
    return calls, batch_flops(pinclip, settings.infer_batch)


def deployment_calls(clip_dir: Path, settings: Settings, device: torch.device) -> tuple[dict[str, Callable[[], None]], int, str]:
    """PiN-CLIP as one would serve it: weights cast to bf16 once (no autocast), a larger batch, eager and compiled;
    the same matmul as reference. Also the FLOPs of one such batch and a note on compilation."""
    from modeling_pinclip import PinClipForImageClassification

    model = PinClipForImageClassification.from_clip(str(clip_dir)).to(device, torch.bfloat16).eval()
    size = model.config.image_size
    pixel_values = torch.randn(settings.deploy_batch, 3, size, size, device=device, dtype=torch.bfloat16)
    compiled, note = torch.compile(model), "torch.compile (default mode)"
    try:
        with torch.inference_mode():
            compiled(pixel_values=pixel_values)  # compile outside the timing
    except Exception as error:  # noqa: BLE001 - a missing compiler toolchain must not lose the other figures
        compiled, note = model, f"torch.compile failed ({type(error).__name__}: {str(error)[:80]}); eager"
    calls = {
        "bf16": timed_forward(model, pixel_values, settings, device, bf16_autocast=False),
        "compiled": timed_forward(compiled, pixel_values, settings, device, bf16_autocast=False),
        "matmul": matmul_call(settings, device),
    }
    return calls, batch_flops(model, settings.deploy_batch), note


def utilisation_of(timings: Timings, name: str, flops: int, settings: Settings) -> tuple[float, float, float, list[float]]:
    """Median per-round utilisation of `name` against the matmul of the same round, its TFLOP/s, the matmul's
    TFLOP/s, and the per-round values."""
    calls = settings.calls_per_round
    matmul_flops = 2 * settings.matmul_size**3 * calls * 4
    per_round = [
        (flops * calls / t_model) / (matmul_flops / t_matmul)
        for t_model, t_matmul in zip(timings.seconds[name], timings.seconds["matmul"])
    ]
    median = statistics.median(per_round)
    return median, flops * calls / timings.median(name) / 1e12, matmul_flops / timings.median("matmul") / 1e12, per_round


def device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return f"CPU {platform.processor() or platform.machine()}"


def versions() -> str:
    import transformers

    peft = importlib.util.find_spec("peft")
    cuda = torch.version.cuda or "none"
    peft_version = __import__("peft").__version__ if peft else "not installed"
    return f"torch {torch.__version__} (CUDA {cuda}), transformers {transformers.__version__}, peft {peft_version}"


def table(device: torch.device, settings: Settings, lora: bool, train: Timings, infer: Timings, flops: int,
          deploy: Timings, deploy_flops: int, compile_note: str, seconds: float) -> str:
    """The results as Markdown."""
    calls = settings.calls_per_round
    train_ratio = train.ratio("pin", "none")
    infer_ratio = infer.ratio("bare", "pinclip")
    utilisation, model_tflops, matmul_tflops, utilisations = utilisation_of(infer, "pinclip", flops, settings)
    lora_text = "LoRA r=6 on q/k/v" if lora else "full fine-tuning (peft not installed: no LoRA)"

    def images_per_s(timings: Timings, name: str, batch: int) -> str:
        return f"{batch * calls / timings.median(name):,.1f}"

    def shown_and_verdict(value: float, target: float, decimals: int, at_most: bool = False) -> tuple[str, str]:
        rounded, ok = judged(value, target, decimals, at_most)
        return f"{rounded:.{decimals}f}", "pass" if ok else "FAIL"

    train_shown, train_verdict = shown_and_verdict(train_ratio, STEP_COST_TARGET, 3, at_most=True)
    infer_shown, infer_verdict = shown_and_verdict(infer_ratio, COST_TARGET, 3)
    utilisation_shown, utilisation_verdict = shown_and_verdict(utilisation, UTILISATION_TARGET, 2)

    rows = [
        ("training-step cost of PiN noise", f"{settings.shape}, batch {settings.train_batch}, bf16 autocast, "
         f"{lora_text}; `pin` ÷ `none` step time", f"{train_shown}×", f"≤ {STEP_COST_TARGET:.2f}×", train_verdict,
         f"train images/s: pin {images_per_s(train, 'pin', settings.train_batch)}, none "
         f"{images_per_s(train, 'none', settings.train_batch)}; per-round {min_max(train.ratios('pin', 'none'))}"),
        ("inference cost", f"batch {settings.infer_batch}, bf16 autocast; PiN-CLIP ÷ bare "
         "`CLIPVisionModelWithProjection` images/s", f"{infer_shown}×", f"≥ {COST_TARGET:.2f}×", infer_verdict,
         f"inference images/s: PiN-CLIP {images_per_s(infer, 'pinclip', settings.infer_batch)}, bare "
         f"{images_per_s(infer, 'bare', settings.infer_batch)}; per-round {min_max(infer.ratios('bare', 'pinclip'))}"),
        ("compute utilisation", f"PiN-CLIP inference TFLOP/s ÷ bf16 `torch.matmul` {settings.matmul_size}² TFLOP/s",
         utilisation_shown, f"≥ {UTILISATION_TARGET}", utilisation_verdict,
         f"PiN-CLIP {model_tflops:.1f} TFLOP/s ({flops / 1e12:.2f} TFLOP per batch, analytical), matmul "
         f"{matmul_tflops:.1f} TFLOP/s; per-round {min_max(utilisations)}"),
    ]
    for name, setup in (("bf16", "bf16 weights, eager"), ("compiled", f"bf16 weights, {compile_note}")):
        value, tflops, reference, per_round = utilisation_of(deploy, name, deploy_flops, settings)
        shown, verdict = shown_and_verdict(value, UTILISATION_TARGET, 2)
        rows.append((
            f"compute utilisation ({setup})", f"batch {settings.deploy_batch}; PiN-CLIP TFLOP/s ÷ bf16 `torch.matmul` "
            f"{settings.matmul_size}² TFLOP/s", shown, f"≥ {UTILISATION_TARGET}", verdict,
            f"PiN-CLIP {tflops:.1f} TFLOP/s ({images_per_s(deploy, name, settings.deploy_batch)} images/s), matmul "
            f"{reference:.1f} TFLOP/s; per-round {min_max(per_round)}",
        ))
    lines = [
        f"# PiN-CLIP accelerator benchmark ({device_name(device)})",
        "",
        f"- device: {device_name(device)}",
        f"- versions: {versions()}",
        f"- {settings.rounds} interleaved rounds after 1 warm-up, {calls} calls per timed sample; "
        f"whole run {seconds:.0f} s",
        *([f"- peak GPU memory allocated: {torch.cuda.max_memory_allocated(device) / 2**30:.1f} GiB"]
          if device.type == "cuda" else []),
        "",
        "| figure | setup | value | target | result | details |",
        "|---|---|---|---|---|---|",
        *(f"| {' | '.join(row)} |" for row in rows),
    ]
    return "\n".join(lines) + "\n"


def print_medians(what: str, timings: Timings) -> None:
    """The medians measured so far, printed at once: a run stopped by gpu.sh's time limit later still reports them."""
    medians = ", ".join(f"{name} {1000 * timings.median(name):.1f} ms" for name in timings.seconds)
    print(f"    median {what}: {medians}", flush=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cuda", help="cuda (default) or cpu")
    parser.add_argument("--quick", action="store_true", help="tiny CLIP, few rounds: checks the script runs")
    parser.add_argument("--output", type=Path, help="also write the Markdown table here")
    args = parser.parse_args(argv)
    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        parser.error("--device cuda but torch.cuda.is_available() is False")
    settings = QUICK if args.quick else FULL
    lora = importlib.util.find_spec("peft") is not None
    started = time.perf_counter()
    torch.manual_seed(0)

    from clip_checkpoints import write_random_clip

    with tempfile.TemporaryDirectory(prefix="pinclip-gpu-bench-") as tmp:
        clip_dir = write_random_clip(Path(tmp) / "clip", shape=settings.shape, seed=0)
        print(f"[{time.perf_counter() - started:.0f} s] random {settings.shape} CLIP written; timing training",
              flush=True)
        train = time_interleaved(training_steps(clip_dir, settings, device, lora), rounds=settings.rounds, warmup=1)
        print_medians("training step", train)
        print(f"[{time.perf_counter() - started:.0f} s] timing inference", flush=True)
        calls, flops = inference_calls(clip_dir, settings, device)
        infer = time_interleaved(calls, rounds=settings.rounds, warmup=1)
        print_medians("inference batch", infer)
        print(f"[{time.perf_counter() - started:.0f} s] compiling and timing the bf16 deployment form", flush=True)
        calls, deploy_flops, compile_note = deployment_calls(clip_dir, settings, device)
        deploy = time_interleaved(calls, rounds=settings.rounds, warmup=1)
    markdown = table(device, settings, lora, train, infer, flops, deploy, deploy_flops, compile_note,
                     time.perf_counter() - started)
    print(markdown)
    if args.output:
        args.output.parent.mkdir(parents=True, exist_ok=True)
        args.output.write_text(markdown)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
