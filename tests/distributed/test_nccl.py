"""The NCCL path of the communicator (CuPy arrays), under ``mpiexec``: one process per GPU
(at most 2). Marked ``gpu``: skipped without CuPy and a CUDA device; skipped without mpi4py."""
import os
import pathlib
import shutil
import subprocess
import sys

import pytest

HERE = pathlib.Path(__file__).resolve().parent
ROOT = HERE.parents[1]


@pytest.mark.gpu
def test_nccl_allreduce_grad_under_mpiexec():
    pytest.importorskip('mpi4py', reason="mpi4py is not installed (pip install -e '.[mpi]')")
    pytest.importorskip('cupy.cuda.nccl', reason='CuPy was built without NCCL')
    from seqdbr.core import backend
    n = min(2, backend.gpu_device_count())
    near = pathlib.Path(sys.executable).parent / 'mpiexec'
    exe = str(near) if near.exists() else shutil.which('mpiexec')
    assert exe, 'mpi4py imports but no mpiexec was found'
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    p = subprocess.run([exe, '-n', str(n), sys.executable, str(HERE / 'mpi_nccl_worker.py')],
                       capture_output=True, text=True, timeout=300, env=env)
    assert p.returncode == 0, p.stdout + p.stderr
    assert p.stdout.count('OK') == n, p.stdout
