"`bench/compare.py` on the committed scores: single runs, runs of one recipe joined by '+', and mismatched runs."
import subprocess, sys, re
from pathlib import Path
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
S = ROOT/'bench'/'scores'

def run(*args):
    return subprocess.run([sys.executable, str(ROOT/'bench'/'compare.py'), *map(str, args), '--n', '200'],
                          capture_output=True, text=True, timeout=300, cwd=ROOT)

def row(out, name):
    "The cells of the table row named `name`"
    return next(l for l in out.splitlines() if l.startswith(f'| {name} |')).split(' | ')

def test_joined_runs_average_each_patient():
    r = run(S/'amx', f"{S/'tdice'}+{S/'tdice43'}", f"{S/'amx'}+{S/'amx'}")
    assert r.returncode == 0, r.stderr
    a, b = (pd.read_csv(S/n/'per_patient.csv').query('true_pixels > 0').set_index('patient').volume_dice for n in ('tdice', 'tdice43'))
    mean = ((a + b)/2).mean()
    assert row(r.stdout, 'tdice+tdice43')[3].startswith(f'{mean:.3f} [')
    same = row(r.stdout, 'amx+amx')              # a run joined with itself is that run
    assert same[3].split(' [')[0] == row(r.stdout, 'amx')[3].split(' [')[0]
    assert same[7].startswith('+0.000 [+0.000, +0.000] on 49')
    assert re.search(r'^RESULT reference_mean=0\.81\d+ .* best_other=tdice\+tdice43 ', r.stdout, re.M)

def test_joined_runs_must_cover_the_same_patients(tmp_path):
    part = tmp_path/'part'; part.mkdir()
    for f in ('per_patient.csv', 'per_slice.csv'):
        t = pd.read_csv(S/'amx'/f); t[t.fold != 4].to_csv(part/f, index=False)
    r = run(S/'amx', f"{S/'tdice'}+{part}")
    assert r.returncode != 0 and 'runs joined by' in r.stderr and 'part' in r.stderr
