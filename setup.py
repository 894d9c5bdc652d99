"""Build hook for the optional C extension ``seqdbr.rnn._cpu_cells``.

Everything else about the package lives in pyproject.toml. The extension (fused cell
arithmetic for the CPU n-step LSTM/GRU and the stepwise LSTM cell, see
seqdbr/rnn/_cpu_cells.c) is ``optional=True``: on a machine without a C compiler the install still succeeds and seqdbr uses its NumPy code
(``seqdbr.rnn.cpu_kernels.available`` tells which one runs).
"""
import os

from setuptools import Extension, setup

_flags = [] if os.name == 'nt' else ['-O3', '-fno-math-errno', '-fno-trapping-math']

setup(ext_modules=[
    Extension('seqdbr.rnn._cpu_cells', ['seqdbr/rnn/_cpu_cells.c'],
              extra_compile_args=_flags, optional=True),
])
