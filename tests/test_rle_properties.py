"""Property tests of the RLE codec (`rle_encode`/`rle_decode`) with hypothesis.

1. Masks of every shape from 1x1 to 64x64 (all-zero, all-one, random densities, stripes, any dtype) round-trip exactly,
   and `rle_encode` always returns the canonical string (sorted, non-overlapping, non-adjacent runs, plain ASCII ints).
2. Arbitrary and near-valid strings given to `rle_decode(s, shape)` either raise `ValueError` (the CLI turns the
   `DataError`s built from it into one stderr line) or return an (H,W) uint8 0/1 mask that a naive decoder agrees with
   and that re-encodes to a canonical RLE decoding to the same mask.

Every `@given` runs 10,000 examples, derandomized (no example database), so CI sees the same examples every run.
"""
import math, re

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, event, example, given, settings, strategies as st

from brain_mri_seg.data import rle_decode, rle_encode

N = 10_000
FUZZ = settings(max_examples=N, deadline=None, derandomize=True, database=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])

# ---------------------------------------------------------------- helpers (independent of the library's code)
_CANON = re.compile(r'(?:[1-9][0-9]*(?: [1-9][0-9]*)*)?')

def check_canonical(rle:str, shape):
    "`rle` is what a correct encoder writes for a mask of `shape`: ASCII ints, sorted, disjoint, non-adjacent runs"
    assert isinstance(rle, str) and _CANON.fullmatch(rle), repr(rle)
    a = [int(t) for t in rle.split()]
    assert len(a) % 2 == 0, rle
    npx, prev_end = shape[0]*shape[1], -1   # prev_end: last pixel (1-indexed) of the previous run; -1: starts >= 1
    for s, n in zip(a[::2], a[1::2]):
        assert s > prev_end + 1, f"run {s} {n} touches or overlaps the previous one (ends at {prev_end}): {rle}"
        prev_end = s + n - 1
        assert prev_end <= npx, f"run {s} {n} ends past {npx} pixels: {rle}"

def ref_encode(m:np.ndarray)->str:
    "Naive Kaggle RLE: walk the pixels column by column"
    out, start = [], None
    flat = (np.asarray(m) != 0).ravel(order='F').tolist() + [False]
    for i, v in enumerate(flat, 1):
        if v and start is None: start = i
        elif not v and start is not None: out += [start, i - start]; start = None
    return ' '.join(map(str, out))

def ref_decode(rle:str, shape)->np.ndarray:
    "Naive decoder for strings the library accepted (Python's `int` parses every token the library may accept)"
    a = [int(t) for t in rle.split()]
    flat = np.zeros(shape[0]*shape[1], np.uint8)
    for s, n in zip(a[::2], a[1::2]): flat[s-1:s-1+n] = 1
    return flat.reshape(shape, order='F')

def check_mask(m, shape):
    assert isinstance(m, np.ndarray) and m.shape == tuple(shape) and m.dtype == np.uint8, (type(m), getattr(m, 'shape', None), getattr(m, 'dtype', None))
    assert set(np.unique(m).tolist()) <= {0, 1}

# ---------------------------------------------------------------- 1. masks round-trip
sides = st.integers(1, 64)

@st.composite
def masks(draw):
    "A mask of a random shape and kind, in one of the dtypes the encoder meets; few draws per mask, so 10,000 stay fast"
    layout = draw(st.sampled_from(['any', 'any', 'any', '1xN', 'Nx1', '1x1']))
    h, w = {'any': lambda: (draw(sides), draw(sides)), '1xN': lambda: (1, draw(sides)),
            'Nx1': lambda: (draw(sides), 1), '1x1': lambda: (1, 1)}[layout]()
    kind = draw(st.sampled_from(['zeros', 'ones', 'density', 'density', 'stripes', 'bits']))
    if kind == 'zeros': m = np.zeros((h, w), bool)
    elif kind == 'ones': m = np.ones((h, w), bool)
    elif kind == 'bits':                               # hypothesis picks every pixel of the first 64: shrinks to few pixels
        n = min(h*w, 64)
        bits = draw(st.integers(0, 2**n - 1))
        flat = np.zeros(h*w, bool); flat[:n] = [(bits >> i) & 1 for i in range(n)]
        m = flat.reshape((h, w), order='F')
    elif kind == 'stripes':                            # long runs that wrap from one column into the next
        flat = np.zeros(h*w, bool)
        for s, n in draw(st.lists(st.tuples(st.integers(0, h*w - 1), st.integers(1, 2*h)), max_size=5)): flat[s:s+n] = True
        m = flat.reshape((h, w), order='F')
    else:                                              # a seeded random field at a random density
        p = draw(st.sampled_from([0.001, 0.01, 0.1, 0.5, 0.9, 0.99, 0.999]) | st.floats(0, 1))
        m = np.random.default_rng(draw(st.integers(0, 2**32 - 1))).random((h, w)) < p
    # the encoder treats every non-zero pixel as mask: give it the dtypes it meets (bool, 0/1, 0/255, int, probabilities>0)
    dt = draw(st.sampled_from(['bool', 'u01', 'u255', 'i64', 'i64-neg', 'f32', 'f32-small', 'fortran', 'view']))
    if dt == 'u01': m = m.astype(np.uint8)
    elif dt == 'u255': m = m.astype(np.uint8)*255
    elif dt == 'i64': m = m.astype(np.int64)*7
    elif dt == 'i64-neg': m = -m.astype(np.int64)
    elif dt == 'f32': m = m.astype(np.float32)
    elif dt == 'f32-small': m = m.astype(np.float32)*1e-3
    elif dt == 'fortran': m = np.asfortranarray(m.astype(np.uint8))
    elif dt == 'view' and w > 1: m = np.concatenate([m, m], axis=1)[:, ::2]   # non-contiguous
    return m

@FUZZ
@given(masks())
@example(np.zeros((1, 1), np.uint8)).via('1x1 empty')
@example(np.ones((1, 1), np.uint8)).via('1x1 full')
@example(np.ones((1, 64), bool)).via('1xN full')
@example(np.ones((64, 1), bool)).via('Nx1 full')
@example(np.eye(64, dtype=np.uint8)).via('diagonal: one run per column')
@example(np.ones((64, 64), np.uint8)*255).via('64x64 full, 0/255')
@example(np.zeros((64, 64), np.float32)).via('64x64 empty')
def test_roundtrip(m):
    "10,000 masks: `rle_encode` writes the canonical RLE (as a naive encoder does) and `rle_decode` gives the mask back"
    rle = rle_encode(m)
    check_canonical(rle, m.shape)
    assert rle == ref_encode(m)
    d = rle_decode(rle, m.shape)
    check_mask(d, m.shape)
    np.testing.assert_array_equal(d, (m != 0).astype(np.uint8))

# ---------------------------------------------------------------- 2. decoding arbitrary strings
_DIGITS = {'arabic-indic': '٠١٢٣٤٥٦٧٨٩', 'fullwidth': '０１２３４５６７８９', 'devanagari': '०१२३४५६७८९',
           'superscript': '⁰¹²³⁴⁵⁶⁷⁸⁹', 'math-bold': '𝟎𝟏𝟐𝟑𝟒𝟓𝟔𝟕𝟖𝟗'}
ASCII_SEPS = [' ']*12 + ['  ', '\t', '\n', '\r\n', '\r', '\x0b', '\x0c', '\x1c', '\x1f', ',', ', ', ';', '', '_']   # mostly valid
UNICODE_SEPS = ['\u00a0', '\u2003', '\u3000', '\u2028', '\u0085', '\u200b', '\ufeff']

SEPS = ASCII_SEPS + UNICODE_SEPS
FORMATS = ['plus', 'zeros', 'unicode', 'float', 'exp', 'underscore', 'hex', 'suffix', 'paren']
_SUFFIXES = ['L', 'px', '\x00', ' -', '-', '+', '\u0301']

def _fmt(n:int, how:str, k:int)->str:
    "Integer `n` written one of the ways a hand-made or foreign RLE might write it (`k` picks a variant)"
    s = str(n)
    if how == 'plus': return '+' + s
    if how == 'zeros': return s.replace(s.lstrip('-'), '000' + s.lstrip('-'))
    if how == 'unicode': return s.translate(str.maketrans('0123456789', list(_DIGITS.values())[k % len(_DIGITS)]))
    if how == 'float': return s + '.0'
    if how == 'exp': return s + 'e0'
    if how == 'underscore': return s[:-1] + '_' + s[-1] if len(s.lstrip('-')) > 1 else s + '_'
    if how == 'hex': return hex(n)
    if how == 'suffix': return s + _SUFFIXES[k % len(_SUFFIXES)]
    if how == 'paren': return f'({s})'
    return s

JUNK = ['nan', 'NaN', 'inf', '-inf', 'None', 'null', 'NULL', 'NA', '<NA>', '-', '+', '--1', '+-1', '1-',
        '[]', '[1, 2]', '"1 2"', 'rle', '0x', '١', '½', '²', '\x00', '\ufffd', '\U0001F9E0', 'ﬁ']
_JUNK = st.sampled_from(JUNK)
EDGES = [0, -1, 2**31 - 1, 2**31, 2**32, 2**53 + 1, 2**63 - 1, 2**63, 2**64, -2**63, -2**63 - 1, 10**30, -10**30, 10**100]

# Strategies are built once (building them inside a composite for every example doubles the run time).
# A number is drawn as a fraction-like integer and scaled by the mask size in `_scale`, so one strategy serves every shape.
_REL = st.one_of(st.integers(-2, 1026).map(lambda i: ('rel', i)), st.sampled_from(EDGES).map(lambda i: ('abs', i)),
                 st.integers(-2**70, 2**70).map(lambda i: ('abs', i)))
def _scale(v, npx:int)->int:
    kind, i = v
    return i if kind == 'abs' else (npx + i - 1025 if i > 1000 else i)   # 'rel': -2..1000 as is, 1001..1026 near npx
_CUTS = st.lists(st.integers(1, 1025), min_size=2, max_size=16)
_OPS = st.lists(st.tuples(st.sampled_from(['inc', 'dec', 'swap', 'drop', 'dup', 'neg', 'zero', 'huge', 'append', 'reverse']),
                          st.integers(0, 31), _REL), max_size=3)
_TEXT = st.text(max_size=40) | st.text(alphabet='0123456789 +-\t\n\u00a0', max_size=30)
_KIND = st.sampled_from(['text', 'text', 'valid', 'valid', 'perturbed', 'perturbed', 'perturbed', 'numbers', 'junk'])
_REFORMAT = st.just([]) | st.lists(st.tuples(st.integers(0, 31), st.sampled_from(FORMATS), st.integers(0, 9)), min_size=1, max_size=2)
WHITE_SEPS = [' ']*12 + ['  ', '\t', '\n', '\r\n', '\r', '\x0b', '\x0c', '\x1c', '\x1f'] + UNICODE_SEPS[:5]
_SEP = {'any': st.sampled_from(SEPS), 'white': st.sampled_from(WHITE_SEPS)}
_LAYOUT = st.sampled_from(['join', 'join', 'join', 'trail', 'pad'])

def valid_runs(cuts:list, npx:int)->list:
    "start/length numbers of a valid RLE: sorted, disjoint (possibly adjacent) runs inside `npx` pixels"
    cuts = sorted({1 + (c - 1) % (npx + 1) for c in cuts})      # drawn in 1..1025, folded into 1..npx+1
    nums = []
    for a, b in zip(cuts[::2], cuts[1::2]): nums += [a, b - a]
    return nums

def perturb(nums:list, ops:list, npx:int)->list:
    "A valid RLE with a few of the mistakes people make: off by one, swapped, dropped, duplicated, negated, huge"
    nums = list(nums)
    for op, i, v in ops:
        i = i % len(nums) if nums else 0
        if op == 'append' or not nums: nums.append(_scale(v, npx))
        elif op == 'inc': nums[i] += 1
        elif op == 'dec': nums[i] -= 1
        elif op == 'swap' and i + 1 < len(nums): nums[i], nums[i+1] = nums[i+1], nums[i]
        elif op == 'drop': del nums[i]
        elif op == 'dup': nums[i:i] = nums[i - i % 2:i - i % 2 + 2]
        elif op == 'neg': nums[i] = -nums[i]
        elif op == 'zero': nums[i] = 0
        elif op == 'huge': nums[i] = EDGES[v[1] % len(EDGES)] if v[0] == 'rel' else v[1]
        elif op == 'reverse': nums = nums[::-1]
    return nums

@st.composite
def rle_inputs(draw):
    "(rle, shape): arbitrary text, or integer lists of random parity/sign/size written and separated in many ways"
    h, w = draw(st.integers(1, 32)), draw(st.integers(1, 32))
    npx, kind = h*w, draw(_KIND)
    if kind == 'text': return draw(_TEXT), (h, w)
    if kind == 'numbers': nums = [_scale(v, npx) for v in draw(st.lists(_REL, max_size=12))]
    else: nums = valid_runs(draw(_CUTS), npx)
    if kind == 'perturbed': nums = perturb(nums, draw(_OPS), npx)
    toks = list(map(str, nums))
    if kind == 'numbers' or (kind == 'perturbed' and draw(st.booleans()) and draw(st.booleans())):
        for i, how, k in draw(_REFORMAT):
            if toks: toks[i % len(toks)] = _fmt(nums[i % len(toks)], how, k)
    if kind == 'junk': toks.insert(draw(st.integers(0, len(toks))), draw(_JUNK))
    sep, layout = draw(_SEP['any' if kind in ('numbers', 'junk') else 'white']), draw(_LAYOUT)
    s = sep.join(toks) if layout == 'join' else ''.join(t + sep for t in toks) if layout == 'trail' else sep + ' '.join(toks) + sep
    return s, (h, w)

NONE_LIKE = [None, float('nan'), np.nan, np.float64('nan'), '', ' ', '\n', '\t \r\n']

_REASONS = re.compile(r"'.*?'|\(.*?\)|-?\d+")

def check_decode(s, shape, events:bool=False):
    "`rle_decode(s, shape)` raises only ValueError; otherwise it returns a 0/1 mask that re-encodes canonically"
    # events: record hypothesis `event`s (only inside @given; --hypothesis-show-statistics shows the mix)
    try: m = rle_decode(s, shape)
    except ValueError as e:
        assert str(e), "ValueError without a message"
        if events: event('ValueError: ' + _REASONS.sub('#', str(e))[:40])
        return
    if events: event('decoded: ' + ('empty' if m.sum() == 0 else 'mask'))
    check_mask(m, shape)
    if s is not None and not (isinstance(s, float) and math.isnan(s)):
        np.testing.assert_array_equal(m, ref_decode(s, shape), err_msg=f"rle_decode({s!r}, {shape}) disagrees with a naive decoder")
    rle = rle_encode(m)
    check_canonical(rle, shape)
    np.testing.assert_array_equal(rle_decode(rle, shape), m)

@FUZZ
@given(rle_inputs())
@example(('', (1, 1))).via('empty')
@example(('1 1', (1, 1))).via('1x1 full')
@example(('1 2 3 1', (2, 2))).via('adjacent runs: valid, not canonical')
@example(('9223372036854775807 9223372036854775807', (3, 3))).via('int64 max')
@example(('9223372036854775808 1', (3, 3))).via('int64 overflow')
@example(('-9223372036854775808 1', (3, 3))).via('int64 min')
@example(('1 ' + '9'*400, (3, 3))).via('400 digits')
@example(('١ ٢', (3, 3))).via('unicode digits')
@example(('1\xa01', (1, 1))).via('NBSP separator')
def test_decode_raises_only_valueerror(x):
    "10,000 strings, non-ASCII whitespace included: ValueError, or a mask that re-encodes canonically"
    check_decode(*x, events=True)

@pytest.mark.parametrize('s', ['1\u00a02', '1\u20032', '1 2\u2028', '\u30001 2', '1\u00852'],
                         ids=['nbsp', 'em-space', 'line-sep', 'ideographic-space', 'nel'])
def test_unicode_whitespace_minimal(s):
    "Integers separated by non-ASCII whitespace (once a StopIteration): a ValueError, or the mask of '1 2'"
    check_decode(s, (4, 4))

@pytest.mark.parametrize('s', NONE_LIKE, ids=repr)
@pytest.mark.parametrize('shape', [(1, 1), (1, 7), (7, 1), (5, 3)])
def test_none_like_is_empty(s, shape):
    m = rle_decode(s, shape)
    check_mask(m, shape)
    assert m.sum() == 0

@pytest.mark.parametrize('s', [pd.NA, np.float32('nan')], ids=['pd.NA', 'float32-nan'])
def test_other_missing_markers_are_empty(s):
    "The other missing-value markers pandas/numpy produce (nullable / string[pyarrow] columns, float32) are empty masks too"
    assert rle_decode(s, (3, 3)).sum() == 0

@pytest.mark.parametrize('s', [b'1 2', 1, 1.5, ['1', '2'], np.array([1, 2])], ids=['bytes', 'int', 'float', 'list', 'array'])
def test_non_string_is_typeerror(s):
    "Not a string at all: a TypeError (STYLE §13), never a silent mask"
    with pytest.raises(TypeError, match='rle must be a string'): rle_decode(s, (3, 3))

@pytest.mark.parametrize('shape', [(0, 3), (3, 0), (-1, 2), (3,), (1, 2, 3), 'ab', None, (1.5, 'x')], ids=repr)
def test_bad_shape_is_valueerror(shape):
    with pytest.raises(ValueError, match='shape'): rle_decode('1 1', shape)
