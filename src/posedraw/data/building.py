"""Writing datasets shard by shard: resumable, splittable across machines, parallel, with an exact account.

Inputs are sorted by id and cut into shards of `per_shard` inputs, so shard n always holds the same
inputs. Each shard is built by one worker process and written with its part of the manifest
(`parts/<n>.jsonl`, one row per input: kept, or skipped with a reason); a shard whose tar and part both
exist is done and never rebuilt, which makes interrupted builds resume. `shard_index / num_shards`
selects every num_shards-th shard, so a cluster array job can split the work. When every part exists, the
parts are merged into `manifest.jsonl` and `dataset.json`, and the counts are checked: every input is in
a shard or skipped with a reason.
"""

from __future__ import annotations

import json
import multiprocessing
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Generic, TypeVar

from rich.progress import Progress

from posedraw.data.shards import Sample, manifest_line, write_dataset_index, write_shard
from posedraw.errors import DataError
from posedraw.io import write_text_atomic

T = TypeVar("T")
#: make(item) -> (sample or None, manifest row). The row always has "id" and "status" ("kept" / "skipped").
MakeSample = Callable[[Any], tuple[Sample | None, dict[str, Any]]]


@dataclass(frozen=True)
class ShardPlan(Generic[T]):
    items: Sequence[T]
    per_shard: int

    @property
    def count(self) -> int:
        return (len(self.items) + self.per_shard - 1) // self.per_shard

    def items_of(self, shard: int) -> Sequence[T]:
        return self.items[shard * self.per_shard : (shard + 1) * self.per_shard]


@dataclass(frozen=True)
class BuildReport:
    inputs: int
    kept: int
    skipped: dict[str, int]
    shards_built: int
    shards_reused: int
    complete: bool  # all shards of all machines exist and the manifest was merged

    def lines(self) -> list[str]:
        lines = [f"inputs {self.inputs}: kept {self.kept}, skipped {sum(self.skipped.values())}"]
        lines += [f"  skipped: {reason}: {n}" for reason, n in sorted(self.skipped.items(), key=lambda kv: -kv[1])]
        lines.append(f"shards built {self.shards_built}, reused {self.shards_reused}")
        if not self.complete:
            lines.append("other shards are still missing (another machine's part?): manifest not merged yet")
        return lines


def shard_name(shard: int) -> str:
    return f"shards/{shard:06d}.tar"


def _part(out: Path, shard: int) -> Path:
    return out / "parts" / f"{shard:06d}.jsonl"


def _done(out: Path, shard: int) -> bool:
    return (out / shard_name(shard)).is_file() and _part(out, shard).is_file()


def _build_one(args: tuple[Path, int, Sequence[Any], MakeSample, str]) -> int:
    out, shard, items, make, image_format = args
    samples, rows = [], []
    for item in items:
        sample, row = make(item)
        rows.append({**row, "shard": shard_name(shard) if sample is not None else None})
        if sample is not None:
            samples.append(sample)
    write_shard(out / shard_name(shard), samples, image_format)
    write_text_atomic(_part(out, shard), "".join(manifest_line(r) for r in sorted(rows, key=lambda r: r["id"])))
    return shard


def build_dataset(
    out: Path,
    plan: ShardPlan,
    make: MakeSample,
    size: int,
    image_format: str = "png",
    shard_index: int = 0,
    num_shards: int = 1,
    workers: int = 1,
    progress: bool = True,
    extra_index: dict | None = None,
) -> BuildReport:
    """Build (or resume) this machine's shards, then merge the manifest if every shard exists."""
    if not 0 <= shard_index < num_shards:
        raise DataError(f"--shard-index: expected 0..{num_shards - 1}, got {shard_index}")
    mine = [s for s in range(plan.count) if s % num_shards == shard_index]
    todo = [s for s in mine if not _done(out, s)]
    (out / "shards").mkdir(parents=True, exist_ok=True)
    (out / "parts").mkdir(parents=True, exist_ok=True)
    jobs = [(out, s, plan.items_of(s), make, image_format) for s in todo]
    with Progress(disable=not progress, transient=True) as bar:
        task = bar.add_task("building shards", total=len(jobs))
        if workers > 1 and len(jobs) > 1:
            with multiprocessing.get_context("fork").Pool(workers) as pool:
                for _ in pool.imap_unordered(_build_one, jobs):
                    bar.advance(task)
        else:
            for job in jobs:
                _build_one(job)
                bar.advance(task)
    complete = all(_done(out, s) for s in range(plan.count))
    rows = _merge(out, plan, size, image_format, extra_index) if complete else _rows(out, mine)
    kept = sum(r["status"] == "kept" for r in rows)
    skipped = Counter(r["reason"] for r in rows if r["status"] != "kept")
    inputs = len(plan.items) if complete else sum(len(plan.items_of(s)) for s in mine)
    if kept + sum(skipped.values()) != inputs:
        raise DataError(f"{out}: {inputs} inputs but {kept} kept + {sum(skipped.values())} skipped: a part is damaged")
    return BuildReport(inputs, kept, dict(skipped), len(todo), len(mine) - len(todo), complete)


def _rows(out: Path, shards: Sequence[int]) -> list[dict[str, Any]]:
    rows = []
    for shard in shards:
        rows += [json.loads(line) for line in _part(out, shard).read_text().splitlines() if line.strip()]
    return rows


def _merge(out: Path, plan: ShardPlan, size: int, image_format: str, extra: dict | None) -> list[dict[str, Any]]:
    rows = _rows(out, range(plan.count))
    write_text_atomic(out / "manifest.jsonl", "".join(manifest_line(r) for r in rows))
    per_shard = Counter(r["shard"] for r in rows if r["shard"] and r["status"] == "kept")
    used = sorted(per_shard)
    extra = {"samples": sum(per_shard.values()), "counts": [per_shard[s] for s in used], **(extra or {})}
    write_dataset_index(out, used, size, image_format, extra)
    return rows
