#!/usr/bin/env bash
# Accelerator benchmark: ViT-L/14 (random weights) training and inference images/s in bf16, as ratios measured
# side by side (see bench/bench_gpu.py). For a fresh machine with one NVIDIA GPU and no internet: it uses only
# the Python packages already installed there (torch with CUDA, transformers; peft for LoRA if present) and
# finishes in under 5 minutes. The table is printed and, if $OUT is set, written to $OUT/gpu_results.md.
#
#   bash bench/gpu.sh                 # on the accelerator machine, from a copy of this repository
#   bash bench/gpu.sh --device cpu --quick   # a smoke run of the same path on a CPU
#   PYTHON=.venv/bin/python bash bench/gpu.sh   # another interpreter (e.g. one with wheels carried over)
#
# Time limits: 30 s for the package check and 260 s for the benchmark, so the whole script stays under 5 minutes;
# each phase prints its medians as soon as it is measured, so a run cut short still reports what it measured.
set -euo pipefail
cd "$(dirname "$0")/.."

# No Hub access there: everything is built locally, so fail fast instead of waiting on the network.
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 HF_HUB_DISABLE_TELEMETRY=1 TOKENIZERS_PARALLELISM=false
PYTHON="${PYTHON:-$(command -v python3 || command -v python)}"

echo "== machine"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader 2>/dev/null || echo "nvidia-smi: not available"
echo "python: $PYTHON ($("$PYTHON" --version 2>&1))"

echo "== packages"
timeout 30 "$PYTHON" - <<'EOF'
import importlib.util, sys
import torch
print("torch", torch.__version__, "CUDA build", torch.version.cuda, "cuda available:", torch.cuda.is_available())
if torch.cuda.is_available():
    print("device:", torch.cuda.get_device_name(0), "bf16 supported:", torch.cuda.is_bf16_supported())
for name in ("transformers", "peft", "safetensors", "tokenizers"):
    spec = importlib.util.find_spec(name)
    print(name, __import__(name).__version__ if spec else "NOT INSTALLED")
if importlib.util.find_spec("transformers") is None:
    sys.exit("transformers is required and pip cannot reach the internet here: nothing to measure")
import transformers
if int(transformers.__version__.split(".")[0]) < 5:  # the model files use transformers 5 modules
    sys.exit(f"transformers {transformers.__version__} is too old for modeling_pinclip.py (needs >= 5)")
EOF

ARGS=("$@")
if [ -n "${OUT:-}" ]; then
  ARGS+=(--output "$OUT/gpu_results.md")
fi
echo "== benchmark"
# Hard limit: with the package check's 30 s, under the 5-minute budget. On an H200 the run took 85 s with 7 rounds,
# compilation included (bench/gpu_results_h200.md); 18 rounds should take well under twice that.
timeout 260 "$PYTHON" bench/bench_gpu.py "${ARGS[@]}"
