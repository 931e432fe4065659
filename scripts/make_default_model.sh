#!/usr/bin/env bash
# Make nanoseg's default model v2 end to end (issue #14): simulate the three training sets and the five held-out
# sets, train, calibrate the per-image quality estimate on held-out sets, score every set, install.
#   scripts/make_default_model.sh            # the recipe of the shipped model (~1.5 h on an idle 2-core CPU)
#   QUICK=1 scripts/make_default_model.sh    # the quick recipe (≤ 90 min on 2 cores): fewer images and epochs
# Every step resumes: `nanoseg simulate` keeps finished images, so a killed run restarts where it stopped.
# Knobs (environment): WORKERS (2), DATA (data/v3), RUN (runs/default_model_v3), INSTALL (src/nanoseg/data/models/default),
# STEPS (simulate,train,calibrate,evaluate,install: run only some), N_CORRECTED/N_UNCORRECTED/N_LARGE/N_HELDOUT, EPOCHS,
# CONFIG (the training spec, examples/train/default_model_v2.yaml).
set -euo pipefail

QUICK=${QUICK:-}
if [[ -n "$QUICK" ]]; then
  N_CORRECTED=${N_CORRECTED:-80}; N_UNCORRECTED=${N_UNCORRECTED:-40}; N_LARGE=${N_LARGE:-4}; N_HELDOUT=${N_HELDOUT:-8}
  EPOCHS=${EPOCHS:-15}
else
  # the counts of the shipped v2 model (docs/models.md); more images are better where time allows
  N_CORRECTED=${N_CORRECTED:-120}; N_UNCORRECTED=${N_UNCORRECTED:-60}; N_LARGE=${N_LARGE:-6}; N_HELDOUT=${N_HELDOUT:-12}
  EPOCHS=${EPOCHS:-60}
fi
WORKERS=${WORKERS:-2}
DATA=${DATA:-data/v3}
RUN=${RUN:-runs/default_model_v3}
INSTALL=${INSTALL:-src/nanoseg/data/models/default}
STEPS=${STEPS:-simulate,train,calibrate,evaluate,install}
CONFIG=${CONFIG:-examples/train/default_model_v2.yaml}
PY=${PY:-.venv/bin/python}
NANOSEG=${NANOSEG:-.venv/bin/nanoseg}
HELDOUT="indist shift_uncorrected_lowdose shift_80kV_weak shift_thick_wide_defocus shift_small_noisy_camera"
has() { [[ ",$STEPS," == *",$1,"* ]]; }
mkdir -p "$RUN"
t0=$(date +%s)

if has simulate; then
  "$NANOSEG" simulate examples/simulate/v2/corrected.yaml --out "$DATA/corrected" -n "$N_CORRECTED" --seed 100 --workers "$WORKERS"
  "$NANOSEG" simulate examples/simulate/v2/uncorrected.yaml --out "$DATA/uncorrected" -n "$N_UNCORRECTED" --seed 200 --workers "$WORKERS"
  "$NANOSEG" simulate examples/simulate/v2/large.yaml --out "$DATA/large" -n "$N_LARGE" --seed 300 --workers "$WORKERS"
  seed=9001
  for name in $HELDOUT; do
    "$NANOSEG" simulate "examples/simulate/heldout/$name.yaml" --out "$DATA/heldout/$name" -n "$N_HELDOUT" --seed $seed --workers "$WORKERS"
    seed=$((seed + 1))
  done
fi
t1=$(date +%s)
if has train; then
  "$NANOSEG" train "$DATA/corrected" "$DATA/uncorrected" "$DATA/large" --config "$CONFIG" \
    --out "$RUN/model" --epochs "$EPOCHS"
fi
t2=$(date +%s)
if has simulate || has train || [[ ! -f "$RUN/timing.json" ]]; then  # a rerun of later steps keeps the real times
  sim="{\"specs\": [\"examples/simulate/v2/corrected.yaml\", \"examples/simulate/v2/uncorrected.yaml\", \"examples/simulate/v2/large.yaml\"], \"n_images\": [$N_CORRECTED, $N_UNCORRECTED, $N_LARGE], \"seeds\": [100, 200, 300], \"heldout\": {\"specs\": \"examples/simulate/heldout/*.yaml\", \"n_images_each\": $N_HELDOUT, \"seeds\": \"9001-9005\"}}"
  echo "{\"simulation_wall_time_s\": $((t1 - t0)), \"training_command_wall_time_s\": $((t2 - t1)), \"quick\": \"${QUICK}\", \"epochs\": $EPOCHS, \"script\": \"scripts/make_default_model.sh\", \"simulation\": $sim}" > "$RUN/timing.json"
fi
sets=""; for name in $HELDOUT; do sets="$sets $DATA/heldout/$name"; done
if has calibrate; then
  # the two features chosen by leave-one-set-out cross-validation (docs/models.md, "Per-image quality estimate")
  "$PY" scripts/calibrate_quality.py "$RUN/model" $sets --features soft_dice,uncertain_fraction --write-card \
    --json "$RUN/quality.json"
fi
if has evaluate; then
  "$PY" scripts/evaluate_default_model.py "$RUN/model" "$DATA/corrected" "$DATA/uncorrected" "$DATA/large" \
    --heldout $sets --extra-json "$RUN/timing.json" ${INSTALL:+$(has install && echo --install "$INSTALL")}
fi
echo "simulation $((t1 - t0)) s, training $((t2 - t1)) s"
