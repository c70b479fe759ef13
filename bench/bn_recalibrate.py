"""Batch-norm statistics recomputed on the training patients' own slice mix, then each fold scored on its held-out patients.

Run from the repo root, after training the folds:
    python bench/bn_recalibrate.py runs/lgg-cpu [--bn-adapt A] [--tumour-only] --save bench/scores/NAME

The preset draws three quarters of each training batch from tumour slices (`dataset.pos_frac: 0.75`), so its batch-norm
running statistics are those of tumour-rich batches, while a patient's volume is mostly slices without tumour. This asks
whether statistics of the natural mix do better: each fold's model runs once over every slice of its *training* patients
(no augmentation, the recipe's input: neighbouring slices, per-volume normalization), in batches of 16 with batch norm
in training mode and a cumulative average (`momentum=None`), which replaces the running statistics; nothing else
changes, and no held-out patient is seen. The held-out patients are then predicted with `Predictor` (the recipe's TTA and
post-processing, and `--bn-adapt`: each volume's own statistics mixed in on top) and scored with `evaluate`; `--save`
writes the same per_slice.csv / per_patient.csv / folds.csv as `bench/accuracy.py --save`, so the two compare paired.
Prints the per-fold and pooled table and a last line `RESULT volume_dice_mean=... volume_dice_median=...`.
"""
import argparse, os, warnings
os.environ.setdefault('NO_ALBUMENTATIONS_UPDATE', '1')
import pandas as pd, torch
from brain_mri_seg.data import read_data, read_image
from brain_mri_seg.datablock import VOLUME_NORMS, context_images, read_context, volume_stats
from brain_mri_seg.evaluate import evaluate, summary_metrics
from brain_mri_seg.inference import Predictor, holdout_table, _bn_layers
from brain_mri_seg.train import fold_dirs, load_config, slice_table
from accuracy import save_scores


def recalibrate(p:Predictor, train:pd.DataFrame, bs:int=16):
    "Replace the running statistics of `p`'s batch norms by those of every slice of `train`, one patient's slices at a time"
    bns = _bn_layers(p.model)
    for m in bns: m.reset_running_stats(); m.momentum = None; m.train()
    ctx = context_images(train, p.context) if p.context else None
    with torch.no_grad():
        for _, g in train.groupby('patient'):
            ims = [read_image(f) if ctx is None else read_context(f, ctx[str(f)]) for f in g.image]
            st = volume_stats((read_image(f) for f in g.image), p.norm) if p.norm in VOLUME_NORMS else None
            xb = p._batch([p._input(o) for o in ims], [st]*len(ims))
            for i in range(0, len(xb), bs): p.runner(xb[i:i+bs])
    for m in bns: m.eval()


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument('folds', help='parent folder of the fold_K run folders')
    ap.add_argument('--data', default='../shared/data/lgg/kaggle_3m')
    ap.add_argument('--bn-adapt', type=float, default=0., help="weight of each held-out volume's own statistics on top (default 0)")
    ap.add_argument('--tumour-only', action='store_true', help='recalibrate on the training slices with tumour only')
    ap.add_argument('--save', default=None, help='write per_slice.csv, per_patient.csv and folds.csv to this folder')
    a = ap.parse_args()
    truth = read_data(a.data)
    rows, slices, patients = [], [], []
    for d in fold_dirs(a.folds):
        if not (d/'model.pth').is_file(): continue
        with warnings.catch_warnings():
            warnings.simplefilter('ignore')
            cfg = load_config(d/'config.yaml')
        fold = cfg.dataset.folds[0]
        df = slice_table(cfg.update(**{'dataset.data_sample': 1.0}), fold, a.data)
        train = df[df.fold != fold].reset_index(drop=True)
        if a.tumour_only: train = train[train.abnormal_pixels > 0]
        p = Predictor.load(d, backend='torch', bn_adapt=a.bn_adapt)
        recalibrate(p, train)
        pred = p.predict_table(holdout_table(d, a.data))
        with warnings.catch_warnings():
            warnings.simplefilter('ignore')   # the other folds' patients are not predicted here
            res = evaluate(pred, truth[truth.patient.isin(pred.patient.unique())])
        m = res['metrics']
        rows.append(dict(fold=str(fold), patients=m['patients'], volume_dice_mean=m['volume_dice_mean'], volume_dice_median=m['volume_dice_median'],
                         slice_iou=m['slice_iou'], empty_fp_rate=m['empty_fp_rate'], training_slices=len(train)))
        slices.append(res['per_slice'].assign(fold=str(fold))); patients.append(res['per_patient'].assign(fold=str(fold)))
        print(f"fold {fold}: {m['volume_dice_mean']:.3f} / {m['volume_dice_median']:.3f}", flush=True)
    if not rows: raise SystemExit(f"{a.folds}: no fold_K/model.pth")
    if a.save: save_scores(a.save, slices, patients, rows)
    pooled = summary_metrics(pd.concat(slices, ignore_index=True), pd.concat(patients, ignore_index=True))
    t = pd.DataFrame(rows)
    print('\n| ' + ' | '.join(t.columns) + ' |\n|' + '---|'*len(t.columns))
    for r in t.itertuples(index=False): print('| ' + ' | '.join(f'{v:.3f}' if isinstance(v, float) else str(v) for v in r) + ' |')
    print(f"| pooled | {pooled['patients']} | {pooled['volume_dice_mean']:.3f} | {pooled['volume_dice_median']:.3f} | "
          f"{pooled['slice_iou']:.3f} | {pooled['empty_fp_rate']:.3f} | |")
    print(f"RESULT volume_dice_mean={pooled['volume_dice_mean']:.3f} volume_dice_median={pooled['volume_dice_median']:.3f} "
          f"slice_iou={pooled['slice_iou']:.3f} empty_fp_rate={pooled['empty_fp_rate']:.3f}")


if __name__ == '__main__': main()
