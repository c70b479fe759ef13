"""Cross-validated accuracy of a `brain-mri-seg train --folds all` run, scored with the project's own `evaluate`.

Run from the repo root, after training the folds:
    brain-mri-seg train --preset lgg-cpu --data ../shared/data/lgg/kaggle_3m --folds all --out runs/lgg-cpu
    python bench/accuracy.py runs/lgg-cpu [--data ../shared/data/lgg/kaggle_3m]

Each fold's `validation_predictions.parquet` (every slice of its held-out patients, at their original size, threshold
of the run, no TTA) is scored against the truth; the per-patient tables of the folds are pooled, so every patient is
scored once by the model that never saw it. Prints a markdown table per fold and pooled, and a last line
`RESULT volume_dice_mean=... volume_dice_median=... slice_iou=... empty_fp_rate=... train_minutes_max=...`.
"""
import argparse, json, os, warnings
from pathlib import Path
os.environ.setdefault('NO_ALBUMENTATIONS_UPDATE', '1')
import numpy as np, pandas as pd
from brain_mri_seg.data import read_data
from brain_mri_seg.evaluate import evaluate, summary_metrics


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument('folds', help='parent folder of the fold_K run folders')
    ap.add_argument('--data', default='../shared/data/lgg/kaggle_3m')
    a = ap.parse_args()
    truth = read_data(a.data)
    rows, slices, patients = [], [], []
    for d in sorted(Path(a.folds).glob('fold_*'), key=lambda p: int(p.name.split('_')[1])):
        if not (d/'validation_predictions.parquet').is_file(): continue
        env = json.loads((d/'env.json').read_text())
        pred = pd.read_parquet(d/'validation_predictions.parquet')
        with warnings.catch_warnings():
            warnings.simplefilter('ignore')   # the other folds' patients are not predicted here, by design
            res = evaluate(pred, truth[truth.patient.isin(pred.patient.unique())])
        m = res['metrics']
        rows.append(dict(fold=d.name.split('_')[1], patients=m['patients'], volume_dice_mean=m['volume_dice_mean'],
                         volume_dice_median=m['volume_dice_median'], slice_iou=m['slice_iou'], slice_dice=m['slice_dice'],
                         empty_fp_rate=m['empty_fp_rate'], missed_volumes=len(m['missed_volumes']),
                         train_minutes=env.get('train_seconds', np.nan)/60, cpu=env.get('cpu_capability'),
                         precision=env.get('precision', {}).get('chosen')))
        slices.append(res['per_slice']); patients.append(res['per_patient'])
    if not rows: raise SystemExit(f"{a.folds}: no fold_K/validation_predictions.parquet")
    pooled = summary_metrics(pd.concat(slices, ignore_index=True), pd.concat(patients, ignore_index=True))
    t = pd.DataFrame(rows)
    t.loc[len(t)] = dict(fold='pooled', patients=pooled['patients'], volume_dice_mean=pooled['volume_dice_mean'],
                         volume_dice_median=pooled['volume_dice_median'], slice_iou=pooled['slice_iou'],
                         slice_dice=pooled['slice_dice'], empty_fp_rate=pooled['empty_fp_rate'],
                         missed_volumes=len(pooled['missed_volumes']), train_minutes=t.train_minutes.max(), cpu='', precision='')
    cols = list(t.columns)
    print('| ' + ' | '.join(cols) + ' |\n|' + '---|'*len(cols))
    for r in t.itertuples(index=False):
        print('| ' + ' | '.join(f'{v:.3f}' if isinstance(v, float) else str(v) for v in r) + ' |')
    print(f"RESULT volume_dice_mean={pooled['volume_dice_mean']:.3f} volume_dice_median={pooled['volume_dice_median']:.3f} "
          f"slice_iou={pooled['slice_iou']:.3f} empty_fp_rate={pooled['empty_fp_rate']:.3f} "
          f"train_minutes_max={t.train_minutes.max():.1f}")


if __name__ == '__main__': main()
