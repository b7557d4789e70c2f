"""The latent and code cache: a dataset encoded once by a VQ model, so training never runs the encoder.

For every sample the cache stores, in shards named like the source's:
  <id>.latent.npy       (2, C, h, w) float16 pre-quantization latents: [as is, horizontally flipped image]
  <id>.codes.npy        (2, h, w) int16/int32 code indices, same two orientations
  <id>.pose.json        the pose; <id>.pose_flip.json the flipped pose (left/right swapped)
Both orientations are encoded because flipping a latent is not the latent of the flipped image: the VQ
encoder's downsampling pads asymmetrically (right/bottom only) and its filters are not mirror-symmetric.
"""

from __future__ import annotations

import io
import json
import random
import tarfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image

from posedraw.data.images import to_tensor
from posedraw.data.shards import FIXED_MTIME, count_samples, decode_sample, read_raw_samples, shard_urls
from posedraw.data.stream import SampleStream, TarShards
from posedraw.errors import DataError
from posedraw.io import atomic_path, write_text_atomic
from posedraw.models.vq import encode, quantize
from posedraw.pose import dump_pose, flip_horizontal, parse_pose, resize
from posedraw.progress import progress as work_progress

LATENT_SCHEMA = "posedraw.latents/1"


def _npy(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, array, allow_pickle=False)
    return buffer.getvalue()


def _add(tar: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size, info.mtime, info.mode = len(data), FIXED_MTIME, 0o644
    tar.addfile(info, io.BytesIO(data))


@torch.no_grad()
def _encode_batch(vq, images: list[Image.Image], want_latents: bool, want_codes: bool) -> tuple[np.ndarray, np.ndarray]:
    device = next(vq.parameters()).device
    batch = torch.stack(
        [to_tensor(im) for im in images] + [to_tensor(im.transpose(Image.Transpose.FLIP_LEFT_RIGHT)) for im in images]
    )
    latents = encode(vq, batch.to(device))
    codes = quantize(vq, latents)[1] if want_codes else None
    n = len(images)
    lat = latents.float().cpu().numpy() if want_latents else None
    pairs_lat = np.stack([lat[:n], lat[n:]], axis=1).astype(np.float16) if lat is not None else None
    pairs_codes = None
    if codes is not None:
        dtype = np.int16 if vq.config.num_vq_embeddings <= 32767 else np.int32
        c = codes.cpu().numpy().astype(dtype)
        pairs_codes = np.stack([c[:n], c[n:]], axis=1)
    return pairs_lat, pairs_codes  # type: ignore[return-value]


def cache_dataset(
    dataset: str | Path,
    vq,
    out: Path,
    latents: bool = True,
    codes: bool = True,
    batch_size: int = 16,
    progress: bool = True,
) -> dict[str, Any]:
    """Encode every sample of `dataset` (resumable per shard); returns the cache's index."""
    if not (latents or codes):
        raise DataError("cache-latents: nothing to cache (choose --latents and/or --codes)")
    size = int(vq.config.sample_size)
    urls = shard_urls(dataset)
    (out / "shards").mkdir(parents=True, exist_ok=True)
    names, total = [], 0
    with work_progress("encoding shards", len(urls), progress) as advance:
        for url in urls:
            name = "shards/" + url.rsplit("/", 1)[-1]
            names.append(name)
            if not (out / name).is_file():
                total += _cache_shard(url, out / name, vq, size, latents, codes, batch_size)
            advance(1)
    index = {
        "schema": LATENT_SCHEMA,
        "source": str(dataset),
        "shards": names,
        "counts": [count_samples(str(out / n)) for n in names],
        "size": size,
        "latent_shape": list(encode(vq, torch.zeros(1, 3, size, size, device=next(vq.parameters()).device)).shape[1:]),
        "latents": latents,
        "codes": codes,
        "num_codes": int(vq.config.num_vq_embeddings),
    }
    write_text_atomic(out / "dataset.json", json.dumps(index, indent=1) + "\n")
    return index


def _cache_shard(url: str, path: Path, vq, size: int, latents: bool, codes: bool, batch_size: int) -> int:
    samples = [decode_sample(raw) for raw in read_raw_samples(url)]
    with atomic_path(path) as tmp, tarfile.open(tmp, "w", format=tarfile.USTAR_FORMAT) as tar:
        for start in range(0, len(samples), batch_size):
            chunk = samples[start : start + batch_size]
            images, poses = [], []
            for s in chunk:
                image, pose = s.image, s.pose
                if image.size != (size, size):
                    image, pose = image.resize((size, size), Image.Resampling.BICUBIC), resize(pose, size, size)
                images.append(image)
                poses.append(pose)
            lat, cod = _encode_batch(vq, images, latents, codes)
            for i, (s, pose) in enumerate(zip(chunk, poses)):
                if lat is not None:
                    _add(tar, f"{s.key}.latent.npy", _npy(lat[i]))
                if cod is not None:
                    _add(tar, f"{s.key}.codes.npy", _npy(cod[i]))
                _add(tar, f"{s.key}.pose.json", json.dumps(dump_pose(pose)).encode())
                _add(tar, f"{s.key}.pose_flip.json", json.dumps(dump_pose(flip_horizontal(pose))).encode())
                _add(tar, f"{s.key}.json", json.dumps(s.meta, sort_keys=True).encode())
    return len(samples)


def load_cache_index(cache: str | Path) -> dict[str, Any]:
    path = Path(cache) / "dataset.json"
    try:
        index = json.loads(path.read_text())
    except (OSError, ValueError):
        raise DataError(f"{cache}: not a latent cache (no readable dataset.json)") from None
    if index.get("schema") != LATENT_SCHEMA:
        raise DataError(f"{path}: expected schema {LATENT_SCHEMA!r}, got {index.get('schema')!r}")
    return index


def cache_source(cache: str | Path, kind: str = "latent") -> TarShards:
    """The shards of a latent cache that hold `kind` ("latent" or "codes"), with their sample counts."""
    if kind not in ("latent", "codes"):
        raise ValueError(f"kind: expected latent or codes, got {kind!r}")
    index = load_cache_index(cache)
    if not index.get("latents" if kind == "latent" else "codes"):
        raise DataError(f"{cache}: the cache holds no {kind}s (rebuild with --{kind}s)")
    urls = [str(Path(cache) / n) for n in index["shards"]]
    counts = index.get("counts")
    if not isinstance(counts, list) or len(counts) != len(urls):
        counts = [count_samples(u) for u in urls]
    return TarShards(urls, [int(c) for c in counts])


@dataclass(frozen=True)
class CachedSample:
    """Decoder of cache items: the latent (or codes) and pose of one orientation, flipped with probability
    `flip` (both orientations are stored, so a flip is exact)."""

    kind: str = "latent"
    flip: float = 0.5

    def flipped(self, rng: random.Random) -> bool:
        """Whether the sample of `rng` is drawn flipped: the sample's first draw (a device-resident cache
        makes the same draw to pick the same orientation, data/device_cache.py)."""
        return rng.random() < self.flip

    def __call__(self, raw: dict[str, Any], rng: random.Random) -> dict[str, Any]:
        return self.orientation(raw, self.flipped(rng))

    def orientation(self, raw: dict[str, Any], flipped: bool) -> dict[str, Any]:
        """The sample as stored (`flipped` False) or its flipped twin."""
        array = np.load(io.BytesIO(raw[f"{self.kind}.npy"]))[int(flipped)]
        pose = parse_pose(json.loads(raw["pose_flip.json" if flipped else "pose.json"]), "posedraw")
        value = torch.from_numpy(array.astype(np.float32 if self.kind == "latent" else np.int64))
        return {"key": raw["__key__"], self.kind: value, "pose": pose, "flipped": flipped, "tags": sample_tags(raw)}


def sample_tags(raw: dict[str, Any]) -> list[str]:
    """The tags of a cached sample (its metadata's `tags`, or a Danbooru `tag_string`); none if it has none."""
    try:
        meta = json.loads(raw["json"]) if "json" in raw else {}
    except ValueError:
        return []
    tags = meta.get("tags") if isinstance(meta, dict) else None
    if isinstance(tags, list):
        return [str(t) for t in tags]
    if isinstance(meta, dict) and isinstance(meta.get("tag_string"), str):
        return meta["tag_string"].split()
    return []


def cache_tags(cache: str | Path, kind: str = "latent") -> list[list[str]]:
    """Every cached sample's tags, in stored order (to build a tag vocabulary)."""
    source = cache_source(cache, kind)
    return [sample_tags(raw) for shard in range(len(source.counts)) for raw in source.read(shard)]


def cache_stream(
    cache: str | Path, kind: str = "latent", seed: int = 0, flip: float = 0.5, epochs: int | None = None
) -> SampleStream:
    """Training samples of a latent cache, reshuffled every epoch (endless unless `epochs`)."""
    return SampleStream(cache_source(cache, kind), CachedSample(kind, flip), seed=seed, epochs=epochs)


def read_cache(cache: str | Path, kind: str = "latent", limit: int | None = None) -> list[dict[str, Any]]:
    """The first `limit` samples of a cache in stored order, unflipped (validation and held-out sets)."""
    source, decode, samples = cache_source(cache, kind), CachedSample(kind, flip=0.0), []
    for shard in range(len(source.counts)):
        for raw in source.read(shard):
            if limit is not None and len(samples) >= limit:
                return samples
            samples.append(decode(raw, random.Random(0)))
    return samples


def collate_cached(samples: list[dict[str, Any]]) -> dict[str, Any]:
    kind = "latent" if "latent" in samples[0] else "codes"
    return {
        kind: torch.stack([s[kind] for s in samples]),
        "pose": [s["pose"] for s in samples],
        "key": [s["key"] for s in samples],
        "tags": [s.get("tags", []) for s in samples],
    }


__all__ = [
    "CachedSample", "cache_dataset", "cache_source", "cache_stream", "cache_tags", "collate_cached", "read_cache",
    "sample_tags",
]  # fmt: skip
