"""How well a trained fold fits its own training patients, against its validation patients (is it under- or over-fitting?).

Run from the repo root, on a run folder of `brain-mri-seg train` (one fold):
    python bench/fit_gap.py runs/lgg-cpu/fold_4 [--data ../shared/data/lgg/kaggle_3m] [--batches 10]

Rebuilds the run's `DataLoaders` from its `config.yaml`, loads its `model.pth`, and prints the hard Dice (threshold 0.5)
on tumour slices, split into large (> 300 pixels at the training size) and small tumours, for: training patients
without augmentation, training patients with the run's augmentation, and validation patients. If the first is far above
the last, the recipe overfits (more regularization may help); if they are close and both low, it underfits.
"""
import argparse, json, os
from pathlib import Path
os.environ.setdefault('NO_ALBUMENTATIONS_UPDATE', '1')
import numpy as np, torch
from brain_mri_seg.train import load_config, build_learner, slice_table
from brain_mri_seg.learner import load_model


def tumour_dice(model, dl, n, dtype):
    "(truth pixels, hard Dice) of each tumour slice in the first `n` batches of `dl`"
    out = []
    ctx = torch.autocast('cpu', dtype=dtype) if dtype is not None else torch.autocast('cpu', enabled=False)
    with torch.no_grad(), ctx:
        for i, (x, y) in enumerate(dl):
            if i == n: break
            p = (model(x).float() > 0).float().flatten(1)
            t = y.float().flatten(1)
            inter, area = (p*t).sum(1), p.sum(1) + t.sum(1)
            keep = t.sum(1) > 0
            out += list(zip(t.sum(1)[keep].tolist(), (2*inter/area.clamp(min=1))[keep].tolist()))
    return np.array(out)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument('run', help='run folder of one fold (config.yaml, model.pth)')
    ap.add_argument('--data', default=None, help='dataset (default: the run config\'s)')
    ap.add_argument('--batches', type=int, default=10, help='batches of each kind to score')
    ap.add_argument('--small', type=int, default=300, help='tumours with at most this many pixels count as small')
    a = ap.parse_args()
    run = Path(a.run)
    cfg = load_config(run/'config.yaml')
    fold = cfg.dataset.folds[0]
    df = slice_table(cfg, fold, a.data)
    dls = build_learner(cfg, df, fold).dls   # the run's own loaders, and the same without augmentation:
    plain = build_learner(cfg.update(augmentations_strategy='None', sequence_substitution=0.), df, fold).dls.train
    model, _ = load_model(run/'model.pth')
    env = json.loads((run/'env.json').read_text()) if (run/'env.json').is_file() else {}
    dtype = torch.bfloat16 if env.get('precision', {}).get('chosen') == 'bf16' else None
    print(f"# Fit of {run} (fold {fold}, {cfg.image.image_height} px): hard Dice on tumour slices\n")
    print("| patients | augmentation | slices | Dice | large tumours | small tumours |\n|---|---|---|---|---|---|")
    for name, aug, dl, n in (('training', 'none', plain, a.batches), ('training', cfg.augmentation.augmentations_strategy, dls.train, a.batches),
                             ('validation', 'none', dls.valid, 2*a.batches)):
        r = tumour_dice(model, dl, n, dtype)
        big = r[:, 0] > a.small
        print(f"| {name} | {aug} | {len(r)} | {r[:, 1].mean():.3f} | {r[big, 1].mean():.3f} ({big.sum()}) | {r[~big, 1].mean():.3f} ({(~big).sum()}) |")


if __name__ == '__main__': main()
