"""`posedraw studio`: the browser studio (pose editor, live preview, gallery) on a local web server."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer

from posedraw.cli.common import DeviceOption
from posedraw.errors import PosedrawError

DEFAULT_MODELS = ["builtin:diffusion", "builtin:transformer"]


def studio(
    model: Annotated[
        list[str] | None,
        typer.Option("--model", help="A model to draw with (repeat for several). Default: both built-in models."),
    ] = None,
    host: Annotated[
        str, typer.Option(help="Address to listen on; any but loopback exposes the studio to the network (token).")
    ] = "127.0.0.1",
    port: Annotated[int, typer.Option(min=1, max=65535, help="Port to listen on.")] = 7860,
    out: Annotated[Path, typer.Option(help="Gallery folder: every drawing is written here with its recipe.")] = Path(
        "studio-out"
    ),
    queue: Annotated[int, typer.Option(min=1, max=1000, help="Jobs waiting or running at most (more: 429).")] = 4,
    clip: Annotated[
        str | None, typer.Option("--clip", help="An open_clip model for the gallery's Tune button (none: no tuning).")
    ] = None,
    clip_pretrained: Annotated[str | None, typer.Option("--clip-pretrained", help="Its weights tag.")] = "openai",
    clip_weights: Annotated[Path | None, typer.Option("--clip-weights", help="Its local checkpoint file.")] = None,
    allow_host: Annotated[
        list[str] | None,
        typer.Option(
            "--allow-host", help="Another Host name to serve (NAME or NAME:PORT; repeatable), e.g. a proxy's."
        ),
    ] = None,
    token: Annotated[
        str | None,
        typer.Option(
            envvar="POSEDRAW_STUDIO_TOKEN",
            help="Access token every request must carry (auto: a new one). Default: a new one unless "
            "--host is loopback.",
        ),
    ] = None,
    device: DeviceOption = "auto",
) -> None:
    """Pose a character in the browser and watch it being drawn (http://HOST:PORT)."""
    from posedraw.devices import resolve_device
    from posedraw.io import check_writable_dir

    try:
        from posedraw.studio import server
        from posedraw.studio.app import Studio, create_app
        from posedraw.studio.jobs import JobQueue
        from posedraw.studio.requests import Limits, Models
        from posedraw.studio.security import LOOPBACK, Access, resolve_token, start_urls
    except ImportError as exc:
        missing = f"the studio needs its extra ({exc.name} is missing): pip install 'posedraw[studio]'"
        raise PosedrawError(missing) from None
    from posedraw.pipelines.loading import load_pipeline

    secret = resolve_token(host, token)
    access = Access.serving(host, port, allow_host or (), secret)
    device = resolve_device(device)
    check_writable_dir(out)
    names = list(dict.fromkeys(model or DEFAULT_MODELS))
    pipelines = {name: load_pipeline(name, device=device) for name in names}
    tuning = None
    if clip is not None:
        from posedraw.cli.tune import clip_spec
        from posedraw.studio.tuning import Tuning

        tuning = Tuning(clip_spec(clip, clip_pretrained, clip_weights))
    limits = Limits()
    studio = Studio(Models(pipelines, limits), out, JobQueue(queue), limits, tuning=tuning, access=access)
    app = create_app(studio)
    if host not in LOOPBACK:
        print(f"warning: --host {host} lets anyone who can reach this machine and has the token use the studio "
              "and its files", file=sys.stderr)  # fmt: skip
    urls = start_urls(host, port, secret)
    print(f"posedraw studio on {' or '.join(urls)} ({', '.join(names)}; gallery {out})", file=sys.stderr)
    server.serve(app, host, port, studio.jobs)
