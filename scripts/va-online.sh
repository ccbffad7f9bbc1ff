#!/usr/bin/env bash
# VideoAgent-Online (issue 17; docs/baselines.md, "va-or"): rounds of (the videoagent agent's
# rollouts on training seeds, the successful ones kept, by `sp collect --agent`) -> (the video model
# fine-tuned on them, from the last round's weights). The last round's model is what the va-or
# agent loads (checkpoints/video-va-online-cpu.safetensors once exported). Rerun the same command to
# continue after an interruption: a finished round is skipped, an interrupted collection or
# training resumes.
#
#   bash scripts/va-online.sh BASE.safetensors [OUT_DIR]
#   ROUNDS=1 SEEDS=1000-1003 STEPS=1000 JOBS=2 THREADS=2 SP=build/sp (the defaults: one round of
#   11 tasks x 3 cameras x 4 seeds = 132 rollouts, about 15 min here, and 1000 steps, about 8 min)
set -euo pipefail
BASE=${1:?usage: va-online.sh BASE.safetensors [OUT_DIR]}
OUT=${2:-runs/va-online}
ROUNDS=${ROUNDS:-1}
SEEDS=${SEEDS:-1000-1003}
STEPS=${STEPS:-1000}
JOBS=${JOBS:-2}
THREADS=${THREADS:-2}
SP=${SP:-build/sp}

ckpt=$BASE
for r in $(seq 1 "$ROUNDS"); do
  d=$OUT/round$r
  mkdir -p "$d"
  if [ ! -f "$d/rollouts.h5" ] || [ -d "$d/rollouts.h5.parts" ]; then
    resume=""
    [ -e "$d/rollouts.h5" ] || [ -d "$d/rollouts.h5.parts" ] && resume="--resume"
    # the video model's view (docs/training.md): 64 px, AVDC's crop, shadow map 1024
    "$SP" collect --agent videoagent --agent-checkpoint "$ckpt" --demos 0 --tasks all \
      --cameras corner,corner2,corner3 --seeds "$SEEDS" --size 64 --render-crop --shadow-size 1024 \
      --scenes builtin --jobs "$JOBS" --out "$d/rollouts.h5" $resume
  fi
  if [ ! -f "$d/train/model.safetensors" ]; then
    resume=""
    [ -f "$d/train/last.safetensors" ] && resume="--resume"
    if [ -n "$resume" ]; then
      "$SP" train video --out "$d/train" --resume
    else
      "$SP" train video --data "$d/rollouts.h5" --init "$ckpt" --steps "$STEPS" --batch 8 --lr 1e-4 \
        --warmup 50 --ema power --ema-decay 0.9999 --val-every "$STEPS" --val-clips 8 --ckpt-minutes 5 \
        --log-every 100 --threads "$THREADS" --out "$d/train"
    fi
  fi
  ckpt=$d/train/model.safetensors
done
echo "va-online: $ROUNDS round(s); the model: $ckpt"
