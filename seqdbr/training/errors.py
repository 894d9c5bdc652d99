"""Errors of the training framework. Each message says what went wrong and how to fix it."""
from seqdbr.core.serializers import SerializationError

__all__ = ['TrainingError', 'TrainingDiverged', 'SnapshotError', 'OutputError', 'WriteError']


class TrainingError(Exception):
    """Base class of the training framework's user-facing errors."""


class TrainingDiverged(TrainingError, RuntimeError):
    """A loss became NaN/inf or grew past the divergence guard's limit; the run stopped
    without saving that state.

    Attributes:
        iteration (int): the iteration that tripped the guard.
        loss (float): the offending value.
    """

    def __init__(self, message, iteration, loss):
        super().__init__(message)
        self.iteration = iteration
        self.loss = loss


class SnapshotError(TrainingError, SerializationError):
    """A snapshot cannot be written, read or used (damaged file, another program's or
    another model's snapshot, other settings). The message names the file. A
    ``SerializationError`` (hence a ``ValueError``) too."""


class OutputError(TrainingError, ValueError):
    """The output folder (or a file in it) cannot be used: it is a file, it is not
    writable, or a resumed run's log is damaged."""


class WriteError(TrainingError, RuntimeError):
    """A write during training failed (disk full, permissions changed); the run stopped and
    the files written before are intact."""
