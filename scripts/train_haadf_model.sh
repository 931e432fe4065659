#!/usr/bin/env bash
# Reproduce nanoseg's HAADF-STEM model (src/nanoseg/data/models/haadf_stem/):
#   1. simulate the two training sets with nanoseg's HAADF-STEM image formation (examples/simulate/
#      haadf_training.yaml: 256² fields at 0.3 nm/px, dense 1.5–12 nm Pt/Pd/Cu/Au/Ag particles on silica/alumina/
#      ceria grains or carbon films, 8-bit JPEG export; haadf_training_real.yaml: the same moved towards the real
#      images' noise and contrast, see docs/simulation.md),
#   2. train on a CPU with `nanoseg train` (examples/train/haadf_model.yaml: 130,682-parameter residual U-Net,
#      128² patches, 2 threads, ≤ ~25 min),
#   3. record modality "haadf_stem" and polarity "bright" in the card and install the model.
# Run from the repository root:  scripts/train_haadf_model.sh
# The shipped model (1 Dec 2026): the first 152 and 72 images of the two sets (seeds 0 and 1), EPOCHS=16 on a shared
# 2-core CPU at load ~24 (~600 s per epoch), stopped after epoch 2 to fit the time budget and finalized as a
# 2-epoch run (nanoseg train ... --epochs 2 --resume, with the run's recorded epoch count set to 2); its card
# records this (training.note). On a free CPU, run the spec's 30 epochs.
# Knobs (environment): N_IMAGES (152), N_REAL (72), WORKERS (simulation processes, 2), THREADS (torch CPU threads, 2),
# EPOCHS (the spec's), SKIP_SIM (1: train on the images already there), DATA (data/haadf/train),
# DATA_REAL (data/haadf/train_real),
# RUN (runs/haadf/model), INSTALL (src/nanoseg/data/models/haadf_stem).
set -euo pipefail

N_IMAGES=${N_IMAGES:-152}
N_REAL=${N_REAL:-72}
WORKERS=${WORKERS:-2}
THREADS=${THREADS:-2}
EPOCHS=${EPOCHS:-}
SKIP_SIM=${SKIP_SIM:-0}
DATA=${DATA:-data/haadf/train}
DATA_REAL=${DATA_REAL:-data/haadf/train_real}
RUN=${RUN:-runs/haadf/model}
INSTALL=${INSTALL:-src/nanoseg/data/models/haadf_stem}
PY=${PY:-.venv/bin/python}
NANOSEG=${NANOSEG:-.venv/bin/nanoseg}

t0=$(date +%s)
if [ "$SKIP_SIM" != "1" ]; then
  "$NANOSEG" simulate examples/simulate/haadf_training.yaml --out "$DATA" -n "$N_IMAGES" --seed 0 --workers "$WORKERS"
  "$NANOSEG" simulate examples/simulate/haadf_training_real.yaml --out "$DATA_REAL" -n "$N_REAL" --seed 1 \
    --workers "$WORKERS"
fi
t1=$(date +%s)
"$NANOSEG" train "$DATA" "$DATA_REAL" --config examples/train/haadf_model.yaml --out "$RUN" --threads "$THREADS" \
  ${EPOCHS:+--epochs "$EPOCHS"}
t2=$(date +%s)

"$PY" - "$RUN" "$INSTALL" "$((t1 - t0))" "$((t2 - t1))" <<'PYEOF'
import json, shutil, sys
from pathlib import Path

run, install, sim_s, train_s = Path(sys.argv[1]), Path(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
card = json.loads((run / "card.json").read_text())
card.update(name="haadf_stem", modality="haadf_stem", polarity="bright",
            description="HAADF-STEM particle segmentation (bright particles on darker supports) at 0.3 nm/px, "
                        "trained only on nanoseg's HAADF-STEM simulations (examples/simulate/haadf_training.yaml)")
card.setdefault("training", {}).update(simulation_wall_time_s=sim_s, training_command_wall_time_s=train_s,
                                       script="scripts/train_haadf_model.sh")
install.mkdir(parents=True, exist_ok=True)
shutil.copy(run / "weights.safetensors", install / "weights.safetensors")
(install / "card.json").write_text(json.dumps(card, indent=2) + "\n")
print(f"installed {install} ({(install / 'weights.safetensors').stat().st_size / 1e6:.2f} MB)")
PYEOF
echo "simulation $((t1 - t0)) s, training $((t2 - t1)) s"
