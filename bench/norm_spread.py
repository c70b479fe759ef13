"""How evenly each per-volume normalization puts the patients' tissue on one intensity scale (FLAIR channel).

Run from the repo root:
    python bench/norm_spread.py [--data ../shared/data/lgg/kaggle_3m] [--scores bench/scores/pre2-bn025]

For every patient, the FLAIR channel of all its slices is normalized with `volume_stats` ('volume': 1st-99th
percentile; 'robust': median and 1.4826 MAD of the head) and, for reference, with x/255 ('simple'). Two levels are
read off the result: normal tissue (the median of the head's voxels outside the tumour; the head is what lies above
the volume's Otsu threshold) and tumour (the mean over the true mask). A network that has learnt "tumour looks like
this" from some patients finds it in others only if those levels sit in the same place, so the table gives, across
patients, the spread (standard deviation) of each level in units of the mean tumour-tissue contrast; lower is more
even. With `--scores` (a folder of `bench/accuracy.py --save`), it also prints the Spearman correlation of each
patient's levels with its volume Dice, recall and precision there.
"""
import argparse, os
os.environ.setdefault('NO_ALBUMENTATIONS_UPDATE', '1')
import numpy as np, pandas as pd
from brain_mri_seg.data import read_data, read_image, read_mask
from brain_mri_seg.datablock import volume_stats, _otsu


def levels(imgs, masks):
    "{norm: (tissue, tumour)} FLAIR levels of one volume after each normalization"
    f = np.stack([im[..., 1] for im in imgs]); m = np.stack(masks) > 0
    tissue = (f > _otsu(np.bincount(f.ravel(), minlength=256))) & ~m      # the head's voxels outside the tumour
    out = {}
    for norm in ('simple', 'volume', 'robust'):
        lo, hi = (0., 255.) if norm == 'simple' else volume_stats(imgs, norm)[:, 1]
        x = (f.astype(np.float32) - lo) / (hi - lo)
        out[norm] = float(np.median(x[tissue])), float(x[m].mean())
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('--data', default='../shared/data/lgg/kaggle_3m')
    ap.add_argument('--scores', default=None, help='a folder written by bench/accuracy.py --save: also correlate with its per-patient scores')
    a = ap.parse_args()
    df = read_data(a.data).sort_values(['patient', 'slice'])
    rows = []
    for p, g in df.groupby('patient'):
        masks = [read_mask(f) for f in g['mask']]
        if not any(m.any() for m in masks): continue
        imgs = [read_image(f) for f in g['image']]
        rows.append({'patient': p, **{f'{k}_{n}': v for n, lv in levels(imgs, masks).items() for k, v in zip(('tissue', 'tumour'), lv)}})
    d = pd.DataFrame(rows).set_index('patient')
    print(f"{len(d)} patients with a tumour, FLAIR channel; spreads across patients in units of the mean tumour-tissue contrast\n")
    print("| normalization | tissue level: spread | tumour level: spread | contrast: spread |")
    print("|---|---|---|---|")
    for n in ('simple', 'volume', 'robust'):
        t, u = d[f'tissue_{n}'], d[f'tumour_{n}']; c = (u - t).mean()
        print(f"| {n} | {t.std()/c:.3f} | {u.std()/c:.3f} | {(u - t).std()/c:.3f} |")
    if a.scores:
        s = pd.read_csv(os.path.join(a.scores, 'per_patient.csv')).set_index('patient').reindex(d.index)
        s = pd.DataFrame({'volume_dice': s.volume_dice, 'recall': s.intersection/s.true_pixels, 'precision': s.intersection/s.pred_pixels.clip(lower=1)})
        print(f"\nSpearman correlation with the per-patient scores of {a.scores}:\n")
        r = pd.concat([d, s], axis=1).corr('spearman').loc[d.columns, s.columns]
        print('| level | ' + ' | '.join(r.columns) + ' |'); print('|---' * (len(r.columns) + 1) + '|')
        for k, v in r.iterrows(): print(f"| {k} | " + ' | '.join(f'{x:.2f}' for x in v) + ' |')


if __name__ == '__main__': main()
