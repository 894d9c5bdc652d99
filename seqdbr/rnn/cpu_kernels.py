"""Optional compiled CPU kernels for the recurrences (``seqdbr.rnn._cpu_cells``).

``pip install`` builds the C extension when a C compiler is present (``setup.py``, marked
optional, so an install without one still succeeds). When it is importable:

* the CPU n-step LSTM and GRU (:mod:`seqdbr.rnn.n_step`) do each step's cell arithmetic in
  one fused, vectorised C pass instead of about 14 (LSTM forward) to 20 (backward) NumPy
  calls; the per-step ``h W_hh^T`` matmul stays with NumPy's BLAS;
* the stepwise cells :func:`seqdbr.functions.lstm` (``L.LSTM``, ``L.StatelessLSTM``) and
  :func:`seqdbr.functions.gru_cell` (``L.GRU``, ``L.StatefulGRU``) run their forward and
  their backward as one C pass each; the n-step layers use them too when no graph is
  recorded (evaluation, sampling);
* the backward of :func:`seqdbr.functions.embed_project` scatter-adds rows in C.

Both paths compute the same function. For values of order 1 the results agree to about
1e-13 (float64) and 1e-6 (float32); the C float32 ``exp`` is a polynomial with relative
error below 2e-7, the float64 one is libm's. The C code computes ``tanh(x)`` as
``2 sigmoid(2x) - 1``, so outputs near 0 carry an *absolute* error of about 1e-7 (float32)
or 1e-16 (float64) rather than a relative one (harmless for training, visible when
comparing tiny values). A saturated float32 sigmoid may come out as a subnormal (~6e-39)
instead of 0. Other dtypes (float16) and CuPy arrays use the NumPy/CuPy code.

Set the environment variable ``SEQDBR_CPU_KERNELS=0`` (read at import) or call
:func:`set_enabled` to use the NumPy code even when the extension is built.

Attributes:
    available (bool): the extension was built and imports.
"""
import os

import numpy

try:
    from seqdbr.rnn import _cpu_cells
except ImportError:         # not built (no compiler at install time, or a source checkout)
    _cpu_cells = None

__all__ = ['available', 'enabled', 'set_enabled']

available = _cpu_cells is not None
_enabled = available and os.environ.get('SEQDBR_CPU_KERNELS', '1') != '0'


def enabled():
    """True when the CPU recurrences (n-step LSTM/GRU, ``F.lstm``, ``F.gru_cell``) use the
    compiled kernels."""
    return _enabled


def set_enabled(flag):
    """Use (True) or bypass (False) the compiled kernels; returns the previous setting.

    Raises:
        RuntimeError: ``flag`` is True but the extension is not built (reinstall with a C
            compiler present: ``pip install -e .``).
    """
    global _enabled
    if flag and not available:
        raise RuntimeError('seqdbr.rnn._cpu_cells is not built (no C compiler when seqdbr '
                           'was installed?); reinstall with `pip install -e .` on a machine '
                           'with gcc/clang, or keep the NumPy path')
    old = _enabled
    _enabled = bool(flag)
    return old


_DTYPES = (numpy.dtype(numpy.float32), numpy.dtype(numpy.float64))


def cells_for(dtype):
    """The extension module when it is enabled and handles ``dtype`` (float32, float64),
    else None: the caller then runs its NumPy code (used by ``n_step`` and ``lstm``)."""
    return _cpu_cells if _enabled and dtype in _DTYPES else None


def cells():
    """The extension module when enabled, else None."""
    return _cpu_cells if _enabled else None
