"""Training speed of the smp Unet-resnet34 on real shared slices, for each precision/layout path this machine offers.

Run from the repo root:  python bench/train_speed.py [--data ../shared/data/lgg/kaggle_3m] [--steps 3] [--rounds 2] [--overhead-rounds 3]

Prints a markdown table (seconds per training step, batch 16, at 256x256 and 128x128; the fastest of `--rounds`
interleaved rounds of each path), fastai's loop vs a plain PyTorch loop (the median ratio of `--overhead-rounds`
back-to-back pairs), the matmul ceiling of the dtype `auto` uses,
and a last line
`RESULT capability=... chosen=... speedup=... best_ratio=... ceiling_fraction=... fastai_overhead=...`.
Shared machines are noisy: every ratio is measured side by side in this one run.
On CUDA it also times bf16 (where supported) and each path again with cuDNN autotuning (`cudnn.benchmark`).
"""
import argparse, os, time, platform, contextlib
os.environ.setdefault('NO_ALBUMENTATIONS_UPDATE', '1')
import numpy as np, torch, torch.nn.functional as F
from torch.utils.flop_counter import FlopCounterMode
from fastai.learner import Learner
from fastai.callback.core import Callback
from fastai.callback.progress import ProgressCallback
from brain_mri_seg.data import read_data, kfold
from brain_mri_seg.datablock import get_dls
from brain_mri_seg.learner import seg_model, BCEDiceLoss, cpu_has_native_bf16, pick_precision, pick_channels_last, seg_learner, keep_freed_memory


def paths(device):
    "(name, dtype or None, channels_last) for each path this hardware offers"
    if device.type == 'cuda':
        ps = [('fp32', None, False), ('fp16', torch.float16, False), ('fp16+CL', torch.float16, True)]
        if torch.cuda.is_bf16_supported(): ps += [('bf16', torch.bfloat16, False), ('bf16+CL', torch.bfloat16, True)]
        return ps
    ps = [('fp32', None, False), ('fp32+CL', None, True)]
    if cpu_has_native_bf16(): ps += [('bf16', torch.bfloat16, False), ('bf16+CL', torch.bfloat16, True)]
    return ps   # without native bf16, bf16 is emulated (~13x slower than fp32): not a path this CPU offers


def auto_path(device, size, bs=16):
    "The path `precision='auto'` takes at `size`: `pick_precision`, then `pick_channels_last` (timed for fp32 on a CPU)"
    p = pick_precision('auto', device)
    cl, _ = pick_channels_last(p, device, seg_model('Unet', 'resnet34'), (bs, 3, size, size))
    return {'fp32': 'fp32', 'bf16': 'bf16', 'fp16': 'fp16'}[p] + ('+CL' if cl else '')


def batches(df, size, n, bs=16):
    "`n` real training batches (soft augmentation, Simple normalization) at `size`"
    dls = get_dls(df, valid_fold=4, size=size, bs=bs, aug='soft', positive_only=True, seed=0)
    it, out = iter(dls.train), []
    for _ in range(n): out.append(tuple(t.clone() for t in next(it)))
    return out


def plain_steps(model, opt, loss_fn, bats, dtype, cl, device):
    "Seconds per step of a plain PyTorch loop (first step is warm-up)"
    ts = []
    for xb, yb in bats:
        xb, yb = xb.to(device), yb.to(device)
        if cl: xb = xb.contiguous(memory_format=torch.channels_last)
        ctx = torch.autocast(device.type, dtype=dtype) if dtype is not None else contextlib.nullcontext()
        with ctx: pred = model(xb)
        loss = loss_fn(pred.float(), yb)
        loss.backward(); opt.step(); opt.zero_grad()
        if device.type == 'cuda': torch.cuda.synchronize()
        ts.append(time.perf_counter())
    return float(np.diff(ts).mean())


def time_path(df_bats, size, name, dtype, cl, device):
    torch.manual_seed(0)
    model = seg_model('Unet', 'resnet34').to(device)
    if cl: model = model.to(memory_format=torch.channels_last)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3, weight_decay=0., fused=True)   # as seg_learner
    return plain_steps(model.train(), opt, BCEDiceLoss(), df_bats, dtype, cl, device)


class _StepTimes(Callback):
    order = 100
    def before_fit(self): self.ts = []
    def after_batch(self):
        if self.training: self.ts.append(time.perf_counter())
    def after_train(self): raise __import__('fastai').callback.core.CancelFitException()


def fastai_step(bats, device, channels_last):
    "Seconds per step of fastai's loop with `precision='auto'` and the layout `auto` chose (same batches, same model)"
    from fastai.data.core import DataLoaders
    from fastai.data.load import DataLoader
    class _L(DataLoader):
        def __iter__(self): return iter(bats)
        def __len__(self): return len(bats)
    dl = _L(bats, bs=1); dls = DataLoaders(dl, dl, device=device)
    torch.manual_seed(0)
    learn = seg_learner(dls, precision='auto', channels_last=channels_last)
    learn.remove_cb(ProgressCallback)
    t = _StepTimes(); learn.add_cb(t)
    learn.metrics = []
    learn.fit(1, lr=1e-3)
    return float(np.diff(t.ts).mean()), learn.precision


def matmul_ceiling(dtype, device, n=None, reps=None):
    "GFLOP/s of an n x n matmul in `dtype` (the dtype the chosen path computes convolutions in)"
    cuda = device.type == 'cuda'
    n, reps = n or (8192 if cuda else 4096), reps or (50 if cuda else 10)
    a, b = torch.randn(n, n, device=device, dtype=dtype), torch.randn(n, n, device=device, dtype=dtype)
    for _ in range(3): a @ b
    if cuda: torch.cuda.synchronize()
    t = time.perf_counter()
    for _ in range(reps): a @ b
    if cuda: torch.cuda.synchronize()
    return 2*n**3*reps / (time.perf_counter() - t) / 1e9


def train_flops(size, bs=16):
    "FLOPs of one training step (forward + backward) of Unet-resnet34 at `size`"
    model = seg_model('Unet', 'resnet34').train()
    x, y = torch.randn(bs, 3, size, size), torch.rand(bs, 1, size, size).round()
    with FlopCounterMode(display=False) as fc:
        F.binary_cross_entropy_with_logits(model(x), y).backward()
    return fc.get_total_flops()


def fmt(t): return f"{t:.3f}" if t < 1 else f"{t:.2f}"   # a GPU step takes milliseconds


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument('--data', default='../shared/data/lgg/kaggle_3m')
    ap.add_argument('--steps', type=int, default=3, help='timed steps per path (plus one warm-up)')
    ap.add_argument('--sizes', default='256,128')
    ap.add_argument('--rounds', type=int, default=2, help='interleaved rounds of every measurement; the fastest counts')
    ap.add_argument('--overhead-rounds', type=int, default=3, help='paired rounds of fastai vs plain loop; the median ratio counts')
    ap.add_argument('--default-malloc', action='store_true',
                    help="time the paths with glibc's allocator as it starts (seg_learner changes it before the fastai rounds); "
                         "default: keep_freed_memory() first, as training on a CPU does")
    a = ap.parse_args()
    device = torch.device('cuda' if torch.cuda.is_available() else 'cpu')
    malloc = 'as started' if a.default_malloc or device.type != 'cpu' else 'keeps freed memory' if keep_freed_memory() else 'as started (not glibc)'
    cap = torch.cuda.get_device_name() if device.type == 'cuda' else torch.backends.cpu.get_cpu_capability()
    df = kfold(read_data(a.data))
    sizes = [int(s) for s in a.sizes.split(',')]
    chosen = {size: auto_path(device, size) for size in sizes}
    print(f"# Training speed: smp Unet-resnet34, batch 16, {device.type}, capability {cap}, "
          f"native bf16 {cpu_has_native_bf16()}, torch threads {torch.get_num_threads()}, {platform.processor() or platform.machine()}, malloc {malloc}")
    print("auto chooses: " + ", ".join(f"{chosen[s]} at {s}px" for s in sizes) + "\n")
    res, bats_of = {}, {size: batches(df, size, a.steps + 1) for size in sizes}   # every measurement takes the same batches
    for size in sizes:
        bats = bats_of[size]
        for r in range(a.rounds):            # rounds interleave the paths; each path keeps its fastest round
            for name, dtype, cl in paths(device):
                t = time_path(bats, size, name, dtype, cl, device)
                res[size, name] = min(res.get((size, name), float('inf')), t)
                print(f"  {size}px {name:8s} round {r+1}: {t:.3f} s/step", flush=True)
    if device.type == 'cuda':   # fastai leaves cudnn.benchmark off; how much would autotuning give?
        torch.backends.cudnn.benchmark = True
        for size in sizes:
            for name, dtype, cl in paths(device):
                t = min(time_path(bats_of[size], size, name, dtype, cl, device) for _ in range(a.rounds))
                print(f"  {size}px {name:8s} cudnn.benchmark=True: {t:.3f} s/step (off: {res[size, name]:.3f})", flush=True)
        torch.backends.cudnn.benchmark = False
    bats = bats_of[sizes[0]]
    name, dtype, cl = next(p for p in paths(device) if p[0] == chosen[sizes[0]])
    f = lambda: fastai_step(bats, device, cl)[0]
    g = lambda: time_path(bats, sizes[0], name, dtype, cl, device)
    pairs = []    # (fastai, plain) back to back, the order alternating, so that a slow stretch of the machine hits both
    for r in range(a.overhead_rounds):
        if r % 2 == 0: fa_r = f(); plain_r = g()
        else:          plain_r = g(); fa_r = f()
        pairs.append((fa_r, plain_r))
        print(f"  overhead round {r+1}: fastai {fa_r:.3f} s/step, plain {plain_r:.3f} s/step, ratio {fa_r/plain_r:.3f}", flush=True)
    ratios = [f_/p_ for f_, p_ in pairs]
    fa, plain = min(p_[0] for p_ in pairs), min(p_[1] for p_ in pairs)
    cdtype = dtype or torch.float32
    ceil = matmul_ceiling(cdtype, device)
    flops = train_flops(sizes[0])
    print("\n| size | " + " | ".join(p[0] for p in paths(device)) + " | auto |")
    print("|---|" + "---|"*(len(paths(device)) + 1))
    for size in sizes:
        print(f"| {size} | " + " | ".join(fmt(res[size, p[0]]) for p in paths(device)) + f" | {fmt(res[size, chosen[size]])} |")
    best = min(res[sizes[0], p[0]] for p in paths(device))
    auto = res[sizes[0], chosen[sizes[0]]]
    speedup, best_ratio, ceiling_fraction = res[sizes[0], 'fp32'] / auto, best / auto, flops / auto / (ceil*1e9)
    overhead = float(np.median(ratios)) - 1   # median of the paired ratios: robust to one disturbed round
    print(f"\nfastai loop {fa:.3f} s/step vs plain PyTorch loop {plain:.3f} s/step at best ({name}, {sizes[0]}px); "
          f"median of {len(ratios)} paired ratios: overhead {overhead:+.3f}")
    print(f"matmul ceiling ({str(cdtype).split('.')[-1]}): {ceil:.0f} GFLOP/s; training step {flops/1e9:.1f} GFLOP at {sizes[0]}px "
          f"-> {flops/auto/1e9:.0f} GFLOP/s achieved")
    print(f"RESULT capability={cap} chosen={chosen[sizes[0]]} speedup={speedup:.2f} best_ratio={best_ratio:.2f} "
          f"ceiling_fraction={ceiling_fraction:.2f} fastai_overhead={overhead:.3f}")


if __name__ == '__main__': main()
