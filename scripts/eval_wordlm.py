#!/usr/bin/env python3
"""Same as ``seqdbr-eval-wordlm``."""
import sys

from seqdbr.wordlm.cli import eval_main

if __name__ == '__main__':
    sys.exit(eval_main())
