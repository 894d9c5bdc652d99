#!/usr/bin/env python3
"""Same as ``seqdbr-sample-wordlm``."""
import sys

from seqdbr.wordlm.cli import sample_main

if __name__ == '__main__':
    sys.exit(sample_main())
