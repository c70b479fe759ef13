"""Speed of the training DataLoader on the real LGG slices, against the time of one training step.

    python bench/loader_speed.py [--data ../shared/data/lgg/kaggle_3m] [--step-time-s 2.3] [--aug soft]
    python bench/loader_speed.py --size 128 --aug medium --norm volume --pos-frac 0.5 --p-seq 0.2 --num-workers 1 --context 1
    python bench/loader_speed.py --size 128 --aug medium --norm volume --pos-frac 0.75 --p-seq 0.2 --context 1 --cache

Prints batches/s of one epoch of `get_dls(...).train` (256x256, bs 16, soft augmentation by default) and the ratio
step time / batch time; the loader must be at least 5x faster than a step (`--min-ratio`). Without `--step-time-s`,
a step of a U-Net/ResNet-34 (bf16 autocast on a CPU that supports it, else fp32) is measured, with as many input
channels as the loader delivers (3, plus 2 per `--context` slice: the 2.5-D input of `image.context_slices`).
`--cache` reads every image and mask into memory first (`get_dls(cache=True)`, `environment.cache_images`) and prints
how long that took.
"""
import os, sys, time
os.environ.setdefault('NO_ALBUMENTATIONS_UPDATE', '1')
os.environ.setdefault('HF_HUB_OFFLINE', '1')
from pathlib import Path
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch
from fastcore.script import call_parse
from brain_mri_seg.data import lgg_table, kfold, read_image
from brain_mri_seg.datablock import VOLUME_NORMS, get_dls, context_channels

def step_time(bs:int, size:int, steps:int=2, in_channels:int=3)->float:
    "Seconds per training step of smp Unet/resnet34 on random data (after one warm-up step)"
    import segmentation_models_pytorch as smp
    bf16 = torch.backends.cpu.get_cpu_capability() == 'AVX512' and torch.ops.mkldnn._is_mkldnn_bf16_supported()
    model = smp.Unet('resnet34', encoder_weights=None, in_channels=in_channels, classes=1).to(memory_format=torch.channels_last)
    opt = torch.optim.AdamW(model.parameters(), 1e-3)
    x = torch.rand(bs, in_channels, size, size).to(memory_format=torch.channels_last)
    y = (torch.rand(bs, 1, size, size) > 0.9).float()
    def step():
        with torch.autocast('cpu', dtype=torch.bfloat16, enabled=bf16):
            loss = torch.nn.functional.binary_cross_entropy_with_logits(model(x).float(), y)
        loss.backward(); opt.step(); opt.zero_grad()
    step()
    t = time.perf_counter()
    for _ in range(steps): step()
    return (time.perf_counter() - t) / steps

@call_parse
def main(
    data:str='../shared/data/lgg/kaggle_3m',  # Kaggle-layout LGG folder (relative to the repo root by default)
    size:int=256,              # Image size
    bs:int=16,                 # Batch size
    aug:str='soft',            # Augmentation preset
    norm:str='simple',         # Normalization, one of `NORMS`
    num_workers:int=0,         # Loader worker processes
    pos_frac:float=None,       # Fraction of each batch from tumour slices (the lgg-cpu preset: 0.5); None: plain shuffle
    p_seq:float=0.,            # Sequence-substitution probability (the lgg-cpu preset: 0.2)
    context:int=0,             # Neighbouring slices on each side appended as FLAIR channels (2.5-D input)
    batches:int=0,             # Batches to time (0: one full epoch)
    step_time_s:float=None,    # Training step time in seconds (e.g. 2.3); default: measure one
    min_ratio:float=5.,        # Required step time / batch time
    cache:bool=False,          # Read every image and mask once, into memory, before the epoch (`get_dls(cache=True)`)
):
    "Print the training loader's batches/s and its speed ratio to a training step"
    root = Path(__file__).resolve().parents[1]
    path = Path(data) if Path(data).is_absolute() else (root/data if (root/data).exists() else Path(data))
    torch.set_num_threads(min(2, os.cpu_count()))
    t = time.perf_counter(); df = kfold(lgg_table(path)); t_table = time.perf_counter() - t
    t = time.perf_counter()
    for f in df.image[:200]: read_image(f)
    t_read = (time.perf_counter() - t) / 200
    t = time.perf_counter()
    dls = get_dls(df, valid_fold=4, size=size, bs=bs, aug=aug, norm=norm, num_workers=num_workers,
                  pos_frac=pos_frac, p_seq=p_seq, context=context, device='cpu', cache=cache)
    t_dls = time.perf_counter() - t
    n = batches or len(dls.train)
    it = iter(dls.train); next(it)                      # warm-up (first batch, worker start-up)
    t = time.perf_counter(); done = 0
    for _ in range(n):
        try: next(it)
        except StopIteration: it = iter(dls.train); next(it)
        done += 1
    dt = (time.perf_counter() - t) / done
    st = step_time(bs, size, in_channels=context_channels(context)) if step_time_s is None else step_time_s
    ratio = st / dt
    print(f"data             {path} ({len(df)} slices, {df.patient.nunique()} patients; table built in {t_table:.1f} s)")
    print(f"read_image       {t_read*1e3:.2f} ms/slice")
    print(f"get_dls          {t_dls:.1f} s ({'reading every image and mask into memory' if cache else 'no cache'}{', with the volume statistics' if norm in VOLUME_NORMS else ''})")
    print(f"train loader     {size}x{size}, bs {bs}, aug {aug}, norm {norm}, num_workers {num_workers}, cache {cache}, "
          f"pos_frac {pos_frac}, p_seq {p_seq:g}, context {context} ({context_channels(context)} channels): "
          f"{done} batches, {dt*1e3:.1f} ms/batch ({dt/bs*1e3:.2f} ms/item), {1/dt:.1f} batches/s")
    print(f"training step    {st:.2f} s/step ({'given' if step_time_s is not None else f'measured: smp Unet resnet34, {context_channels(context)} input channels'})")
    print(f"ratio            {ratio:.0f}x faster than a step (required >= {min_ratio:g}x): {'OK' if ratio >= min_ratio else 'TOO SLOW'}")
    if ratio < min_ratio: sys.exit(1)
