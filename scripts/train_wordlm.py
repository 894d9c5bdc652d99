#!/usr/bin/env python3
"""Train a word-level LSTM language model (same as ``seqdbr-train-wordlm``)."""
import sys

from seqdbr.wordlm.cli import train_main

if __name__ == '__main__':
    sys.exit(train_main())
