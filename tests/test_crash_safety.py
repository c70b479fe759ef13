"""Crash safety of training runs: SIGKILL mid-epoch, then resume, gives the bit-identical model; a SIGKILL during a
checkpoint write leaves the old checkpoint intact; two runs with the same seed agree; nothing in a run folder is half-written.

These need fresh processes (a real SIGKILL), so they are a plain pytest module (STYLE §7). One module fixture runs
every process, overlapping them to stay under ~90 s on two busy cores:

- stage 1, in parallel: `A` and `B`, two uninterrupted runs with the same seed and config; `K`, the same run whose
  `_Hang` callback signals readiness after the 2nd training batch of epoch 2 and sleeps, so the parent's SIGKILL
  lands mid-epoch, after `checkpoint.pth` holds epoch 1 and after one more optimizer step than that checkpoint.
- stage 2: `K` is copied to `C`; `train(resume=K)` runs (R1) while, in `C`, a process replacing `checkpoint.pth`
  through `atomic_write` is SIGKILLed halfway through writing its temp file; then `brain-mri-seg train --resume C
  --quiet` (the CLI, R2) finishes `C`.

The run: `synth_lgg` (4 patients x 6 slices, 32 px), 4 folds (validation fold 3: 18 training slices, 4 batches of 4
per epoch), U-Net/resnet18 of depth 3, 4 epochs, `precision: auto` (bf16 autocast on a CPU with native bf16, else
fp32), 0 loader workers. Determinism needed one thing: the same number of torch threads in every process (with 1 or
with 2 threads a resumed run equals the fresh run of the same thread count, but 1- and 2-thread runs differ in the
last bits), so every process runs with `OMP_NUM_THREADS=1` and `torch.set_num_threads(1)`. fp32 was not needed. The children see no GPU
(`CUDA_VISIBLE_DEVICES=''`): bit-identity is checked on CPU.
"""
import hashlib, json, os, re, shutil, signal, subprocess, sys, time
from pathlib import Path
from types import SimpleNamespace

import pandas as pd
import pytest
import torch
import yaml

EXE = shutil.which('brain-mri-seg') or str(Path(sys.executable).parent/'brain-mri-seg')
TIMEOUT = 300  # seconds any one process may take on a loaded machine

# The script every child process runs: `python -c WORKER MODE DATA RUN [READY]`
WORKER = r'''
import os, sys, time, io
from pathlib import Path
import torch
torch.set_num_threads(1)
mode, data, run = sys.argv[1:4]
if mode == 'write':  # replace RUN/checkpoint.pth via atomic_write; signal READY halfway through the temp file, then hang
    from brain_mri_seg.data import atomic_write
    buf = io.BytesIO(); torch.save(dict(format=1, epoch=99, model={'w': torch.arange(2**20, dtype=torch.float32)}), buf)
    def slow_write(tmp):
        b = buf.getvalue()
        with open(tmp, 'wb') as f:
            f.write(b[:len(b)//2]); f.flush(); os.fsync(f.fileno())
            Path(sys.argv[4]).write_text(f'{tmp}\n{len(b)//2}\n{len(b)}'); time.sleep(600)
            f.write(b[len(b)//2:])
    atomic_write(Path(run)/'checkpoint.pth', slow_write)
    sys.exit(0)
from fastai.callback.core import Callback
from brain_mri_seg.train import get_config, train, synth_lgg
CFG = dict(epochs=4, size=32, encoder='resnet18', bs=4, **{'architecture.encoder_depth': 3,
           'architecture.decoder_channels': [16, 8, 4], 'dataset.positive_only': False, 'logging.progress': False,
           'environment.number_of_workers': 0, 'dataset.n_folds': 4, 'dataset.folds': [3]})
class _Hang(Callback):
    "After the 2nd training batch of the 2nd epoch: write READY, then sleep until killed"
    order = 100
    def after_batch(self):
        if self.training and self.epoch == 1 and self.iter == 1:
            Path(sys.argv[4]).write_text(f'epoch {self.epoch} iter {self.iter}'); time.sleep(600)
if mode == 'resume': train(resume=run)
else:
    synth_lgg(data, n_patients=4, n_slices=6, size=32, seed=0)
    train(get_config('h2o', **CFG), data, run, cbs=[_Hang()] if mode == 'hang' else None)
'''

def _env():
    return {**os.environ, 'NO_ALBUMENTATIONS_UPDATE': '1', 'HF_HUB_OFFLINE': '1', 'OMP_NUM_THREADS': '1',
            'CUDA_VISIBLE_DEVICES': '', 'PYTHONWARNINGS': 'ignore', 'MPLBACKEND': 'Agg'}

class Proc:
    "A child process whose stdout/stderr go to files under `log`"
    def __init__(self, args:list, log:Path):
        self.args, self.out, self.err = args, log.with_suffix('.out'), log.with_suffix('.err')
        with open(self.out, 'w') as o, open(self.err, 'w') as e:
            self.p = subprocess.Popen(args, stdout=o, stderr=e, env=_env(), cwd=log.parent)
    def tail(self)->str: return f"{self.args[-3:]}\nstderr:\n{self.err.read_text()[-3000:]}"
    def wait(self)->int:
        try: return self.p.wait(TIMEOUT)
        except subprocess.TimeoutExpired: self.kill(); pytest.fail(f"timed out after {TIMEOUT} s: {self.tail()}")
    def kill(self):
        if self.p.poll() is None: os.kill(self.p.pid, signal.SIGKILL)  # only the process we started
        return self.p.wait(TIMEOUT)
    def wait_for(self, ready:Path):
        "Wait until the child writes `ready` (fail if it exits first)"
        t = time.time()
        while not ready.exists():
            if self.p.poll() is not None: pytest.fail(f"exited ({self.p.returncode}) before {ready.name}: {self.tail()}")
            if time.time() - t > TIMEOUT: self.kill(); pytest.fail(f"no {ready.name} after {TIMEOUT} s: {self.tail()}")
            time.sleep(0.1)

def worker(root:Path, mode:str, name:str, ready:Path=None)->Proc:
    args = [sys.executable, '-c', WORKER, mode, str(root/f'data_{name}'), str(root/name)] + ([str(ready)] if ready else [])
    return Proc(args, root/f'{mode}_{name}')

def sha(p:Path)->str: return hashlib.sha256(p.read_bytes()).hexdigest()

def ckpt(p:Path)->dict: return torch.load(p, map_location='cpu', weights_only=False)  # our own files

def snapshot(run:Path)->dict:
    "Names, epoch and metrics of run folder `run` now"
    return dict(files=sorted(f.name for f in run.iterdir()), epoch=ckpt(run/'checkpoint.pth')['epoch'],
                metrics=pd.read_csv(run/'metrics.csv'), checkpoint_sha=sha(run/'checkpoint.pth'))

@pytest.fixture(scope='module')
def runs(tmp_path_factory):
    root, t0 = tmp_path_factory.mktemp('crash'), time.time()
    r = SimpleNamespace(root=root, **{n: root/n for n in 'ABKC'})
    # stage 1: two plain runs and the one that hangs mid-epoch 2
    a, b, k = worker(root, 'fresh', 'A'), worker(root, 'fresh', 'B'), worker(root, 'hang', 'K', root/'K.ready')
    k.wait_for(root/'K.ready')
    r.k_rc = k.kill()
    r.killed = snapshot(r.K)
    shutil.copytree(r.K, r.C, symlinks=True)
    # stage 2: resume K (API) while killing a checkpoint write in C, then resume C (CLI)
    r1 = worker(root, 'resume', 'K')
    r.c_before = snapshot(r.C)
    w = worker(root, 'write', 'C', root/'C.ready')
    w.wait_for(root/'C.ready')
    r.w_tmp, r.w_half, r.w_full = (root/'C.ready').read_text().split('\n')
    r.w_rc = w.kill()
    r.c_after = snapshot(r.C)
    r.c_hidden = sorted(f.name for f in r.C.iterdir() if f.name.startswith('.'))
    tmp = Path(r.w_tmp)
    r.w_tmp_size = tmp.stat().st_size
    try: torch.load(tmp, map_location='cpu', weights_only=False); r.w_tmp_loads = True
    except Exception: r.w_tmp_loads = False
    r2 = Proc([EXE, 'train', '--resume', str(r.C), '--quiet'], root/'cli_resume_C')
    r.rc = {n: p.wait() for n, p in dict(A=a, B=b, R1=r1, R2=r2).items()}
    r.procs = dict(A=a, B=b, K=k, R1=r1, R2=r2, W=w)
    r.seconds = time.time() - t0
    print(f"\ncrash-safety processes took {r.seconds:.0f} s")
    return r

def _ok(r, *names):
    for n in names: assert r.rc[n] == 0, f"{n} failed: {r.procs[n].tail()}"

def _state(run:Path)->dict: return torch.load(run/'model.pth', map_location='cpu', weights_only=True)['state_dict']

def assert_same_model(x:Path, y:Path):
    a, b = _state(x), _state(y)
    assert a.keys() == b.keys()
    diff = [k for k in a if a[k].dtype != b[k].dtype or a[k].shape != b[k].shape or not torch.equal(a[k], b[k])]
    assert not diff, f"{len(diff)} of {len(a)} tensors differ between {x.name} and {y.name}, e.g. {diff[:3]}"

def assert_same_metrics(x:Path, y:Path):
    a, b = (pd.read_csv(p/'metrics.csv').drop(columns='seconds') for p in (x, y))
    pd.testing.assert_frame_equal(a, b, check_exact=True)

# ---------------------------------------------------------------- a. SIGKILL mid-epoch, then resume
def test_kill_landed_mid_epoch(runs):
    assert runs.k_rc == -signal.SIGKILL
    k = runs.killed
    assert k['epoch'] == 1 and len(k['metrics']) == 1, "checkpoint.pth and metrics.csv should hold epoch 1 exactly"
    assert 'model.pth' not in k['files'] and 'checkpoint.pth' in k['files']
    assert not [f for f in k['files'] if f.startswith('.')], f"a temp file was left by the killed run: {k['files']}"

def test_resume_is_bit_identical(runs):
    _ok(runs, 'A', 'R1')
    assert_same_model(runs.A, runs.K)
    assert_same_metrics(runs.A, runs.K)
    env = json.loads((runs.K/'env.json').read_text())
    assert env['status'] == 'complete' and [o['from_epoch'] for o in env['resumed']] == [1]
    assert not (runs.K/'checkpoint.pth').exists()

# ---------------------------------------------------------------- b. same seed, same run
def test_same_seed_same_run(runs):
    _ok(runs, 'A', 'B')
    assert_same_metrics(runs.A, runs.B)
    assert_same_model(runs.A, runs.B)
    assert (pd.read_csv(runs.A/'metrics.csv').epoch.tolist()) == [1, 2, 3, 4]

def test_env_json_records_the_run(runs):
    _ok(runs, 'A', 'B')
    ea, eb = (json.loads((p/'env.json').read_text()) for p in (runs.A, runs.B))
    for k in ('python', 'platform', 'device', 'cpu_capability', 'torch_threads', 'seed', 'fold', 'precision', 'packages', 'data'):
        assert k in ea, f"env.json lacks {k!r}: {sorted(ea)}"
    assert ea['seed'] == 42 and ea['fold'] == 3 and ea['device'] == 'cpu'
    assert ea['packages']['torch'] == torch.__version__.split('+')[0] and all(ea['packages'][p] for p in ('fastai', 'segmentation-models-pytorch'))
    assert ea['precision']['requested'] == 'auto' and ea['precision']['chosen'] in ('bf16', 'fp32')
    assert ea['torch_threads'] == 1 and ea['status'] == 'complete' and ea['epochs'] == 4
    assert re.fullmatch(r'[0-9a-f]{64}', ea['data']['sha256']) and (ea['data']['slices'], ea['data']['train_slices']) == (24, 18)
    assert ea['data']['sha256'] == eb['data']['sha256'], "same synthetic files in another folder: same table hash"
    # the config lives beside env.json, in config.yaml: it must be the full recipe, the seed resolved
    ca, cb = (yaml.safe_load((p/'config.yaml').read_text()) for p in (runs.A, runs.B))
    assert ca['environment']['seed'] == 42 and ca['training']['epochs'] == 4 and ca['architecture']['encoder_depth'] == 3
    assert ca['dataset']['train_dataframe'] == str(runs.root/'data_A')
    ca['dataset'].pop('train_dataframe'); cb['dataset'].pop('train_dataframe')
    assert ca == cb

# ---------------------------------------------------------------- c. SIGKILL during a checkpoint write
def test_kill_during_checkpoint_write_keeps_old_file(runs):
    assert runs.w_rc == -signal.SIGKILL
    before, after = runs.c_before, runs.c_after
    assert after['checkpoint_sha'] == before['checkpoint_sha'], "checkpoint.pth changed under a killed write"
    assert after['epoch'] == 1
    tmp = Path(runs.w_tmp)
    assert tmp.parent == runs.C and re.fullmatch(r'\.checkpoint\..+\.tmp\.pth', tmp.name), tmp.name
    assert runs.c_hidden == [tmp.name], f"expected only the killed write's temp file, found {runs.c_hidden}"
    assert runs.w_tmp_size == int(runs.w_half) < int(runs.w_full)
    assert not runs.w_tmp_loads   # the temp file is the partial one, and it stays out of the way (resume removes it)

def test_resume_after_killed_write(runs):
    _ok(runs, 'A', 'R2')
    assert_same_model(runs.A, runs.C)
    assert_same_metrics(runs.A, runs.C)

# ---------------------------------------------------------------- no half-written file in a finished run
READERS = {'.pth': ckpt, '.csv': pd.read_csv, '.parquet': pd.read_parquet, '.json': lambda p: json.loads(p.read_text()),
           '.yaml': lambda p: yaml.safe_load(p.read_text())}

@pytest.mark.parametrize('name', ['A', 'B', 'K', 'C'])
def test_finished_run_folder_complete(runs, name):
    _ok(runs, {'A': 'A', 'B': 'B', 'K': 'R1', 'C': 'R2'}[name])
    import cv2
    run = getattr(runs, name)
    files = sorted(f.name for f in run.iterdir() if not f.name.startswith('.'))
    assert files == ['best_worst.png', 'config.yaml', 'curves.png', 'env.json', 'metrics.csv', 'model.pth',
                     'validation_predictions.parquet']
    for f in files:
        p = run/f
        if p.suffix == '.png': assert cv2.imread(str(p)) is not None, f
        else: assert READERS[p.suffix](p) is not None, f
    assert len(pd.read_parquet(run/'validation_predictions.parquet')) == 6
    assert ckpt(run/'model.pth')['meta']['size'] == 32

def test_resume_removes_stale_temp_files(runs):
    "A SIGKILL during atomic_write orphans its dot-prefixed temp file; resuming the run removes it"
    _ok(runs, 'R2')
    assert not [f.name for f in runs.C.iterdir() if f.name.startswith('.')]
