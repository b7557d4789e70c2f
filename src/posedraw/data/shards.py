"""The dataset format: WebDataset-style tar shards plus a manifest.

    <dataset>/
      dataset.json            {"schema": "posedraw.dataset/1", "shards": [...], "size": 256, ...}
      shards/000000.tar ...   per sample: <id>.png|.jpg (image), <id>.pose.json (posedraw pose), <id>.json (metadata)
      manifest.jsonl          one row per input: id, shard, source, canvas, tags, visible_joints, status, reason, pose

Tar members carry a fixed modification time and are written in sorted order, so the same inputs give
byte-identical shards. Shards are written to a temporary name and renamed: a shard file is complete or
absent. Readers take local paths or any fsspec URL (s3://, gs://, https://).
"""

from __future__ import annotations

import io
import json
import tarfile
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import fsspec
from PIL import Image
from webdataset.tariterators import group_by_keys, tar_file_iterator

from posedraw.errors import DataError
from posedraw.io import atomic_path, write_text_atomic
from posedraw.pose import Pose, dump_pose, parse_pose

SCHEMA = "posedraw.dataset/1"
FIXED_MTIME = 946684800  # 2000-01-01: reproducible tar headers


@dataclass
class Sample:
    key: str
    image: Image.Image
    pose: Pose
    meta: dict[str, Any] = field(default_factory=dict)


def _encode_image(image: Image.Image, image_format: str) -> bytes:
    buffer = io.BytesIO()
    if image_format == "jpg":
        image.convert("RGB").save(buffer, format="JPEG", quality=95, subsampling=0)
    else:
        image.convert("RGB").save(buffer, format="PNG", optimize=False, compress_level=6)
    return buffer.getvalue()


def _add(tar: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size, info.mtime, info.mode, info.uname, info.gname = len(data), FIXED_MTIME, 0o644, "", ""
    tar.addfile(info, io.BytesIO(data))


def write_shard(path: Path, samples: Iterable[Sample], image_format: str = "png") -> int:
    """Write samples (sorted by key) to a tar shard atomically; returns the number written."""
    count = 0
    with atomic_path(path) as tmp, tarfile.open(tmp, "w", format=tarfile.USTAR_FORMAT) as tar:
        for sample in sorted(samples, key=lambda s: s.key):
            _add(tar, f"{sample.key}.{image_format}", _encode_image(sample.image, image_format))
            _add(tar, f"{sample.key}.pose.json", json.dumps(dump_pose(sample.pose)).encode())
            _add(tar, f"{sample.key}.json", json.dumps(sample.meta, sort_keys=True).encode())
            count += 1
    return count


def _open(url: str):
    try:
        return fsspec.open(url, "rb").open()
    except (OSError, ValueError) as exc:
        raise DataError(f"{url}: cannot open shard ({exc.__class__.__name__}: {exc})") from None


def read_raw_samples(url: str) -> Iterator[dict[str, Any]]:
    """The raw samples of one shard: {'__key__': id, '<ext>': bytes, ...}."""
    stream = _open(url)
    try:
        files = tar_file_iterator(stream)
        yield from group_by_keys({**f, "__url__": url} for f in files)
    finally:
        stream.close()


def decode_sample(raw: dict[str, Any]) -> Sample:
    image_bytes = raw.get("png") or raw.get("jpg")
    if image_bytes is None or "pose.json" not in raw:
        raise DataError(f"{raw.get('__url__')}: sample {raw.get('__key__')} lacks an image or a pose")
    image = Image.open(io.BytesIO(image_bytes)).convert("RGB")
    pose = parse_pose(json.loads(raw["pose.json"]), "posedraw")
    meta = json.loads(raw["json"]) if "json" in raw else {}
    return Sample(raw["__key__"], image, pose, meta)


def write_dataset_index(root: Path, shards: list[str], size: int, image_format: str, extra: dict | None = None) -> None:
    info = {"schema": SCHEMA, "shards": shards, "size": size, "image_format": image_format, **(extra or {})}
    write_text_atomic(root / "dataset.json", json.dumps(info, indent=1) + "\n")


def shard_urls(dataset: str | Path) -> list[str]:
    """The shard URLs of a dataset folder (local or fsspec URL) from its dataset.json."""
    return [url for url, _ in dataset_shards(dataset)]


def dataset_shards(dataset: str | Path) -> list[tuple[str, int]]:
    """(shard URL, sample count) of every shard of a dataset folder; counts come from dataset.json, or are
    counted once in the shards of datasets built before the index recorded them."""
    base = str(dataset).rstrip("/")
    info = _read_index(dataset, base)
    urls = [f"{base}/{name}" for name in info["shards"]]
    counts = info.get("counts")
    if not isinstance(counts, list) or len(counts) != len(urls):
        counts = [count_samples(url) for url in urls]
    return list(zip(urls, (int(c) for c in counts)))


def count_samples(url: str) -> int:
    """Samples in one shard (distinct member keys), read from the tar headers."""
    stream = _open(url)
    try:
        return sum(1 for _ in group_by_keys({**f, "__url__": url} for f in tar_file_iterator(stream)))
    finally:
        stream.close()


def _read_index(dataset: str | Path, base: str) -> dict[str, Any]:
    try:
        with fsspec.open(f"{base}/dataset.json", "rt") as handle:
            info = json.load(handle)
    except FileNotFoundError:
        raise DataError(f"{dataset}: not a posedraw dataset (no dataset.json)") from None
    except (OSError, ValueError) as exc:
        raise DataError(f"{dataset}/dataset.json: unreadable ({exc.__class__.__name__})") from None
    if info.get("schema") != SCHEMA:
        raise DataError(f"{dataset}/dataset.json: expected schema {SCHEMA!r}, got {info.get('schema')!r}")
    return info


def read_manifest(path: str | Path) -> list[dict[str, Any]]:
    rows = []
    try:
        with fsspec.open(str(path), "rt") as handle:
            for number, line in enumerate(handle, 1):
                if line.strip():
                    try:
                        rows.append(json.loads(line))
                    except json.JSONDecodeError:
                        raise DataError(f"{path}: line {number} is not JSON") from None
    except FileNotFoundError:
        raise DataError(f"{path}: no such manifest") from None
    return rows


def manifest_line(row: dict[str, Any]) -> str:
    return json.dumps(row, sort_keys=True) + "\n"
