"""The arithmetic of the CUDA cell kernels (``seqdbr.rnn.kernels``), checked on the CPU.

The GPU tests need CuPy and a CUDA device, which CI does not have, so a wrong sign or a
missing factor in a kernel body would pass CI. Here each kernel body (a small subset of C:
declarations, arithmetic, ``if`` blocks, ``raw`` array indexing) is translated to Python and
run vectorised over all elements with NumPy in float64, then compared with the CPU cells
(``F.lstm``, ``F.gru_cell`` on their NumPy path, which tests/rnn checks against numerical
gradients). This checks the formulas as written, not the CUDA compiler: the GPU tests
(``@pytest.mark.gpu``) still cover compilation and float32 on a device.
"""
import re

import numpy
import pytest

import seqdbr.functions as F
from seqdbr.core.variable import Variable
from seqdbr.rnn import cpu_kernels, kernels


def _split_top(s, sep=','):
    """Split ``s`` at ``sep`` outside brackets."""
    parts, depth, cur = [], 0, ''
    for ch in s:
        depth += ch in '([{'
        depth -= ch in ')]}'
        if ch == sep and depth == 0:
            parts.append(cur)
            cur = ''
        else:
            cur += ch
    return parts + [cur]


def _c_to_python(body):
    """Translate a kernel body to Python lines (raises on anything it does not know)."""
    body = re.sub(r'\bT\(([^()]*)\)', r'(\1)', body)           # T(1) -> (1)
    body = body.replace('{', ';{;').replace('}', ';};')
    out, indent = [], 0
    for stmt in (s.strip() for s in body.split(';')):
        if not stmt:
            continue
        if stmt == '{':
            indent += 1
            continue
        if stmt == '}':
            indent -= 1
            continue
        m = re.fullmatch(r'if \((.*)\)', stmt)
        if m:
            out.append('    ' * indent + 'if %s:' % m.group(1))
            continue
        m = re.fullmatch(r'(?:const\s+)?(T|ptrdiff_t)\s+(.*)', stmt, re.S)
        decls = [stmt] if not m else _split_top(m.group(2))
        for d in decls:
            d = ' '.join(d.split())
            if m and m.group(1) == 'ptrdiff_t':
                d = d.replace(' / ', ' // ')                    # C integer division
            if not re.fullmatch(r'[\w\[\] +*\-]+ ?[+\-*]?= .+', d):
                raise AssertionError('cannot translate kernel statement %r' % d)
            out.append('    ' * indent + d)
    return out


def _emulate(name, n, **args):
    """Run kernel ``name`` over ``n`` elements: non-raw params/outputs are flat arrays of
    length ``n`` (outputs returned), raw ones whole flat arrays (written in place)."""
    in_params, out_params, body = kernels._SOURCES[name]
    sig = re.search(r'return (.*);', kernels._PREAMBLE).group(1)
    env = {'tanh': numpy.tanh, 'i': numpy.arange(n),
           'seqdbr_sigmoid': lambda x: eval(re.sub(r'\bT\(([^()]*)\)', r'(\1)', sig),
                                            {'tanh': numpy.tanh, 'x': x})}
    outs = []
    for p in out_params.split(','):
        words = p.split()
        if words[0] != 'raw':
            outs.append(words[-1])
    for p in in_params.split(',') + out_params.split(','):
        name_ = p.split()[-1]
        if name_ in args:
            env[name_] = args[name_]
    code = '\n'.join(_c_to_python(body))
    exec(compile(code, '<kernel %s>' % name, 'exec'), env)
    return {k: env[k] for k in outs}


@pytest.fixture(autouse=True)
def numpy_cells():
    """The references run on the NumPy path of the CPU cells."""
    old = cpu_kernels.set_enabled(False) if cpu_kernels.available else None
    yield
    if old is not None:
        cpu_kernels.set_enabled(old)


def _sum_loss(outputs, grads):
    total = None
    for y, g in zip(outputs, grads):
        term = F.sum(y * g)
        total = term if total is None else total + term
    return total


@pytest.mark.parametrize('B,H', [(1, 1), (3, 4), (2, 7)])
@pytest.mark.parametrize('use_hh', [0, 1])
def test_lstm_kernels_equal_the_cpu_cell(B, H, use_hh):
    rs = numpy.random.RandomState(10 * B + H)
    x, c_prev = rs.randn(B, 4 * H) * 2, rs.randn(B, H)
    gc, gh = rs.randn(B, H), rs.randn(B, H)
    xv, cv = Variable(x.copy()), Variable(c_prev.copy())
    c_ref, h_ref = F.lstm(cv, xv)
    _sum_loss((c_ref, h_ref), (gc, gh)).backward()
    # split the pre-activation in two when the kernel adds hh itself
    hh = rs.randn(B, 4 * H) if use_hh else numpy.zeros((B, 4 * H))
    act = numpy.zeros(B * 4 * H)
    fwd = _emulate('lstm_fwd', B * H, xa=(x - hh).ravel(), hh=hh.ravel(),
                   c_prev=c_prev.ravel(), H=H, use_hh=use_hh, act=act)
    numpy.testing.assert_allclose(fwd['c'].reshape(B, H), c_ref.array, rtol=1e-12, atol=1e-14)
    numpy.testing.assert_allclose(fwd['h'].reshape(B, H), h_ref.array, rtol=1e-12, atol=1e-14)
    dg = numpy.zeros(B * 4 * H)
    # dh_in (from the next step) + gy (from the output) is the total gradient of h
    bwd = _emulate('lstm_bwd', B * H, act=act, c_prev=c_prev.ravel(), c=fwd['c'],
                   dh_in=0.25 * gh.ravel(), gy=0.75 * gh.ravel(), dc_in=gc.ravel(), H=H, dg=dg)
    numpy.testing.assert_allclose(dg.reshape(B, 4 * H), xv.grad, rtol=1e-10, atol=1e-13)
    numpy.testing.assert_allclose(bwd['dc_out'].reshape(B, H), cv.grad, rtol=1e-10,
                                  atol=1e-13)


@pytest.mark.parametrize('B,H', [(1, 1), (3, 4), (2, 7)])
@pytest.mark.parametrize('flags', [1, 3, 2])
def test_gru_kernels_equal_the_cpu_cell(B, H, flags):
    """flags & 1: add the hidden projection gh; flags & 2: add the hidden bias bh (the
    n-step code passes them separately; the cell gets their sum)."""
    rs = numpy.random.RandomState(10 * B + H + flags)
    gi, h_prev = rs.randn(B, 3 * H) * 2, rs.randn(B, H)
    gh_part = rs.randn(B, 3 * H) if flags & 1 else numpy.zeros((B, 3 * H))
    bh = rs.randn(3 * H) if flags & 2 else numpy.zeros(3 * H)
    gy = rs.randn(B, H)
    hv, giv, ghv = (Variable(a.copy()) for a in (h_prev, gi, gh_part + bh))
    h_ref = F.gru_cell(hv, giv, ghv)
    _sum_loss((h_ref,), (gy,)).backward()
    act = numpy.zeros(B * 4 * H)
    fwd = _emulate('gru_fwd', B * H, gi=gi.ravel(), gh=gh_part.ravel(), bh=bh,
                   h_prev=h_prev.ravel(), H=H, flags=flags, act=act)
    numpy.testing.assert_allclose(fwd['h'].reshape(B, H), h_ref.array, rtol=1e-12, atol=1e-14)
    dgi, dgh = numpy.zeros(B * 3 * H), numpy.zeros(B * 3 * H)
    bwd = _emulate('gru_bwd', B * H, act=act, h_prev=h_prev.ravel(), dh_in=0.5 * gy.ravel(),
                   gy=0.5 * gy.ravel(), H=H, dgi=dgi, dgh=dgh)
    numpy.testing.assert_allclose(dgi.reshape(B, 3 * H), giv.grad, rtol=1e-10, atol=1e-13)
    numpy.testing.assert_allclose(dgh.reshape(B, 3 * H), ghv.grad, rtol=1e-10, atol=1e-13)
    numpy.testing.assert_allclose(bwd['dh_direct'].reshape(B, H), hv.grad, rtol=1e-10,
                                  atol=1e-13)


def test_translator_refuses_what_it_does_not_know():
    with pytest.raises(AssertionError, match='cannot translate'):
        _c_to_python('for (int k = 0; k < 3; k++) { x += 1; }')
    assert _c_to_python('const ptrdiff_t r = i / H; T a = T(1) - r, b = x[r + H];') == \
        ['r = i // H', 'a = (1) - r', 'b = x[r + H]']
