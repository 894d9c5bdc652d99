#!/usr/bin/env python3
"""Thin wrapper: ``python scripts/eval_charrnn.py --help`` (same as ``seqdbr-eval-charrnn``).

The logic lives in :mod:`seqdbr.charlm.cli`.
"""
import sys

from seqdbr.charlm.cli import eval_main

if __name__ == '__main__':
    sys.exit(eval_main())
