"""Model size and memory: a saved ViT-L/14 PiN-CLIP against the CLIP checkpoint it was built from, and the peak
resident memory of one `pipeline("image-classification")` call on the saved detector.

The saved PiN-CLIP keeps the vision tower, projection, head and noise generator but no text tower (the class
prompts are a 2 × 768 buffer), so its size relative to CLIP depends on how big the text tower is:

* `openai`-shaped: ViT-L/14 vision + OpenAI's text tower (12 × 768 wide, 49 408-token vocabulary), i.e. the
  tensor shapes of `openai/clip-vit-large-patch14`, random weights. This is the figure the target is about.
* `write_random_clip("vit-l-14")`: the same vision tower with the tiny test text tower of `clip_checkpoints`
  (for reference: there is almost no text tower to drop, so the ratio is close to 1).

Sizes are the bytes of the `*.safetensors` weight files; both are fp32. The pipeline's memory is measured in a
fresh subprocess: RSS after loading, then the peak RSS during the call alone (the kernel's high-water mark is
reset through /proc/self/clear_refs after loading).

    python bench/bench_size_memory.py [--quick]
"""

from __future__ import annotations

import argparse
import json
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
from PIL import Image

from common import CACHE_DIR, REPO_ROOT, Figure, cached_folder, judged, random_clip, saved_pinclip

TARGET = 0.75
# OpenAI ViT-L/14's text tower (config.json of openai/clip-vit-large-patch14).
OPENAI_TEXT_TOWER = dict(vocab_size=49408, hidden_size=768, intermediate_size=3072, num_hidden_layers=12,
                         num_attention_heads=12, max_position_embeddings=77)
# A scaled-down text tower for `--quick`, so a smoke run does not write half a gigabyte.
QUICK_TEXT_TOWER = dict(vocab_size=1024, hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                        num_attention_heads=4, max_position_embeddings=77)

# Runs in a subprocess so that nothing the benchmark loaded before counts towards the pipeline's memory.
PIPELINE_PROBE = r"""
import json, sys
from transformers import pipeline

def rss_mib(field):
    for line in open("/proc/self/status"):
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024

model_dir, image_path = sys.argv[1], sys.argv[2]
detector = pipeline("image-classification", model=model_dir, trust_remote_code=True)
after_load = rss_mib("VmRSS")


def call_peak():
    # Peak RSS of one call: writing "5" resets the high-water mark VmHWM (Linux >= 4.0) before it.
    try:
        with open("/proc/self/clear_refs", "w") as handle:
            handle.write("5")
        reset = True
    except OSError:
        reset = False
    labels = [r["label"] for r in detector(image_path)]
    return rss_mib("VmHWM"), reset, labels

first, reset, labels = call_peak()
second, _, _ = call_peak()
print(json.dumps({"after_load": after_load, "first_call_peak": first, "second_call_peak": second,
                  "after_calls": rss_mib("VmRSS"), "peak_reset": reset, "labels": labels}))
"""


def write_openai_shaped_clip(folder: Path, vision_shape: str = "vit-l-14", text_tower: dict = OPENAI_TEXT_TOWER,
                             seed: int = 0) -> Path:
    """A random CLIP with `vision_shape`'s vision tower and the given (by default OpenAI's) text tower, saved with
    the tiny tokenizer of `clip_checkpoints`."""
    import torch
    from transformers import CLIPConfig, CLIPModel

    from clip_checkpoints import CLIP_SHAPES, tiny_clip_tokenizer

    def write(partial: Path) -> None:
        tokenizer = tiny_clip_tokenizer(partial)  # its ids are < 1024, so it drives any of the embedding tables
        vision = dict(CLIP_SHAPES[vision_shape])
        projection_dim = vision.pop("projection_dim")
        text = dict(text_tower, bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
                    pad_token_id=tokenizer.pad_token_id)
        torch.manual_seed(seed)
        config = CLIPConfig(vision_config=vision, text_config=text, projection_dim=projection_dim)
        CLIPModel(config).save_pretrained(partial)
        tokenizer.save_pretrained(partial)

    return cached_folder(folder, write)


def weight_bytes(folder: Path) -> int:
    return sum(path.stat().st_size for path in folder.glob("*.safetensors"))


def pipeline_memory(model_dir: Path, image_path: Path) -> dict:
    """RSS (MiB) of a fresh process after `pipeline(...)` loads `model_dir`, and its peak during one call."""
    completed = subprocess.run(
        [sys.executable, "-c", PIPELINE_PROBE, str(model_dir), str(image_path)],
        capture_output=True, text=True, cwd=REPO_ROOT, timeout=600,
    )
    if completed.returncode < 0:  # its stderr's last line would be a progress bar, not why it died
        signal_name = signal.Signals(-completed.returncode).name
        likely = ": likely out of memory" if signal_name == "SIGKILL" else ""
        raise RuntimeError(f"the pipeline probe on {model_dir.name} was killed by {signal_name}{likely}")
    if completed.returncode != 0:  # the probe's own error (a load failure), not its source text
        reason = completed.stderr.strip().splitlines()[-1:] or ["no message"]
        raise RuntimeError(f"the pipeline probe on {model_dir.name} failed (exit {completed.returncode}): {reason[0]}")
    return json.loads(completed.stdout.strip().splitlines()[-1])


def size_figure(name: str, clip_dir: Path, pinclip_dir: Path, passed: bool | None, note: str) -> Figure:
    clip_bytes, pinclip_bytes = weight_bytes(clip_dir), weight_bytes(pinclip_dir)
    ratio, within = judged(pinclip_bytes / clip_bytes, TARGET, 3, at_most=True)
    return Figure(
        name=name,
        setup=note,
        value=f"{ratio:.3f}× ({pinclip_bytes / 2**20:,.0f} MiB ÷ {clip_bytes / 2**20:,.0f} MiB)",
        target=f"≤ {TARGET:.2f}×" if passed is not None else "(reference)",
        passed=None if passed is None else within,
        details=[],
    )


def run(quick: bool = False) -> list[Figure]:
    """Measure both size ratios and the pipeline's memory; `quick` uses tiny checkpoints (a smoke run)."""
    shape, text_tower = ("tiny", QUICK_TEXT_TOWER) if quick else ("vit-l-14", OPENAI_TEXT_TOWER)
    openai_clip = write_openai_shaped_clip(CACHE_DIR / f"clip-{shape}-openai-text-seed0", shape, text_tower)
    test_clip = random_clip(shape)
    openai_pinclip = saved_pinclip(openai_clip, CACHE_DIR / f"pinclip-{shape}-openai-text", noise_mode="pin")
    test_pinclip = saved_pinclip(test_clip, CACHE_DIR / f"pinclip-{shape}", noise_mode="pin")

    main = size_figure("model size", openai_clip, openai_pinclip, True,
                       f"{shape} vision + {'a small' if quick else 'OpenAI-shaped'} text tower "
                       f"({'smoke run' if quick else 'the tensor shapes of openai/clip-vit-large-patch14'}); "
                       "saved PiN-CLIP ÷ CLIP checkpoint, fp32 safetensors")
    reference = size_figure("model size (tiny text tower)", test_clip, test_pinclip, None,
                            f"`write_random_clip('{shape}')`: tiny test text tower, so nothing much to drop")

    image_path = CACHE_DIR / "probe-512.png"
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 256, (512, 512, 3), dtype=np.uint8)).save(image_path)
    memory = pipeline_memory(openai_pinclip, image_path)
    weights_mib = weight_bytes(openai_pinclip) / 2**20
    main.details += [
        f"peak RSS of one pipeline call on a 512×512 PNG: {memory['first_call_peak']:,.0f} MiB for the first call "
        f"(fp32 weights {weights_mib:,.0f} MiB; RSS right after `pipeline(...)` is only {memory['after_load']:,.0f} "
        "MiB because safetensors memory-maps the weights and the first call pages them in), "
        f"{memory['second_call_peak']:,.0f} MiB for a second call; RSS after both {memory['after_calls']:,.0f} MiB"
        + ("" if memory["peak_reset"] else " — peak not reset between calls (no /proc/self/clear_refs): peaks include loading"),
    ]
    return [main, reference]


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="tiny checkpoints: checks that it runs")
    for figure in run(parser.parse_args().quick):
        print(figure)
