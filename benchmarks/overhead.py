"""Per-op framework overhead: a chain of N elementwise ops, forward and backward timed apart.

Prints JSON: microseconds per op (median over repeats) for shape (1,) and (50, 128),
plus the raw NumPy cost of the same arithmetic for reference (so the ratio shows what
the framework adds). Run: python benchmarks/overhead.py [--ops 1000] [--repeats 15]
"""
import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import common  # noqa: E402
import seqdbr  # noqa: E402
from seqdbr import Variable  # noqa: E402


def main():
    p = argparse.ArgumentParser(description=__doc__)
    common.add_overhead_args(p)
    args = p.parse_args()
    out = {'benchmark': 'overhead', 'seqdbr': seqdbr.__version__,
           'numpy': common.numpy.__version__,
           'n_ops': args.ops, 'op': 'alternating Variable*Variable and Variable+Variable',
           'results': [common.measure_variable_chain(Variable, s, args.ops, args.repeats)
                       for s in [(1,), (50, 128)]]}
    common.emit(out)


if __name__ == '__main__':
    main()
