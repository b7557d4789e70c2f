"""Writing datasets shard by shard: resumable, splittable across machines, parallel, with an exact account.

Inputs are sorted by id and cut into shards of `per_shard` inputs, so shard n always holds the same
inputs. Each shard is built by one worker process and written with its part of the manifest
(`parts/<n>.jsonl`, one row per input: kept, or skipped with a reason) and a fingerprint of what it was
built from (`parts/<n>.fingerprint`: the sample maker's settings, filters included, the image format,
and each input's path, size and modification time). A shard whose tar, part and matching fingerprint
exist is done and reused, which makes interrupted builds resume; a shard whose inputs or filters changed
is rebuilt (`rebuild` rebuilds every shard), and the temporary files of a build that was killed while
writing (SIGKILL, power loss) are removed before its shards are built again. `shard_index / num_shards`
selects every num_shards-th shard, so a cluster array job can split the work. When every part exists, the
parts are merged into `manifest.jsonl` and `dataset.json`, and the counts are checked: every input is in
a shard or skipped with a reason.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import multiprocessing
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Generic, TypeVar

from posedraw.data.shards import Sample, manifest_line, write_dataset_index, write_shard
from posedraw.errors import DataError
from posedraw.io import remove_stale_temps, write_text_atomic
from posedraw.progress import progress as work_progress

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
    shards_listed: int | None = None  # shards holding samples (dataset.json), once complete

    def lines(self) -> list[str]:
        lines = [f"inputs {self.inputs}: kept {self.kept}, skipped {sum(self.skipped.values())}"]
        lines += [f"  skipped: {reason}: {n}" for reason, n in sorted(self.skipped.items(), key=lambda kv: -kv[1])]
        line = f"shards built {self.shards_built}, reused {self.shards_reused}"
        if self.shards_listed is not None:
            empty = self.shards_built + self.shards_reused - self.shards_listed
            line += f"; dataset.json lists {self.shards_listed}" + (f" ({empty} held no kept sample)" if empty else "")
        lines.append(line)
        if not self.complete:
            lines.append("other shards are still missing (another machine's part?): manifest not merged yet")
        return lines


def shard_name(shard: int) -> str:
    return f"shards/{shard:06d}.tar"


def _part(out: Path, shard: int) -> Path:
    return out / "parts" / f"{shard:06d}.jsonl"


def _fingerprint_file(out: Path, shard: int) -> Path:
    return out / "parts" / f"{shard:06d}.fingerprint"


def _describe(value: Any) -> Any:
    """What a shard is built from, as JSON: files (Paths, and the `input_files()` of an input that has
    them) by path, size and modification time; other values by their contents."""
    if isinstance(value, Path):
        stat = value.stat() if value.exists() else None
        return [str(value), stat.st_size if stat else None, stat.st_mtime_ns if stat else None]
    if isinstance(value, (list, tuple)):
        return [_describe(v) for v in value]
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        fields = {f.name: _describe(getattr(value, f.name)) for f in dataclasses.fields(value)}
        files = getattr(value, "input_files", None)
        return fields if files is None else {**fields, "files": _describe(list(files()))}
    if isinstance(value, (str, int, float, bool, type(None))):
        return value
    return repr(value)


def fingerprint(items: Sequence[Any], make: MakeSample, image_format: str) -> str:
    """The fingerprint of one shard's inputs and settings (see the module docstring)."""
    recipe = {"make": type(make).__qualname__, "settings": _describe(make), "format": image_format,
              "items": _describe(list(items))}  # fmt: skip
    return hashlib.sha256(json.dumps(recipe, sort_keys=True, default=repr).encode()).hexdigest()


def _done(out: Path, shard: int, expected: str | None = None) -> bool:
    if not ((out / shard_name(shard)).is_file() and _part(out, shard).is_file()):
        return False
    if expected is None:
        return True
    stored = _fingerprint_file(out, shard)
    return stored.is_file() and stored.read_text().strip() == expected


def _remove_unfinished(out: Path, shards: Sequence[int], whole_folder: bool) -> None:
    """Delete the temporary files a killed build of `shards` left. Only this machine's shards: another
    machine may be writing its own at this moment, and the merged manifest and index only when this build
    is the only one writing the folder."""
    remove_stale_temps(out / "shards", [Path(shard_name(s)).name for s in shards])
    remove_stale_temps(out / "parts", [f.name for s in shards for f in (_part(out, s), _fingerprint_file(out, s))])
    if whole_folder:
        remove_stale_temps(out, ["manifest.jsonl", "dataset.json"])


def _build_one(args: tuple[Path, int, Sequence[Any], MakeSample, str]) -> int:
    out, shard, items, make, image_format = args
    _fingerprint_file(out, shard).unlink(missing_ok=True)  # a half-rebuilt shard is never taken for done
    samples, rows = [], []
    for item in items:
        sample, row = make(item)
        rows.append({**row, "shard": shard_name(shard) if sample is not None else None})
        if sample is not None:
            samples.append(sample)
    write_shard(out / shard_name(shard), samples, image_format)
    write_text_atomic(_part(out, shard), "".join(manifest_line(r) for r in sorted(rows, key=lambda r: r["id"])))
    write_text_atomic(_fingerprint_file(out, shard), fingerprint(items, make, image_format) + "\n")
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
    rebuild: bool = False,
) -> BuildReport:
    """Build (or resume) this machine's shards, then merge the manifest if every shard exists. Shards built
    from other inputs or settings are rebuilt; `rebuild` rebuilds them all."""
    if not 0 <= shard_index < num_shards:
        raise DataError(f"--shard-index: expected 0..{num_shards - 1}, got {shard_index}")
    mine = [s for s in range(plan.count) if s % num_shards == shard_index]
    prints = {s: fingerprint(plan.items_of(s), make, image_format) for s in mine}
    todo = [s for s in mine if rebuild or not _done(out, s, prints[s])]
    (out / "shards").mkdir(parents=True, exist_ok=True)
    (out / "parts").mkdir(parents=True, exist_ok=True)
    _remove_unfinished(out, mine, whole_folder=num_shards == 1)
    jobs = [(out, s, plan.items_of(s), make, image_format) for s in todo]
    with work_progress("building shards", len(jobs), progress) as advance:
        if workers > 1 and len(jobs) > 1:
            # spawn, not fork: the parent holds torch's thread pools (and perhaps a CLIP), which forked
            # children inherit in a state they cannot use safely
            with multiprocessing.get_context("spawn").Pool(workers) as pool:
                for _ in pool.imap_unordered(_build_one, jobs):
                    advance(1)
        else:
            for job in jobs:
                _build_one(job)
                advance(1)
    complete = all(_done(out, s) for s in range(plan.count))
    rows = _merge(out, plan, size, image_format, extra_index) if complete else _rows(out, mine)
    kept = sum(r["status"] == "kept" for r in rows)
    skipped = Counter(r["reason"] for r in rows if r["status"] != "kept")
    inputs = len(plan.items) if complete else sum(len(plan.items_of(s)) for s in mine)
    if kept + sum(skipped.values()) != inputs:
        raise DataError(f"{out}: {inputs} inputs but {kept} kept + {sum(skipped.values())} skipped: a part is damaged")
    listed = len({r["shard"] for r in rows if r["shard"] and r["status"] == "kept"}) if complete else None
    return BuildReport(inputs, kept, dict(skipped), len(todo), len(mine) - len(todo), complete, listed)


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
