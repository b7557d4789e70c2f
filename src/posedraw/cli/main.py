"""Entry point of the `posedraw` command.

Errors a user can fix (PosedrawError) print as one line on stderr with exit code 2; no traceback. The
message is printed as literal text: file names and expected forms such as `{joint: [row, col]}` contain
brackets that Rich would otherwise take for markup.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence

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


def run(argv: Sequence[str] | None = None) -> None:
    """Run the CLI; user errors become one line on stderr and exit code 2."""
    try:
        app(args=list(argv) if argv is not None else None, prog_name="posedraw")
    except PosedrawError as exc:
        line = Text.assemble(("error:", "bold red"), " ", str(exc))
        Console(stderr=True, highlight=False, soft_wrap=True).print(line)
        sys.exit(USAGE_ERROR)
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


if __name__ == "__main__":
    run()
