"""Sequence-substitution TTA: `bench/accuracy.py --repredict` with each batch also predicted with its non-FLAIR channels replaced by FLAIR.

The `lgg-cpu` recipe trains with each of the pre- and post-contrast channels replaced by FLAIR with probability 0.2
(`dataset.p_seq`), as in the dataset's 15 patients whose missing sequence was replaced that way. This averages the
recipe's own TTA over copies of each batch with those channels replaced too, so a prediction leans less on one sequence:

    python bench/subst_tta.py --subst both runs/NAME --data ../shared/data/lgg/kaggle_3m [accuracy.py's options]

`--subst both`: the original and a copy with both channels replaced (2 passes of the recipe's TTA);
`--subst each`: the original, each channel replaced alone, and both replaced (4 passes).
Every other option is `bench/accuracy.py`'s (`--repredict` is implied).
"""
import sys, runpy
from pathlib import Path
import torch
import brain_mri_seg.inference as inf

_tta_predict = inf.tta_predict
_SUBST = dict(both=[(0, 2)], each=[(0,), (2,), (0, 2)])


def substituted_inputs(xb:torch.Tensor, mode:str)->list:
    "`xb` and its copies with channels 0 and/or 2 (pre-, post-contrast) replaced by channel 1 (FLAIR), as `mode` says"
    out = [xb]
    for chans in _SUBST[mode]:
        x = xb.clone()
        for c in chans: x[:, c] = xb[:, 1]
        out.append(x)
    return out


def main():
    args = sys.argv[1:]
    if '--subst' not in args: raise SystemExit("--subst both|each is required")
    i = args.index('--subst'); mode = args[i+1]; del args[i:i+2]
    if mode not in _SUBST: raise SystemExit(f"--subst {mode!r}: expected one of {', '.join(_SUBST)}")
    def tta_subst(fn, xb, tta='none'):
        xs = substituted_inputs(xb, mode)
        return sum(_tta_predict(fn, x, tta) for x in xs) / len(xs)
    inf.tta_predict = tta_subst   # Predictor.predict_proba looks it up in the module at each call
    if '--repredict' not in args: args.append('--repredict')
    sys.argv = [str(Path(__file__).with_name('accuracy.py'))] + args
    runpy.run_path(sys.argv[0], run_name='__main__')


if __name__ == '__main__': main()
