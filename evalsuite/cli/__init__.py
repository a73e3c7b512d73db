"""Command-line interface (click): commands parse options and call the engine, the report or the
fetch room; no logic lives here. Shared options are declared once in :mod:`.options`."""

from __future__ import annotations

import errno
import os
import signal
import sys
import threading

import click

from .._version import __version__
from ..errors import EvalsuiteError, Interrupted, note_interrupt


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="evalsuite")
@click.option("--debug", is_flag=True, help="Show full tracebacks for errors.")
@click.pass_context
def cli(ctx: click.Context, debug: bool) -> None:
    """Zero-shot evaluation of promptable segmentation models (EfficientSAM Table 4 / 5 protocols)."""
    ctx.obj = {"debug": debug}


def _register() -> None:
    """Commands live in their own modules, grouped by what they do."""
    from . import fetch, info, plot, report, run

    for module in (run, report, plot, fetch, info):
        module.register(cli)


_register()


def _interrupt(signum: int, frame: object) -> None:
    """Ctrl-C, or a SIGTERM (a scheduler ending the job), stops a run: finished work is kept.

    Noted first, so that an error the interrupt turns into inside library code is reported as the
    interruption (:func:`evalsuite.errors.note_interrupt`).
    """
    note_interrupt()
    raise KeyboardInterrupt


def main(argv: list[str] | None = None) -> int:
    """Entry point: user errors become one line and exit status 2 (1 for runtime failures)."""
    debug = "--debug" in (argv if argv is not None else sys.argv[1:]) or bool(
        os.environ.get("EVALSUITE_DEBUG")
    )
    on_main = threading.current_thread() is threading.main_thread()
    note_interrupt(False)
    if on_main:
        # SIGINT only where Python's own handler is in place (not where a parent set it to be ignored)
        ours = [signal.SIGTERM]
        if signal.getsignal(signal.SIGINT) is signal.default_int_handler:
            ours.append(signal.SIGINT)
        previous = {s: signal.signal(s, _interrupt) for s in ours}
    try:
        cli.main(args=argv, prog_name="evalsuite", standalone_mode=False)
    except Interrupted as e:
        click.echo(f"evalsuite: {e}", err=True)
        return e.exit_code
    except EvalsuiteError as e:
        if debug:
            raise
        click.echo(f"evalsuite: error: {e}", err=True)
        return e.exit_code
    except click.exceptions.Abort as e:  # click turns a KeyboardInterrupt (and Interrupted) into Abort
        if isinstance(e.__context__, Interrupted):
            click.echo(f"evalsuite: {e.__context__}", err=True)
            return e.__context__.exit_code
        click.echo("evalsuite: aborted", err=True)
        return 130
    except click.ClickException as e:
        e.show()
        return 2
    except KeyboardInterrupt:
        click.echo(
            "evalsuite: interrupted; finished images are kept, re-run the same command to resume", err=True
        )
        return 130
    except OSError as e:  # the file system said no: a full disk, a read-only or unwritable folder
        if debug:
            raise
        message, code = describe_os_error(e)
        click.echo(f"evalsuite: error: {message}", err=True)
        return code
    finally:
        note_interrupt(False)
        if on_main:
            for s, handler in previous.items():
                signal.signal(s, handler)
    return 0


def describe_os_error(e: OSError) -> tuple[str, int]:
    """One line and an exit status for a file-system failure outside evalsuite's own checks."""
    where = e.filename or "a file"
    if e.errno in (errno.ENOSPC, errno.EDQUOT):
        return (
            f"no space left on the device while writing {where}; finished images are kept: "
            "free some space and re-run the same command to resume",
            1,
        )
    if e.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
        return f"cannot write {where} ({e.strerror}); choose a writable --out folder", 2
    if e.errno in (errno.ENOTDIR, errno.EEXIST, errno.EISDIR):
        return f"{where}: {e.strerror}; --out must be a folder (or a path where one can be made)", 2
    return f"{where}: {e.strerror or e}", 1


if __name__ == "__main__":
    raise SystemExit(main())
