"""Run a notebook's code cells in order, as `nbdev-test` does, on a machine without nbdev or IPython (the lent GPU).

nbdev's runner needs execnb and IPython, which the GPU machine's image lacks and which would travel as a dozen more
wheels; this runs the cells in one module namespace (`__main__`, as nbdev's does, so `mock.patch(f'{__name__}.x')`
works), skips cells flagged with a skip flag, `#| eval: false` or the export cell, and stands in no-ops for
`show_doc` and `IPython.display` where those are missing. The first failing cell stops it with its traceback.

Usage: python bench/gpu/run_nb.py nbs/NB.ipynb [skip flags...]   (default skip: notest slow, so `cuda` cells run)
FORCE_STUB=1 uses the stand-ins even where nbdev and IPython are installed (to try it on a CPU machine).
"""
import sys, json, re, types, time, traceback, os
os.environ.setdefault('NO_ALBUMENTATIONS_UPDATE', '1'); os.environ.setdefault('HF_HUB_OFFLINE', '1')
import matplotlib; matplotlib.use('Agg')

def stub(name, **attrs):
    m = types.ModuleType(name); m.__dict__.update(attrs); sys.modules[name] = m; return m

try:
    if os.environ.get('FORCE_STUB'): raise ImportError
    import nbdev.showdoc  # noqa
except ImportError:
    nb = stub('nbdev', nbdev_export=lambda *a, **k: None); nb.showdoc = stub('nbdev.showdoc', show_doc=lambda *a, **k: None)
    nb.showdoc.__all__ = ['show_doc']
try:
    if os.environ.get('FORCE_STUB'): raise ImportError
    import IPython.display  # noqa
    HAVE_IPY = True
except ImportError: HAVE_IPY = False

def no_ipy(line):
    "`from IPython.display import A, B` -> no-op stand-ins where IPython is missing"
    m = re.match(r'(\s*)from IPython\.display import (.+)', line)
    if HAVE_IPY or not m: return line
    return m.group(1) + '; '.join(f'{n.strip()} = lambda *a, **k: None' for n in m.group(2).split(','))

path, skip = sys.argv[1], set(sys.argv[2:] or ['notest', 'slow'])
os.chdir(os.path.dirname(os.path.abspath(path)))
cells = [c for c in json.load(open(os.path.basename(path)))['cells'] if c['cell_type'] == 'code']
nbmod = types.ModuleType('__main__'); nbmod.__file__ = os.path.abspath(os.path.basename(path)); sys.modules['__main__'] = nbmod
ns, t0, ran, skipped = nbmod.__dict__, time.time(), 0, 0
for i, c in enumerate(cells):
    src = ''.join(c['source'])
    flags = set(re.findall(r'^#\|\s*(\w+)\s*$', src, re.M))
    if flags & skip or re.search(r'^#\|\s*eval:\s*false', src, re.M) or 'nbdev_export' in src: skipped += 1; continue
    src = '\n'.join(no_ipy(l) for l in src.splitlines() if not l.lstrip().startswith(('%', '!')))
    t = time.time()
    try: exec(compile(src, f'{path}[cell {i}]', 'exec'), ns)
    except Exception:
        traceback.print_exc(); print(f'FAILED {path} cell {i} flags={sorted(flags)}:\n{src[:800]}'); sys.exit(1)
    ran += 1
    if 'cuda' in flags: print(f'cuda cell {i} passed ({time.time()-t:.1f} s)')
print(f'OK {path}: {ran} cells ran, {skipped} skipped, {time.time()-t0:.0f} s')
