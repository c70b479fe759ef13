"""How much of each patient's volume Dice the training resolution alone costs: the true masks taken down and back up.

Run from the repo root:
    python bench/resolution.py [--data ../shared/data/lgg/kaggle_3m] [--sizes 96,128,160,192] [--shrink nearest]

Each true mask is resized to SIZE×SIZE with area averaging (what `AlignedResize` does to the training masks since the
thirty-fourth session; `--shrink nearest`: OpenCV's nearest neighbour, what the training masks went through before),
brought back to its own size bilinearly and thresholded at 0.5 (what happens to the network's probabilities), and
each patient's volume is scored against the original with the project's volume Dice: a prediction that is perfect
at SIZE px scores this, and no better. Prints a markdown table (mean, median and worst patient per size, then the
smallest tumours) and a last line `RESULT size=... mean=... worst=...` for the first size.
"""
import argparse, os
os.environ.setdefault('NO_ALBUMENTATIONS_UPDATE', '1')
import cv2, numpy as np, pandas as pd
from brain_mri_seg.data import read_data
from brain_mri_seg.evaluate import overlap_counts, dice_iou


def round_trip(mask:np.ndarray, size:int, shrink:str='area')->np.ndarray:
    "0/1 `mask` resized to `size`×`size` (area, or nearest neighbour) and back to its own shape (bilinear), thresholded at 0.5"
    m = mask.astype(np.float32)
    small = cv2.resize(m, (size, size), interpolation=dict(area=cv2.INTER_AREA, nearest=cv2.INTER_NEAREST)[shrink])
    return cv2.resize(small, (m.shape[1], m.shape[0]), interpolation=cv2.INTER_LINEAR) > 0.5


def main():
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('--data', default='../shared/data/lgg/kaggle_3m')
    ap.add_argument('--sizes', default='128,160,192')
    ap.add_argument('--shrink', default='area', choices=('area', 'nearest'), help='how each mask is taken down to SIZE')
    a = ap.parse_args()
    sizes = [int(s) for s in a.sizes.split(',')]
    df = read_data(a.data)
    counts = {s: {} for s in sizes}   # (intersection, predicted, true pixels) of each patient's volume, as `evaluate` sums them
    for pat, g in df.groupby('patient'):
        masks = [cv2.imread(str(m), cv2.IMREAD_UNCHANGED) > 0 for m in g['mask']]
        for s in sizes:
            counts[s][pat] = np.sum([overlap_counts(round_trip(m, s, a.shrink) if m.any() else np.zeros_like(m), m) for m in masks], axis=0)
    dice = pd.DataFrame({f'{s} px': {p: float(dice_iou(*c)[0]) for p, c in counts[s].items()} for s in sizes})
    dice['tumour_pixels'] = pd.Series({p: c[2] for p, c in counts[sizes[0]].items()})
    cols = [f'{s} px' for s in sizes]
    print(f"{len(dice)} patients, {len(df)} slices\n")
    print('| | ' + ' | '.join(cols) + ' |\n|---|' + '---|'*len(cols))
    for name, f in [('mean volume Dice', 'mean'), ('median', 'median'), ('worst patient', 'min')]:
        print(f'| {name} | ' + ' | '.join(f'{getattr(dice[c], f)():.4f}' for c in cols) + ' |')
    print('\nThe five smallest tumours:\n')
    print('| patient | tumour pixels | ' + ' | '.join(cols) + ' |\n|---|---|' + '---|'*len(cols))
    for p, r in dice.sort_values('tumour_pixels').head(5).iterrows():
        print(f"| {p} | {int(r.tumour_pixels)} | " + ' | '.join(f'{r[c]:.4f}' for c in cols) + ' |')
    c = cols[0]
    print(f"RESULT size={sizes[0]} mean={dice[c].mean():.4f} worst={dice[c].min():.4f}")


if __name__ == '__main__': main()
