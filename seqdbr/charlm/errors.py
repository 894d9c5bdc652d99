"""Errors of the char-RNN application.

Every error a user can cause (a bad flag, an unusable corpus, a broken checkpoint, a
diverging run) derives from :class:`CharLMError`; the command-line front ends print its
message (which says what is wrong and how to fix it) and exit with status 1 or 2 instead of
showing a traceback.
"""

__all__ = ['CharLMError', 'ConfigError', 'CheckpointError', 'TrainingDiverged',
           'SamplingError']


class CharLMError(Exception):
    """Base class of the application's user-facing errors."""


class ConfigError(CharLMError, ValueError):
    """An invalid option or combination of options (e.g. fractions that sum above 1)."""


class CheckpointError(CharLMError, ValueError):
    """A checkpoint cannot be read or used: truncated/corrupt file, newer format, mismatched
    model, non-finite weights. The message names the file."""


class TrainingDiverged(CharLMError, RuntimeError):
    """The loss became NaN/inf or grew above the divergence threshold; training stopped.

    Attributes:
        iteration (int): the iteration whose loss triggered the guard.
        loss (float): that loss (nats/char).
    """

    def __init__(self, message, iteration, loss):
        super().__init__(message)
        self.iteration = iteration
        self.loss = loss


class SamplingError(CharLMError, ValueError):
    """Sampling cannot proceed: bad temperature/top-k, or the model produced non-finite
    logits."""
