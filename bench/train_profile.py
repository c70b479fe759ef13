"""Where a training step's time goes: the `auto` path of Unet-resnet34, batch 16, profiled by operator.

Run from the repo root:  python bench/train_profile.py [--size 256] [--steps 2] [--compile]

Prints seconds per step by operator group (convolution forward and backward, batch norm, ReLU, dtype/layout copies,
upsampling and concatenation, optimizer, the rest), the GFLOP/s the convolutions reach against the dtype's matmul
ceiling, and with `--compile` the step time of `torch.compile(model)` next to eager, measured in the same run.
Synthetic inputs (speed does not depend on the pixel values); same model, loss and fused AdamW as `seg_learner`.
"""
import argparse, os, time, contextlib
os.environ.setdefault('NO_ALBUMENTATIONS_UPDATE', '1')
import torch
from torch.profiler import profile, ProfilerActivity
from torch.utils.flop_counter import FlopCounterMode
from brain_mri_seg.learner import seg_model, BCEDiceLoss, pick_precision, pick_channels_last, keep_freed_memory
from train_speed import matmul_ceiling   # bench/ is on sys.path when run as `python bench/train_profile.py`

GROUPS = {'conv forward': ('aten::mkldnn_convolution', 'aten::_convolution', 'aten::convolution'),
          'conv backward': ('aten::convolution_backward',),
          'batch norm': ('aten::native_batch_norm', 'aten::native_batch_norm_backward', 'aten::_batch_norm_impl_index'),
          'ReLU': ('aten::clamp_min_', 'aten::clamp_min', 'aten::relu_', 'aten::threshold_backward'),
          'copies (dtype, layout)': ('aten::copy_', 'aten::_to_copy', 'aten::to', 'aten::contiguous', 'aten::clone'),
          'upsample + cat': ('aten::upsample_nearest2d', 'aten::upsample_nearest2d_backward', 'aten::cat'),
          'optimizer': ('aten::_fused_adamw_',)}


def setup(size, bs, device):
    prec = pick_precision('auto', device)
    if device.type == 'cpu': keep_freed_memory()   # as `seg_learner` does on a CPU
    dtype = {'bf16': torch.bfloat16, 'fp16': torch.float16}.get(prec)
    torch.manual_seed(0)
    m = seg_model('Unet', 'resnet34').to(device).train()
    cl, _ = pick_channels_last(prec, device, m, (bs, 3, size, size))   # the layout `seg_learner` would train in
    if cl: m = m.to(memory_format=torch.channels_last)
    x = torch.rand(bs, 3, size, size, device=device)
    if cl: x = x.contiguous(memory_format=torch.channels_last)
    y = (torch.rand(bs, 1, size, size, device=device) > 0.9).float()
    return prec, dtype, cl, m, x, y


def make_step(model, opt, x, y, dtype, device):
    loss_fn = BCEDiceLoss()
    def step():
        ctx = torch.autocast(device.type, dtype=dtype) if dtype is not None else contextlib.nullcontext()
        with ctx: p = model(x)
        loss_fn(p.float(), y).backward(); opt.step(); opt.zero_grad()
        if device.type == 'cuda': torch.cuda.synchronize()
    return step


def timed(step, n):
    step()
    t = time.perf_counter()
    for _ in range(n): step()
    return (time.perf_counter() - t)/n


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument('--size', type=int, default=256)
    ap.add_argument('--bs', type=int, default=16)
    ap.add_argument('--steps', type=int, default=2, help='profiled and timed steps (after one warm-up)')
    ap.add_argument('--compile', action='store_true', help='also time torch.compile(model) (about a minute to compile)')
    a = ap.parse_args()
    device = torch.device('cuda' if torch.cuda.is_available() else 'cpu')
    prec, dtype, cl, m, x, y = setup(a.size, a.bs, device)
    opt = torch.optim.AdamW(m.parameters(), lr=1e-3, fused=True)
    step = make_step(m, opt, x, y, dtype, device)
    eager = timed(step, a.steps)
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        for _ in range(a.steps): step()
    self_us = {e.key: e.self_cpu_time_total for e in prof.key_averages()}
    total = sum(self_us.values())
    print(f"# Training step profile: Unet-resnet34, batch {a.bs}, {a.size} px, {device.type} "
          f"{torch.backends.cpu.get_cpu_capability() if device.type == 'cpu' else torch.cuda.get_device_name()}, "
          f"auto = {prec}{' + channels_last' if cl else ''}, "
          f"{torch.get_num_threads()} threads\n")
    print(f"step: {eager:.3f} s (timed without the profiler)\n\n| operators | s/step | share |\n|---|---|---|")
    rest = total
    for g, names in GROUPS.items():
        t = sum(self_us.get(n, 0) for n in names); rest -= t
        print(f"| {g} | {t/1e6/a.steps:.3f} | {t/total:.0%} |")
    print(f"| everything else | {rest/1e6/a.steps:.3f} | {rest/total:.0%} |")
    # FLOPs of the forward and of the whole step, and the convolutions' throughput
    fm = seg_model('Unet', 'resnet34').to(device).train()
    xf = torch.rand(a.bs, 3, a.size, a.size, device=device)
    with FlopCounterMode(display=False) as fc: out = fm(xf)
    fwd = fc.get_total_flops()
    with FlopCounterMode(display=False) as fc: out.float().mean().backward()
    bwd = fc.get_total_flops()
    conv_f = sum(self_us.get(n, 0) for n in GROUPS['conv forward'])/1e6/a.steps
    conv_b = sum(self_us.get(n, 0) for n in GROUPS['conv backward'])/1e6/a.steps
    mdt = dtype or torch.float32
    ceil = matmul_ceiling(mdt, device)
    print(f"\nconvolutions: forward {fwd/1e9:.0f} GFLOP in {conv_f:.3f} s = {fwd/1e9/conv_f:.0f} GFLOP/s, backward {bwd/1e9:.0f} GFLOP "
          f"in {conv_b:.3f} s = {bwd/1e9/conv_b:.0f} GFLOP/s; {str(mdt).split('.')[-1]} matmul ceiling {ceil:.0f} GFLOP/s")
    print(f"whole step: {(fwd+bwd)/1e9:.0f} GFLOP / {eager:.3f} s = {(fwd+bwd)/1e9/eager:.0f} GFLOP/s "
          f"= {(fwd+bwd)/1e9/eager/ceil:.2f} of the ceiling")
    if a.compile:
        mc = torch.compile(m)
        cstep = make_step(mc, opt, x, y, dtype, device)
        t = time.perf_counter(); cstep(); first = time.perf_counter() - t
        comp = timed(cstep, a.steps + 1); eager2 = timed(step, a.steps + 1)
        print(f"\ntorch.compile: first step {first:.0f} s (compiling); then {comp:.3f} s/step against eager {eager2:.3f} "
              f"(ratio {eager2/comp:.2f})")


if __name__ == '__main__': main()
