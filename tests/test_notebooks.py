"Run every notebook in `nbs/` through nbdev's own `test_nb`: one pytest test per notebook."
import os
from pathlib import Path

import pytest
from nbdev.config import get_config
from nbdev.test import test_nb as run_nb

NBS = Path(__file__).resolve().parents[1]/'nbs'
NOTEBOOKS = sorted(p for p in NBS.glob('*.ipynb') if not p.name.startswith(('_', '.')))

def _skip_flags():
    "Flags from `tst_flags` not forced on by `NBDEV_FLAGS` (e.g. `NBDEV_FLAGS='slow'`)"
    forced = set(os.environ.get('NBDEV_FLAGS', '').split())
    return [f for f in get_config(NBS).tst_flags.split() if f not in forced]

def test_found_notebooks(): assert len(NOTEBOOKS) >= 2, f"no notebooks found in {NBS}"

@pytest.mark.parametrize('nb', NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_notebook(nb):
    ok, secs = run_nb(nb, skip_flags=_skip_flags(), basepath=NBS.parent)
    assert ok, f"{nb.name} failed (traceback above)"
