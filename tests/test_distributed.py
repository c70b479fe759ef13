"`train` under `torchrun`: 2 CPU processes on the gloo backend train a tiny model and write one run folder (needs fresh processes)"
import json, os, subprocess, sys, time
from pathlib import Path

SCRIPT = '''
import sys, torch
from pathlib import Path
from brain_mri_seg.train import get_config, train
torch.set_num_threads(1)
tmp = Path(sys.argv[1])
cfg = get_config('h2o', **{'architecture.backbone': 'resnet18', 'architecture.pretrained': False, 'size': 32,
                           'training.batch_size': 2, 'training.epochs': 2, 'training.precision': 'fp32',
                           'environment.number_of_workers': 0, 'dataset.n_folds': 3, 'dataset.folds': [2],
                           'dataset.positive_only': False, 'augmentation.augmentations_strategy': 'Soft',
                           'logging.progress': False})
train(cfg, tmp/'lgg', tmp/'run')
'''

def test_torchrun_two_cpu_processes(tmp_path):
    from brain_mri_seg.train import synth_lgg
    synth_lgg(tmp_path/'lgg', n_patients=3, n_slices=6, size=32)
    (tmp_path/'ddp.py').write_text(SCRIPT)
    env = dict(os.environ, NO_ALBUMENTATIONS_UPDATE='1', HF_HUB_OFFLINE='1', CUDA_VISIBLE_DEVICES='', OMP_NUM_THREADS='1',
               MPLBACKEND='Agg')
    t0 = time.time()
    r = subprocess.run([sys.executable, '-m', 'torch.distributed.run', '--standalone', '--nproc_per_node=2',
                        str(tmp_path/'ddp.py'), str(tmp_path)], env=env, capture_output=True, text=True, timeout=180)
    secs = time.time() - t0
    assert r.returncode == 0, f"torchrun failed:\n{r.stdout[-3000:]}\n{r.stderr[-5000:]}"
    run = tmp_path/'run'
    expected = {'config.yaml', 'env.json', 'metrics.csv', 'model.pth', 'validation_predictions.parquet', 'curves.png', 'best_worst.png'}
    assert {p.name for p in run.iterdir()} == expected  # process 0 wrote everything, nothing left behind (no checkpoint, no temp files)
    info = json.loads((run/'env.json').read_text())
    assert (info['world_size'], info['status']) == (2, 'complete')
    assert len((run/'metrics.csv').read_text().splitlines()) == 1 + 2  # header + one row per epoch
    assert secs < 90, f"distributed test took {secs:.0f} s (budget: under 60 s on an idle 2-core CPU)"
