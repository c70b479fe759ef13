"""Inference-time levers of the accuracy issue on a `--folds all` run: flip TTA, threshold and 3-D post-processing.

Run from the repo root, after training the folds:
    python bench/postprocess.py runs/lgg-cpu [--data ../shared/data/lgg/kaggle_3m]

Each fold's model predicts every slice of its own held-out patients (`holdout_table`) once per TTA mode; each threshold
and `keep_largest` setting (a count; '1+5%': the largest component and every other of at least 5% of its size; '1>0.4',
with `--grow 0.4`: the largest component grown into the voxels above 0.4 connected to it, a hysteresis threshold) is then applied to those probabilities
(and, with `--smooth 1` or `--smooth 1/2`, to each patient's probability volume smoothed by a Gaussian of 1 slice along z
and 2 pixels in-plane; shown as TTA mode 'hflip~1/2'; 'hflip~other folds' chooses the smoothing with the threshold) and scored with the project's `evaluate`, pooled over
the folds (every patient scored once, by the model that never saw it). The threshold is also chosen without looking at
the patients it is scored on: for fold K, the threshold with the best pooled mean volume Dice on the *other* folds'
held-out patients. Prints one markdown table and a last line `RESULT best=<setting> volume_dice_mean=...`.
"""
import argparse, os, warnings, itertools
from pathlib import Path
os.environ.setdefault('NO_ALBUMENTATIONS_UPDATE', '1')
import numpy as np, pandas as pd
from brain_mri_seg.data import read_data, rle_encode
from brain_mri_seg.inference import Predictor, holdout_table, postprocess, _labels
from brain_mri_seg.evaluate import evaluate, summary_metrics
from brain_mri_seg.train import fold_dirs

THRESHOLDS = (0.4, 0.5, 0.6)
LARGEST = (0, 1, 2, '1+5%', '1+20%')   # '1+5%': the largest component and every other of at least 5% of its size


def fold_probs(run:Path, data:str, tta:str, p:Predictor=None, bn_adapt:float=None):
    "Rows and probability maps (float16, original size) of the held-out patients of fold run `run` (predicted by `p`, default: its model)"
    df = holdout_table(run, data)
    p = p or Predictor.load(run, tta=tta, backend='torch', bn_adapt=bn_adapt)
    rows, probs = [], []
    for r, pr in p.iter_proba(df, tta): rows.append(r); probs.append(pr.astype(np.float16))
    return pd.DataFrame(rows), probs


def smooth(rows:pd.DataFrame, probs:list, sz:float, sxy:float=0.)->list:
    "Each patient's probability volume smoothed by a Gaussian of `sz` slices along z and `sxy` pixels in-plane (0: none)"
    from scipy.ndimage import gaussian_filter
    out = list(probs)
    for _, idx in rows.groupby('patient', sort=False).indices.items():   # rows in slice-table order, as `volume_masks` takes them
        vol = gaussian_filter(np.stack([probs[i] for i in idx]).astype(np.float32), (sz, sxy, sxy), mode='nearest')
        for i, v in zip(idx, vol): out[i] = v.astype(np.float16)
    return out


def grow(vol:np.ndarray, prob:np.ndarray, low:float)->np.ndarray:
    "`vol` and every voxel of `prob` above `low` connected to it (3-D components of face neighbours, as `postprocess`)"
    lab, _ = _labels(prob > low, 3, 1)
    return (np.isin(lab, lab[(vol > 0) & (lab > 0)]) | (vol > 0)).astype(np.uint8)


def volume_masks(rows:pd.DataFrame, probs:list, thr:float, k:int=0, frac:float=0., low:float=None)->list:
    "Thresholded probabilities, each patient's volume then kept to its `k` largest components (and those of `frac` of the largest), grown to `low`"
    masks = [(p > thr).astype(np.uint8) for p in probs]
    if k:
        for _, idx in rows.groupby('patient', sort=False).indices.items():
            vol = postprocess(np.stack([masks[i] for i in idx]), largest=k, min_fraction=frac)
            if low is not None: vol = grow(vol, np.stack([probs[i] for i in idx]).astype(np.float32), low)
            for i, m in zip(idx, vol): masks[i] = m
    return masks


def per_volume(rows:pd.DataFrame, probs:list, fn)->list:
    "Masks of `probs`, each patient's probability volume (float32, slices in row order) mapped to a mask volume by `fn`"
    masks = [None]*len(probs)
    for _, idx in rows.groupby('patient', sort=False).indices.items():
        for i, m in zip(idx, fn(np.stack([probs[i] for i in idx]).astype(np.float32))): masks[i] = m
    return masks


def as_pred(rows:pd.DataFrame, masks:list)->pd.DataFrame:
    "Predictions table of `rows` with `masks` as RLE"
    return rows.assign(rle_mask=[rle_encode(m) for m in masks])


def masks_of(rows:pd.DataFrame, probs:list, thr:float, largest)->pd.DataFrame:
    "Predictions table of thresholded (and 3-D post-processed) probabilities; `largest` is a count, 'K+F%' or 'K>LOW'"
    if isinstance(largest, str) and '>' in largest: return as_pred(rows, volume_masks(rows, probs, thr, int(largest.split('>')[0]), low=float(largest.split('>')[1])))
    k, frac = (int(largest.split('+')[0]), float(largest.split('+')[1].rstrip('%'))/100) if isinstance(largest, str) else (largest, 0.)
    return as_pred(rows, volume_masks(rows, probs, thr, k, frac))


def score(preds:list, truth:pd.DataFrame):
    "Per-slice and per-patient tables of several folds' predictions, pooled"
    sl, pa = [], []
    for pred in preds:
        with warnings.catch_warnings():
            warnings.simplefilter('ignore')   # each fold predicts only its own patients
            r = evaluate(pred, truth[truth.patient.isin(pred.patient.unique())])
        sl.append(r['per_slice']); pa.append(r['per_patient'])
    return pd.concat(sl, ignore_index=True), pd.concat(pa, ignore_index=True)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument('folds', help='parent folder of the fold_K run folders')
    ap.add_argument('--data', default='../shared/data/lgg/kaggle_3m')
    ap.add_argument('--tta', default='none,hflip', help='comma-separated TTA modes to compare')
    ap.add_argument('--bn-adapt', type=float, default=None, help="weight of each volume's own batch-norm statistics (default: the model's recipe)")
    ap.add_argument('--thresholds', default=','.join(map(str, THRESHOLDS)), help='comma-separated probability thresholds')
    ap.add_argument('--smooth', default='', help="comma-separated Gaussian widths 'Z' or 'Z/XY' (slices / pixels): also each patient's probabilities smoothed by each before the threshold")
    ap.add_argument('--grow', default='', help="comma-separated low thresholds: also the largest component grown into the voxels above each (keep_largest '1>LOW')")
    a = ap.parse_args()
    thresholds = tuple(float(t) for t in a.thresholds.split(','))
    largest = LARGEST + tuple(f'1>{t}' for t in a.grow.split(',') if t)
    truth = read_data(a.data)
    runs = [d for d in fold_dirs(a.folds) if (d/'model.pth').is_file()]
    if not runs: raise SystemExit(f"{a.folds}: no fold_K/model.pth")
    res, per_fold = [], {}
    for tta in a.tta.split(','):
        raw = [fold_probs(r, a.data, tta, bn_adapt=a.bn_adapt) for r in runs]
        for sm in [''] + [x for x in a.smooth.split(',') if x]:
            sz, sxy = (float(sm.split('/')[0]), float(sm.split('/')[1]) if '/' in sm else 0.) if sm else (0., 0.)
            got = [(rows, smooth(rows, probs, sz, sxy) if sm else probs) for rows, probs in raw]
            tta_sm = f'{tta}~{sm}' if sm else tta
            for thr, k in itertools.product(thresholds, largest):
                preds = [masks_of(rows, probs, thr, k) for rows, probs in got]
                sl, pa = score(preds, truth)
                m = summary_metrics(sl, pa)
                per_fold[(tta_sm, thr, k)] = [pa[pa.patient.isin(p.patient.unique())] for p in preds], [sl[sl.patient.isin(p.patient.unique())] for p in preds]
                res.append(dict(tta=tta_sm, threshold=thr, keep_largest=k, volume_dice_mean=m['volume_dice_mean'],
                                volume_dice_median=m['volume_dice_median'], slice_iou=m['slice_iou'],
                                empty_fp_rate=m['empty_fp_rate'], missed_volumes=len(m['missed_volumes'])))
    t = pd.DataFrame(res).astype({'threshold': object})
    # Honest threshold: for each fold, the threshold that is best on the other folds (same TTA and keep_largest)
    # With --smooth, also the smoothing and threshold chosen together on the other folds (per TTA mode and keep_largest)
    modes = [(m, [m]) for m in t.tta.unique()] + ([(f'{m}~other folds', [x for x in t.tta.unique() if x.split('~')[0] == m])
                                                   for m in a.tta.split(',')] if a.smooth else [])
    for (tta, cands), k in itertools.product(modes, largest if len(runs) > 1 else ()):   # needs other folds
        sl_all, pa_all = [], []
        for i in range(len(runs)):
            def others(c): return np.mean(np.concatenate([per_fold[(c[0], c[1], k)][0][j].volume_dice.to_numpy()
                                                           for j in range(len(runs)) if j != i]))
            best = max(itertools.product(cands, thresholds), key=others)
            pa_all.append(per_fold[(*best, k)][0][i]); sl_all.append(per_fold[(*best, k)][1][i])
        m = summary_metrics(pd.concat(sl_all, ignore_index=True), pd.concat(pa_all, ignore_index=True))
        t.loc[len(t)] = dict(tta=tta, threshold='other folds', keep_largest=k, volume_dice_mean=m['volume_dice_mean'],
                             volume_dice_median=m['volume_dice_median'], slice_iou=m['slice_iou'],
                             empty_fp_rate=m['empty_fp_rate'], missed_volumes=len(m['missed_volumes']))
    cols = list(t.columns)
    print(f"{len(runs)} folds, {sum(len(p.patient.unique()) for p in per_fold[next(iter(per_fold))][0])} patients\n")
    print('| ' + ' | '.join(cols) + ' |\n|' + '---|'*len(cols))
    for r in t.itertuples(index=False):
        print('| ' + ' | '.join(f'{v:.3f}' if isinstance(v, float) else str(v) for v in r) + ' |')
    b = t.loc[t.volume_dice_mean.astype(float).idxmax()]
    print(f"RESULT best=tta:{b.tta},threshold:{b.threshold},keep_largest:{b.keep_largest} "
          f"volume_dice_mean={b.volume_dice_mean:.3f} volume_dice_median={b.volume_dice_median:.3f} "
          f"slice_iou={b.slice_iou:.3f} empty_fp_rate={b.empty_fp_rate:.3f}")


if __name__ == '__main__': main()
