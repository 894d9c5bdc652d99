"""Every CUDA kernel of seqdbr compiles through NVRTC at every dtype its call sites use.

No GPU or driver is needed: CuPy's own source generator runs on argument descriptions and
NVRTC compiles to PTX (``seqdbr.core.cuda_kernels.compile_without_gpu``). The compile
tests skip when CuPy or NVRTC is missing, unless ``SEQDBR_REQUIRE_NVRTC=1`` (set by
``.ci/run``, which installs them), where a skip would hide a broken kernel and fails
instead. ``pytest -v`` lists each kernel and dtype as its own test.
"""
import os
import pathlib
import re

import numpy
import pytest

from seqdbr.core import backend, cuda_kernels

cuda_kernels._import_all()
KERNELS = cuda_kernels.registered()
CASES = [(k, t) for k in KERNELS for t in k.types]
PACKAGE = pathlib.Path(cuda_kernels.__file__).resolve().parents[1]


def _ids(case):
    k, t = case
    return '%s[%s]' % (k.name, ','.join('%s=%s' % kv for kv in sorted(t.items())))


def _nvrtc_or_skip():
    cp = backend.cupy_or_none()
    problem = None
    if cp is None:
        problem = 'CuPy is not installed'
    else:
        try:
            from cupy.cuda import nvrtc
            nvrtc.getVersion()
        except Exception as e:   # libnvrtc.so.12 not found
            problem = 'NVRTC is not usable (%s)' % e
    if problem:
        if os.environ.get('SEQDBR_REQUIRE_NVRTC') == '1':
            pytest.fail('%s but SEQDBR_REQUIRE_NVRTC=1: install cupy-cuda12x and '
                        "cuda-toolkit[nvrtc,cudart]==12.* (pip install -e '.[nvrtc-check]')"
                        % problem)
        pytest.skip('%s; pip install -e ".[nvrtc-check]" to compile the kernels' % problem)
    return cp


def test_no_kernel_is_built_outside_the_registry():
    pattern = re.compile(r'\b(ElementwiseKernel|RawKernel|RawModule|ReductionKernel)\s*\(|'
                         r'\bcupy\.fuse\b|\bcp\.fuse\b')
    offenders = []
    for path in sorted(PACKAGE.rglob('*.py')):
        if path.name == 'cuda_kernels.py':
            continue
        for n, line in enumerate(path.read_text(encoding='utf-8').splitlines(), 1):
            code = line.split('#')[0]
            if pattern.search(code) and 'cuda_kernels.' not in code:
                offenders.append('%s:%d: %s' % (path.relative_to(PACKAGE.parent), n,
                                                line.strip()))
    assert not offenders, ('declare CUDA kernels with seqdbr.core.cuda_kernels.elementwise so '
                           'CI compiles them:\n' + '\n'.join(offenders))


def test_registry_lists_the_kernels_of_every_gpu_path():
    names = {k.name for k in KERNELS}
    expected = {'seqdbr_lstm_fwd', 'seqdbr_lstm_bwd', 'seqdbr_gru_fwd', 'seqdbr_gru_bwd',
                'seqdbr_sigmoid_fwd', 'seqdbr_sigmoid_bwd', 'seqdbr_dropout_fwd',
                'seqdbr_softmax_ce_grad', 'seqdbr_sgd', 'seqdbr_momentum_sgd', 'seqdbr_adam',
                'seqdbr_amsgrad', 'seqdbr_ada_grad', 'seqdbr_ada_delta', 'seqdbr_rmsprop',
                'seqdbr_rmsprop_graves', 'seqdbr_nesterov_ag'}
    assert expected <= names
    for k in KERNELS:
        assert k.types, k.name
    # the cells and the loss serve float16 too; labels come as int32 or int64
    f16 = numpy.dtype(numpy.float16)
    for name in ('seqdbr_lstm_fwd', 'seqdbr_lstm_bwd', 'seqdbr_gru_fwd', 'seqdbr_gru_bwd'):
        assert {'T': f16} in cuda_kernels._REGISTRY[name].types
    ce = cuda_kernels._REGISTRY['seqdbr_softmax_ce_grad'].types
    assert {t['S'] for t in ce} == {numpy.dtype(numpy.int32), numpy.dtype(numpy.int64)}


def test_declaring_a_kernel_twice_or_a_bad_scalar_is_an_error():
    with pytest.raises(ValueError, match='declared twice'):
        cuda_kernels.elementwise('seqdbr_sgd', 'T x', 'T y', 'y = x', types=[{'T': 'f4'}])
    with pytest.raises(ValueError, match='not input parameters'):
        cuda_kernels.ElementwiseKernel('seqdbr_test_bad_scalar', 'T x', 'T y', 'y = x',
                                       types=[{'T': 'f4'}], scalars=('z',))


@pytest.mark.parametrize('case', CASES, ids=[_ids(c) for c in CASES])
def test_kernel_compiles_with_nvrtc(case):
    _nvrtc_or_skip()
    kernel, typemap = case
    ptx = cuda_kernels.compile_without_gpu(kernel, typemap)
    assert b'.visible .entry ' + kernel.name.encode() in ptx


@pytest.mark.parametrize('body', ['y = x * (T)2 +;', 'y = no_such_function(x);',
                                  'y = x; undeclared_variable = 1;'])
def test_a_broken_kernel_fails_to_compile(body):
    cp = _nvrtc_or_skip()
    name = 'seqdbr_test_broken_%d' % (abs(hash(body)) % 10 ** 6)
    k = cuda_kernels.ElementwiseKernel(name, 'T x', 'T y', body, types=[{'T': 'f4'}])
    try:
        with pytest.raises(cp.cuda.compiler.CompileException, match='error'):
            cuda_kernels.compile_without_gpu(k, k.types[0])
    finally:
        del cuda_kernels._REGISTRY[name]


def test_the_generated_source_has_the_declared_types():
    _nvrtc_or_skip()
    k = cuda_kernels._REGISTRY['seqdbr_softmax_ce_grad']
    src = cuda_kernels.kernel_source(k, {'T': numpy.dtype(numpy.float16),
                                         'S': numpy.dtype(numpy.int32)})
    assert 'typedef float16 T;' in src and 'typedef int S;' in src
    assert 'const long long C' in src      # a scalar, not an array
