#!/bin/bash
# The GPU checks as one prepared run on a machine lent by the `device` tool, from the repo root, with `.gpu` carried
# (build it here first: python bench/gpu/prepare.py). In order: the wheels -> imports -> the h2o preset on fold 4, timed
# -> bench/train_speed.py -> the notebooks in $NBS with their `cuda` cells (only 02_learner by default: the others read
# ../shared, which does not travel) -> the h2o preset on all 5 folds if LIMIT leaves time. Everything worth keeping goes
# to $OUT (at most 8 files come back). For a dry run on a CPU machine: SKIP_PIP=1 OUT=/tmp/o H2O_ARGS="--epochs 1 --size 64"
# SPEED_ARGS="--steps 1 --rounds 1 --sizes 64" bash bench/gpu/gpu.sh
T0=$(date +%s); LIMIT=${LIMIT:-450}; NBS=${NBS:-02_learner}; DO=${DO:-h2o speed nbs folds}   # DO: the steps to run
left() { echo $(( LIMIT - ($(date +%s) - T0) )); }
export PYTHONUNBUFFERED=1 NO_ALBUMENTATIONS_UPDATE=1 HF_HUB_OFFLINE=1 MPLBACKEND=Agg
exec > >(tee -a $OUT/log.txt) 2>&1
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv; echo "cpus $(nproc)"; python3 -V
[ -n "$SKIP_PIP" ] || python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .gpu/whl/*.whl || exit 1
export PYTHONPATH=/tmp/site:$PWD
python3 -c "import torch, torchvision, fastai, segmentation_models_pytorch as smp, albumentations as A, cv2, numpy, pandas
print('torch', torch.__version__, 'torchvision', torchvision.__version__, 'fastai', fastai.__version__, 'smp', smp.__version__,
      'albumentations', A.__version__, 'cv2', cv2.__version__, 'numpy', numpy.__version__, 'pandas', pandas.__version__, torch.cuda.get_device_name() if torch.cuda.is_available() else 'no cuda')" || exit 1
BMS='import sys; from brain_mri_seg.cli import main; sys.exit(main())'
DATA=.gpu/h2o/train.parquet

if [[ " $DO " == *" h2o "* ]]; then
echo "== h2o preset, fold 4 ($(left) s left)"; s=$(date +%s)
timeout 200 python3 -c "$BMS" train --preset h2o --data $DATA --out /tmp/runs/h2o --quiet $H2O_ARGS; echo "rc=$? h2o wall $(( $(date +%s) - s )) s"
for f in metrics.csv env.json config.yaml curves.png best_worst.png; do cp /tmp/runs/h2o/$f $OUT/h2o_$f 2>/dev/null; done
cat /tmp/runs/h2o/metrics.csv; python3 -c "import json; d=json.load(open('/tmp/runs/h2o/env.json')); print({k: d[k] for k in list(d)[:12]})"
fi

[[ " $DO " == *" speed "* ]] && { echo "== train_speed ($(left) s left)"
timeout 200 python3 bench/train_speed.py --data $DATA --steps 20 --rounds 3 --overhead-rounds 5 $SPEED_ARGS | tee $OUT/train_speed.txt; }

[[ " $DO " == *" nbs "* ]] || NBS=
for nb in $NBS; do
  l=$(left); [ $l -lt 50 ] && { echo "skip $nb: $l s left"; continue; }
  echo "== notebook $nb ($l s left)"
  timeout $(( l - 10 )) python3 bench/gpu/run_nb.py nbs/$nb.ipynb notest slow > /tmp/nb_$nb.log 2>&1; rc=$?
  grep -a "^OK \|^cuda cell\|^FAILED" /tmp/nb_$nb.log; [ $rc -ne 0 ] && { echo "rc=$rc"; tail -c 3000 /tmp/nb_$nb.log; }
done

l=$(left); echo "== h2o preset, 5 folds ($l s left)"
if [[ " $DO " == *" folds "* ]] && [ $l -gt 120 ]; then
  s=$(date +%s); timeout $(( l - 10 )) python3 -c "$BMS" train --preset h2o --data $DATA --folds all --out /tmp/runs/h2o_all --quiet $H2O_ARGS
  echo "rc=$? 5-fold wall $(( $(date +%s) - s )) s"; cp /tmp/runs/h2o_all/folds.csv $OUT/h2o_folds.csv 2>/dev/null; cat /tmp/runs/h2o_all/folds.csv
  for k in 0 1 2 3 4; do tail -1 /tmp/runs/h2o_all/fold_$k/metrics.csv 2>/dev/null; done
fi
echo "== done in $(( $(date +%s) - T0 )) s"
