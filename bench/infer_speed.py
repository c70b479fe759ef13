"""Inference speed of `brain_mri_seg.inference.Predictor` on this machine.

Slices/s at 256x256 for every path the hardware offers (PyTorch fp32, fp32 + channels-last, bf16 + channels-last
where the CPU has native bf16, fp16 on CUDA, ONNX Runtime) and for the default `Predictor` (backend and precision
'auto'), then the latency of a 40-slice volume read from disk, with and without flip TTA. A randomly initialised
U-Net (ResNet-34 by default) is enough for timing. Measurements are interleaved in rounds and the best round is kept,
because the CPU may be shared. Run from the repository root:

    .venv/bin/python bench/infer_speed.py            # a few minutes on 2 CPU cores
    .venv/bin/python bench/infer_speed.py --threads 1  # per-core speed, less sensitive to a busy CPU

The last line reads `RESULT capability=<cpu> slices_per_s=<default> volume_s=<v> volume_tta_s=<t> best_ratio=<r>`,
where `best_ratio` is the default's slices/s divided by the fastest path's.
"""
import os
os.environ.setdefault('NO_ALBUMENTATIONS_UPDATE', '1'); os.environ.setdefault('HF_HUB_OFFLINE', '1')
import argparse, copy, tempfile, time, warnings
from pathlib import Path
import cv2, numpy as np, torch
from brain_mri_seg.data import read_image
from brain_mri_seg.learner import seg_model, cpu_has_native_bf16
from brain_mri_seg.inference import Predictor, _has_ort

DATA = Path(__file__).resolve().parents[1].parent/'shared'/'data'/'lgg'/'kaggle_3m'

def slices(n:int, size:int)->list:
    "`n` real slices (repeated as needed) at `size`, or random ones when the shared data is absent"
    fs = sorted(DATA.glob('*/*_[0-9]*.tif'))
    fs = [f for f in fs if not f.stem.endswith('_mask')][:n]
    if not fs: return [np.random.default_rng(i).integers(0, 255, (size, size, 3), np.uint8) for i in range(n)]
    ims = [cv2.resize(read_image(f), (size, size)) for f in fs]
    return [ims[i % len(ims)] for i in range(n)]

def paths(model, meta, bs:int)->dict:
    "name -> Predictor for every path this hardware offers, plus the default"
    cuda = torch.cuda.is_available()
    ps = {'fp32': dict(backend='torch', precision='fp32', channels_last=False),
          'fp32+channels_last': dict(backend='torch', precision='fp32', channels_last=True)}
    if cuda: ps['fp16'] = dict(backend='torch', precision='fp16', channels_last=False)
    if not cuda and cpu_has_native_bf16(): ps['bf16+channels_last'] = dict(backend='torch', precision='bf16', channels_last=True)
    if _has_ort(): ps['onnxruntime'] = dict(backend='onnx')
    ps['default'] = {}
    return {k: Predictor(copy.deepcopy(model), meta, bs=bs, **kw) for k, kw in ps.items()}  # a Predictor converts its model in place

def best_rate(preds:dict, ims:list, rounds:int)->dict:
    "Best slices/s of each predictor over `rounds` interleaved rounds (after one warm-up batch each)"
    for p in preds.values(): p.predict_proba(ims[:p.bs])
    rates = {k: 0. for k in preds}
    for _ in range(rounds):
        for k, p in preds.items():
            t = time.perf_counter(); p.predict_proba(ims); rates[k] = max(rates[k], len(ims)/(time.perf_counter() - t))
    return rates

def volume_latency(pred, folder:Path, tta:str, rounds:int)->float:
    "Best seconds to predict the patient folder `folder` (read, predict, threshold) with `tta`"
    pred.predict_volume(folder, tta=tta)
    return min(_timed(lambda: pred.predict_volume(folder, tta=tta)) for _ in range(rounds))

def _timed(f):
    t = time.perf_counter(); f(); return time.perf_counter() - t

def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument('--encoder', default='resnet34'); ap.add_argument('--size', type=int, default=256)
    ap.add_argument('--bs', type=int, default=16); ap.add_argument('--n', type=int, default=32, help='slices per round')
    ap.add_argument('--rounds', type=int, default=3); ap.add_argument('--volume', type=int, default=40)
    ap.add_argument('--threads', type=int, default=None, help='torch and ONNX Runtime threads (default: torch default)')
    a = ap.parse_args()
    if a.threads: torch.set_num_threads(a.threads)
    warnings.filterwarnings('ignore')
    torch.manual_seed(0)
    cap = torch.backends.cpu.get_cpu_capability()
    dev = torch.cuda.get_device_name() if torch.cuda.is_available() else f"CPU {cap}, {torch.get_num_threads()} threads"
    print(f"torch {torch.__version__}, {dev}, native bf16: {cpu_has_native_bf16()}, load avg {os.getloadavg()[0]:.1f}")
    meta = dict(arch='Unet', encoder=a.encoder, size=a.size, norm='simple', threshold=0.5)
    preds = paths(seg_model('Unet', a.encoder).eval(), meta, a.bs)
    print(f"default: {preds['default']!r}")
    ims = slices(a.n, a.size)
    rates = best_rate(preds, ims, a.rounds)
    for k, r in rates.items(): print(f"{k:>20}: {r:6.1f} slices/s  (Unet-{a.encoder}, {a.size}x{a.size}, bs {a.bs}, best of {a.rounds})")
    with tempfile.TemporaryDirectory() as d:
        vol = Path(d)/'P'; vol.mkdir()
        for i, im in enumerate(slices(a.volume, a.size), 1): cv2.imwrite(str(vol/f'P_{i}.tif'), im[..., ::-1])
        v, vt = (volume_latency(preds['default'], vol, t, a.rounds) for t in ('none', 'hflip'))
    print(f"{a.volume}-slice volume (default path, from disk): {v:.2f} s; with hflip TTA: {vt:.2f} s; load avg now {os.getloadavg()[0]:.1f}")
    fastest = max((r for k, r in rates.items() if k != 'default'))
    print(f"RESULT capability={cap} slices_per_s={rates['default']:.1f} volume_s={v:.2f} volume_tta_s={vt:.2f} "
          f"best_ratio={rates['default']/fastest:.2f}")

if __name__ == '__main__': main()
