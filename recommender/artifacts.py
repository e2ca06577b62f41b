"""Model artifacts: one directory per version of ``.npy`` files, memory-mapped by every worker.

Each array is its own uncompressed ``.npy`` file, so a worker maps it (``mmap_mode="r"``)
rather than reading it: the pages live once in the host's page cache, shared by all gunicorn
workers of the host, and a worker's own memory does not grow with the number of viewers.

Contents (numpy arrays only, never pickles, so a file cannot run code):

- ``movies`` (slugs) and ``viewers`` (ids, sorted): rows and columns below follow them;
- ``top``: the precomputed best unseen movies per known viewer;
- ``seen_indptr``/``seen_indices``: what each viewer had seen at training time (CSR);
- ``ranker_*``: the fitted ranker (``recommender.learning.ranking.Ranker``): a sparse
  item-item matrix (EASE, item-kNN), factors (ALS) or popularity, to rank a changed history;
- ``popular`` and ``cold_keys``/``cold_lists``: cold-start lists, overall and per demographic;
- ``rating_mu``/``rating_bu``/``rating_bi``/``rating_pu``/``rating_qi``: the rating model's
  baselines and factors, aligned to the same viewers and movies;
- ``evaluation_*``: the held-out measurement per rating (viewer, estimate, truth) and per
  viewer (NDCG@10, recall@10), from which the fairness report computes its figures per group.

``manifest.json`` lists each file with its sha256, dtype and shape, and the version's
metadata. The registry records the manifest's sha256, so one hash covers every file. Loading
checks the manifest, then each file (read in chunks, never all at once): a missing or altered
file is an ``ArtifactError`` naming it, never a silent fallback.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import shutil
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import scipy.sparse as sp

from catalog.demographics import cold_start_keys
from recommender.learning.pipeline import TrainedModels
from recommender.learning.ranking import Ranker, ranker_of_arrays
from recommender.learning.rating import Blend

FORMAT = 2
MANIFEST = "manifest.json"
COLD_LIST_LENGTH = 50
COLD_MIN_VIEWERS = 20
SHRINK_RATINGS = 10
RANKER_PREFIX = "ranker_"
EVALUATION_PREFIX = "evaluation_"  # the held-out measurement per rating and per viewer (fairness)


class ArtifactError(Exception):
    """A model artifact that is missing, unreadable or not the files the registry recorded."""


@dataclass
class Artifact:
    path: Path
    sha256: str
    meta: dict[str, Any]
    arrays: dict[str, np.ndarray]

    def __getitem__(self, name: str) -> np.ndarray:
        return self.arrays[name]

    def ranker(self) -> Ranker:
        arrays = {
            name.removeprefix(RANKER_PREFIX): array
            for name, array in self.arrays.items()
            if name.startswith(RANKER_PREFIX)
        }
        return ranker_of_arrays(self.meta["ranker_kind"], arrays, len(self.arrays["movies"]))

    def evaluation(self) -> dict[str, np.ndarray]:
        """The held-out measurement per rating and per viewer (``EVALUATION_ARRAYS``); empty
        for an artifact trained before it was kept."""
        return {
            name.removeprefix(EVALUATION_PREFIX): array
            for name, array in self.arrays.items()
            if name.startswith(EVALUATION_PREFIX)
        }


def artifact_build(
    models: TrainedModels, *, demographics: dict[int, tuple[int | None, str, str]], meta: dict[str, Any]
) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """The artifact's metadata and arrays; the arrays are views of the models where possible."""
    index, seen = models.index, models.seen
    popular, cold_keys, cold_lists = _cold_start(models, demographics)
    arrays = {
        "movies": np.array(index.movies, dtype=str),
        "viewers": index.viewers.astype(np.int64),
        "top": models.top.astype(np.int32, copy=False),
        "seen_indptr": seen.indptr.astype(np.int64),
        "seen_indices": seen.indices.astype(np.int32, copy=False),
        **{RANKER_PREFIX + name: array for name, array in models.ranker_model.arrays.items()},
        "popular": popular,
        "cold_keys": np.array(cold_keys, dtype=str),
        "cold_lists": cold_lists,
        **rating_arrays(models),
        **{EVALUATION_PREFIX + name: array for name, array in models.evaluation.items()},
    }
    meta = {
        **meta,
        "format": FORMAT,
        "ranker_kind": models.ranker_model.kind,
        "viewers": len(index.viewers),
        "movies": len(index.movies),
    }
    return meta, arrays


def _cold_start(
    models: TrainedModels, demographics: dict[int, tuple[int | None, str, str]]
) -> tuple[np.ndarray, list[str], np.ndarray]:
    """Popular and well-rated: a rating mean shrunk toward the global mean, times log(count).

    Per group, the sums come from one sparse product (groups by viewers) times (viewers by movies)."""
    index, seen, ratings = models.index, models.seen, models.ratings
    global_mean = float(models.trainset.global_mean) if models.trainset.n_ratings else 3.5
    groups: dict[str, list[int]] = defaultdict(list)
    for row, viewer in enumerate(index.viewers.tolist()):
        age, gender, _ = demographics.get(viewer, (None, "", ""))
        keys = cold_start_keys(age, gender)
        for key in keys:
            groups[key].append(row)
    keys = sorted(key for key, rows in groups.items() if len(rows) >= COLD_MIN_VIEWERS)
    membership = sp.csr_matrix(
        (
            np.ones(sum(len(groups[key]) for key in keys), np.float32),
            (np.repeat(np.arange(len(keys)), [len(groups[key]) for key in keys]),
             np.concatenate([groups[key] for key in keys]) if keys else np.array([], np.int64)),
        ),
        shape=(len(keys), len(index.viewers)),
    )  # fmt: skip
    everyone = sp.csr_matrix(np.ones((1, len(index.viewers)), np.float32))
    rated = ratings.copy()
    rated.data[:] = 1.0

    def ranked(members: sp.csr_matrix) -> np.ndarray:
        counts = (members @ seen).toarray()
        shrunk = ((members @ ratings).toarray() + SHRINK_RATINGS * global_mean) / (
            (members @ rated).toarray() + SHRINK_RATINGS
        )
        order = np.argsort(-(shrunk * np.log1p(counts)), axis=1, kind="stable")[:, :COLD_LIST_LENGTH]
        return order.astype(np.int32)

    lists = ranked(membership) if keys else np.zeros((0, min(COLD_LIST_LENGTH, len(index.movies))), np.int32)
    return ranked(everyone)[0], keys, lists


def rating_arrays(models: TrainedModels) -> dict[str, np.ndarray]:
    """The rating model's biases and factors in the index's order (scikit-surprise numbers its
    viewers and movies its own way)."""
    index, trainset, rating = models.index, models.trainset, models.rating
    factor_model = rating.svd if isinstance(rating, Blend) else rating
    pu_source = getattr(factor_model, "pu", None)
    qi_source = getattr(factor_model, "qi", None)
    k = pu_source.shape[1] if pu_source is not None else 0
    bu = np.zeros(len(index.viewers), dtype=np.float32)
    bi = np.zeros(len(index.movies), dtype=np.float32)
    pu = np.zeros((len(index.viewers), k), dtype=np.float32)
    qi = np.zeros((len(index.movies), k), dtype=np.float32)
    inner_users = np.fromiter(trainset.all_users(), dtype=np.int64, count=trainset.n_users)
    inner_items = np.fromiter(trainset.all_items(), dtype=np.int64, count=trainset.n_items)
    rows = index.rows(np.array([trainset.to_raw_uid(u) for u in inner_users.tolist()], dtype=np.int64))
    columns = np.array([trainset.to_raw_iid(i) for i in inner_items.tolist()], dtype=np.int64)
    known = rows >= 0
    user_bias, item_bias = getattr(rating, "bu", None), getattr(rating, "bi", None)
    if user_bias is not None:
        bu[rows[known]] = np.asarray(user_bias)[inner_users[known]]
    if item_bias is not None:
        bi[columns] = np.asarray(item_bias)[inner_items]
    if k and pu_source is not None and qi_source is not None:
        pu[rows[known]] = np.asarray(pu_source)[inner_users[known]]
        qi[columns] = np.asarray(qi_source)[inner_items]
    return {
        "rating_mu": np.array(float(trainset.global_mean), dtype=np.float64),
        "rating_bu": bu,
        "rating_bi": bi,
        "rating_pu": pu,
        "rating_qi": qi,
    }


def artifact_write(path: Path, *, meta: dict[str, Any], arrays: dict[str, np.ndarray]) -> tuple[str, int]:
    """Write the directory atomically (a temporary directory, then a rename); returns the
    manifest's sha256 and the total size in bytes."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    if temporary.exists():
        shutil.rmtree(temporary)
    temporary.mkdir()
    files: dict[str, dict[str, Any]] = {}
    total = 0
    for name, array in arrays.items():
        file = temporary / f"{name}.npy"
        np.save(file, array, allow_pickle=False)
        size = file.stat().st_size
        files[name] = {"sha256": _file_sha256(file), "bytes": size, "dtype": str(array.dtype), "shape": array.shape}
        total += size
    manifest = json.dumps({"format": FORMAT, "meta": meta, "files": files}, indent=1, sort_keys=True).encode()
    (temporary / MANIFEST).write_bytes(manifest)
    if path.exists():
        shutil.rmtree(path)
    os.replace(temporary, path)
    return hashlib.sha256(manifest).hexdigest(), total + len(manifest)


def _file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _verified_manifest(path: Path, *, sha256: str) -> tuple[dict[str, dict[str, Any]], dict[str, Any]]:
    """The manifest's files and meta, once the manifest and every file match their sha256."""
    if path.is_file():
        raise ArtifactError(f"model artifact {path} is a single file from an older recsite: retrain to serve it")
    try:
        manifest_bytes = (path / MANIFEST).read_bytes()
    except FileNotFoundError:
        raise ArtifactError(f"model artifact {path} is missing") from None
    except OSError as error:
        raise ArtifactError(f"model artifact {path} cannot be read: {error.strerror}") from None
    actual = hashlib.sha256(manifest_bytes).hexdigest()
    if actual != sha256:
        raise ArtifactError(
            f"model artifact {path} is corrupt: manifest sha256 {actual[:16]}..., expected {sha256[:16]}..."
        )
    try:
        manifest = json.loads(manifest_bytes)
        files: dict[str, dict[str, Any]] = manifest["files"]
        meta: dict[str, Any] = manifest["meta"]
    except (ValueError, KeyError, TypeError) as error:
        raise ArtifactError(f"model artifact {path} is not a recsite artifact: {error}") from None
    for name, recorded in files.items():
        file = path / f"{name}.npy"
        try:
            digest = _file_sha256(file)
        except OSError as error:
            raise ArtifactError(f"model artifact {path}: {file.name} cannot be read: {error.strerror}") from None
        if digest != recorded["sha256"]:
            raise ArtifactError(f"model artifact {path} is corrupt: {file.name} does not match its sha256")
    return files, meta


def artifact_verify(artifact: Artifact) -> None:
    """Hash a loaded artifact's files again (ArtifactError if they changed): a file changed in
    place under a mapping is read as it is now, so loading is not the only moment to check."""
    _verified_manifest(artifact.path, sha256=artifact.sha256)


def artifact_load(path: Path, *, sha256: str) -> Artifact:
    """Check and map an artifact: the arrays are read-only views of the files' pages."""
    files, meta = _verified_manifest(path, sha256=sha256)
    arrays: dict[str, np.ndarray] = {}
    for name in files:
        file = path / f"{name}.npy"
        try:
            array = np.load(file, mmap_mode="r", allow_pickle=False)
        except (ValueError, OSError) as error:
            raise ArtifactError(f"model artifact {path}: {file.name} is not a numpy array: {error}") from None
        # A mapped scalar is a one-element view that numpy will not turn into a float: read it.
        arrays[name] = np.array(array) if array.ndim == 0 else array
    return Artifact(path=path, sha256=sha256, meta=meta, arrays=arrays)


def predict_rating(artifact: Artifact, *, viewer_row: int | None, movie_column: int) -> float:
    """The rating model's estimate (baselines plus factors), clipped to 1-5."""
    estimate = float(artifact["rating_mu"]) + float(artifact["rating_bi"][movie_column])
    if viewer_row is not None:
        estimate += float(artifact["rating_bu"][viewer_row])
        if artifact["rating_pu"].shape[1]:
            estimate += float(artifact["rating_pu"][viewer_row] @ artifact["rating_qi"][movie_column])
    return min(5.0, max(1.0, estimate)) if math.isfinite(estimate) else 3.0
