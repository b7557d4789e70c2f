"""`posedraw pose ...`: convert, render, show and detect poses.

Everything printed here is plain text: file names and pose values may hold `[` and `]`, which Rich would
take for markup. Notes from readers and writers (a frame chosen, something a format cannot hold) go to
stderr as lines starting with `note:`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table
from rich.text import Text

from posedraw.cli.common import writable_file
from posedraw.cli.options import CoordinateSpace, FormatName, FrameOption, ImageIdOption, print_notes, read_options
from posedraw.io import load_rgb, save_image_atomic
from posedraw.pose import (
    JOINTS,
    JointState,
    Pose,
    WriteOptions,
    draw_pose,
    pad_to_square,
    read_pose,
    render_skeleton,
    write_pose,
)

app = typer.Typer(help="Read, convert, draw and detect poses.", no_args_is_help=True)

FromOption = Annotated[
    FormatName | None, typer.Option("--from", help="Input format (default: detected from the content).")
]
CanvasOption = Annotated[
    str | None, typer.Option("--canvas", help="WIDTHxHEIGHT for files that store no canvas (plain OpenPose).")
]
CoordsOption = Annotated[
    CoordinateSpace | None,
    typer.Option("--coords", help="Coordinate space when the file is ambiguous (values all in 0..1)."),
]
KeepConfidenceOption = Annotated[
    bool,
    typer.Option(
        "--keep-confidence/--no-keep-confidence",
        metavar="",
        help="OpenPose output: write each joint's own confidence instead of 1.0 (ControlNet ignores joints below 1).",
    ),
]


def _people(pose: Pose) -> str:
    return "1 person" if pose.num_people == 1 else f"{pose.num_people} people"


def _read(path: Path, fmt: FormatName | None, canvas: str | None, coords: CoordinateSpace | None,
          image_id: str | None, frame: int | None = None) -> Pose:  # fmt: skip
    notes: list[str] = []
    pose = read_pose(path, None if fmt is None else fmt.value, read_options(canvas, coords, image_id, frame), notes)
    print_notes(notes)
    return pose


def _write(pose: Pose, target: Path, fmt: FormatName, keep_confidence: bool) -> None:
    notes: list[str] = []
    write_pose(pose, target, fmt.value, WriteOptions(keep_confidence=keep_confidence), notes)
    print_notes(notes)


@app.command()
def convert(
    source: Annotated[Path, typer.Argument(help="Pose file to read.")],
    target: Annotated[Path, typer.Argument(callback=writable_file, help="Pose file to write.")],
    from_format: FromOption = None,
    to_format: Annotated[FormatName, typer.Option("--to", help="Output format.")] = FormatName.posedraw,
    pad_square: Annotated[
        bool, typer.Option("--pad-square/--no-pad-square", metavar="", help="Pad the canvas to a square first.")
    ] = False,
    canvas: CanvasOption = None,
    coords: CoordsOption = None,
    image_id: ImageIdOption = None,
    frame: FrameOption = None,
    keep_confidence: KeepConfidenceOption = False,
) -> None:
    """Convert a pose file between formats; a note says what the output format cannot hold.

    Example: posedraw pose convert 1000846.json 1000846.openpose.json --to openpose
    """
    pose = _read(source, from_format, canvas, coords, image_id, frame)
    if pad_square:
        pose = pad_to_square(pose)
    _write(pose, target, to_format, keep_confidence)
    typer.echo(f"wrote {target} ({to_format.value}, {_people(pose)}, canvas {pose.width:g}x{pose.height:g})")


@app.command()
def render(
    source: Annotated[Path, typer.Argument(help="Pose file to draw.")],
    target: Annotated[Path, typer.Argument(callback=writable_file, help="Image to write (.png).")],
    size: Annotated[int | None, typer.Option("--size", min=8, help="Longer side of the image in pixels.")] = None,
    over: Annotated[Path | None, typer.Option("--over", help="Draw over this image instead of black.")] = None,
    from_format: FromOption = None,
    canvas: CanvasOption = None,
    coords: CoordsOption = None,
    image_id: ImageIdOption = None,
    frame: FrameOption = None,
) -> None:
    """Draw a pose as an OpenPose-style skeleton (with hands, face and feet), on black or over an image.

    Example: posedraw pose render pose.json pose.png --size 512
    """
    from PIL import Image

    pose = _read(source, from_format, canvas, coords, image_id, frame)
    if over is not None:
        image = Image.fromarray(load_rgb(over))
        if size is not None:
            factor = size / max(image.size)
            image = image.resize((max(1, round(image.width * factor)), max(1, round(image.height * factor))))
        picture = draw_pose(image, pose)
    else:
        picture = render_skeleton(pose, size)
    save_image_atomic(picture, target)
    typer.echo(f"wrote {target} ({picture.width}x{picture.height})")


def _joint_table(pose: Pose, p: int) -> Table:
    table = Table(title=f"person {p}")
    for column in ("joint", "x", "y", "state", "confidence"):
        table.add_column(column, justify="left" if column in ("joint", "state") else "right")
    for j, name in enumerate(JOINTS):
        state = JointState(int(pose.state[p, j]))
        present = state != JointState.ABSENT
        x, y = (f"{v:.1f}" for v in pose.xy[p, j]) if present else ("", "")
        confidence = "" if pose.confidence is None else f"{pose.confidence[p, j]:.3f}"
        table.add_row(*(Text(cell) for cell in (name, x, y, state.name.lower(), confidence)))
    return table


def _person_line(pose: Pose, p: int) -> str:
    """One person in a line: index, box of the present joints and per-person prompt."""
    box = pose.box(p)
    where = "no joint with a position" if box is None else "box x0 {:.1f} y0 {:.1f} x1 {:.1f} y1 {:.1f} px".format(*box)
    prompt = f"prompt {pose.prompt(p)!r}" if pose.prompt(p) else "no prompt"
    return f"person {p}: {where}, {prompt}"


@app.command()
def show(
    source: Annotated[Path, typer.Argument(help="Pose file to list.")],
    from_format: FromOption = None,
    canvas: CanvasOption = None,
    coords: CoordsOption = None,
    image_id: ImageIdOption = None,
    frame: FrameOption = None,
) -> None:
    """List the people (index, box, per-person prompt), then a table of the joints of every person and a line
    per part (neck / mid-hip, feet, hands, face).

    People are numbered from 0 in the file's order, the order of the parts of `generate --prompt "a | b"`.

    Example: posedraw pose show pose.json
    """
    pose = _read(source, from_format, canvas, coords, image_id, frame)
    console = Console(highlight=False, soft_wrap=True)
    console.print(Text(f"{source}: {_people(pose)}, canvas {pose.width:g}x{pose.height:g} px"))
    for p in range(pose.num_people):
        console.print(Text(_person_line(pose, p)))
    for p in range(pose.num_people):
        console.print(_joint_table(pose, p))
        for name, part in pose.parts.items():
            present = int(part.present[p].sum())
            console.print(Text(f"person {p} {name}: {present} of {part.num_points} points present"))


@app.command()
def detect(
    photo: Annotated[Path, typer.Argument(help="Photo with one person (png/jpg/webp).")],
    target: Annotated[Path, typer.Argument(callback=writable_file, help="Pose file to write.")],
    render_to: Annotated[Path | None, typer.Option("--render", help="Also draw the pose over the photo.")] = None,
    to_format: Annotated[FormatName, typer.Option("--to", help="Output format.")] = FormatName.posedraw,
    keep_confidence: KeepConfidenceOption = False,
) -> None:
    """Find the pose of the person in a photo (MediaPipe; install the 'detect' extra).

    Example: posedraw pose detect astronaut.png pose.json --render pose.png
    """
    from PIL import Image

    from posedraw.pose.detect import detect_pose

    image = load_rgb(photo)
    pose = detect_pose(image, source=str(photo))
    _write(pose, target, to_format, keep_confidence)
    typer.echo(f"wrote {target}: {int(pose.visible.sum())} visible, {int((pose.state == 1).sum())} occluded joints")
    if render_to is not None:
        save_image_atomic(draw_pose(Image.fromarray(image), pose), render_to)
        typer.echo(f"wrote {render_to}")
