"""Errors that the CLI turns into one clear line and an exit status.

Everything a user can cause (a missing file, an unknown name, a malformed
annotation) is an :class:`EvalsuiteError` carrying a hint; anything else is a
bug and keeps its traceback.
"""

from __future__ import annotations


class EvalsuiteError(Exception):
    """Base class: a message for the user plus an optional hint on what to do."""

    exit_code = 1

    def __init__(self, message: str, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return self.message if not self.hint else f"{self.message}\n  hint: {self.hint}"


class InputError(EvalsuiteError):
    """Bad input from the user: files, names, options. Exit status 2."""

    exit_code = 2


class DataNotFoundError(InputError):
    """A dataset, annotation file or image is not where it was looked for."""


class UnknownNameError(InputError):
    """An unknown protocol or model name (the message carries a 'did you mean')."""


class UnsupportedPromptError(InputError):
    """A protocol asks a model for a prompt kind it does not take."""


class ResumeConflictError(InputError):
    """An output folder holds a run made with different settings."""


#: set by the CLI's SIGINT / SIGTERM handlers (see :func:`note_interrupt`)
_interrupt_pending = False


def note_interrupt(pending: bool = True) -> None:
    """Say that an interrupt is (or is no longer) on its way.

    A signal handler raises where the main thread happens to be; inside library code (numpy's
    ``__array__`` protocol under pycocotools, seen in a test) the KeyboardInterrupt can come out as
    that library's own error, which evalsuite would then report as bad input. The run loop asks
    :func:`interrupt_pending` before reporting any error, and reports the interruption instead.
    """
    global _interrupt_pending
    _interrupt_pending = pending


def interrupt_pending() -> bool:
    return _interrupt_pending


class Interrupted(KeyboardInterrupt):
    """Ctrl-C or SIGTERM during a run: finished work is kept (exit status 130, as for SIGINT).

    A KeyboardInterrupt, so that Python callers (a notebook) stop as they expect and ``except
    Exception`` never swallows it; the message says what was kept and how to resume.
    """

    exit_code = 130

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


def did_you_mean(name: str, choices: list[str] | tuple[str, ...]) -> str:
    """A short 'did you mean' suffix for an unknown name ('' when nothing is close)."""
    import difflib

    close = difflib.get_close_matches(name, list(choices), n=3, cutoff=0.5)
    return f" Did you mean: {', '.join(close)}?" if close else ""
