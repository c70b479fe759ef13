"The installed console script: help, verbs, and bad input as one stderr line with exit status 2."
import subprocess, sys, shutil
from pathlib import Path
import pytest

EXE = shutil.which('brain-mri-seg') or str(Path(sys.executable).parent/'brain-mri-seg')

def run(*args):
    return subprocess.run([EXE, *args], capture_output=True, text=True, timeout=300)

def test_help():
    r = run('--help')
    assert r.returncode == 0 and 'summary' in r.stdout

def test_bad_folder_exit_2(tmp_path):
    r = run('summary', str(tmp_path))
    assert r.returncode == 2, r
    assert 'Traceback' not in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1 and str(tmp_path) in r.stderr

def test_debug_shows_traceback(tmp_path):
    r = run('summary', str(tmp_path), '--debug')
    assert r.returncode != 0 and 'Traceback' in r.stderr
