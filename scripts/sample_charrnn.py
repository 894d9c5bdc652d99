#!/usr/bin/env python3
"""Thin wrapper: ``python scripts/sample_charrnn.py --help`` (same as ``seqdbr-sample-charrnn``).

The logic lives in :mod:`seqdbr.charlm.cli`.
"""
import sys

from seqdbr.charlm.cli import sample_main

if __name__ == '__main__':
    sys.exit(sample_main())
