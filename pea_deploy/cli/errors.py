"""How every command ends: library errors become one stderr line and the class's exit code."""

from __future__ import annotations

import functools
import os
import sys

import click

from ..errors import PeaError
from ..outcomes import ExitCode


def one_line(text: str) -> str:
    return " ".join(str(text).split())


def handle_errors(prog: str):
    """Wrap a command body: PeaError -> `prog: error: ...` + its exit code; anything unexpected ->
    one line naming the exception (PEA_DEBUG=1 shows the traceback) and exit 1."""

    def wrap(fn):
        @functools.wraps(fn)
        def inner(*args, **kwargs):
            try:
                return fn(*args, **kwargs)
            except PeaError as e:
                if os.environ.get("RANK", "0") == "0":  # distributed: one line, from rank 0
                    click.echo(f"{prog}: error: {one_line(e)}", err=True)
                sys.exit(int(e.exit_code))
            except (click.exceptions.Exit, click.ClickException, click.Abort):
                raise
            except BrokenPipeError:  # the reader (e.g. `| head`) left: stop quietly, as a shell tool does
                os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
                sys.exit(141)
            except KeyboardInterrupt:
                click.echo(f"{prog}: interrupted", err=True)
                sys.exit(int(ExitCode.INTERRUPTED))
            except Exception as e:  # the last line of defence: never a traceback for a user
                if os.environ.get("PEA_DEBUG"):
                    raise
                click.echo(f"{prog}: internal error: {type(e).__name__}: {one_line(e)} "
                           f"(set PEA_DEBUG=1 for the traceback)", err=True)
                sys.exit(int(ExitCode.FAILED))

        return inner

    return wrap
