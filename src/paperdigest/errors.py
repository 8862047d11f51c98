"""Errors a user can act on. The CLI prints their message as one line, never a traceback."""


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
