#!/usr/bin/env bash
# SP's checkpoints from an empty directory (docs/training.md, "SP's checkpoints from an empty
# directory"): demonstrations, the plan-conditioned video model, the policy in two stages, the
# imagined goals and the policy's fine-tuning on them. Each step is skipped when its output is
# complete and resumed when it was interrupted, so rerunning the same command continues.
#
#   bash scripts/sp-pipeline.sh [OUT_DIR]
#   SP=build/sp JOBS=2 THREADS=2 (the defaults) and the budgets below, the committed run's by
#   default: DEMOS=20 RECOVERY=4 SEEDS=1000-1049 (stage-1 data), GRASP_DEMOS=60 GRASP_RECOVERY=8
#   GRASP_SEEDS=1000-1199 (stage-2 data), VIDEO_STEPS=8000, POLICY_STEPS=36000, FT_STEPS=12000,
#   IM_STEPS=8000, PER_DEMO=2. FT_STEPS=0 leaves out the second stage (steps 4 and 5): the stage-1
#   policy and data go on to steps 6 and 7. GRASP=late collects both datasets with the late-grasp
#   experts (sp collect --grasp; default metaworld, the committed run's).
#
# Writes OUT_DIR/checkpoints/{video-plan-cpu,policy-cpu,policy-imagined-cpu}.safetensors (float16),
# what `sp eval --agent sp-r --checkpoint ... --policy-checkpoint ...` takes; the logs beside them.
set -Eeuo pipefail
OUT=${1:-runs/pipeline}
SP=${SP:-build/sp}
JOBS=${JOBS:-2}
THREADS=${THREADS:-2}
DEMOS=${DEMOS:-20}
RECOVERY=${RECOVERY:-4}
SEEDS=${SEEDS:-1000-1049}
GRASP_DEMOS=${GRASP_DEMOS:-60}
GRASP_RECOVERY=${GRASP_RECOVERY:-8}
GRASP_SEEDS=${GRASP_SEEDS:-1000-1199}
VIDEO_STEPS=${VIDEO_STEPS:-8000}
POLICY_STEPS=${POLICY_STEPS:-36000}
FT_STEPS=${FT_STEPS:-12000}
IM_STEPS=${IM_STEPS:-8000}
PER_DEMO=${PER_DEMO:-2}
GRASP=${GRASP:-metaworld}

mkdir -p "$OUT/checkpoints"
CK=$OUT/checkpoints
VIEW=(--cameras corner,corner2,corner3 --scenes builtin --jobs "$JOBS" --size 64 --grasp "$GRASP")

LOG=""
step() { echo "$(date +%T) $*" >&2; }
trap 'echo "sp-pipeline: a step failed (exit $?); its log: ${LOG:-none}" >&2' ERR

# collect OUT.h5 FLAGS...: a new dataset, or the missing episodes of an interrupted one
collect() {
  local out=$1; shift
  local resume=""
  LOG=$out.log
  [ -f "$out" ] && resume="--resume"
  "$SP" collect "$@" "${VIEW[@]}" --out "$out" $resume >> "$out.log" 2>&1
}

# train KIND DIR STEPS FLAGS...: a finished run (its log reached STEPS) is kept, an interrupted
# one resumed, else a new one started
train() {
  local kind=$1 dir=$2 steps=$3; shift 3
  LOG=$dir.log
  if [ -f "$dir/model.safetensors" ] && grep -q "\"step\":$steps," "$dir/train.jsonl" 2>/dev/null; then
    return 0
  fi
  if [ -f "$dir/last.safetensors" ]; then
    "$SP" train "$kind" --out "$dir" --resume --threads "$THREADS" >> "$dir.log" 2>&1
  else
    "$SP" train "$kind" "$@" --steps "$steps" --threads "$THREADS" --out "$dir" > "$dir.log" 2>&1
  fi
}

step "1/7 demonstrations ($OUT/demos64.h5)"
collect "$OUT/demos64.h5" --tasks all --seeds "$SEEDS" --demos "$DEMOS" --recovery "$RECOVERY"

step "2/7 the plan-conditioned video model ($OUT/video_plan)"
train video "$OUT/video_plan" "$VIDEO_STEPS" --data "$OUT/demos64.h5" --preset cpu --cond plan \
  --batch 8 --lr 2e-4 --warmup 200 --ema power --ema-decay 0.9999 --val-every 1000 --val-clips 16 \
  --val-steps 20 --ckpt-minutes 5 --log-every 50
"$SP" export --ckpt "$OUT/video_plan/model.safetensors" --out "$CK/video-plan-cpu.safetensors" > /dev/null

step "3/7 the policy, stage 1 ($OUT/policy_cpu)"
train policy "$OUT/policy_cpu" "$POLICY_STEPS" --data "$OUT/demos64.h5" --preset cpu --target x0 \
  --recovery 1 --lr 3e-4 --warmup 500 --val-every 4000 --log-every 200 --ckpt-minutes 5

if [ "$FT_STEPS" -gt 0 ]; then
  step "4/7 more grasping demonstrations ($OUT/demos64x.h5)"
  if [ ! -f "$OUT/demos64x.h5" ]; then
    cp "$OUT/demos64.h5" "$OUT/demos64x.h5.part"
    mv "$OUT/demos64x.h5.part" "$OUT/demos64x.h5"
  fi
  collect "$OUT/demos64x.h5" --tasks basketball,shelf-place,hammer,assembly,faucet-open --seeds "$GRASP_SEEDS" \
    --demos "$GRASP_DEMOS" --recovery "$GRASP_RECOVERY"

  step "5/7 the policy, stage 2 ($OUT/policy_ft)"
  train policy "$OUT/policy_ft" "$FT_STEPS" --data "$OUT/demos64x.h5" --init "$OUT/policy_cpu/model.safetensors" \
    --recovery 1 --lr 1e-4 --warmup 200 --val-every 2000 --log-every 200 --ckpt-minutes 5
  "$SP" export --ckpt "$OUT/policy_ft/model.safetensors" --out "$CK/policy-cpu.safetensors" > /dev/null
  DATA=$OUT/demos64x.h5
else  # FT_STEPS=0: no second stage; the stage-1 policy and data go on
  step "4-5/7 skipped (FT_STEPS=0)"
  "$SP" export --ckpt "$OUT/policy_cpu/model.safetensors" --out "$CK/policy-cpu.safetensors" > /dev/null
  DATA=$OUT/demos64.h5
fi
IMAGINED=${DATA%.h5}-imagined.safetensors

step "6/7 imagined goals ($IMAGINED)"
if [ ! -f "$IMAGINED" ]; then
  LOG=${IMAGINED%.safetensors}.log
  "$SP" imagine --ckpt "$CK/video-plan-cpu.safetensors" --data "$DATA" \
    --out "$IMAGINED" --per-demo "$PER_DEMO" --jobs "$JOBS" > "$LOG" 2>&1
fi

step "7/7 the policy on imagined goals ($OUT/policy_im)"
train policy "$OUT/policy_im" "$IM_STEPS" --data "$DATA" --init "$CK/policy-cpu.safetensors" \
  --imagined "$IMAGINED" --imagined-frac 0.5 --recovery 1 --lr 1e-4 --warmup 200 \
  --val-every 2000 --log-every 200 --ckpt-minutes 5
"$SP" export --ckpt "$OUT/policy_im/model.safetensors" --out "$CK/policy-imagined-cpu.safetensors" > /dev/null

step "done: $CK"
ls -l "$CK" >&2
