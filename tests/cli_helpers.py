"""Running the real `posedraw` entry point in-process."""

from __future__ import annotations

from posedraw.cli.main import run


def run_cli(capsys, *argv: str) -> tuple[int, str, str]:
    try:
        run([str(a) for a in argv])
        code = 0
    except SystemExit as exc:
        code = int(exc.code or 0)
    out = capsys.readouterr()
    return code, out.out, out.err
