"""Batch-norm adaptation with a different weight for each part of the network: which layers should follow the volume?

Run from the repo root on a run whose folds were trained (e.g. the preset's):
    python bench/bn_depth.py runs/lgg-cpu [--data ../shared/data/lgg/kaggle_3m] [--cells all.25,enc.5] [--save FILE.csv]

`prediction.bn_adapt` (`bn_adapted`, 04_inference) gives every batch norm of the model the same weight α of the
volume's own statistics. The shift between volumes is in intensity and contrast, which the first layers see; the
deeper layers' statistics describe what the network recognizes. This script predicts each fold's held-out patients
with the weight set per part (the first matching name prefix wins; `encoder.bn1` and `encoder.layer1` are the stem and
the first stage), scores them with `evaluate`, and prints the pooled mean volume Dice of each setting, the patients it
scores higher than the first setting, its empty-slice false-positive rate, and the setting chosen for each fold on the
other four folds. The last line: `RESULT best=... best_mean=... reference_mean=... chosen_on_other_folds=...`.
"""
import argparse, os, warnings
from contextlib import contextmanager
os.environ.setdefault('NO_ALBUMENTATIONS_UPDATE', '1')
import pandas as pd
import brain_mri_seg.inference as inf
from brain_mri_seg.data import read_data
from brain_mri_seg.evaluate import evaluate, summary_metrics
from brain_mri_seg.train import fold_dirs

SHALLOW = ('encoder.bn1', 'encoder.layer1')
CELLS = {   # name: [(module-name prefix, weight of the volume's statistics)], first match wins; no match: 0
    'all.25': [('', .25)],                                  # the preset's
    'enc.25': [('encoder', .25)], 'dec.25': [('decoder', .25)], 'enc.5': [('encoder', .5)],
    'sh.5+.25': [(p, .5) for p in SHALLOW] + [('', .25)], 'sh1+.25': [(p, 1.) for p in SHALLOW] + [('', .25)],
    'enc.5+dec.25': [('encoder', .5), ('', .25)], 'enc.25+dec.5': [('encoder', .25), ('', .5)]}
SPEC = []


def weight(name:str)->float:
    "Weight of the volume's statistics for the batch norm called `name` under the current `SPEC`"
    return next((a for p, a in SPEC if name.startswith(p)), 0.)


_LIB_ADAPTED = inf.bn_adapted


@contextmanager
def bn_adapted(model, forward, xb, alpha=0.5):
    "`inference.bn_adapted` with each layer's weight from `SPEC` instead of one `alpha`"
    names = {id(m): n for n, m in model.named_modules()}
    bns = inf._bn_layers(model)
    train = [(m.running_mean.clone(), m.running_var.clone()) for m in bns]
    with _LIB_ADAPTED(model, forward, xb, 1.):   # the volume's own statistics in every layer; the training ones restored after
        for m, (mu, var) in zip(bns, train):
            a = weight(names[id(m)]); m.running_mean.lerp_(mu, 1 - a); m.running_var.lerp_(var, 1 - a)
        yield model


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument('folds', help='parent folder of the fold_K run folders')
    ap.add_argument('--data', default='../shared/data/lgg/kaggle_3m')
    ap.add_argument('--cells', default=','.join(CELLS), help=f"comma-separated settings of {list(CELLS)}; the first is the reference")
    ap.add_argument('--save', default=None, help='write the per-patient scores of every setting to this CSV')
    a = ap.parse_args()
    cells = a.cells.split(',')
    if bad := [c for c in cells if c not in CELLS]: raise SystemExit(f"--cells: unknown {bad}; expected some of {list(CELLS)}")
    inf.bn_adapted = bn_adapted   # `_TorchRunner.adapt` looks it up at call time
    truth, rows, slices = read_data(a.data), [], []
    for d in fold_dirs(a.folds):
        if not (d/'model.pth').is_file(): continue
        p = inf.Predictor.load(d, backend='torch', bn_adapt=1.)   # any weight > 0 turns the adaptation on; SPEC sets it
        ht = inf.holdout_table(d, a.data)
        for c in cells:
            SPEC[:] = CELLS[c]
            pred = p.predict_table(ht)
            with warnings.catch_warnings():
                warnings.simplefilter('ignore')   # the other folds' patients are not predicted here, by design
                res = evaluate(pred, truth[truth.patient.isin(pred.patient.unique())])
            rows.append(res['per_patient'].assign(fold=d.name.split('_')[1], cell=c)); slices.append(res['per_slice'].assign(cell=c))
            print(f"{d.name} {c}: {rows[-1].volume_dice.mean():.4f}", flush=True)
    if not rows: raise SystemExit(f"{a.folds}: no fold_K/model.pth")
    t = pd.concat(rows, ignore_index=True)
    if a.save: t.to_csv(a.save + '.tmp', index=False); os.replace(a.save + '.tmp', a.save)
    v = t.pivot_table(index=['fold', 'patient'], columns='cell', values='volume_dice')[cells]
    s = pd.concat(slices, ignore_index=True)
    fp = {c: summary_metrics(s[s.cell == c], t[t.cell == c])['empty_fp_rate'] for c in cells}
    ref = cells[0]
    print(f"\n| setting | mean volume Dice | higher than {ref} | empty-slice FP |\n|---|---|---|---|")
    for c in v.mean().sort_values(ascending=False).index:
        print(f"| {c} | {v[c].mean():.4f} | {(v[c] > v[ref]).sum()} of {len(v)} | {fp[c]*100:.1f}% |")
    folds = v.index.get_level_values(0)
    loo = float('nan')
    if folds.nunique() > 1:   # each fold's setting chosen on the other folds, so that no fold is scored by a choice made on it
        chosen = [(f, v[folds != f].mean().idxmax()) for f in sorted(folds.unique())]
        loo = pd.concat([v.loc[f, c] for f, c in chosen]).mean()
        print('\nchosen on the other folds: ' + ', '.join(f'fold {f} {c}' for f, c in chosen) + f' → {loo:.4f}')
    best = v.mean().idxmax()
    print(f"RESULT best={best} best_mean={v[best].mean():.4f} reference_mean={v[ref].mean():.4f} chosen_on_other_folds={loo:.4f}")


if __name__ == '__main__': main()
