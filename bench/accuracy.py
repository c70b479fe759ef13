"""Cross-validated accuracy of a `brain-mri-seg train --folds all` run, scored with the project's own `evaluate`.

Run from the repo root, after training the folds:
    brain-mri-seg train --preset lgg-cpu --data ../shared/data/lgg/kaggle_3m --folds all --out runs/lgg-cpu
    python bench/accuracy.py runs/lgg-cpu [--data ../shared/data/lgg/kaggle_3m]

Each fold's `validation_predictions.parquet` (every slice of its held-out patients, at their original size, with the
recipe's threshold, TTA and post-processing; `--repredict` makes them again with `Predictor`) is scored against the truth; the per-patient tables of the folds are pooled, so every patient is
scored once by the model that never saw it. Prints a markdown table per fold and pooled, and a last line
`RESULT volume_dice_mean=... volume_dice_median=... slice_iou=... empty_fp_rate=... train_minutes_max=...`.

Run folders do not outlive their machine, so the scores can be kept: `--save DIR` writes each fold's per-slice and
per-patient scores (`per_slice.csv`, `per_patient.csv`, `folds.csv`, about 20 KB a fold to commit), and `--add DIR`
pools saved scores of folds that have no run folder here with the ones that do (with both, `--save` writes the pooled
set: `--add DIR --save DIR` completes a saved set with the folds trained here).

`--with FOLDS2 [FOLDS3 ...]` scores ensembles: fold K's held-out patients are predicted by the average of the
probability maps of `FOLDS/fold_K`, `FOLDS2/fold_K`, ... (`Predictor.ensemble`), e.g. two runs of a fold with
different seeds.
"""
import argparse, json, os, warnings
from pathlib import Path
os.environ.setdefault('NO_ALBUMENTATIONS_UPDATE', '1')
import numpy as np, pandas as pd
from brain_mri_seg.data import read_data, read_image
from brain_mri_seg.evaluate import evaluate, summary_metrics
from brain_mri_seg.train import fold_dirs


def substituted(truth:pd.DataFrame)->dict:
    "Patients whose pre- or post-contrast channel is a copy of FLAIR on most slices (the dataset README's 15 of 110)"
    out = {}
    for p, g in truth.groupby('patient'):
        ims = [read_image(f) for f in g.image]
        same = [c for c in (0, 2) if np.mean([np.array_equal(i[..., c], i[..., 1]) for i in ims]) > 0.5]
        if same: out[p] = '+'.join({0: 'pre', 2: 'post'}[c] for c in same)
    return out



def save_scores(out, slices:list, patients:list, rows:list):
    "Write per_slice.csv, per_patient.csv and folds.csv of the folds' score tables to folder `out`, each atomically"
    out = Path(out); out.mkdir(parents=True, exist_ok=True)
    keep = ['fold', 'patient', 'slice', 'true_pixels', 'pred_pixels', 'intersection', 'dice', 'iou']   # what summary_metrics reads, and the intersections
    for name, t in (('per_slice', pd.concat(slices)[keep]), ('per_patient', pd.concat(patients)), ('folds', pd.DataFrame(rows))):
        t.to_csv(out/f'{name}.csv.tmp', index=False); os.replace(out/f'{name}.csv.tmp', out/f'{name}.csv')


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument('folds', help='parent folder of the fold_K run folders')
    ap.add_argument('--data', default='../shared/data/lgg/kaggle_3m')
    ap.add_argument('--repredict', action='store_true',
                    help="predict each fold's held-out patients again with `Predictor` instead of reading validation_predictions.parquet")
    ap.add_argument('--tta', default=None, help='with --repredict: TTA mode (default: the model\'s recipe)')
    ap.add_argument('--largest', type=int, default=None, help="with --repredict: keep_largest (default: the model's recipe; 0: all)")
    ap.add_argument('--threshold', type=float, default=None, help="with --repredict: probability threshold (default: the model's recipe)")
    ap.add_argument('--min-slice-pixels', type=int, default=None, help="with --repredict: empty each slice's mask of fewer pixels, as the last step (default: the model's recipe)")
    ap.add_argument('--min-fraction', type=float, default=None, help="with --repredict and a largest: also keep components of at least this fraction of the largest (default: the model's recipe)")
    ap.add_argument('--bn-adapt', type=float, default=None, help="with --repredict: weight of each volume's own batch-norm statistics (default: the model's recipe)")
    ap.add_argument('--with', dest='others', nargs='+', default=[], metavar='FOLDS',
                    help="parent folders of more runs of the same folds: each fold's held-out patients are predicted by the "
                         "ensemble of its models (implies --repredict; the fold's training minutes are their sum)")
    ap.add_argument('--precision', default='auto', help="with --repredict: 'auto' (the Predictor's default), 'fp32' or 'bf16'")
    ap.add_argument('--save', default=None, help='write per_slice.csv, per_patient.csv and folds.csv of every fold in the table (with --add: those it brought too) to this folder')
    ap.add_argument('--add', default=None, help='a folder written by --save: pool its folds that have no run folder here')
    a = ap.parse_args()
    truth = read_data(a.data)
    rows, slices, patients = [], [], []
    for d in fold_dirs(a.folds):
        if not (d/'validation_predictions.parquet').is_file(): continue
        members = [d] + [Path(o)/d.name for o in a.others]
        if a.others and (missing := [str(m) for m in members if not (m/'model.pth').is_file()]):
            print(f"fold {d.name.split('_')[1]} left out: {', '.join(missing)} has no model.pth (not trained, or still training)\n"); continue
        envs = [json.loads((m/'env.json').read_text()) for m in members]
        env = {**envs[0], 'train_seconds': sum(e.get('train_seconds', np.nan) for e in envs)}
        if a.repredict or a.others:
            from brain_mri_seg.inference import Predictor, holdout_table
            kw = dict(tta=a.tta, backend='torch', precision=a.precision, bn_adapt=a.bn_adapt, threshold=a.threshold)
            p = Predictor.ensemble(members, **kw) if a.others else Predictor.load(d, **kw)
            pred = p.predict_table(holdout_table(d, a.data), largest=a.largest, min_fraction=a.min_fraction,
                                   min_slice_pixels=a.min_slice_pixels)
        else: pred = pd.read_parquet(d/'validation_predictions.parquet')
        with warnings.catch_warnings():
            warnings.simplefilter('ignore')   # the other folds' patients are not predicted here, by design
            res = evaluate(pred, truth[truth.patient.isin(pred.patient.unique())])
        m = res['metrics']
        rows.append(dict(fold=d.name.split('_')[1], patients=m['patients'], volume_dice_mean=m['volume_dice_mean'],
                         volume_dice_median=m['volume_dice_median'], slice_iou=m['slice_iou'], slice_dice=m['slice_dice'],
                         empty_fp_rate=m['empty_fp_rate'], missed_volumes=len(m['missed_volumes']),
                         train_minutes=env.get('train_seconds', np.nan)/60, cpu=env.get('cpu_capability'),
                         precision=env.get('precision', {}).get('chosen')))
        slices.append(res['per_slice'].assign(fold=rows[-1]['fold'])); patients.append(res['per_patient'].assign(fold=rows[-1]['fold']))
    if a.add:
        add = Path(a.add)
        saved = pd.read_csv(add/'folds.csv', dtype={'fold': str})
        new = saved[~saved.fold.isin([r['fold'] for r in rows])]
        rows += new.to_dict('records')
        for name, acc in (('per_slice', slices), ('per_patient', patients)):
            t = pd.read_csv(add/f'{name}.csv', dtype={'fold': str, 'patient': str}, keep_default_na=False)
            acc.append(t[t.fold.isin(new.fold)])
        rows.sort(key=lambda r: int(r['fold']))
    if not rows: raise SystemExit(f"{a.folds}: no fold_K/validation_predictions.parquet")
    if a.save: save_scores(a.save, slices, patients, rows)
    pooled = summary_metrics(pd.concat(slices, ignore_index=True), pd.concat(patients, ignore_index=True))
    t = pd.DataFrame(rows)
    t.loc[len(t)] = dict(fold='pooled', patients=pooled['patients'], volume_dice_mean=pooled['volume_dice_mean'],
                         volume_dice_median=pooled['volume_dice_median'], slice_iou=pooled['slice_iou'],
                         slice_dice=pooled['slice_dice'], empty_fp_rate=pooled['empty_fp_rate'],
                         missed_volumes=len(pooled['missed_volumes']), train_minutes=t.train_minutes.max(), cpu='', precision='')
    pp = pd.concat(patients, ignore_index=True)
    sub = substituted(truth[truth.patient.isin(pp.patient)])
    print("Patients with a sequence replaced by FLAIR (volume Dice):\n\n| patient | replaced | volume_dice |\n|---|---|---|")
    for p, what in sub.items(): print(f"| {p} | {what} | {pp.loc[pp.patient == p, 'volume_dice'].iloc[0]:.3f} |")
    print(f"| mean of {len(sub)} | | {pp[pp.patient.isin(sub)].volume_dice.mean():.3f} |\n")
    cols = list(t.columns)
    print('| ' + ' | '.join(cols) + ' |\n|' + '---|'*len(cols))
    for r in t.itertuples(index=False):
        print('| ' + ' | '.join(f'{v:.3f}' if isinstance(v, float) else str(v) for v in r) + ' |')
    print(f"RESULT volume_dice_mean={pooled['volume_dice_mean']:.3f} volume_dice_median={pooled['volume_dice_median']:.3f} "
          f"slice_iou={pooled['slice_iou']:.3f} empty_fp_rate={pooled['empty_fp_rate']:.3f} "
          f"train_minutes_max={t.train_minutes.max():.1f}")


if __name__ == '__main__': main()
