"""Errors a user can act on. The CLI prints their message as one line, never a traceback."""

import errno


class PaperdigestError(Exception):
    """Base class: the message says what went wrong and what to do."""

    exit_code = 1


class NotFoundError(PaperdigestError):
    """No paper matches what the user typed."""


class AmbiguousError(PaperdigestError):
    """More than one paper matches what the user typed."""


class ConfigError(PaperdigestError):
    """The configuration file or an environment override is invalid."""

    exit_code = 2


class RunStopped(PaperdigestError):
    """A run of many digests was asked to stop (the daemon's SIGTERM) and did: what was
    on the wire is settled and every claim it held is marked, so nobody's digest is lost
    or doubled."""


def describe_os_error(exc: OSError) -> str:
    """An OS error in words a user acts on: a full disk says "disk full"."""
    if exc.errno in (errno.ENOSPC, errno.EDQUOT):
        return "disk full (no space left on the device)"
    if exc.errno == errno.EFBIG:
        return "disk full (file size limit reached)"
    if isinstance(exc, FileExistsError | NotADirectoryError):
        return f"{exc.strerror}: a file is in the way of a directory"
    return exc.strerror or str(exc)
