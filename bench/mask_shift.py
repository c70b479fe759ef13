"""Where a `--folds all` run draws its tumours: the offset of its predictions from the truth, and a few last steps of prediction.

Run from the repo root, after training the folds:
    python bench/mask_shift.py runs/lgg-cpu [runs/other ...] [--data ../shared/data/lgg/kaggle_3m]

Each fold's model predicts every slice of its own held-out patients (`holdout_table`), with the recipe's TTA and batch-norm
adaptation, as `bench/postprocess.py` does. Then:

- **Offset.** On every tumour slice where the prediction (probability > 0.5) overlaps at least 30% of the true mask, the
  centroid of the prediction minus that of the truth, in pixels of the original slice (y down, x right): mean and median.
  A model trained on masks shrunk by nearest neighbour (the `_resize` of `01_datablock` before `AlignedResize`) draws its
  tumours half a pixel down and right; flip TTA averages the x part away.
- **Variants of the last step**, each scored with the project's `evaluate`, pooled over the folds: the recipe's own
  (threshold 0.5, the largest 3-D component, slices under 128 pixels emptied); the probabilities shifted up by half a
  pixel first (`shift-0.5`, the correction of that offset); holes filled in each slice after it (`fill`); and a higher
  threshold (0.7) for volumes whose mask comes out under 3,000 voxels (`small0.7`, for small tumours drawn too large);
  the largest component taken with edge and corner neighbours too (`conn3`, 26-connected, instead of face neighbours
  only); and each volume's own threshold, the one that maximizes its expected Dice given its probabilities (`edice`:
  the k most probable voxels, k maximizing 2·(sum of their probabilities) / (k + sum of all probabilities), voxels
  under 0.05 left out).

Prints one markdown table and a last line `RESULT` per run.
"""
import argparse, os, sys, warnings
from pathlib import Path
os.environ.setdefault('NO_ALBUMENTATIONS_UPDATE', '1')
sys.path.insert(0, str(Path(__file__).parent))
import numpy as np, pandas as pd
from scipy import ndimage as ndi
from postprocess import fold_probs, as_pred, per_volume, score
from brain_mri_seg.data import read_data, read_mask
from brain_mri_seg.inference import postprocess
from brain_mri_seg.evaluate import summary_metrics
from brain_mri_seg.train import fold_dirs

VARIANTS = ('recipe', 'shift-0.5', 'fill', 'small0.7', 'conn3', 'edice')


def expected_dice_threshold(vol:np.ndarray, floor:float=0.05)->float:
    "Threshold of `vol` keeping the k most probable voxels that maximize the expected Dice 2·sum(top k) / (k + sum(all))"
    p = vol[vol > floor].astype(np.float64)
    if not len(p): return 0.5
    v = np.sort(p)[::-1]
    return float(v[(2*np.cumsum(v)/(np.arange(1, len(v) + 1) + p.sum())).argmax()])


def last_step(vol:np.ndarray, variant:str)->np.ndarray:
    "0/1 mask of one patient's probability volume `vol` (D,H,W) under `variant`"
    if variant == 'shift-0.5': vol = ndi.shift(vol, (0, -0.5, 0), order=1, mode='nearest')
    binary = vol >= expected_dice_threshold(vol) if variant == 'edice' else vol > 0.5
    m = postprocess(binary, largest=1, min_slice_pixels=128, connectivity=3 if variant == 'conn3' else 1)
    if variant == 'fill': m = np.stack([ndi.binary_fill_holes(s) for s in m]).astype(np.uint8)
    if variant == 'small0.7' and m.sum() < 3000: m = postprocess(vol > 0.7, largest=1, min_slice_pixels=128)
    return m


def offsets(rows:pd.DataFrame, probs:list, truth:pd.DataFrame)->np.ndarray:
    "(n, 2) centroid offsets (y, x) of thresholded predictions from the truth, on tumour slices they overlap by >= 30%"
    t, out = truth.set_index('image'), []
    for img, p in zip(rows['image'], probs):
        if t.loc[img, 'abnormal_pixels'] == 0: continue
        tm, pm = read_mask(t.loc[img, 'mask']) > 0, p.astype(np.float32) > 0.5
        if (tm & pm).sum() < 0.3*tm.sum(): continue
        out.append(np.subtract(ndi.center_of_mass(pm), ndi.center_of_mass(tm)))
    return np.array(out).reshape(-1, 2)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument('runs', nargs='+', help='parent folders of fold_K run folders')
    ap.add_argument('--data', default='../shared/data/lgg/kaggle_3m')
    a = ap.parse_args()
    truth = read_data(a.data)
    print('| run | slices | offset y mean / median | offset x mean / median | ' + ' | '.join(VARIANTS) + ' |')
    print('|---|---|---|---|' + '---|'*len(VARIANTS))
    results = []
    for run in a.runs:
        folds = [fold_probs(d, a.data, 'hflip') for d in fold_dirs(run) if (d/'model.pth').is_file()]
        if not folds: raise SystemExit(f"{run}: no fold_K/model.pth")
        off = np.concatenate([offsets(rows, probs, truth) for rows, probs in folds])
        dice = {}
        for v in VARIANTS:
            preds = [as_pred(rows, per_volume(rows, probs, lambda vol: last_step(vol, v))) for rows, probs in folds]
            with warnings.catch_warnings():
                warnings.simplefilter('ignore')
                dice[v] = summary_metrics(*score(preds, truth))['volume_dice_mean']
        mean, med = off.mean(0), np.median(off, 0)
        print(f'| {run} | {len(off)} | {mean[0]:+.3f} / {med[0]:+.3f} | {mean[1]:+.3f} / {med[1]:+.3f} | '
              + ' | '.join(f'{dice[v]:.4f}' for v in VARIANTS) + ' |', flush=True)
        results.append(f"RESULT run={run} offset_y={mean[0]:+.3f} offset_x={mean[1]:+.3f} "
                       + ' '.join(f'{v}={dice[v]:.4f}' for v in VARIANTS))
    print('\n' + '\n'.join(results))


if __name__ == '__main__': main()
