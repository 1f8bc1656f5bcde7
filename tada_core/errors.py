"""The one exception type for mistakes a user can make (bad path, file, flag, checkpoint).

Every entry point (CLI, app, Python API) catches :class:`TadaError` and shows its message,
which always says what went wrong and what to do about it.
"""


class TadaError(Exception):
    """A user-facing error whose message says what is wrong and how to fix it."""


class DataError(TadaError):
    """A domain, image or dataset could not be used."""


class CheckpointError(TadaError):
    """A checkpoint file is missing, unsafe, corrupt or does not fit the model."""


class ConfigError(TadaError):
    """A configuration value or flag is invalid."""


class DataWarning(UserWarning):
    """Something in the data was left out (e.g. unreadable images skipped); the run goes on.

    Issued once per domain with :func:`warnings.warn`; the CLI prints it as one line.
    """
