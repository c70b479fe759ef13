"""Seconds per training step of candidate smp architectures at the `lgg-cpu` shape, side by side in one process.

Run from the repo root:
    python bench/arch_speed.py [--size 128] [--channels 5] [--bs 16] [--rounds 2] [--steps 4]

Each candidate (architecture, encoder, smp keyword arguments) is built with `seg_model` from random init and trained
for `--steps` timed steps after one warm-up in the precision `pick_precision('auto')` gives (bf16 autocast where the CPU
has native bf16, else fp32) and the layout `pick_channels_last` gives for it without timing (channels-last for bf16,
the default layout for fp32), with `keep_freed_memory()` set first as training does. The fastest
step of each candidate over `--rounds` interleaved rounds counts, and the last table gives each as a multiple of the
first (the preset's Unet-resnet34). A ratio is what matters: on a shared machine single timings move by ±25%.
"""
import argparse, os, time
os.environ.setdefault('NO_ALBUMENTATIONS_UPDATE', '1')
import torch, torch.nn.functional as F
from brain_mri_seg.learner import seg_model, keep_freed_memory, pick_precision, pick_channels_last

CANDIDATES = [('Unet', 'resnet34', {}),
              ('Unet', 'resnet34', {'decoder_channels': (256, 128, 64, 32, 32)}),
              ('Unet', 'resnet34', {'decoder_channels': (256, 128, 64, 48, 24)}),
              ('Unet', 'resnet34', {'decoder_channels': (256, 128, 64, 64, 64)}),
              ('Unet', 'resnet34', {'decoder_channels': (512, 256, 128, 64, 32)}),
              ('Unet', 'resnet50', {}), ('UnetPlusPlus', 'resnet34', {}), ('FPN', 'resnet34', {})]


def step_time(arch, encoder, kw, x, y, steps, dtype, cl):
    "Fastest of `steps` timed training steps (after one warm-up) of a fresh model"
    torch.manual_seed(0)
    m = seg_model(arch, encoder, in_channels=x.shape[1], **kw).train()
    if cl: m = m.to(memory_format=torch.channels_last)
    opt, ts = torch.optim.AdamW(m.parameters(), 1e-3), []
    for i in range(steps + 1):
        t = time.perf_counter()
        with torch.autocast('cpu', dtype=dtype, enabled=dtype is not None):
            loss = F.binary_cross_entropy_with_logits(m(x).float(), y)
        loss.backward(); opt.step(); opt.zero_grad()
        ts.append(time.perf_counter() - t)
    return min(ts[1:])


def main():
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('--size', type=int, default=128)
    ap.add_argument('--channels', type=int, default=5, help='input channels (the preset: 3 sequences + 2 neighbouring FLAIR slices)')
    ap.add_argument('--bs', type=int, default=16)
    ap.add_argument('--rounds', type=int, default=2)
    ap.add_argument('--steps', type=int, default=4)
    ap.add_argument('--threads', type=int, default=2)
    a = ap.parse_args()
    torch.set_num_threads(a.threads); keep_freed_memory()
    prec = pick_precision('auto', 'cpu')
    dtype, cl = (torch.bfloat16 if prec == 'bf16' else None), pick_channels_last(prec, 'cpu')[0]
    x = torch.rand(a.bs, a.channels, a.size, a.size)
    if cl: x = x.contiguous(memory_format=torch.channels_last)
    y = (torch.rand(a.bs, 1, a.size, a.size) > 0.9).float()
    name = lambda c: f"{c[0]}-{c[1]}" + (f" decoder {'/'.join(map(str, c[2]['decoder_channels']))}" if c[2] else '')
    print(f"# Training step by architecture: batch {a.bs}, {a.channels} channels, {a.size} px, cpu "
          f"{torch.backends.cpu.get_cpu_capability()}, {prec}{' + channels_last' if cl else ''}, {a.threads} threads")
    best = {}
    for r in range(a.rounds):
        for c in CANDIDATES:
            t = step_time(*c, x, y, a.steps, dtype, cl)
            best[name(c)] = min(t, best.get(name(c), t))
            print(f"  round {r+1}: {name(c)} {t:.3f} s/step", flush=True)
    base = best[name(CANDIDATES[0])]
    print('\n| model | s/step | × the preset |\n|---|---|---|')
    for k, v in best.items(): print(f"| {k} | {v:.3f} | {v/base:.2f} |")


if __name__ == '__main__': main()
