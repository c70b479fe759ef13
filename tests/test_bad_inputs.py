"""Bad-input corpus for the CLI: every command that reads a bad input exits 2 with ONE stderr line, no traceback.

The corpus is built by the tests in a temporary folder (no binary fixtures in git): a valid Kaggle-layout dataset
(2 patients x 3 slices of 32x32 uint8 RGB TIFFs, masks 0/255), the H2O export of it, a predictions table and a tiny
model file (a U-Net on resnet18, depth 3), from which each bad case is derived. `CASES` is one table; `VERB_ARGS` says
how each verb is called (`train` fits 1 epoch of a tiny model on 2 folds, about a second, but every bad case stops it
before the fit). To cover a new verb, add it to `VERB_ARGS` and to `DATA_VERBS` (or to a case's `verbs`).

For each (case, verb) the tests check, through `brain_mri_seg.cli.main` in-process:
- `test_one_line`: exit status 2, exactly one stderr line, no 'Traceback', naming the offending file or column;
- `test_says_what_was_expected`: that line says what was expected (a regex per case);
- `test_nothing_changed`: the failed command changed no file (OUT holds a previous export and a previous
  `predictions.parquet`, which must stay byte-identical; nothing half-written or temporary is left behind);
- `test_debug_raises` (`--debug`): the exception propagates, so the traceback is shown.
A few cases also run through the installed console script in a subprocess. Inputs a verb accepts on purpose
(`predict` needs no masks) are listed in a case's `accepted_by` and checked by `test_accepted`.

Known library bugs are `xfail(strict=True)` with the reason: they must turn green when the library is fixed.
"""
import contextlib, hashlib, io, os, re, shutil, subprocess, sys, warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import cv2
import numpy as np
import pandas as pd
import pytest
import torch

from brain_mri_seg.cli import main, VERBS, USER_ERRORS
from brain_mri_seg.data import read_data, read_image
from brain_mri_seg.learner import save_model, seg_model

PA, PB = 'TCGA_AA_0001_20000101', 'TCGA_BB_0002_20000202'     # the two patients of the fixture
A2, A2M = f'{PA}_2.tif', f'{PA}_2_mask.tif'                      # the slice most cases break

# ---------------------------------------------------------------- the valid fixture
def _rle(m:np.ndarray)->str:
    "Kaggle RLE written independently of the library (column-major, 1-indexed)"
    px = np.concatenate([[0], (m.ravel(order='F') > 0).astype(np.int8), [0]])
    runs = np.flatnonzero(np.diff(px)) + 1
    return ' '.join(f'{s} {e - s}' for s, e in zip(runs[::2], runs[1::2]))

@dataclass
class Fixture:
    root: Path
    kaggle: Path = None   # DATA/<patient>/<patient>_<n>.tif + _mask.tif
    h2o: Path = None      # train.parquet + images/ (what `to-h2o` writes): also the "previous export" in OUT
    pred: Path = None     # predictions.parquet that matches the truth exactly
    model: Path = None    # model.pth of a tiny untrained U-Net (resnet18, depth 3, 32x32), as `train` writes it
    table: pd.DataFrame = None   # the H2O table
    summary: str = None   # stdout of `summary` on the valid data

@pytest.fixture(scope='module')
def fx(tmp_path_factory):
    f = Fixture(tmp_path_factory.mktemp('fixture'))
    f.kaggle, f.h2o = f.root/'kaggle_3m', f.root/'h2o'
    (f.h2o/'images').mkdir(parents=True)
    rng, rows = np.random.default_rng(0), []
    for p in (PA, PB):
        (f.kaggle/p).mkdir(parents=True)
        for n in (1, 2, 3):
            img = rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)
            m = np.zeros((32, 32), np.uint8)
            if n == 2: m[8:16, 10:20] = 255                   # slice 2 of each patient is abnormal
            assert cv2.imwrite(str(f.kaggle/p/f'{p}_{n}.tif'), img) and cv2.imwrite(str(f.kaggle/p/f'{p}_{n}_mask.tif'), m)
            shutil.copy(f.kaggle/p/f'{p}_{n}.tif', f.h2o/'images')
            rows.append(dict(image=f'{p}_{n}.tif', rle_mask=_rle(m), class_id=1, patient=p, slice=n))
    f.table = pd.DataFrame(rows)
    f.table.to_parquet(f.h2o/'train.parquet', index=False)
    f.pred = f.root/'predictions.parquet'
    f.table[['image', 'patient', 'slice', 'rle_mask']].to_parquet(f.pred, index=False)
    f.summary = run_main(['summary', f.kaggle])[1]
    f.model = f.root/'model.pth'
    save_model(seg_model('Unet', 'resnet18', encoder_depth=3, decoder_channels=[16, 8, 4]), f.model,
               dict(size=32, norm='simple', threshold=0.5))
    return f

# ---------------------------------------------------------------- running the CLI
def run_main(argv)->tuple:
    "(exit status, stdout, stderr) of `main(argv)` in-process; warnings count as stderr lines, as in the console script"
    out, err = io.StringIO(), io.StringIO()
    with warnings.catch_warnings(record=True) as ws, contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        warnings.simplefilter('default')                      # Python's defaults for a script: show each warning once,
        for c in (DeprecationWarning, PendingDeprecationWarning, ImportWarning, ResourceWarning):
            warnings.simplefilter('ignore', c)                # ... but not these
        rc = main([str(a) for a in argv])
    return rc, out.getvalue(), err.getvalue() + ''.join(warnings.formatwarning(w.message, w.category, w.filename, w.lineno) for w in ws)

# A tiny model trained for 1 epoch; the fixture has 2 patients, so 2 patient-grouped folds, validating on fold 1
TRAIN_SET = ('architecture.encoder_depth=3,architecture.decoder_channels=[16,8,4],architecture.pretrained=false,'
             'dataset.positive_only=false,dataset.n_folds=2,dataset.folds=[1]')

def train_args(p:dict)->list:
    "`train` on the case's paths; a case may add `config`, `weights`, another `encoder` and more `set` fields"
    argv = ['train', '--data', p['data'], '--out', p['out'], '--encoder', p.get('encoder', 'resnet18'), '--size', '32',
            '--epochs', '1', '--bs', '2', '--quiet', '--set', ','.join(filter(None, [TRAIN_SET, p.get('set')]))]
    for k in ('config', 'weights'):
        if p.get(k) is not None: argv += [f'--{k}', p[k]]
    return argv

VERB_ARGS = {                                            # how each verb is called; p: the case's paths
    'summary':  lambda p: ['summary', p['data']],
    'to-h2o':   lambda p: ['to-h2o', p['data'], p['out']],
    'evaluate': lambda p: ['evaluate', p['pred'], p['data'], '--out', p['out']],
    'predict':  lambda p: ['predict', p['model'], p['data'], p['out'], '--quiet'],
    'train':    train_args,
}
DATA_VERBS = tuple(v for v in ('summary', 'to-h2o', 'evaluate', 'predict', 'train') if v in VERBS)   # verbs that read DATA
OUT_VERBS = tuple(v for v in ('to-h2o', 'evaluate', 'predict', 'train') if v in VERBS)               # verbs that write OUT

# `predict` loads the model (about 0.3 s) before it reads DATA, so it runs only these data cases: the ones that take
# its own paths (a flat folder of slices, an unlabeled table, image reading while predicting) and a sample of the rest
SAMPLED = {'predict': {'mask-without-image', 'truncated-image', 'two-page-tiff', 'mask-values-0-128', 'empty-folder',
                       'slices-and-folders-mixed', 'data-is-a-text-file', 'data-missing', 'newline-in-file-name',
                       'parquet-garbage', 'parquet-bad-page-header', 'parquet-without-image', 'parquet-row-missing-file',
                       'parquet-invalid-utf8', 'parquet-slice-not-int', 'rle-odd-count', 'rle-nbsp-separated'}}

def default_paths(fx, out:Path)->dict:
    "The valid inputs every case starts from, and OUT"
    return dict(data=fx.kaggle, pred=fx.pred, model=fx.model, out=out)

# ---------------------------------------------------------------- building the bad cases
def kaggle(fx, d:Path, name='kaggle_3m')->Path:
    "A fresh copy of the valid Kaggle-layout data in `d`"
    shutil.copytree(fx.kaggle, d/name)
    return d/name

def h2o(fx, d:Path, table:pd.DataFrame=None, raw:bytes=None, images=True, **kw)->Path:
    "An H2O folder in `d` with the valid images and `table` (default: the valid one) or `raw` parquet bytes"
    (d/'h2o').mkdir()
    if images: shutil.copytree(fx.h2o/'images', d/'h2o'/'images')
    pq = d/'h2o'/'train.parquet'
    if raw is not None: pq.write_bytes(raw)
    else: (fx.table if table is None else table).to_parquet(pq, index=False, **kw)
    return pq

def with_col(fx, col:str, value, row=1)->pd.DataFrame:
    "The valid H2O table with column `col` of `row` (slice 2 of patient A) replaced by `value`"
    t = fx.table.copy(); t[col] = t[col].astype(object); t.loc[row, col] = value
    return t

def with_rle(fx, rle, row=1)->pd.DataFrame: return with_col(fx, 'rle_mask', rle, row)

def kaggle_with(fx, d, fn)->Path:
    "A copy of the valid Kaggle data, then `fn(patient_A_folder)` breaks it"
    k = kaggle(fx, d); fn(k/PA); return k

def _write(path:Path, arr:np.ndarray): assert cv2.imwrite(str(path), arr), path
def _truncate(path:Path): b = path.read_bytes(); path.write_bytes(b[:len(b)//2])

def _bad_page_header(fx, d):
    "Uncompressed parquet whose first page header (right after the 'PAR1' magic) is garbage"
    pq = h2o(fx, d, compression=None)
    b = bytearray(pq.read_bytes()); b[4] ^= 0xff; pq.write_bytes(bytes(b))
    return pq

def _bad_utf8(fx, d, table=None):
    "Uncompressed parquet in which the first `image` value holds an invalid UTF-8 byte"
    pq = h2o(fx, d, table, compression=None)
    b = pq.read_bytes(); i = b.index(f'{PA}_1.tif'.encode())
    pq.write_bytes(b[:i] + b'\xff' + b[i+1:])
    return pq

def _no_ids(fx, d):
    "No `patient`/`slice` columns and an image name they cannot be parsed from"
    t = fx.table.drop(columns=['patient', 'slice']); t.loc[0, 'image'] = 'scan.tif'
    pq = h2o(fx, d, t); (pq.parent/'images'/f'{PA}_1.tif').rename(pq.parent/'images'/'scan.tif')
    return pq

def _under_file(d:Path)->Path:
    (d/'file.txt').write_text('a file, not a folder')
    return d/'file.txt'/'out'

@dataclass
class Case:
    id: str
    build: Callable            # (fx, case_dir) -> {'data':..., 'pred':..., 'out':...} overrides of the valid paths
    names: tuple               # strings the stderr line must contain: the offending file / column
    expect: str                # regex: the line says what was expected
    verbs: tuple = None        # default: DATA_VERBS
    accepted_by: tuple = ()    # verbs for which this input is valid (checked by `test_accepted`, not as a bad case)
    bugs: dict = field(default_factory=dict)   # 'aspect' or 'aspect:verb' -> reason of a known bug: xfail(strict)
                                               # aspects: 'line', 'expect', 'debug' (--debug raises a user error), 'changed'

def D(fn): return lambda fx, d: {'data': fn(fx, d)}       # a case that replaces DATA

RLE_NAMES = ('train.parquet', 'rle_mask', A2)
OUT_EXPECT = r'(?i)output|cannot (be )?(created|written)|not writable'   # the message says OUT is the problem (paths hold 'out')

def _old_run(d:Path)->Path:
    "A finished run folder (the files `train` writes), which a new run must not overwrite"
    (d/'old_run').mkdir()
    for f in ('config.yaml', 'metrics.csv', 'model.pth'): (d/'old_run'/f).write_text(f'previous {f}')
    return d/'old_run'

def _save(path:Path, obj)->Path: torch.save(obj, path); return path
def _text(path:Path, text='not a model')->Path: path.write_text(text); return path
def _random_tensors(path:Path)->Path: return _save(path, {'conv.weight': torch.randn(4, 3, 3, 3), 'conv.bias': torch.randn(4)})

def _model_meta(fx, d, **meta)->Path:
    "Our model file with fields of its `meta` replaced"
    obj = torch.load(fx.model, weights_only=True); obj['meta'] |= meta
    return _save(d/'model.pth', obj)

def _torchscript(d)->Path:
    "A TorchScript file without our meta (not written by `export_torchscript`)"
    with warnings.catch_warnings():
        warnings.simplefilter('ignore')
        torch.jit.script(torch.nn.Conv2d(3, 1, 1)).save(str(d/'plain.pt'))
    return d/'plain.pt'

def _resnet18_state_dict(d)->Path:
    "torchvision's resnet18 state dict (random init): the weights of another architecture than resnet34"
    import torchvision
    return _save(d/'resnet18.pth', torchvision.models.resnet18().state_dict())

def M(fn): return lambda fx, d: {'model': fn(fx, d)}                          # a case that replaces MODEL (predict)
def W(fn): return lambda fx, d: {'weights': fn(fx, d), 'encoder': 'resnet34'}  # encoder weights for a resnet34 (train)
def YAML(text): return lambda fx, d: {'config': _text(d/'bad.yaml', text)}    # a config file (train)
def U(fn): return D(lambda fx, d: h2o(fx, d, fn(fx.table.drop(columns='rle_mask'))))   # an unlabeled H2O table (predict)

P, T = ('predict',), ('train',)

MODEL_CASES = [   # predict MODEL: a file that is not one of ours
    Case('model-random-tensors', M(lambda fx, d: _random_tensors(d/'weights.pth')),
         ('weights.pth',), r"not a brain_mri_seg model file: expected format", verbs=P),
    Case('model-text-file', M(lambda fx, d: _text(d/'notamodel.pth')),
         ('notamodel.pth',), r'not a brain_mri_seg model file', verbs=P),
    Case('model-zero-byte', M(lambda fx, d: _text(d/'model.pth', '')), ('model.pth',), r'not a brain_mri_seg model file', verbs=P),
    Case('model-truncated', M(lambda fx, d: (d/'model.pth').write_bytes(fx.model.read_bytes()[:2**20]) and d/'model.pth'),
         ('model.pth',), r'not a brain_mri_seg model file', verbs=P),
    Case('model-missing', M(lambda fx, d: d/'no_model.pth'), ('no_model.pth',), r'no such model file', verbs=P),
    Case('model-run-folder-without-model', M(lambda fx, d: (d/'empty_run').mkdir() or d/'empty_run'),
         ('empty_run',), r'no model\.pth; expected the output folder of `brain-mri-seg train`', verbs=P),
    Case('model-torchscript-without-meta', M(lambda fx, d: _torchscript(d)),
         ('plain.pt',), r'no brain_mri_seg\.json; write it with export_torchscript', verbs=P),
    Case('model-onnx-garbage', M(lambda fx, d: _text(d/'model.onnx', 'not an onnx model')),
         ('model.onnx',), r'(?i)not an? (valid |readable )?(onnx|brain_mri_seg)|cannot be (read|loaded)|expected an? (onnx|model)', verbs=P),
    Case('model-meta-size-not-int', M(lambda fx, d: _model_meta(fx, d, size='big')),
         ('model.pth', 'size'), r'size.*(integer|expected)', verbs=P),
    Case('model-meta-unknown-tta', M(lambda fx, d: _model_meta(fx, d, tta='rot90')),
         ('model.pth', 'tta'), r'must be one of none, hflip, vflip, both', verbs=P),
    Case('model-meta-largest-negative', M(lambda fx, d: _model_meta(fx, d, largest=-2)),
         ('model.pth', 'largest'), r'must be None or a count of components', verbs=P),
]

UNLABELED_CASES = [   # predict reads an H2O table without `rle_mask` by itself (no masks needed)
    Case('unlabeled-parquet-slice-not-int', U(lambda t: t.assign(slice='two')),
         ('train.parquet', 'slice'), r'integer|expected', verbs=P),
    Case('unlabeled-parquet-invalid-utf8', D(lambda fx, d: _bad_utf8(fx, d, fx.table.drop(columns='rle_mask'))),
         ('train.parquet', 'image'), r'UTF-8 text|expected UTF-8', verbs=P),
    Case('unlabeled-parquet-null-image', U(lambda t: t.assign(image=t.image.astype(object).where(t.index != 1, None))),
         ('train.parquet', 'image'), r'not found', verbs=P),
    Case('unlabeled-parquet-duplicate-rows', U(lambda t: pd.concat([t, t.iloc[[1]]])),
         ('train.parquet', A2), r'more than one row|both slice 2', verbs=P),
    Case('unlabeled-parquet-without-image', U(lambda t: t.drop(columns='image')),
         ('train.parquet', "'image'"), r'missing column', verbs=P),
]

CONFIG_CASES = [   # train --config bad.yaml / --set: a field that does not exist or holds the wrong type
    Case('config-unknown-field', YAML('training:\n  epochs: 1\n  epochz: 2\n'),
         ('bad.yaml', 'training.epochz'), r"unknown field .*did you mean 'training\.epochs'", verbs=T),
    Case('config-unknown-section', YAML('trainin:\n  epochs: 1\n'),
         ('bad.yaml', 'trainin'), r"unknown field .*did you mean 'training'", verbs=T),
    Case('config-wrong-type', YAML('training:\n  learning_rate: fast\n'),
         ('bad.yaml', 'training.learning_rate'), r"must be a number, got 'fast'", verbs=T),
    Case('config-wrong-type-overridden', YAML('training:\n  epochs: many\n'),      # `--epochs 1` replaces it
         ('bad.yaml', 'training.epochs'), r'must be an integer', verbs=T),
    Case('config-bad-choice', YAML('training:\n  precision: fp8\n'),
         ('bad.yaml', 'training.precision'), r"must be one of auto, fp32, bf16, fp16; got 'fp8'", verbs=T),
    Case('config-section-not-a-mapping', YAML('training: 3\n'),                      # the CLI options set training.*
         ('bad.yaml', 'training'), r'must be a mapping', verbs=T),
    Case('config-not-a-mapping', YAML('- 1\n- 2\n'), ('bad.yaml',), r'(?i)mapping|expected', verbs=T),
    Case('config-invalid-yaml', YAML('training: [epochs: 1\n'), ('bad.yaml',), r'not valid YAML', verbs=T),
    Case('config-not-utf8', lambda fx, d: (d/'bad.yaml').write_bytes(b'\xff\xfe\x00garbage') and {'config': d/'bad.yaml'},
         ('bad.yaml',), r'YAML|UTF-8 text|expected', verbs=T),
    Case('config-missing', lambda fx, d: {'config': d/'no_config.yaml'}, ('no_config.yaml',), r'config file not found', verbs=T),
    Case('set-unknown-field', lambda fx, d: {'set': 'training.epochz=2'},
         ('training.epochz',), r"unknown field .*did you mean 'training\.epochs'", verbs=T),
    Case('set-wrong-type', lambda fx, d: {'set': 'training.epochs=many'}, ('training.epochs',), r"must be an integer, got 'many'", verbs=T),
    Case('set-seq-substitution-out-of-range', lambda fx, d: {'set': 'augmentation.sequence_substitution=1.5'},
         ('augmentation.sequence_substitution',), r'must be in \[0, 1\], got 1\.5', verbs=T),
    Case('set-keep-largest-negative', lambda fx, d: {'set': 'prediction.keep_largest=-1'},
         ('prediction.keep_largest',), r'must be >= 0', verbs=T),
    Case('set-min-slice-pixels-negative', lambda fx, d: {'set': 'prediction.min_slice_pixels=-1'},
         ('prediction.min_slice_pixels',), r"must be >= 0 pixels \(0 keeps every slice's mask\), got -1", verbs=T),
    Case('set-patient-balance-out-of-range', lambda fx, d: {'set': 'dataset.patient_balance=2'},
         ('dataset.patient_balance',), r'must be in \[0, 1\] \(0: every tumour slice alike, 1: every patient alike\), got 2', verbs=T),
    Case('set-tumour-cutout-out-of-range', lambda fx, d: {'set': 'augmentation.tumour_cutout=1.5'},
         ('augmentation.tumour_cutout',), r'must be in \[0, 1\], got 1\.5', verbs=T),
    Case('set-mix-image-unknown', lambda fx, d: {'set': 'augmentation.mix_image=Mosaic'},
         ('augmentation.mix_image',), r"must be one of Disabled, Mixup, Cutmix, Carvemix; got 'Mosaic'", verbs=T),
    Case('set-mix-concentration-zero', lambda fx, d: {'set': 'augmentation.mix_concentration=0'},
         ('augmentation.mix_concentration',), r'must be > 0 \(the α of a Beta\(α, α\)\), got 0', verbs=T),
    Case('set-bn-adapt-out-of-range', lambda fx, d: {'set': 'prediction.bn_adapt=2'},
         ('prediction.bn_adapt',), r"must be in \[0, 1\] \(the weight of each volume's batch-norm statistics\), got 2", verbs=T),
    Case('config-deep-supervision-on-fpn', YAML('architecture:\n  architecture: FPN\n  deep_supervision: 3\n'),
         ('bad.yaml', 'architecture.deep_supervision'), r'must be 0 with architecture FPN \(heads go on a Unet decoder\), got 3', verbs=T),
    Case('config-unknown-norm', YAML('architecture:\n  norm: layer\n'),
         ('bad.yaml', 'architecture.norm'), r"must be 'batch' or 'instance' or 'group', got 'layer'", verbs=T),
    Case('config-norm-with-bn-adapt', YAML('architecture:\n  norm: group\nprediction:\n  bn_adapt: 0.5\n'),
         ('bad.yaml', 'prediction.bn_adapt'), r"must be 0 with architecture.norm 'group' \(no batch norm to adapt\), got 0.5", verbs=T),
    Case('config-unknown-tta', YAML('prediction:\n  test_time_augmentations: [rotate90]\n'),
         ('bad.yaml', 'prediction.test_time_augmentations'), r'must be a list of any of horizontal_flip, vertical_flip and context_flip', verbs=T),
]

WEIGHTS_CASES = [   # train --encoder resnet34 --weights FILE: weights of another network, or not weights at all
    Case('weights-other-architecture', W(lambda fx, d: _resnet18_state_dict(d)),
         ('resnet18.pth', 'resnet34'), r'does not fit encoder .*missing keys.*Pass weights of the same network', verbs=T),
    Case('weights-random-tensors', W(lambda fx, d: _random_tensors(d/'weights.pth')),
         ('weights.pth', 'resnet34'), r"does not fit encoder .*unexpected keys \['conv\.", verbs=T),
    Case('weights-model-of-another-encoder', W(lambda fx, d: fx.model),       # our resnet18 model.pth
         ('model.pth', 'resnet34'), r'does not fit encoder', verbs=T),
    Case('weights-text-file', W(lambda fx, d: _text(d/'weights.pth', 'not weights')),
         ('weights.pth',), r'not a readable PyTorch or safetensors weights file', verbs=T),
    Case('weights-missing', W(lambda fx, d: d/'no_weights.pth'), ('no_weights.pth',), r'not found', verbs=T),
]

CASES = [
    # --- Kaggle layout
    Case('missing-mask', D(lambda fx, d: kaggle_with(fx, d, lambda p: (p/A2M).unlink())),
         (A2,), rf'no mask.*expected {A2M}', accepted_by=('predict',)),
    Case('mask-without-image', D(lambda fx, d: kaggle_with(fx, d, lambda p: (p/A2).unlink())),
         (A2M,), rf'no image.*expected {A2}'),
    Case('mask-other-size', D(lambda fx, d: kaggle_with(fx, d, lambda p: _write(p/A2M, np.zeros((16, 32), np.uint8)))),
         (A2M, A2), r'16x32.*32x32'),
    Case('truncated-image', D(lambda fx, d: kaggle_with(fx, d, lambda p: _truncate(p/A2))),
         (A2,), r'cannot be read as an image'),
    Case('truncated-mask', D(lambda fx, d: kaggle_with(fx, d, lambda p: _truncate(p/A2M))),
         (A2M,), r'cannot be read as an image'),
    Case('zero-byte-image', D(lambda fx, d: kaggle_with(fx, d, lambda p: (p/A2).write_bytes(b''))),
         (A2,), r'0 bytes.*expected an image'),
    Case('zero-byte-mask', D(lambda fx, d: kaggle_with(fx, d, lambda p: (p/A2M).write_bytes(b''))),
         (A2M,), r'0 bytes.*expected an image'),
    Case('text-named-tif', D(lambda fx, d: kaggle_with(fx, d, lambda p: (p/A2).write_text('not an image'))),
         (A2,), r'cannot be read as an image'),
    Case('non-image-file', D(lambda fx, d: kaggle_with(fx, d, lambda p: (p/'notes.txt').write_text('x'))),
         ('notes.txt',), r'expected only slice images'),
    Case('sub-folder-in-patient', D(lambda fx, d: kaggle_with(fx, d, lambda p: (p/'extra').mkdir())),
         ('extra',), r'expected only slice images'),
    Case('duplicate-slice-number', D(lambda fx, d: kaggle_with(fx, d, lambda p: shutil.copy(p/A2, p/f'{PA}_02.tif'))),
         (A2, f'{PA}_02.tif'), r'appears twice'),
    Case('two-page-tiff', D(lambda fx, d: kaggle_with(fx, d, lambda p: cv2.imwritemulti(str(p/A2), [read_image(p/A2)]*2))),
         (A2,), r'2 pages.*expected a single-page'),
    Case('mask-3-channels', D(lambda fx, d: kaggle_with(fx, d, lambda p: _write(p/A2M, np.zeros((32, 32, 3), np.uint8)))),
         (A2M,), r'3 channels.*expected a single-channel'),
    Case('mask-values-0-128', D(lambda fx, d: kaggle_with(fx, d, lambda p: _write(p/A2M, np.eye(32, dtype=np.uint8)*128))),
         (A2M,), r'values \[0, 128\].*expected only 0 and 255'),
    Case('mask-16bit-values', D(lambda fx, d: kaggle_with(fx, d, lambda p: _write(p/A2M, np.eye(32, dtype=np.uint16)*1000))),
         (A2M,), r'values \[0, 1000\].*expected only 0 and 255'),
    Case('empty-folder', D(lambda fx, d: (d/'empty_dataset').mkdir() or d/'empty_dataset'),
         ('empty_dataset',), r'expected DATA/<patient>|no slice images \(\.tif.*\) found'),   # predict: a flat folder of slices is valid too
    Case('parent-of-dataset', D(lambda fx, d: kaggle(fx, d/'parent_folder') and d/'parent_folder'),
         ('parent_folder', 'kaggle_3m'), r'expected DATA/<patient>.*pass .*kaggle_3m'),
    Case('folder-of-dataset-folders', D(lambda fx, d: kaggle(fx, d/'many_datasets'/'lgg') and d/'many_datasets'),
         ('many_datasets',), r'expected DATA/<patient>'),
    Case('empty-patient-folder', D(lambda fx, d: kaggle_with(fx, d, lambda p: (p.parent/'TCGA_CC_0003_20000303').mkdir())),
         ('TCGA_CC_0003_20000303',), r'no slice images.*patient folder'),
    Case('slices-and-folders-mixed', D(lambda fx, d: kaggle_with(fx, d, lambda p: shutil.copy(p/A2, p.parent/A2))),
         ('kaggle_3m',), r'both slice files and sub-folders.*expected'),
    Case('data-is-a-text-file', D(lambda fx, d: (d/'data.csv').write_text('a,b\n') and d/'data.csv'),
         ('data.csv',), r'expected a folder.*or (an H2O table ending in |a )\.parquet'),
    Case('data-missing', D(lambda fx, d: d/'no_such_data'),
         ('no_such_data',), r'no such file or folder|not found'),
    Case('newline-in-file-name', D(lambda fx, d: kaggle_with(fx, d, lambda p: (p/'notes\nold.txt').write_text('x'))),
         ('notes',), r'expected only slice images'),
    # --- H2O parquet
    Case('parquet-without-rle_mask', D(lambda fx, d: h2o(fx, d, fx.table.drop(columns='rle_mask'))),
         ('train.parquet', 'rle_mask'), r'missing column', accepted_by=('predict',)),
    Case('parquet-without-image', D(lambda fx, d: h2o(fx, d, fx.table.drop(columns='image'))),
         ('train.parquet', "'image'"), r'missing column'),
    Case('parquet-without-images-folder', D(lambda fx, d: h2o(fx, d, images=False)),
         ('images',), r'image folder not found'),
    Case('parquet-row-missing-file', D(lambda fx, d: h2o(fx, d, with_col(fx, 'image', 'TCGA_ZZ_9999_20000101_7.tif'))),
         ('TCGA_ZZ_9999_20000101_7.tif', 'image'), r'not found'),
    Case('parquet-row-null-image', D(lambda fx, d: h2o(fx, d, with_col(fx, 'image', None))),
         ('train.parquet', 'image'), r'not found'),
    Case('parquet-row-truncated-image', D(lambda fx, d: (pq := h2o(fx, d)) and _truncate(pq.parent/'images'/A2) or pq),
         (A2,), r'cannot be read as an image'),
    Case('parquet-duplicate-rows', D(lambda fx, d: h2o(fx, d, pd.concat([fx.table, fx.table.iloc[[1]]]))),
         ('train.parquet', A2), r'more than one row.*expected one row'),
    Case('parquet-no-ids', D(_no_ids), ('scan.tif',), r'expected <patient>_<n>\.tif'),
    Case('parquet-slice-not-int', D(lambda fx, d: h2o(fx, d, fx.table.assign(slice='two'))),
         ('slice',), r'integer|expected'),
    Case('parquet-garbage', D(lambda fx, d: h2o(fx, d, raw=b'hello, not a parquet file')),
         ('train.parquet',), r'cannot be read as a parquet'),
    Case('parquet-zero-byte', D(lambda fx, d: h2o(fx, d, raw=b'')),
         ('train.parquet',), r'cannot be read as a parquet'),
    Case('parquet-truncated', D(lambda fx, d: h2o(fx, d, raw=(fx.h2o/'train.parquet').read_bytes()[:300])),
         ('train.parquet',), r'cannot be read as a parquet'),
    Case('parquet-bad-page-header', D(_bad_page_header),
         ('train.parquet',), r'cannot be read as a parquet'),
    Case('parquet-invalid-utf8', D(_bad_utf8),
         ('train.parquet', 'image'), r'UTF-8 text|expected UTF-8'),
    Case('rle-odd-count', D(lambda fx, d: h2o(fx, d, with_rle(fx, '1 2 3'))), RLE_NAMES, r'3 numbers; expected an even count'),
    Case('rle-word', D(lambda fx, d: h2o(fx, d, with_rle(fx, '1 two'))), RLE_NAMES, r"'two'; expected integers"),
    Case('rle-negative-start', D(lambda fx, d: h2o(fx, d, with_rle(fx, '-1 2'))), RLE_NAMES, r'start -1 must be >= 1'),
    Case('rle-zero-start', D(lambda fx, d: h2o(fx, d, with_rle(fx, '0 2'))), RLE_NAMES, r'start 0 must be >= 1'),
    Case('rle-zero-length', D(lambda fx, d: h2o(fx, d, with_rle(fx, '5 0'))), RLE_NAMES, r'length 0 must be >= 1'),
    Case('rle-negative-length', D(lambda fx, d: h2o(fx, d, with_rle(fx, '5 -3'))), RLE_NAMES, r'length -3 must be >= 1'),
    Case('rle-past-end', D(lambda fx, d: h2o(fx, d, with_rle(fx, '1000 100'))), RLE_NAMES, r'past the 1024 pixels of a 32x32'),
    Case('rle-for-bigger-image', D(lambda fx, d: h2o(fx, d, with_rle(fx, '65000 10'))), RLE_NAMES, r'past the 1024 pixels'),
    Case('rle-overlapping', D(lambda fx, d: h2o(fx, d, with_rle(fx, '10 5 12 3'))), RLE_NAMES, r'sorted and must not overlap'),
    Case('rle-unsorted', D(lambda fx, d: h2o(fx, d, with_rle(fx, '50 2 10 2'))), RLE_NAMES, r'sorted and must not overlap'),
    Case('rle-int64-overflow', D(lambda fx, d: h2o(fx, d, with_rle(fx, '1 99999999999999999999999'))), RLE_NAMES, r'expected integers'),
    Case('rle-float', D(lambda fx, d: h2o(fx, d, with_rle(fx, '1.5 2'))), RLE_NAMES, r"'1\.5'; expected integers"),
    Case('rle-unicode-digits', D(lambda fx, d: h2o(fx, d, with_rle(fx, '١ ٢'))), RLE_NAMES, r"'١'; expected integers"),
    Case('rle-commas', D(lambda fx, d: h2o(fx, d, with_rle(fx, '1,2'))), RLE_NAMES, r"'1,2'; expected integers"),
    Case('rle-json-list', D(lambda fx, d: h2o(fx, d, with_rle(fx, '[1, 2]'))), RLE_NAMES, r"'\[1,'; expected integers"),
    Case('rle-nan-text', D(lambda fx, d: h2o(fx, d, with_rle(fx, 'nan'))), RLE_NAMES, r"'nan'; expected integers"),
    Case('rle-nbsp-separated', D(lambda fx, d: h2o(fx, d, with_rle(fx, '1\u00a02'))), RLE_NAMES, r'expected (integers|ASCII)'),
    Case('rle-int-column', D(lambda fx, d: h2o(fx, d, fx.table.assign(rle_mask=7))),
         ('train.parquet', 'rle_mask'), r'must be a string'),
    Case('rle-bytes-column', D(lambda fx, d: h2o(fx, d, fx.table.assign(rle_mask=[b'1 2']*len(fx.table)))),
         ('train.parquet', 'rle_mask'), r'must be a string'),
    Case('rle-list-column', D(lambda fx, d: h2o(fx, d, fx.table.assign(rle_mask=[[1, 2]]*len(fx.table)))),
         ('train.parquet', 'rle_mask'), r'must be a string'),
    # --- predictions (evaluate only)
    Case('predictions-missing', lambda fx, d: {'pred': d/'no_predictions.parquet'},
         ('no_predictions.parquet',), r'not found', verbs=('evaluate',)),
    Case('predictions-garbage', lambda fx, d: (d/'p.parquet').write_text('not parquet') and {'pred': d/'p.parquet'},
         ('p.parquet',), r'expected a predictions parquet', verbs=('evaluate',)),
    Case('predictions-without-rle_mask', lambda fx, d: fx.table.drop(columns='rle_mask').to_parquet(d/'p.parquet') or {'pred': d/'p.parquet'},
         ('rle_mask',), r'expected an `rle_mask` column', verbs=('evaluate',)),
    Case('predictions-bad-rle', lambda fx, d: with_rle(fx, '1 2 3').to_parquet(d/'p.parquet') or {'pred': d/'p.parquet'},
         ('rle_mask', PA), r'expected an even count', verbs=('evaluate',)),
    Case('predictions-nbsp-rle', lambda fx, d: with_rle(fx, '1\u00a02').to_parquet(d/'p.parquet') or {'pred': d/'p.parquet'},
         ('rle_mask', PA), r'expected (integers|ASCII)', verbs=('evaluate',)),
    # --- output folder that cannot be written (tests run as root: chmod would not stop us)
    Case('out-under-a-file', lambda fx, d: {'out': _under_file(d)}, ('file.txt',), OUT_EXPECT, verbs=OUT_VERBS),
    Case('out-is-a-file', lambda fx, d: (d/'out.txt').write_text('x') and {'out': d/'out.txt'},
         ('out.txt',), OUT_EXPECT, verbs=OUT_VERBS),
    Case('out-in-proc', lambda fx, d: {'out': Path('/proc/brain-mri-seg-test-out')},
         ('/proc/brain-mri-seg-test-out',), OUT_EXPECT, verbs=OUT_VERBS),
    Case('out-holds-a-run', lambda fx, d: {'out': _old_run(d)}, ('old_run',), r'already holds a run.*--resume',
         verbs=('train',)),
    *MODEL_CASES, *UNLABELED_CASES, *CONFIG_CASES, *WEIGHTS_CASES,
]
assert len({c.id for c in CASES}) == len(CASES)

# ---------------------------------------------------------------- running each (case, verb) once
def _snapshot(d:Path)->dict:
    "relative path -> content hash ('dir' for folders) of everything under `d`"
    return {str(p.relative_to(d)): 'dir' if p.is_dir() else hashlib.sha1(p.read_bytes()).hexdigest()
            for p in sorted(d.rglob('*')) if not p.is_symlink()}

@dataclass
class Outcome:
    argv: list; rc: object; stdout: str; stderr: str; before: dict; after: dict

_OUTCOMES = {}

def outcome(fx, case:Case, verb:str)->Outcome:
    "Build `case` in its own folder, with OUT holding a previous export, and run `verb` on it (memoized)"
    key = (case.id, verb)
    if key not in _OUTCOMES:
        d = fx.root/'cases'/f'{case.id}--{verb}'; d.mkdir(parents=True)
        shutil.copytree(fx.h2o, d/'previous_export'); shutil.copy(fx.pred, d/'previous_export'/'predictions.parquet')
        paths = default_paths(fx, d/'previous_export') | case.build(fx, d)
        argv = VERB_ARGS[verb](paths)
        before = _snapshot(d)
        try: rc, so, se = run_main(argv)
        except BaseException as e: rc, so, se = f'raised {type(e).__name__}: {e}', '', 'Traceback (exception escaped main())'
        _OUTCOMES[key] = Outcome(argv, rc, so, se, before, _snapshot(d))
    return _OUTCOMES[key]

def _params(aspect:str):
    "pytest params (case, verb), marked xfail(strict=True) where `case` has a known bug in `aspect`"
    ps = []
    for c in CASES:
        for v in (c.verbs or DATA_VERBS):
            if v not in VERB_ARGS or v not in VERBS or v in c.accepted_by: continue
            if v in SAMPLED and c.verbs is None and c.id not in SAMPLED[v]: continue
            reason = c.bugs.get(f'{aspect}:{v}') or c.bugs.get(aspect)
            marks = [pytest.mark.xfail(strict=True, reason=reason)] if reason else []
            ps.append(pytest.param(c, v, id=f'{c.id}-{v}', marks=marks))
    return ps

def _report(o:Outcome)->str: return f"argv={[str(a) for a in o.argv]}\nrc={o.rc!r}\nstderr={o.stderr!r}\nstdout={o.stdout[-300:]!r}"

# ---------------------------------------------------------------- the checks
def test_fixture_is_valid(fx):
    "Every verb succeeds on the valid data, so each bad case fails for its own reason"
    assert fx.summary.startswith('patients') and 'abnormal slices' in fx.summary
    for data in (fx.kaggle, fx.h2o/'train.parquet'):
        for verb in DATA_VERBS:
            if verb == 'train' and data != fx.kaggle: continue    # one fit is enough; both layouts are read as by summary
            out = fx.root/'valid-out'/verb/data.name
            rc, so, se = run_main(VERB_ARGS[verb](default_paths(fx, out) | dict(data=data)))
            assert (rc, se) == (0, ''), (verb, data, rc, se)
    assert run_main(['summary', fx.h2o/'train.parquet'])[1] == fx.summary

@pytest.mark.parametrize('case,verb', _params('line'))
def test_one_line(fx, case, verb):
    "Exit status 2 and exactly one stderr line, without a traceback, that names the offending file or column"
    o = outcome(fx, case, verb)
    assert o.rc == 2, _report(o)
    assert 'Traceback' not in o.stderr, _report(o)
    lines = o.stderr.splitlines()
    assert len(lines) == 1 and o.stderr.endswith('\n'), _report(o)
    assert lines[0].startswith('brain-mri-seg') and 'error' in lines[0], _report(o)
    for n in case.names: assert n in lines[0], f"{n!r} not named in the message\n{_report(o)}"

@pytest.mark.parametrize('case,verb', _params('expect'))
def test_says_what_was_expected(fx, case, verb):
    "The stderr line says what was expected (or what is wrong and how to fix it), matching the case's regex"
    o = outcome(fx, case, verb)
    assert o.rc == 2 and re.search(case.expect, o.stderr), f"message does not match {case.expect!r}\n{_report(o)}"

@pytest.mark.parametrize('case,verb', _params('changed'))
def test_nothing_changed(fx, case, verb):
    "A failed command leaves every file as it was: the previous export in OUT, the inputs, no temporary files"
    o = outcome(fx, case, verb)
    assert o.rc != 0, _report(o)
    assert {'previous_export/train.parquet', 'previous_export/predictions.parquet'} <= set(o.before)
    assert o.after == o.before, f"files changed: {sorted(set(o.after.items()) ^ set(o.before.items()))}\n{_report(o)}"

@pytest.mark.parametrize('case,verb', [p for p in _params('debug') if p.values[1] == (p.values[0].verbs or DATA_VERBS)[0]])
def test_debug_raises(fx, case, verb, tmp_path):
    "With --debug, main() lets the user error propagate (the console script then prints the traceback)"
    o = outcome(fx, case, verb)
    assert o.rc != 0, f"the command succeeds, so --debug has nothing to raise (and would train again)\n{_report(o)}"
    paths = default_paths(fx, tmp_path/'out') | case.build(fx, tmp_path)
    with pytest.raises(USER_ERRORS):
        run_main(VERB_ARGS[verb](paths) + ['--debug'])

@pytest.mark.parametrize('case,verb', [pytest.param(c, v, id=f'{c.id}-{v}') for c in CASES for v in c.accepted_by if v in VERBS])
def test_accepted(fx, case, verb):
    "An input that is bad for the other verbs but valid for this one (predict needs no masks): exit 0, every slice predicted"
    o = outcome(fx, case, verb)
    assert (o.rc, o.stderr) == (0, ''), _report(o)
    if verb == 'predict':
        got = pd.read_parquet(Path(o.argv[3])/'predictions.parquet')
        assert sorted(Path(i).name for i in got.image) == sorted(fx.table.image), got

# ---------------------------------------------------------------- accepted inputs: what the library does with them
def _replace_slice(fx, d, img=None, mask=None)->Path:
    k = kaggle(fx, d)
    if img is not None: _write(k/PA/A2, img)
    if mask is not None: _write(k/PA/A2M, mask)
    return k

def _accepted(fx, k:Path, out:Path)->pd.DataFrame:
    "`summary` and `to-h2o` succeed on `k` and print what they print on the valid data; the H2O export reads back"
    rc, so, se = run_main(['summary', k])
    assert (rc, se) == (0, '') and so == fx.summary, (rc, so, se)
    rc, so, se = run_main(['to-h2o', k, out])
    assert (rc, se) == (0, '') and 'train.parquet' in so, (rc, so, se)
    back = read_data(out/'train.parquet')
    assert back.abnormal_pixels.tolist() == read_data(fx.kaggle).abnormal_pixels.tolist()
    return back

def test_16bit_image_is_scaled(fx, tmp_path):
    "A 16-bit slice is accepted: read as uint8 scaled so its own maximum is 255; to-h2o copies the 16-bit file as is"
    img16 = (np.arange(32*32*3, dtype=np.uint32).reshape(32, 32, 3)*20).astype(np.uint16)   # max 61420
    k = _replace_slice(fx, tmp_path, img=img16)
    im = read_image(k/PA/A2)
    assert im.dtype == np.uint8 and im.shape == (32, 32, 3) and im.max() == 255
    want = np.floor(img16[..., ::-1].astype(np.float64)*255/img16.max() + 0.5).astype(np.uint8)   # BGR file -> RGB
    assert np.abs(im.astype(int) - want).max() <= 1
    _accepted(fx, k, tmp_path/'out')
    assert (tmp_path/'out'/'images'/A2).read_bytes() == (k/PA/A2).read_bytes()
    assert cv2.imread(str(tmp_path/'out'/'images'/A2), cv2.IMREAD_UNCHANGED).dtype == np.uint16

def test_16bit_black_image(fx, tmp_path):
    "An all-zero 16-bit slice becomes all zeros (no division by its zero maximum)"
    k = _replace_slice(fx, tmp_path, img=np.zeros((32, 32), np.uint16))
    assert (read_image(k/PA/A2) == 0).all()
    _accepted(fx, k, tmp_path/'out')

def test_grayscale_image(fx, tmp_path):
    "A single-channel slice is accepted and read as 3 equal channels"
    gray = np.random.default_rng(1).integers(0, 256, (32, 32), dtype=np.uint8)
    k = _replace_slice(fx, tmp_path, img=gray)
    im = read_image(k/PA/A2)
    assert im.shape == (32, 32, 3) and all((im[..., c] == gray).all() for c in range(3))
    _accepted(fx, k, tmp_path/'out')

def test_mask_0_1(fx, tmp_path):
    "A 0/1 mask (instead of 0/255) means the same mask"
    m = np.zeros((32, 32), np.uint8); m[8:16, 10:20] = 1
    _accepted(fx, _replace_slice(fx, tmp_path, mask=m), tmp_path/'out')

def test_null_rle_is_empty_mask(fx, tmp_path):
    "A null `rle_mask` in a parquet is an empty mask, as in H2O's tables (not an error)"
    pq = h2o(fx, tmp_path, with_rle(fx, None))
    df = read_data(pq)
    assert df.abnormal_pixels.tolist() == [0, 0, 0, 0, 80, 0]
    rc, so, se = run_main(['summary', pq])
    assert (rc, se) == (0, '') and 'abnormal slices         1' in so, so

# ---------------------------------------------------------------- a failed to-h2o keeps the previous export
def test_failed_to_h2o_keeps_previous_export(fx, tmp_path):
    "Bad input, or a failure while writing images: OUT/train.parquet stays byte-identical, no temporary file is left"
    out = tmp_path/'out'; shutil.copytree(fx.h2o, out)
    old = (out/'train.parquet').read_bytes()
    bad = kaggle_with(fx, tmp_path, lambda p: (p/A2M).write_bytes(b''))
    assert run_main(['to-h2o', bad, out])[0] == 2
    assert (out/'train.parquet').read_bytes() == old
    # late failure: the data is fine, but an image cannot be replaced (a folder stands where it goes)
    (out/'images'/f'{PB}_3.tif').unlink(); (out/'images'/f'{PB}_3.tif').mkdir()
    rc, so, se = run_main(['to-h2o', fx.kaggle, out])
    assert rc == 2 and len(se.splitlines()) == 1 and f'{PB}_3.tif' in se, (rc, se)
    assert (out/'train.parquet').read_bytes() == old
    assert not [p.name for p in out.rglob('*') if '.tmp' in p.name], "temporary files left behind"

# ---------------------------------------------------------------- a failed predict keeps the previous predictions
def test_failed_predict_keeps_previous_predictions(fx, tmp_path):
    "A slice that cannot be read after others were predicted: OUT/predictions.parquet stays byte-identical, no temporary file"
    out = tmp_path/'out'; out.mkdir(); shutil.copy(fx.pred, out/'predictions.parquet')
    old = (out/'predictions.parquet').read_bytes()
    scans = tmp_path/PA; shutil.copytree(fx.kaggle/PA, scans)      # one patient's folder, read slice by slice
    _truncate(scans/f'{PA}_3.tif')                                 # the last slice: slices 1 and 2 are predicted first
    rc, so, se = run_main(['predict', fx.model, scans, out, '--bs', '1', '--quiet'])
    assert rc == 2 and len(se.splitlines()) == 1 and f'{PA}_3.tif' in se and 'cannot be read' in se, (rc, se)
    assert (out/'predictions.parquet').read_bytes() == old
    assert not [p.name for p in out.rglob('*') if '.tmp' in p.name], "temporary files left behind"

# ---------------------------------------------------------------- the installed console script (slow: 2-3 cases)
EXE = next((str(p) for p in [Path(sys.executable).parent/'brain-mri-seg'] if p.exists()), None) or shutil.which('brain-mri-seg')
SUBPROCESS_CASES = [('missing-mask', 'summary'), ('missing-mask', 'train'), ('rle-past-end', 'to-h2o'), ('out-under-a-file', 'to-h2o'),
                    ('model-text-file', 'predict')]

@pytest.mark.skipif(EXE is None, reason='console script brain-mri-seg not installed')
@pytest.mark.parametrize('case_id,verb', SUBPROCESS_CASES, ids=[f'{c}-{v}' for c, v in SUBPROCESS_CASES])
def test_console_script(fx, case_id, verb, tmp_path):
    "The real console script: exit status 2 and one stderr line; with --debug, a traceback and a non-zero status"
    case = next(c for c in CASES if c.id == case_id)
    argv = [str(a) for a in VERB_ARGS[verb](default_paths(fx, tmp_path/'out') | case.build(fx, tmp_path))]
    env = dict(os.environ, NO_ALBUMENTATIONS_UPDATE='1', HF_HUB_OFFLINE='1')
    r = subprocess.run([EXE, *argv], capture_output=True, text=True, timeout=120, env=env)
    assert r.returncode == 2 and len(r.stderr.splitlines()) == 1 and 'Traceback' not in r.stderr, r
    assert all(n in r.stderr for n in case.names), r
    if case_id == SUBPROCESS_CASES[0][0]:
        r = subprocess.run([EXE, *argv, '--debug'], capture_output=True, text=True, timeout=120, env=env)
        assert r.returncode != 0 and 'Traceback' in r.stderr and case.names[0] in r.stderr, r
