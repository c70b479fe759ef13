"""Peak memory (RSS) of `predict_to_parquet` as the number of slices grows: bounded memory means a flat curve.

Each case runs in a fresh Python process (`ru_maxrss` is a high-water mark, so processes cannot be shared): it loads
a tiny model with `Predictor.load` (U-Net on resnet18 of depth 3, decoder 16-8-4, saved by `save_model` with
size 64, norm 'simple', threshold 0.5; `Predictor` picks its default backend and precision) and streams the
predictions of a flat folder of synthetic 64x64 RGB PNG slices (`<patient>_<n>.png`, 100 slices per patient) to
`predictions.parquet`. Cases: 100 slices (one patient's volume), 1,000 and 10,000 slices, plus the same 100-slice
volume through `predict_volume` (which returns the whole (D,H,W) mask stack, so it is expected to grow with D) and a
baseline that only imports and loads the model. The slices and model are written once under `--root` (default
/tmp/brain_mri_seg_memory, not the repository) and reused. Run from the repository root:

    .venv/bin/python bench/memory.py            # a few minutes on 2 busy CPU cores (11,100 PNGs written the first time)

Prints a markdown table; the last line reads
`RESULT peak_rss_100=<MB> peak_rss_1000=<MB> peak_rss_10000=<MB>` (MB = 2**20 bytes).
"""
import os
os.environ.setdefault('NO_ALBUMENTATIONS_UPDATE', '1'); os.environ.setdefault('HF_HUB_OFFLINE', '1')
import argparse, json, platform, resource, subprocess, sys, time
from datetime import datetime
from pathlib import Path

PER_PATIENT = 100  # slices per synthetic patient

def _rss_mb()->float:
    "Current resident set size of this process in MB (Linux /proc), or nan"
    try: return int(Path('/proc/self/statm').read_text().split()[1])*os.sysconf('SC_PAGE_SIZE')/2**20
    except Exception: return float('nan')

def _peak_mb()->float:
    "Peak RSS of this process so far in MB (ru_maxrss is KB on Linux, bytes on macOS)"
    r = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return r/2**20 if sys.platform == 'darwin' else r/2**10

def _slice(rng, size:int):
    "A smooth synthetic slice: an ellipse 'brain', a bright blob in some slices, mild noise (compresses like MRI)"
    import numpy as np
    yy, xx = np.mgrid[:size, :size]
    img = np.full((size, size, 3), 20.)
    img[((yy - size/2)/(.4*size))**2 + ((xx - size/2)/(.35*size))**2 < 1] += 80
    if rng.random() < .5:
        cy, cx, r = rng.uniform(.35*size, .65*size, 2).tolist() + [rng.uniform(.08*size, .16*size)]
        img[(yy - cy)**2 + (xx - cx)**2 < r*r] += 90
    return (img + rng.normal(0, 4, img.shape)).clip(0, 255).astype(np.uint8)

def prepare(root:Path, size:int, counts:list)->dict:
    "Model file and one slice folder per count under `root`, written once"
    import cv2, numpy as np
    from brain_mri_seg.learner import seg_model, save_model
    root.mkdir(parents=True, exist_ok=True)
    model = root/'model.pth'
    if not model.is_file():
        save_model(seg_model('Unet', 'resnet18', encoder_depth=3, decoder_channels=[16, 8, 4]), model,
                   dict(size=size, norm='simple', threshold=0.5))
    folders = {}
    for n in counts:
        d = folders[n] = root/f'slices_{n}'
        if d.is_dir() and len(list(d.glob('*.png'))) == n: continue
        d.mkdir(exist_ok=True); rng = np.random.default_rng(n)
        for i in range(n):
            p, s = divmod(i, PER_PATIENT)
            assert cv2.imwrite(str(d/f'TCGA_MEM_{p:04d}_{s + 1}.png'), _slice(rng, size))
    return dict(model=model, folders=folders)

def child(case:str, model:str, folder:str, out:str, threads:int):
    "Run one case in this fresh process and print one JSON line"
    import torch
    torch.set_num_threads(threads)
    from brain_mri_seg.inference import Predictor, predict_to_parquet
    pred = Predictor.load(model)
    loaded, t = _rss_mb(), time.perf_counter()
    if case == 'load': n = 0
    elif case == 'volume': n = len(pred.predict_volume(folder))
    else:
        import pyarrow.parquet as pq
        n = pq.read_metadata(predict_to_parquet(pred, folder, out, progress=False)).num_rows
    print(json.dumps(dict(case=case, slices=n, seconds=time.perf_counter() - t, rss_loaded=loaded, peak=_peak_mb(),
                          predictor=repr(pred))))

def run_case(case:str, model:Path, folder:Path, root:Path, threads:int)->dict:
    out = root/f'out_{case}_{folder.name}'
    cmd = [sys.executable, __file__, '--child', case, str(model), str(folder), str(out), str(threads)]
    r = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, 'PYTHONWARNINGS': 'ignore'})
    if r.returncode: sys.exit(f"case {case} {folder.name} failed:\n{r.stderr[-3000:]}")
    return json.loads(r.stdout.strip().splitlines()[-1])

def main():
    if len(sys.argv) > 1 and sys.argv[1] == '--child': return child(*sys.argv[2:6], int(sys.argv[6]))
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument('--root', type=Path, default=Path('/tmp/brain_mri_seg_memory'), help='where slices and outputs go')
    ap.add_argument('--size', type=int, default=64); ap.add_argument('--threads', type=int, default=1)
    ap.add_argument('--counts', default='100,1000,10000', help='slice counts of the predict_to_parquet cases')
    a = ap.parse_args()
    counts = [int(c) for c in a.counts.split(',')]
    t = time.time(); fx = prepare(a.root, a.size, counts)
    print(f"{datetime.now():%Y-%m-%d %H:%M}, {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, "
          f"load avg {os.getloadavg()[0]:.1f}; data ready in {time.time() - t:.0f} s under {a.root}")
    cases = [('load', counts[0]), ('volume', counts[0])] + [('parquet', n) for n in counts]
    res = [run_case(c, fx['model'], fx['folders'][n], a.root, a.threads) for c, n in cases]
    print(f"Predictor: {res[-1]['predictor']}; torch threads {a.threads}\n")
    what = dict(load='import + `Predictor.load` only', volume='`predict_volume` (whole mask stack)', parquet='`predict_to_parquet`')
    print('| case | slices | peak RSS (MB) | RSS after load (MB) | growth (MB) | seconds | slices/s |')
    print('|---|---:|---:|---:|---:|---:|---:|')
    for r in res:
        g, rate = r['peak'] - r['rss_loaded'], (f"{r['slices']/r['seconds']:.0f}" if r['slices'] else '')
        print(f"| {what[r['case']]} | {r['slices']:,} | {r['peak']:.0f} | {r['rss_loaded']:.0f} | {g:.0f} | {r['seconds']:.1f} | {rate} |")
    pk = {r['slices']: r['peak'] for r in res if r['case'] == 'parquet'}
    if 100 in pk and 10000 in pk:
        print(f"\npredict_to_parquet peak RSS 10,000 vs 100 slices: {pk[10000]/pk[100]:.3f}x "
              f"({pk[10000] - pk[100]:+.0f} MB); load avg now {os.getloadavg()[0]:.1f}")
    print('RESULT ' + ' '.join(f"peak_rss_{n}={v:.0f}" for n, v in pk.items()))

if __name__ == '__main__': main()
