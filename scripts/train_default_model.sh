#!/usr/bin/env bash
# Reproduce nanoseg's shipped default model (src/nanoseg/data/models/default/):
#   1. simulate the training sets with nanoseg's own simulator: examples/simulate/default_training.yaml (256²
#      fields, every pixel size, particles up to ~7 nm) and examples/simulate/default_training_large.yaml (640²
#      fields at 0.04–0.05 nm/px, 6–15 nm particles, none capped),
#   2. train on both with `nanoseg train` (examples/train/default_model.yaml; a GPU is used when present),
#   3. score the held-out test images per condition, record timings in the card, install the model.
# Run from the repository root:  scripts/train_default_model.sh
# Knobs (environment): N_IMAGES (200), N_LARGE (8), WORKERS (simulation processes, 2), THREADS (torch CPU
# threads, torch's default), DATA (data/default_training), DATA_LARGE (data/default_training_large8),
# RUN (runs/default_model), INSTALL (src/nanoseg/data/models/default).
set -euo pipefail

N_IMAGES=${N_IMAGES:-200}
N_LARGE=${N_LARGE:-8}
WORKERS=${WORKERS:-2}
THREADS=${THREADS:-}
DATA=${DATA:-data/default_training}
DATA_LARGE=${DATA_LARGE:-data/default_training_large8}
RUN=${RUN:-runs/default_model}
INSTALL=${INSTALL:-src/nanoseg/data/models/default}
PY=${PY:-.venv/bin/python}
NANOSEG=${NANOSEG:-.venv/bin/nanoseg}

t0=$(date +%s)
"$NANOSEG" simulate examples/simulate/default_training.yaml --out "$DATA" -n "$N_IMAGES" --seed 0 --workers "$WORKERS"
"$NANOSEG" simulate examples/simulate/default_training_large.yaml --out "$DATA_LARGE" -n "$N_LARGE" --seed 0 \
  --workers "$WORKERS"
t1=$(date +%s)
"$NANOSEG" train "$DATA" "$DATA_LARGE" --config examples/train/default_model.yaml --out "$RUN" \
  ${THREADS:+--threads "$THREADS"}
t2=$(date +%s)

cat > "$RUN/reproduction.json" <<JSON
{"simulation": {"specs": ["examples/simulate/default_training.yaml", "examples/simulate/default_training_large.yaml"],
                "n_images": [$N_IMAGES, $N_LARGE], "seed": 0, "workers": $WORKERS, "wall_time_s": $((t1 - t0))},
 "training_command_wall_time_s": $((t2 - t1)),
 "script": "scripts/train_default_model.sh"}
JSON
"$PY" scripts/evaluate_default_model.py "$RUN" "$DATA" "$DATA_LARGE" --install "$INSTALL" \
  --extra-json "$RUN/reproduction.json"
echo "simulation $((t1 - t0)) s, training $((t2 - t1)) s"
