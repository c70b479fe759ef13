"""Weight averages of several horizons on one training run: a paired comparison with the live weights.

    python bench/ema_decays.py K [--out runs/ema] [--decays 0.998,0.9995]
    python bench/accuracy.py runs/ema --save bench/scores/ema999          # the run's own model (decay 0.999)
    python bench/accuracy.py runs/ema_live --repredict --save bench/scores/ema_live
    python bench/accuracy.py runs/ema_998 --repredict --save bench/scores/ema998

Trains fold K of `lgg-cpu` with `training.ema_decay` 0.999 (validated on and kept, as that config does) and, beside it,
keeps the live weights at the end and passive averages of the other `--decays` (the same `EMACallback` rule, never
swapped in). Then writes `OUT_live/fold_K`, `OUT_998/fold_K`, ...: the run's model file with those weights, its
env.json and config.yaml, for `bench/accuracy.py --repredict`. Training does not depend on the averages, so the live
weights are the preset's own model and each average is the model `--set training.ema_decay=D` would keep.
"""
import os, sys, shutil
os.environ.setdefault('NO_ALBUMENTATIONS_UPDATE', '1')
os.environ.setdefault('HF_HUB_OFFLINE', '1')
from pathlib import Path
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import torch
from fastcore.script import call_parse
from fastai.callback.core import Callback
from brain_mri_seg.train import get_config, train
from brain_mri_seg.learner import EMACallback, load_model, save_model, _unwrap

class PassiveEMA(EMACallback):
    "An `EMACallback` average that is only saved at the end of the fit, never validated on nor kept"
    def __init__(self, decay, path): super().__init__(decay); self.path = path
    def before_validate(self): pass
    def after_validate(self): pass
    def after_fit(self): torch.save(self.avg, self.path)

class SaveLive(Callback):
    "Save the live weights at the end of the fit, before `EMACallback` replaces them by its average"
    order = EMACallback.order - 1
    def __init__(self, path): self.path = path
    def after_fit(self): torch.save({k: v.clone() for k, v in _unwrap(self.learn.model).state_dict().items()}, self.path)

@call_parse
def main(
    fold:int,                                  # Validation fold
    data:str='../shared/data/lgg/kaggle_3m',   # Kaggle-layout LGG folder
    out:str='runs/ema',                        # Run folder parent of the 0.999 run; the others go beside it
    decays:str='0.998,0.9995',                 # Passive averages to keep beside the run's 0.999
):
    "Train `fold` with a 0.999 weight average, keep the live weights and other averages, and write model files of each"
    out = Path(out); run = out/f'fold_{fold}'; out.mkdir(parents=True, exist_ok=True)
    ds = [float(d) for d in decays.split(',') if d.strip()]
    tag = lambda d: f'{d}'.split('.')[1]
    files = {'live': out/f'live_{fold}.pth', **{tag(d): out/f'ema{tag(d)}_{fold}.pth' for d in ds}}
    cfg = get_config('lgg-cpu').update(**{'training.ema_decay': 0.999})
    train(cfg, data=data, out=run, fold=fold, cbs=[SaveLive(files['live'])] + [PassiveEMA(d, files[tag(d)]) for d in ds])
    model, meta = load_model(run/'model.pth')
    for name, f in files.items():
        dst = out.parent/f'{out.name}_{name}'/f'fold_{fold}'; dst.mkdir(parents=True, exist_ok=True)
        model.load_state_dict(torch.load(f, map_location='cpu'))
        save_model(model, dst/'model.pth', meta)
        for g in ('env.json', 'config.yaml', 'validation_predictions.parquet'): shutil.copy(run/g, dst/g)
        print(dst)
