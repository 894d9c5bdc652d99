#!/usr/bin/env python3
"""Thin wrapper: ``python scripts/train_charrnn.py --help`` (same as ``seqdbr-train-charrnn``).

The logic lives in :mod:`seqdbr.charlm.cli`.
"""
import sys

from seqdbr.charlm.cli import train_main

if __name__ == '__main__':
    sys.exit(train_main())
