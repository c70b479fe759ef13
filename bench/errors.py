"""Where the remaining error is: a per-patient breakdown of a `--folds all` run's held-out predictions.

Run from the repo root, after training the folds:
    python bench/errors.py runs/lgg-cpu [--data ../shared/data/lgg/kaggle_3m] [--worst 12]

Each fold's model predicts every slice of its own held-out patients once (`bench/postprocess.py`'s `fold_probs`, the
model's own TTA), and the model's own recipe (threshold, `keep_largest`, `min_fraction`) makes the masks, scored with
the project's `evaluate`, pooled over the folds. For each patient it reports precision and recall of the abnormal
voxels, so a low volume Dice reads as too little (recall) or too much (precision) predicted; the connected 3-D
components before `keep_largest` and whether the kept one touches the truth; the best threshold for that patient alone
(an oracle: it looks at the truth, so it bounds what any threshold rule could give, it is not a rule); and the Dice
after filling the holes of each predicted slice. Prints the worst patients as a markdown table, a summary, and a last
line `RESULT volume_dice_mean=... recall_limited=<of the worst> oracle_threshold_mean=... fill_holes_mean=...`.
"""
import argparse, os
os.environ.setdefault('NO_ALBUMENTATIONS_UPDATE', '1')
import numpy as np, pandas as pd
from scipy import ndimage
from brain_mri_seg.data import read_data, load_mask
from brain_mri_seg.inference import Predictor
from brain_mri_seg.train import fold_dirs
from postprocess import fold_probs, score, volume_masks, as_pred

ORACLE_THRESHOLDS = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8)


def recipe_masks(rows:pd.DataFrame, probs:list, thr:float, largest, min_fraction:float, fill:bool=False)->list:
    "Masks of the model's recipe (`volume_masks`), then (with `fill`) holes filled per slice"
    masks = volume_masks(rows, probs, thr, largest or 0, min_fraction)
    return [ndimage.binary_fill_holes(m).astype(np.uint8) for m in masks] if fill else masks


def components(rows:pd.DataFrame, probs:list, thr:float, truth:pd.DataFrame)->pd.DataFrame:
    "Per patient: 3-D components of the thresholded probabilities, and whether the largest one overlaps the truth"
    tr = truth.set_index(['patient', 'slice'])
    out = []
    for pat, idx in rows.groupby('patient', sort=False).indices.items():
        vol = np.stack([probs[i] > thr for i in idx])
        lab, n = ndimage.label(vol, structure=ndimage.generate_binary_structure(3, 1))
        t = np.stack([load_mask(tr.loc[(pat, rows.slice.iloc[i])]) for i in idx]) > 0
        sizes = np.bincount(lab.ravel())[1:]
        hit = bool(n) and bool(t[lab == 1 + int(np.argmax(sizes))].any())
        out.append(dict(patient=pat, components=n, largest_hits_truth=hit if n else None))
    return pd.DataFrame(out)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument('folds', help='parent folder of the fold_K run folders')
    ap.add_argument('--data', default='../shared/data/lgg/kaggle_3m')
    ap.add_argument('--worst', type=int, default=12, help='rows of the table: the patients with the lowest volume Dice')
    a = ap.parse_args()
    truth = read_data(a.data)
    runs = [d for d in fold_dirs(a.folds) if (d/'model.pth').is_file()]
    if not runs: raise SystemExit(f"{a.folds}: no fold_K/model.pth")
    per, comps, oracle, filled = [], [], [], []
    for run in runs:
        p = Predictor.load(run, backend='torch')
        rows, probs = fold_probs(run, a.data, p.tta, p)
        rec = (p.threshold, p.largest, p.min_fraction)
        _, pa = score([as_pred(rows, recipe_masks(rows, probs, *rec))], truth)
        per.append(pa.assign(fold=run.name.split('_')[1]))
        comps.append(components(rows, probs, p.threshold, truth))
        by_thr = {t: score([as_pred(rows, recipe_masks(rows, probs, t, *rec[1:]))], truth)[1].set_index('patient').volume_dice
                  for t in ORACLE_THRESHOLDS}
        o = pd.DataFrame(by_thr)
        oracle.append(pd.DataFrame({'best_threshold': o.idxmax(axis=1), 'oracle_dice': o.max(axis=1)}))
        filled.append(score([as_pred(rows, recipe_masks(rows, probs, *rec, fill=True))], truth)[1].set_index('patient').volume_dice.rename('filled_dice'))
        print(f"{run.name}: {len(pa)} patients, threshold {p.threshold}, largest {p.largest}, min_fraction {p.min_fraction}, tta {p.tta}", flush=True)
    t = (pd.concat(per).merge(pd.concat(comps), on='patient').set_index('patient')
         .join(pd.concat(oracle)).join(pd.concat(filled)))
    t['precision'] = t.intersection/t.pred_pixels.where(t.pred_pixels > 0)
    t['recall'] = t.intersection/t.true_pixels.where(t.true_pixels > 0)
    t = t.sort_values('volume_dice')
    cols = ['fold', 'truth_slices', 'true_pixels', 'pred_pixels', 'precision', 'recall', 'volume_dice', 'components',
            'largest_hits_truth', 'best_threshold', 'oracle_dice', 'filled_dice']
    w = t.head(a.worst)
    print(f"\n{len(runs)} folds, {len(t)} patients; the {len(w)} with the lowest volume Dice:\n")
    print('| patient | ' + ' | '.join(cols) + ' |\n|' + '---|'*(len(cols) + 1))
    for pat, r in w[cols].iterrows():
        print(f'| {pat} | ' + ' | '.join(f'{v:.3f}' if isinstance(v, float) else str(v) for v in r) + ' |')
    rl = int(((w.recall < w.precision) | (w.pred_pixels == 0)).sum())   # nothing predicted is too little
    print(f"\nmean volume Dice {t.volume_dice.mean():.3f} (median {t.volume_dice.median():.3f}); "
          f"of the {len(w)} worst, {rl} predict too little (recall < precision), {len(w) - rl} too much; "
          f"the largest component misses the truth on {int((t.largest_hits_truth == False).sum())} of {len(t)} patients; "
          f"each patient at its own best threshold (oracle): {t.oracle_dice.mean():.3f}; holes filled: {t.filled_dice.mean():.3f}")
    print(f"RESULT volume_dice_mean={t.volume_dice.mean():.3f} recall_limited={rl}/{len(w)} "
          f"oracle_threshold_mean={t.oracle_dice.mean():.3f} fill_holes_mean={t.filled_dice.mean():.3f}")


if __name__ == '__main__': main()
