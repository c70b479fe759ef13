"""Which 3-D component to keep: the largest (the preset's `keep_largest: 1`) or the one a confidence score ranks first.

Run from the repo root, on `--folds all`-style runs (folders of fold_K runs):
    python bench/component_choice.py runs/soft43 runs/vflip43 [--data ../shared/data/lgg/kaggle_3m] [--cache DIR]

Each fold's model predicts its own held-out patients once (flip TTA and the batch-norm adaptation of its recipe, as
`bench/postprocess.py`; `--cache` keeps those probabilities for the next call). Each patient's volume is thresholded at
0.5 and its 3-D components (face neighbours) ranked by one score: `size` (voxels, the preset), `mass` (sum of
probabilities), `hi90`/`hi95` (voxels above 0.9/0.95), `size_mean2`/`size_mean4` (voxels × mean probability² or ⁴),
`mean` or `max` probability. The first is kept, slices left with under 128 pixels are emptied (the preset's last
step), and the run is scored with the project's `evaluate`, pooled over its folds. Prints one markdown table (mean,
median, empty-slice FP and TCGA_CS_5395's Dice for each run and score) and a last line `RESULT`.
"""
import argparse, os, pickle, sys
from pathlib import Path
os.environ.setdefault('NO_ALBUMENTATIONS_UPDATE', '1')
sys.path.insert(0, str(Path(__file__).parent))
import numpy as np
from scipy import ndimage
from postprocess import fold_probs, as_pred, per_volume, score
from brain_mri_seg.data import read_data
from brain_mri_seg.inference import _labels, postprocess
from brain_mri_seg.evaluate import summary_metrics
from brain_mri_seg.train import fold_dirs

SCORES = ('size', 'mass', 'hi90', 'hi95', 'size_mean2', 'size_mean4', 'mean', 'max')
WATCH = 'TCGA_CS_5395_19981004'


def run_probs(run:Path, data:str, cache:Path=None)->list:
    "[(rows, probs)] of each fold of `run`, its held-out patients predicted with flip TTA"
    f = cache/f'{run.name}.pkl' if cache else None
    if f and f.exists(): return pickle.load(open(f, 'rb'))
    got = [fold_probs(r, data, 'hflip') for r in fold_dirs(run) if (r/'model.pth').is_file()]
    if f: cache.mkdir(parents=True, exist_ok=True); pickle.dump(got, open(f, 'wb'))
    return got


def keep_by(p:np.ndarray, by:str, thr:float=0.5, min_slice_pixels:int=128)->np.ndarray:
    "Volume `p` thresholded at `thr`, only the 3-D component ranked first by score `by` kept, thin slices emptied"
    lab, sizes = _labels(p > thr, 3, 1)
    n = len(sizes) - 1
    v = np.zeros(p.shape, np.uint8)
    if n:
        idx, size = np.arange(1, n + 1), sizes[1:].astype(float)
        mass = ndimage.sum(p, lab, idx); mean = mass/size
        s = dict(size=size, mass=mass, hi90=ndimage.sum(p > 0.9, lab, idx), hi95=ndimage.sum(p > 0.95, lab, idx),
                 size_mean2=size*mean**2, size_mean4=size*mean**4, mean=mean, max=ndimage.maximum(p, lab, idx))[by]
        v = (lab == 1 + int(np.argmax(s))).astype(np.uint8)
    return postprocess(v, min_slice_pixels=min_slice_pixels)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument('runs', nargs='+', help='folders of fold_K run folders')
    ap.add_argument('--data', default='../shared/data/lgg/kaggle_3m')
    ap.add_argument('--cache', default=None, help='folder to keep the predicted probabilities in')
    a = ap.parse_args()
    truth = read_data(a.data)
    print('| run | score | mean volume Dice | median | empty-slice FP | TCGA_CS_5395 |\n|---|---|---|---|---|---|')
    res = {}
    for run in map(Path, a.runs):
        got = run_probs(run, a.data, Path(a.cache) if a.cache else None)
        for by in SCORES:
            preds = [as_pred(rows, per_volume(rows, probs, lambda vol: keep_by(vol, by))) for rows, probs in got]
            sl, pa = score(preds, truth)
            m = summary_metrics(sl, pa)
            cs = pa.set_index('patient').volume_dice.get(WATCH, float('nan'))
            res.setdefault(by, []).append(m['volume_dice_mean'])
            print(f"| {run.name} | {by} | {m['volume_dice_mean']:.4f} | {m['volume_dice_median']:.3f} | {m['empty_fp_rate']:.1%} | {cs:.3f} |", flush=True)
    best = max(res, key=lambda k: np.mean(res[k]))
    print(f"RESULT " + ' '.join(f"{k}={np.mean(v):.4f}" for k, v in res.items()) + f" best={best}")


if __name__ == '__main__': main()
