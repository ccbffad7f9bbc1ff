#!/usr/bin/env bash
# The policy ablations of issue 15 (docs/training.md, "Policy ablations"): one `sp train policy` per
# variant at one budget, each evaluated by the oracle-policy agent on one camera (corner, seeds 0-24,
# 275 episodes). Rerun the same command to continue after an interruption: a finished training or
# evaluation is skipped, an interrupted one resumes.
#
#   bash scripts/policy-ablations.sh DATA.h5 [OUT_DIR] [VARIANT...]
#   STEPS=6000 SEEDS=0-24 JOBS=2 THREADS=2 EVAL=1 ACTION_STEPS=0 SP=build/sp (the defaults; EVAL=0
#   trains only, THREADS=1 trains beside another job without stalling OpenMP, ACTION_STEPS is the
#   evaluation's --action-steps: 0 the agent's default, 4 the rows measured before it was 2)
set -euo pipefail
DATA=${1:?usage: policy-ablations.sh DATA.h5 [OUT_DIR] [VARIANT...]}
OUT=${2:-runs/policy-ablations}
shift $(( $# < 2 ? $# : 2 ))
STEPS=${STEPS:-6000}
JOBS=${JOBS:-2}
SEEDS=${SEEDS:-0-24}
THREADS=${THREADS:-2}
EVAL=${EVAL:-1}
ACTION_STEPS=${ACTION_STEPS:-0}
SP=${SP:-build/sp}

flags() {
  case "$1" in
    x0)          echo "--target x0 --recovery 1" ;;                          # the committed policy's settings
    epsilon)     echo "--target epsilon --recovery 1" ;;                     # Diffusion Policy's target
    mlp)         echo "--head mlp --recovery 1" ;;                           # direct regression
    narrow)      echo "--target x0 --recovery 1 --goal-min 17 --goal-max 20" ;;  # the paper's narrow goal window
    no-recovery) echo "--target x0 --recovery 0" ;;                          # demonstrations only
    *) echo "unknown variant '$1' (x0 epsilon mlp narrow no-recovery)" >&2; return 2 ;;
  esac
}

variants=("$@")
[ ${#variants[@]} -gt 0 ] || variants=(x0 epsilon mlp narrow no-recovery)
mkdir -p "$OUT"
for v in "${variants[@]}"; do
  f=$(flags "$v")
  d="$OUT/$v"
  if [ ! -f "$d/train/model.safetensors" ] || ! grep -q "\"step\":$STEPS," "$d/train/train.jsonl"; then
    if [ -f "$d/train/last.safetensors" ]; then
      "$SP" train policy --out "$d/train" --resume --threads "$THREADS" >> "$d.train.log" 2>&1
    else
      mkdir -p "$d"
      # shellcheck disable=SC2086
      "$SP" train policy --data "$DATA" --preset cpu $f --steps "$STEPS" --lr 3e-4 --warmup 500 \
        --val-every 2000 --log-every 200 --ckpt-minutes 5 --threads "$THREADS" --out "$d/train" > "$d.train.log" 2>&1
    fi
  fi
  [ "$EVAL" = 1 ] || { echo "$v: trained"; continue; }
  resume=""
  [ -f "$d/eval/episodes.jsonl" ] && resume="--resume"
  "$SP" eval --agent oracle-policy --checkpoint "$d/train/model.safetensors" --tasks all --cameras corner \
    --seeds "$SEEDS" --action-steps "$ACTION_STEPS" --jobs "$JOBS" --out "$d/eval" $resume > "$d.eval.log" 2>&1
  echo "$v: $(grep -m1 '^| oracle-policy' "$d/eval/results.md")"
done
