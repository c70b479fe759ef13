"README.md is generated from nbs/index.ipynb and names the two commands for a fresh machine."
import re
from pathlib import Path
from brain_mri_seg.docs import build_readme

ROOT = Path(__file__).resolve().parents[1]

def test_readme_matches_index(tmp_path):
    fresh = build_readme(ROOT, out=tmp_path/'README.md').read_text()
    assert fresh == (ROOT/'README.md').read_text(), \
        "README.md is out of date with nbs/index.ipynb: run `brain-mri-seg docs --readme` (or build_readme) and commit"

def test_readme_two_commands():
    lines = [l for l in (ROOT/'README.md').read_text().splitlines() if l.startswith('python3 -m venv .venv && ')]
    assert len(lines) == 2, lines
    assert any('brain-mri-seg train' in l or 'brain-mri-seg summary' in l for l in lines)
    assert any('pytest' in l for l in lines)
    ci = (ROOT/'.ci'/'run').read_text()
    assert "grep -m1 -E '^python3 -m venv \\.venv && .*pytest' README.md" in ci
