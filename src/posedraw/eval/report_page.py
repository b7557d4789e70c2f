"""The evaluation report as one static HTML page that opens offline.

Everything the page shows is inside it: no script, no style sheet or font from elsewhere, and every image
(the plots, the drawings with their poses) embedded as a PNG `data:` URI, so the page can be mailed or
archived alone. It holds the summary table (one column per run, with the differences from the first run
under `--compare`), the breakdowns per pose kind and per number of people, one plot per metric against
the runs (guidance, checkpoint or folder) with a line per pose kind, and for each run the drawings that
followed their pose best and worst (by OKS), each with the asked-for pose and the detected one drawn on it.
"""

from __future__ import annotations

import base64
import html
import io
from collections.abc import Sequence
from typing import Any

import numpy as np
from PIL import Image

#: the metrics of the summary, with their headings (higher is better unless marked)
METRICS = {
    "ap": "AP (OKS)", "ap50": "AP50", "ap75": "AP75", "ar": "AR (OKS)", "ar50": "AR50", "ar75": "AR75",
    "pck@0.1": "PCK@0.1", "oks": "OKS",
    "left_right_swap_rate": "left/right swaps (lower is better)",
    "person_count_error": "person count error (lower is better)",
    "attribute_accuracy": "attribute accuracy", "clip_score": "CLIP score",
}  # fmt: skip
#: the metrics plotted (the AP/AR at one threshold only in the table), then any image distance
PLOTTED = ("ap", "ar", "pck@0.1", "oks", "left_right_swap_rate", "person_count_error", "attribute_accuracy",
           "clip_score")  # fmt: skip
BREAKDOWN = ("drawings", "people", "ap", "ar", "pck@0.1", "oks", "left_right_swap_rate", "person_count_error")
STYLE = """
body { font-family: sans-serif; margin: 1.5em; color: #222; }
table { border-collapse: collapse; margin: 0.5em 0 1.5em; }
th, td { border: 1px solid #bbb; padding: 0.25em 0.6em; text-align: right; }
th:first-child, td:first-child { text-align: left; }
.plots img { max-width: 32em; margin: 0.3em; border: 1px solid #ddd; }
figure { display: inline-block; margin: 0.3em; font-size: 0.8em; text-align: center; }
figure img { image-rendering: pixelated; display: block; }
"""


def data_uri(image: Image.Image) -> str:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def cell(value: Any) -> str:
    if value is None:
        return "–"
    if isinstance(value, float):
        return f"{value:.4g}"
    return html.escape(str(value))


def table(table_id: str, header: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    head = "".join(f"<th>{html.escape(str(h))}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{cell(v)}</td>" for v in row) + "</tr>" for row in rows)
    return f'<table id="{table_id}"><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>'


def summary_metrics(data: dict) -> list[str]:
    """The summary's rows: the known metrics any run has, then any distance (FD_*, KID, ...) it has."""
    present = {k for run in data["runs"].values() for k, v in run["metrics"].items() if v is not None}
    extra = sorted(k for k in present if k not in METRICS and k not in ("drawings", "people", "attributes_scored"))
    return ["drawings", "people", *[k for k in METRICS if k in present], *extra]


def summary_table(data: dict) -> str:
    runs = data["runs"]
    labels = list(runs)
    diffs = data.get("differences", {})
    header = ["metric", *labels, *(f"Δ {name}" for name in diffs)]
    rows = [[METRICS.get(m, m), *(runs[r]["metrics"].get(m) for r in labels), *(d.get(m) for d in diffs.values())]
            for m in summary_metrics(data)]  # fmt: skip
    return table("summary", header, rows)


def breakdown_tables(data: dict, key: str, title: str) -> str:
    parts = []
    for label, run in data["runs"].items():
        rows = [[group, *(metrics.get(m) for m in BREAKDOWN)] for group, metrics in run[key].items()]
        parts.append(f"<h3>{html.escape(label)}</h3>" + table(f"{key}-{len(parts)}", [title, *BREAKDOWN], rows))
    return "".join(parts)


def run_axis(data: dict) -> tuple[str, list[float] | None]:
    """The x axis of the plots: a numeric setting when it alone tells the runs apart, else the run labels."""
    varying = data["grouped_by"]
    values = [run["settings"].get(varying) for run in data["runs"].values()]
    if all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values):
        return varying, [float(v) for v in values]
    return ("folder" if varying == "folder" else "run"), None


def metric_plot(data: dict, metric: str) -> Image.Image | None:
    """One metric against the runs: a line for all drawings and one per pose kind."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    runs = list(data["runs"].values())
    overall = [run["metrics"].get(metric) for run in runs]
    if all(v is None for v in overall):
        return None
    name, xs = run_axis(data)
    x = np.array(xs if xs is not None else range(len(runs)), dtype=float)
    figure, axes = plt.subplots(figsize=(5, 3.2), dpi=90)
    kinds = list(dict.fromkeys(k for run in runs for k in run.get("per_kind", {})))
    for kind in kinds if metric in BREAKDOWN else []:
        ys = [run["per_kind"].get(kind, {}).get(metric) for run in runs]
        axes.plot(x, [np.nan if v is None else v for v in ys], marker=".", linewidth=1, alpha=0.7, label=kind)
    axes.plot(x, [np.nan if v is None else v for v in overall], marker="o", color="black", linewidth=2, label="all")
    if xs is None:
        axes.set_xticks(x, [label.replace(", ", "\n") for label in data["runs"]], fontsize=7)
    axes.set_xlabel(name)
    axes.set_title(METRICS.get(metric, metric), fontsize=10)
    axes.legend(fontsize=6, ncol=2)
    figure.subplots_adjust(left=0.14, right=0.97, top=0.9, bottom=0.3 if xs is None else 0.17)
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    plt.close(figure)
    return Image.open(io.BytesIO(buffer.getvalue()))


def plots(data: dict) -> str:
    images = []
    distances = [m for m in summary_metrics(data) if m not in METRICS and m.startswith(("fid", "kid", "FD_", "KD_"))]
    for metric in [*PLOTTED, *(m for m in distances if not m.endswith(("_std", "_size")))]:
        plot = metric_plot(data, metric)
        if plot is not None:
            images.append(f'<img alt="{html.escape(metric)}" src="{data_uri(plot)}">')
    return '<div class="plots">' + "".join(images) + "</div>"


def drawing_tile(report, index: int, long_side: int = 128) -> Image.Image:
    """The drawing, the asked-for pose on it and the detected pose on it, side by side."""
    from posedraw.pipelines.outputs import side_by_side
    from posedraw.pose.render import draw_pose

    drawing = report.scores.drawings[index]
    image = Image.fromarray(drawing.pixels.permute(1, 2, 0).numpy())
    scale = max(1, long_side // max(image.size))
    image = image.resize((image.width * scale, image.height * scale), Image.Resampling.NEAREST)
    return side_by_side([image, draw_pose(image, drawing.pose), draw_pose(image, report.scores.detected[index])])


def drawing_grid(report, best: int) -> str:
    """For each run, the `best` drawings with the highest OKS and the `best` with the lowest."""
    parts = []
    for label, rows in report.runs.items():
        order = sorted(rows, key=lambda i: (report.scores.oks[i], str(report.scores.drawings[i].path)))
        top = order[::-1][:best]
        worst = [i for i in order[:best] if i not in top]  # a small run shows each drawing once
        parts.append(f"<h3>{html.escape(label)}</h3>")
        for title, picked in (("best", top), ("worst", worst)):
            figures = "".join(drawing_figure(report, i) for i in picked)
            parts.append(f'<div class="grid {title}"><h4>{title} by OKS</h4>{figures}</div>')
    return "".join(parts)


def drawing_figure(report, index: int) -> str:
    name = html.escape(report.scores.drawings[index].path.name)
    scores = f"OKS {report.scores.oks[index]:.3f}, PCK {report.scores.pck[index]:.3f}"
    tile = data_uri(drawing_tile(report, index))
    return f'<figure><img src="{tile}" alt="{name}"><figcaption>{name}<br>{scores}</figcaption></figure>'


def settings_list(data: dict) -> str:
    reference = data["reference"]
    items = {
        "folders": ", ".join(data["folders"]),
        "detector": f"{data['detector']} (counts {data['detector_counts']})",
        "runs grouped by": data["grouped_by"],
        "reference images": "none (no FID/KID)" if reference is None else
                            f"{reference['images']} from {reference['folder']}, features: {reference['extractor']}",
        "CLIP score": data["clip"] or "not measured (no --clip)",
    }  # fmt: skip
    return (
        "<ul>" + "".join(f"<li><b>{html.escape(k)}</b>: {html.escape(str(v))}</li>" for k, v in items.items()) + "</ul>"
    )


def render_page(report, best: int = 8) -> str:
    """The whole page (see the module docstring)."""
    data = report.data
    diffs = "" if "differences" not in data else "<p>Δ columns: each run less the first.</p>"
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8"><title>posedraw evaluation report</title>'
        f"<style>{STYLE}</style></head><body><h1>posedraw evaluation report</h1>{settings_list(data)}"
        f"<h2>Summary</h2>{diffs}{summary_table(data)}"
        f"<h2>Per pose kind</h2>{breakdown_tables(data, 'per_kind', 'kind')}"
        f"<h2>Per number of people</h2>{breakdown_tables(data, 'per_people', 'people')}"
        f"<h2>Plots</h2>{plots(data)}"
        f"<h2>Best and worst drawings</h2><p>Each: the drawing, the asked-for pose on it, the detected pose on it."
        f"</p>{drawing_grid(report, best)}</body></html>\n"
    )
