"""Paired comparison of saved cross-validation scores, with patient-bootstrap intervals.

Run from the repo root on folders written by `bench/accuracy.py --save`:
    python bench/compare.py bench/scores/pre2-bn025 bench/scores/robust bench/scores/bil [--target 0.85]

The first folder is the reference. For each folder it prints the pooled mean and median per-volume Dice, the slice IoU
on slices with abnormality and the empty-slice false-positive rate, each fold's mean, and a 95% interval of the mean
volume Dice from resampling the patients (a percentile bootstrap: how much the mean could move on another draw of
patients like these). For every other folder it compares the patients both folders scored, paired: the difference of
the means with its bootstrap interval, how many patients score higher, and a two-sided sign-flip permutation p-value of
the paired differences. `--rerun DIR` names another run of the reference's own recipe (another machine or seed):
each comparison then also shows that run's difference from the reference on the same patients, the spread between two
runs of one recipe, which a lever has to exceed to mean anything. `--target` adds how far the reference's interval reaches towards a target mean.

A recipe run more than once is given as its folders joined by `+` (`bench/scores/tdice+bench/scores/tdice43`): each
patient's volume Dice is then the mean over those runs, and the slice scores are pooled, so that two recipes are
compared on their expected scores rather than on one draw of the seed each.

Prints a markdown table and a last line `RESULT reference_mean=... ci_low=... ci_high=... best_other=... best_delta=...`.
"""
import argparse
from pathlib import Path
import numpy as np, pandas as pd
from brain_mri_seg.evaluate import summary_metrics


def label(d:str)->str:
    "Short name of a folder, or of folders joined by `+`"
    return '+'.join(Path(x).name for x in str(d).split('+'))


def load(d)->tuple[pd.DataFrame, pd.DataFrame]:
    "Per-patient (those with abnormality, as `evaluate`'s volume Dice) and per-slice scores of a folder written by `bench/accuracy.py --save`, or of several joined by `+`"
    if '+' in str(d): return load_runs(str(d).split('+'))
    d = Path(d)
    for f in ('per_patient.csv', 'per_slice.csv'):
        if not (d/f).exists(): raise SystemExit(f"{d/f}: not found; expected a folder written by `bench/accuracy.py --save`")
    pp, ps = pd.read_csv(d/'per_patient.csv'), pd.read_csv(d/'per_slice.csv')
    for t, name, cols in ((pp, 'per_patient.csv', ('patient', 'fold', 'volume_dice', 'true_pixels')), (ps, 'per_slice.csv', ('fold', 'true_pixels', 'pred_pixels', 'iou'))):
        miss = [c for c in cols if c not in t.columns]
        if miss: raise SystemExit(f"{d/name}: missing column(s) {miss}; expected those of `bench/accuracy.py --save`")
    if pp.patient.duplicated().any(): raise SystemExit(f"{d/'per_patient.csv'}: a patient appears twice ({pp.patient[pp.patient.duplicated()].iloc[0]})")
    return pp[pp.true_pixels > 0], ps


def load_runs(dirs:list)->tuple[pd.DataFrame, pd.DataFrame]:
    "Several runs of one recipe: each patient's volume Dice and error averaged over the runs, the slice scores pooled"
    runs = [load(d) for d in dirs]
    sets = [set(pp.patient) for pp, _ in runs]
    for d, s in zip(dirs[1:], sets[1:]):
        if s != sets[0]: raise SystemExit(f"{d}: scores other patients than {dirs[0]} ({len(s ^ sets[0])} differ); runs joined by '+' must cover the same patients")
    pp = pd.concat([pp for pp, _ in runs]).groupby('patient', sort=False).agg(
        fold=('fold', 'first'), true_pixels=('true_pixels', 'first'), volume_dice=('volume_dice', 'mean'),
        volume_error=('volume_error', 'mean'), missed=('missed', 'any'), false_alarm=('false_alarm', 'any')).reset_index()
    return pp, pd.concat([ps for _, ps in runs], ignore_index=True)


def boot_means(x:np.ndarray, n:int, rng)->np.ndarray:
    "Means of `n` resamples (with replacement) of `x`"
    return x[rng.integers(0, len(x), (n, len(x)))].mean(1)


def signflip_p(d:np.ndarray, n:int, rng)->float:
    "Two-sided p-value of the mean of paired differences `d` under random sign flips"
    if not np.any(d): return 1.
    flips = rng.choice([-1., 1.], (n, len(d)))
    return float(((np.abs((flips*d).mean(1)) >= abs(d.mean()) - 1e-12).sum() + 1) / (n + 1))


def summary(pp, ps)->dict:
    "`evaluate`'s headline numbers (`summary_metrics`) of the saved scores, and each fold's mean volume Dice"
    m = summary_metrics(ps, pp)
    return {'mean': m['volume_dice_mean'], 'median': m['volume_dice_median'], 'iou': m['slice_iou'], 'fp': m['empty_fp_rate'], 'n': len(pp),
            'folds': ' / '.join(f"{pp[pp.fold == f].volume_dice.mean():.3f}" for f in sorted(pp.fold.unique()))}


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument('dirs', nargs='+', help="folders written by bench/accuracy.py --save (several runs of one recipe joined by '+'); the first is the reference")
    ap.add_argument('--n', type=int, default=10000, help='bootstrap resamples and sign flips')
    ap.add_argument('--target', type=float, default=None, help="a target mean volume Dice to set against the reference's interval")
    ap.add_argument('--rerun', default=None, help="folder of another run of the reference's recipe: the run-to-run difference on each comparison's patients")
    ap.add_argument('--seed', type=int, default=0)
    a = ap.parse_args()
    rng = np.random.default_rng(a.seed)
    sets = {d: load(d) for d in a.dirs}
    ref = a.dirs[0]
    rp = sets[ref][0].set_index('patient').volume_dice
    rr = load(a.rerun)[0].set_index('patient').volume_dice if a.rerun else None
    print('| scores | patients | folds (mean) | mean [95% interval] | median | slice IoU | empty FP | paired with the first: difference [95% interval] | higher | p |'
          + (f' {label(a.rerun)} (a rerun) on the same patients |' if a.rerun else ''))
    print('|---|---|---|---|---|---|---|---|---|---|' + ('---|' if a.rerun else ''))
    best = (None, -np.inf)
    for d in a.dirs:
        pp, ps = sets[d]
        s, bm = summary(pp, ps), boot_means(pp.volume_dice.to_numpy(), a.n, rng)
        lo, hi = np.percentile(bm, [2.5, 97.5])
        if d == ref: rlo, rhi, rboot = lo, hi, bm; cmp = '(reference) |  | ' + (' | ' if a.rerun else '')
        else:
            x = pp.set_index('patient').volume_dice
            common = x.index.intersection(rp.index)
            dd = (x[common] - rp[common]).to_numpy()
            db = boot_means(dd, a.n, rng)
            dlo, dhi = np.percentile(db, [2.5, 97.5])
            cmp = f"{dd.mean():+.3f} [{dlo:+.3f}, {dhi:+.3f}] on {len(common)} | {(dd > 0).sum()} of {len(common)} | {signflip_p(dd, a.n, rng):.2f}"
            if rr is not None:
                both = common.intersection(rr.index)
                cmp += f" | {(rr[both] - rp[both]).mean():+.3f} on {len(both)}"
            if dd.mean() > best[1]: best = (d, dd.mean())
        print(f"| {label(d)} | {s['n']} | {s['folds']} | {s['mean']:.3f} [{lo:.3f}, {hi:.3f}] | {s['median']:.3f} | {s['iou']:.3f} | {s['fp']*100:.1f}% | {cmp} |")
    if a.target is not None:
        print(f"\nreference {label(ref)}: its mean reaches {a.target} in {(rboot >= a.target).mean()*100:.1f}% of the resamples "
              f"(the target is {a.target - rp.mean():+.3f} from its mean, whose interval is {rhi - rlo:.3f} wide)")
    print(f"RESULT reference_mean={rp.mean():.4f} ci_low={rlo:.4f} ci_high={rhi:.4f} "
          f"best_other={label(best[0]) if best[0] else 'none'} best_delta={best[1] if best[0] else 0:.4f}")


if __name__ == '__main__': main()
