#!/usr/bin/env bash
# The default training run (MiniGenImage + a tiny random CLIP) on one GPU through `accelerate launch` in bf16 mixed
# precision, shortened to 1,000 steps: checks that train.py's Accelerate path trains, saves and evaluates on CUDA, and
# times it. For the lent accelerator machine (no internet; datasets and evaluate carried as wheels, bench/README.md).
#
#   bash bench/gpu_train.sh          # writes $OUT/train_log.txt and $OUT/train_metrics.json when $OUT is set
#
# Hard limit 270 s, so that it fits after bench/gpu.sh (290 s at most) in one 10-minute device call. On an H200
# (2026-11-30) training began ≈ 2 min after the launch (MiniGenImage built from an empty cache, evaluation images
# checked) and ran at ≈ 19 steps/s (no DataLoader workers).
set -euo pipefail
cd "$(dirname "$0")/.."

export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 HF_HUB_DISABLE_TELEMETRY=1 TOKENIZERS_PARALLELISM=false
export PINCLIP_CACHE="${PINCLIP_CACHE:-$(mktemp -d)}"  # an empty cache: MiniGenImage is built as a user's first run builds it
PYTHON="${PYTHON:-$(command -v python3 || command -v python)}"
RUN_DIR="$(mktemp -d)/pinclip-minigenimage"
LOG="${OUT:-$(dirname "$RUN_DIR")}/train_log.txt"

echo "== default training run on one GPU, bf16 mixed precision"
started=$(date +%s)
status=0
timeout 270 "$PYTHON" -m accelerate.commands.launch --num_processes 1 --num_machines 1 --mixed_precision bf16 \
  --dynamo_backend no train.py --max_steps 1000 --output_dir "$RUN_DIR" >"$LOG" 2>&1 || status=$?
tr '\r' '\n' <"$LOG" | grep -v '^training: ' | tail -25 || true  # the log without the progress bar's redraws
echo "exit status $status after $(( $(date +%s) - started )) s" | tee -a "$LOG"
if [ -f "$RUN_DIR/metrics.json" ]; then
  [ -n "${OUT:-}" ] && cp "$RUN_DIR/metrics.json" "$OUT/train_metrics.json"
  "$PYTHON" - "$RUN_DIR/metrics.json" <<'EOF'
import json, sys
metrics = json.load(open(sys.argv[1]))
print(json.dumps({key: metrics[key] for key in ("training", "mean") if key in metrics}, indent=1)[:3000])
EOF
fi
exit "$status"
