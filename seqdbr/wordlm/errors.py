"""Errors of the word-LM programs.

Every error a user can cause (a bad flag, an unusable corpus, a broken checkpoint) derives
from :class:`WordLMError`, a ``ValueError``; the command-line front ends print its message
(what is wrong and how to fix it) and exit with status 2 instead of showing a traceback.
"""

__all__ = ['WordLMError', 'ConfigError', 'CheckpointError', 'SamplingError']


class WordLMError(ValueError):
    """Base class of the word-LM programs' user-facing errors."""


class ConfigError(WordLMError):
    """An invalid option or combination of options, or a corpus that cannot serve them."""


class CheckpointError(WordLMError):
    """A checkpoint cannot be read or used (not a word-LM snapshot, damaged meta data,
    weights that do not fit). The message names the file."""


class SamplingError(WordLMError):
    """Bad sampling options (temperature, top-k, length, a prime word outside the
    vocabulary)."""
