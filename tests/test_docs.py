"The offline docs site: one page per notebook, linked to each other, with figures embedded."
import re
from pathlib import Path
from brain_mri_seg.docs import build_docs

ROOT = Path(__file__).resolve().parents[1]
NBS = sorted(p.stem for p in (ROOT/'nbs').glob('*.ipynb') if not p.name.startswith(('_', '.')))

def test_docs_site(tmp_path):
    out = build_docs(ROOT, tmp_path/'site')
    pages = {p.stem: p.read_text() for p in out.glob('*.html')}
    assert sorted(pages) == NBS, f"pages {sorted(pages)} != notebooks {NBS}"
    for name, page in pages.items():
        links = set(re.findall(r'<nav>.*?</nav>', page, re.S)[0].split('href="')[1:])
        linked = {l.split('"')[0][:-5] for l in links}
        assert linked == set(NBS), f"{name}.html sidebar links {sorted(linked)}"
        assert not re.search(r'<span class="c1">#\|', page), f"{name}.html shows cell directives"
        assert 'nbdev_export()' not in page, f"{name}.html shows a hidden cell"
    figs = {n: len(re.findall(r'<img [^>]*src="data:image/png;base64,', p)) for n,p in pages.items()}
    for n in ('index', '00_data', '06_viz'): assert figs.get(n, 0) >= 1, f"{n}.html has no figure: {figs}"
    assert 'show_doc' not in pages['00_data'] and '<h3 id="read_image"' in pages['00_data']
