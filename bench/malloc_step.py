"""Training step time with glibc's allocator as it starts against `keep_freed_memory`, in alternating processes.

Run from the repo root:  python bench/malloc_step.py [--size 128] [--channels 5] [--pairs 4] [--steps 12]

`keep_freed_memory` changes the allocator for the whole process and cannot be undone, so each measurement is a fresh
process: kept, then default, `--pairs` times, so that a slow stretch of a shared machine hits both. Each process times
`--steps` training steps (after two warm-up steps) of Unet-resnet34 at the `lgg-cpu` shape (5 input channels, batch 16,
128 px) on the path `auto` picks (`pick_precision`, `pick_channels_last`) and `train_profile`'s step (BCE + Dice, fused
AdamW), 2 threads, random inputs (speed does not depend on pixel values). Prints one line a process and the median of each side.
"""
import argparse, os, subprocess, sys, time, statistics
os.environ.setdefault('NO_ALBUMENTATIONS_UPDATE', '1')


def worker(keep, size, channels, steps):
    import torch
    from brain_mri_seg.learner import seg_model, keep_freed_memory, pick_precision, pick_channels_last
    from train_profile import make_step   # bench/ is on sys.path: this file runs as a script
    torch.set_num_threads(2)
    if keep: keep_freed_memory()
    device, shape = torch.device('cpu'), (16, channels, size, size)
    prec = pick_precision('auto', device)
    torch.manual_seed(0)
    m = seg_model('Unet', 'resnet34', in_channels=channels).train()
    cl, _ = pick_channels_last(prec, device, m, shape)   # the layout `seg_learner` would train in
    if cl: m = m.to(memory_format=torch.channels_last)
    x = torch.rand(*shape); y = (torch.rand(shape[0], 1, size, size) > .9).float()
    if cl: x = x.contiguous(memory_format=torch.channels_last)
    step = make_step(m, torch.optim.AdamW(m.parameters(), 1e-3, fused=True), x, y, {'bf16': torch.bfloat16}.get(prec), device)
    ts = []
    for i in range(steps + 2):
        t = time.perf_counter(); step()
        if i >= 2: ts.append(time.perf_counter() - t)
    ts.sort()
    print(f"keep={int(keep)} path={prec}{'+CL' if cl else ''} size={size} mean={sum(ts)/steps:.3f} "
          f"median={ts[steps//2]:.3f} min={ts[0]:.3f}", flush=True)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument('--size', type=int, default=128)
    ap.add_argument('--channels', type=int, default=5)
    ap.add_argument('--pairs', type=int, default=4)
    ap.add_argument('--steps', type=int, default=12)
    ap.add_argument('--worker', type=int, choices=(0, 1), help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.worker is not None: return worker(a.worker, a.size, a.channels, a.steps)
    med = {0: [], 1: []}
    for _ in range(a.pairs):
        for keep in (1, 0):
            out = subprocess.run([sys.executable, __file__, '--worker', str(keep), '--size', str(a.size),
                                  '--channels', str(a.channels), '--steps', str(a.steps)],
                                 capture_output=True, text=True, check=True).stdout.strip().splitlines()[-1]
            print(out, flush=True)
            med[keep].append(float(out.split('median=')[1].split()[0]))
    k, d = statistics.median(med[1]), statistics.median(med[0])
    print(f"RESULT size={a.size} kept_median={k:.3f} default_median={d:.3f} kept_vs_default={k/d:.2f} "
          f"kept_faster_pairs={sum(x < y for x, y in zip(med[1], med[0]))}/{a.pairs}")


if __name__ == '__main__': main()
