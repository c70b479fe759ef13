"""Build `.gpu/` (ignored by git) for a run of `bench/gpu/gpu.sh` on a GPU machine lent by the `device` tool.

That machine has its own Python 3.12 and PyTorch but not fastai, smp or albumentations; it cannot reach the network
or `../shared`, and the tree that travels to it is capped at 64 MiB. So:
- `.gpu/h2o/`: the `h2o` preset's data, the shared tumour slices, as an H2O parquet (`image`, `rle_mask`, `class_id`,
  `patient`, `slice`, and each slice's `fold` from the full 1,750-slice table, so the folds are the preset's), the
  images re-encoded as lossless WebP (37 MB against 53 MB of TIFF; checked pixel for pixel);
- `.gpu/whl/`: CPython 3.12 wheels of what the project needs and that machine lacks, at this environment's versions
  (fastprogress 1.0.3: newer ones import python-fasthtml, a web framework, at import time).

Run from the repo root:  python bench/gpu/prepare.py [--data ../shared/data/lgg/kaggle_3m]
then, with the device tool:  run(command='LIMIT=480 bash bench/gpu/gpu.sh', carry=['.gpu'], timeout_s=525)
"""
import argparse, os, subprocess, sys, importlib.metadata as md
from pathlib import Path
os.environ.setdefault('NO_ALBUMENTATIONS_UPDATE', '1')
import cv2, pandas as pd
from brain_mri_seg.data import read_data, kfold, to_h2o, atomic_write, read_image
from brain_mri_seg.train import get_config

WHEELS = ['fastai', 'fastcore', 'fasttransform', 'fastdownload', 'plum-dispatch', 'beartype', 'segmentation-models-pytorch',
          'albumentations', 'albucore', 'pydantic', 'pydantic-core', 'annotated-types', 'typing-inspection', 'stringzilla',
          'simsimd', 'typing-extensions']
PLATFORMS = ['manylinux_2_28_x86_64', 'manylinux_2_27_x86_64', 'manylinux_2_17_x86_64', 'manylinux2014_x86_64', 'manylinux1_x86_64']


def h2o_data(data:Path, out:Path):
    "The h2o preset's tumour slices with their folds, as a parquet and lossless WebP images"
    d = get_config('h2o').dataset
    df = kfold(read_data(data), d.n_folds, seed=d.fold_seed, how='patient')
    pq = to_h2o(df, out, positive_only=True)
    t = pd.read_parquet(pq)
    names = []
    for n in t.image:
        src = out/'images'/n        # `to_h2o` copied the original TIFF
        im = cv2.imread(str(src), cv2.IMREAD_UNCHANGED)
        dst = src.with_suffix('.webp')
        if not cv2.imwrite(str(dst), im, [cv2.IMWRITE_WEBP_QUALITY, 101]): raise OSError(f"{dst}: WebP encoding failed")
        if not (cv2.imread(str(dst), cv2.IMREAD_UNCHANGED) == im).all(): raise ValueError(f"{dst}: WebP is not lossless here")
        src.unlink(); names.append(dst.name)
    t['image'] = names
    atomic_write(pq, lambda p: t.to_parquet(p, index=False))
    assert (read_image(out/'images'/names[0]) == read_image(df[df.abnormal_pixels > 0].image.iloc[0])).all()
    mb = sum(f.stat().st_size for f in (out/'images').iterdir()) / 1e6
    print(f"{pq}: {len(t)} tumour slices of {t.patient.nunique()} patients, folds {t.fold.value_counts().sort_index().to_dict()}, images {mb:.1f} MB")


def wheels(out:Path):
    "CPython 3.12 manylinux wheels of `WHEELS` at this environment's versions"
    pins = [f"{n}=={md.version(n)}" for n in WHEELS] + ['fastprogress==1.0.3']
    cmd = [sys.executable, '-m', 'pip', 'download', '-q', '--no-deps', '--only-binary=:all:', '--python-version', '3.12',
           '--implementation', 'cp', *[a for p in PLATFORMS for a in ('--platform', p)], '-d', str(out), *pins]
    subprocess.run(cmd, check=True)
    whl = sorted(out.glob('*.whl'))
    print(f"{out}: {len(whl)} wheels, {sum(f.stat().st_size for f in whl)/1e6:.1f} MB")


if __name__ == '__main__':
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument('--data', default='../shared/data/lgg/kaggle_3m')
    ap.add_argument('--out', default='.gpu')
    a = ap.parse_args()
    out = Path(a.out)
    h2o_data(Path(a.data), out/'h2o')
    wheels(out/'whl')
