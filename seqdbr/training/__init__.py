"""Training utilities shared by the example applications.

``evaluate`` / ``MeanAccumulator`` (example-weighted metric means),
``classifier_metrics`` (a model_fn for ``L.Classifier``) and ``JsonlLogger`` /
``read_jsonl`` / ``rewrite_jsonl`` (JSON-lines logs). See ``seqdbr.training.evaluator``.
"""
from seqdbr.training.evaluator import (JsonlLogger, MeanAccumulator,  # noqa: F401
                                       classifier_metrics, evaluate, read_jsonl,
                                       rewrite_jsonl)

__all__ = ['JsonlLogger', 'MeanAccumulator', 'classifier_metrics', 'evaluate', 'read_jsonl',
           'rewrite_jsonl']
