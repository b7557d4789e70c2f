"""Entry point of the `posedraw` command, and its one error-reporting path.

Failures a user can fix print as one line on stderr, `error: ...`, with exit code 2 and no traceback:
posedraw's own errors (PosedrawError), command-line usage errors (a missing option, a value out of range),
and OS errors on the user's paths (permission denied, disk full, a file where a folder is expected).
Anything else is a bug and keeps its traceback. `posedraw --debug ...` shows tracebacks for everything.
Messages are printed as literal text: file names and expected forms such as `{joint: [row, col]}`
contain brackets that Rich would otherwise take for markup.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from typing import Annotated

import click
import typer
from rich.console import Console
from rich.text import Text

from posedraw.cli import convert as convert_cli
from posedraw.cli import data as data_cli
from posedraw.cli import demo as demo_cli
from posedraw.cli import evaluate as eval_cli
from posedraw.cli import generate as generate_cli
from posedraw.cli import pose as pose_cli
from posedraw.cli import studio as studio_cli
from posedraw.cli import train as train_cli
from posedraw.cli import tune as tune_cli
from posedraw.cli import vq as vq_cli
from posedraw.errors import PosedrawError, TrainingInterrupted

app = typer.Typer(
    name="posedraw",
    help="Draw anime characters in a pose you choose. Example: posedraw pose show pose.json",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
app.add_typer(pose_cli.app, name="pose")
app.add_typer(train_cli.app, name="train")
app.add_typer(convert_cli.app, name="convert")
app.add_typer(vq_cli.app, name="vq")
app.add_typer(data_cli.app, name="data")
app.add_typer(eval_cli.app, name="eval")
app.command("generate")(generate_cli.generate)
app.command("tune")(tune_cli.tune)

app.command("demo")(demo_cli.demo)
app.command("studio")(studio_cli.studio)

USAGE_ERROR = 2


def _click_kinds(name: str) -> tuple[type[BaseException], ...]:
    """Click's exception class `name`, and typer's vendored copy of it (typer >= 0.20 ships its own click)."""
    kinds = [getattr(click.exceptions, name)]
    try:
        from typer._click import exceptions as vendored

        kinds.append(getattr(vendored, name))
    except (ImportError, AttributeError):
        pass
    return tuple(kinds)


CLICK_ERRORS, NO_ARGS, ABORT = _click_kinds("ClickException"), _click_kinds("NoArgsIsHelpError"), _click_kinds("Abort")


@app.callback()
def main(
    debug: Annotated[
        bool, typer.Option("--debug", metavar="", help="Show the traceback of every error (for bug reports).")
    ] = False,
) -> None:
    """Draw anime characters in a pose you choose. Example: posedraw pose show pose.json"""
    # declared here for --help; `run` reads it from the arguments, since errors can come before this runs


def error_line(exc: BaseException) -> str:
    """The one line a user sees for an expected failure."""
    if isinstance(exc, OSError) and not isinstance(exc, PosedrawError):
        reason = exc.strerror or " ".join(str(exc).split()) or exc.__class__.__name__
        if exc.filename is None:  # posedraw's writers name their file; this comes from deeper down
            return f"{reason} (the file is not named: posedraw --debug ... shows where)"
        return f"{exc.filename}: {reason}"
    if isinstance(exc, CLICK_ERRORS):
        return " ".join(exc.format_message().split())  # type: ignore[attr-defined]
    return " ".join(str(exc).splitlines()) or exc.__class__.__name__


def say_error(exc: BaseException) -> None:
    line = Text.assemble(("error:", "bold red"), " ", error_line(exc))
    Console(stderr=True, highlight=False, soft_wrap=True).print(line)


def run(argv: Sequence[str] | None = None) -> None:
    """Run the CLI; user errors become one line on stderr and exit code 2 (see the module docstring)."""
    args = list(argv) if argv is not None else sys.argv[1:]
    debug = args[:1] == ["--debug"]
    try:
        code = app(args=args, prog_name="posedraw", standalone_mode=False)
    except NO_ARGS as exc:
        context = getattr(exc, "ctx", None)
        print(context.get_help() if context else "usage: posedraw COMMAND --help", file=sys.stderr)
        sys.exit(USAGE_ERROR)
    except (PosedrawError, *CLICK_ERRORS, OSError) as exc:
        if debug:
            raise
        say_error(exc)
        sys.exit(USAGE_ERROR)
    except ABORT:
        Console(stderr=True).print("interrupted")
        sys.exit(130)
    except TrainingInterrupted as exc:
        # saved: rank 0 says so and exits 128 + signal like a killed process; the other ranks stopped on
        # purpose too, and exit 0 so that launchers do not take them for failed ranks
        if exc.rank != 0:
            sys.exit(0)
        print(exc, file=sys.stderr)
        sys.exit(exc.exit_code)
    except KeyboardInterrupt:
        Console(stderr=True).print("interrupted")
        sys.exit(130)
    if isinstance(code, int) and code:
        sys.exit(code)


if __name__ == "__main__":
    run()
