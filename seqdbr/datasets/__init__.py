"""Datasets and data plumbing: checksum-verified downloads, MNIST, TupleDataset, iterators.

Public API::

    cache_dir, download_file, ensure_file, sha256_file, DownloadError   (download)
    get_mnist, read_idx                                                 (mnist)
    TupleDataset                                                        (tuple_dataset)
    SerialIterator, concat_examples                                     (iterators)
    WordVocabulary, load_words, load_ptb                                (ptb: word corpora)
"""
from seqdbr.datasets.download import (DownloadError, cache_dir, download_file,  # NOQA
                                      ensure_file, sha256_file)
from seqdbr.datasets.iterators import SerialIterator, concat_examples  # NOQA
from seqdbr.datasets.mnist import get_mnist, read_idx  # NOQA
from seqdbr.datasets.tuple_dataset import TupleDataset  # NOQA
from seqdbr.datasets.ptb import WordVocabulary, load_ptb, load_words  # NOQA

__all__ = ['DownloadError', 'SerialIterator', 'TupleDataset', 'cache_dir', 'concat_examples',
           'download_file', 'ensure_file', 'get_mnist', 'read_idx', 'sha256_file',
           'WordVocabulary', 'load_ptb', 'load_words']
from seqdbr.datasets.dates import load_dates  # NOQA  (human dates -> ISO, generated)
