"""Fixtures of the recurrent-layer tests."""
import pytest

from seqdbr.rnn import cpu_kernels


@pytest.fixture(params=['compiled', 'numpy'])
def cpu_path(request):
    """Run a test with the compiled CPU cell kernels (``seqdbr.rnn._cpu_cells``) and again
    with the NumPy code; the compiled run skips when the extension is not built. Use it with
    ``pytestmark = pytest.mark.usefixtures('cpu_path')``."""
    if request.param == 'compiled' and not cpu_kernels.available:
        pytest.skip('seqdbr.rnn._cpu_cells is not built (no C compiler at install time)')
    old = cpu_kernels.set_enabled(request.param == 'compiled')
    yield request.param
    cpu_kernels.set_enabled(old)
