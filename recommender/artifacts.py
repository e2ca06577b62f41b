"""Model artifacts: one ``.npz`` file per version holding what serving needs to answer fast.

Contents (numpy arrays only, loaded with ``allow_pickle=False``, so a file cannot run code):

- ``movies`` (slugs) and ``viewers`` (ids): the id maps; rows and columns below follow them;
- ``top``: the precomputed best unseen movies per known viewer;
- ``seen_indptr``/``seen_indices``: what each viewer had seen at training time (CSR);
- ``weights``: the ranker's item-item matrix (EASE or item-kNN), to rank a changed history;
- ``popular`` and ``cold_keys``/``cold_lists``: cold-start lists, overall and per demographic;
- ``rating_mu``/``rating_bu``/``rating_bi``/``rating_pu``/``rating_qi``: the rating model's
  baselines and factors, aligned to the same viewers and movies;
- ``meta``: JSON with the version's algorithm, parameters and shapes.

Loading checks the file's sha256 against the registry: a missing or altered file is an
``ArtifactError`` naming the file, never a silent fallback.
"""

from __future__ import annotations

import hashlib
import io
import json
import math
import os
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from catalog.demographics import age_bucket
from recommender.learning.pipeline import TrainedModels
from recommender.learning.rating import Blend

COLD_LIST_LENGTH = 50
COLD_MIN_VIEWERS = 20
SHRINK_RATINGS = 10


class ArtifactError(Exception):
    """A model artifact that is missing, unreadable or not the file the registry recorded."""


@dataclass
class Artifact:
    path: Path
    sha256: str
    meta: dict[str, Any]
    arrays: dict[str, np.ndarray]

    def __getitem__(self, name: str) -> np.ndarray:
        return self.arrays[name]


def artifact_build(
    models: TrainedModels, *, demographics: dict[int, tuple[int | None, str, str]], meta: dict[str, Any]
) -> dict[str, np.ndarray]:
    index = models.index
    seen = models.seen > 0
    indptr = np.concatenate([[0], np.cumsum(seen.sum(axis=1))]).astype(np.int64)
    indices = np.nonzero(seen)[1].astype(np.int32)
    popular, cold_keys, cold_lists = _cold_start(models, demographics)
    rating = rating_arrays(models)
    return {
        "meta": np.array(json.dumps({**meta, "viewers": len(index.viewers), "movies": len(index.movies)})),
        "movies": np.array(index.movies, dtype=str),
        "viewers": np.array(index.viewers, dtype=np.int64),
        "top": models.top.astype(np.int32),
        "seen_indptr": indptr,
        "seen_indices": indices,
        "weights": models.weights if models.weights is not None else np.zeros((0, 0), dtype=np.float32),
        "popular": popular,
        "cold_keys": np.array(cold_keys, dtype=str),
        "cold_lists": cold_lists,
        **rating,
    }


def _cold_start(
    models: TrainedModels, demographics: dict[int, tuple[int | None, str, str]]
) -> tuple[np.ndarray, list[str], np.ndarray]:
    """Popular and well-rated: a rating mean shrunk toward the global mean, times log(count)."""
    index, seen = models.index, models.seen
    scores = np.zeros((len(index.viewers), len(index.movies)), dtype=np.float32)
    trainset = models.trainset
    for inner_user, ratings in trainset.ur.items():
        row = index.viewer_index.get(trainset.to_raw_uid(inner_user))
        if row is None:
            continue
        for inner_item, score in ratings:
            column = index.movie_index.get(trainset.to_raw_iid(inner_item))
            if column is not None:
                scores[row, column] = score
    global_mean = float(trainset.global_mean) if trainset.n_ratings else 3.5

    def ranked(rows: np.ndarray | slice) -> np.ndarray:
        counts = seen[rows].sum(axis=0)
        rated = (scores[rows] > 0).sum(axis=0)
        shrunk = (scores[rows].sum(axis=0) + SHRINK_RATINGS * global_mean) / (rated + SHRINK_RATINGS)
        return np.argsort(-(shrunk * np.log1p(counts)), kind="stable")[:COLD_LIST_LENGTH].astype(np.int32)

    groups: dict[str, list[int]] = defaultdict(list)
    for row, viewer in enumerate(index.viewers):
        age, gender, _ = demographics.get(viewer, (None, "", ""))
        keys = [f"gender:{gender}"] if gender else []
        if age is not None:
            keys.append(f"age:{age_bucket(age)}")
            if gender:
                keys.append(f"gender:{gender}|age:{age_bucket(age)}")
        for key in keys:
            groups[key].append(row)
    keys = sorted(key for key, rows in groups.items() if len(rows) >= COLD_MIN_VIEWERS)
    lists = np.array([ranked(np.array(groups[key])) for key in keys], dtype=np.int32).reshape(len(keys), -1)
    return ranked(slice(None)), keys, lists


def rating_arrays(models: TrainedModels) -> dict[str, np.ndarray]:
    index, trainset, rating = models.index, models.trainset, models.rating
    factor_model = rating.svd if isinstance(rating, Blend) else rating
    bu = np.zeros(len(index.viewers), dtype=np.float32)
    bi = np.zeros(len(index.movies), dtype=np.float32)
    pu_source = getattr(factor_model, "pu", None)
    qi_source = getattr(factor_model, "qi", None)
    k = pu_source.shape[1] if pu_source is not None else 0
    pu = np.zeros((len(index.viewers), k), dtype=np.float32)
    qi = np.zeros((len(index.movies), k), dtype=np.float32)
    user_bias = getattr(rating, "bu", None)
    item_bias = getattr(rating, "bi", None)
    for row, viewer in enumerate(index.viewers):
        if trainset.knows_user(inner := _inner(trainset.to_inner_uid, viewer)):
            bu[row] = user_bias[inner] if user_bias is not None else 0.0
            if k and pu_source is not None:
                pu[row] = pu_source[inner]
    for column, movie in enumerate(index.movies):
        if trainset.knows_item(inner := _inner(trainset.to_inner_iid, movie)):
            bi[column] = item_bias[inner] if item_bias is not None else 0.0
            if k and qi_source is not None:
                qi[column] = qi_source[inner]
    return {
        "rating_mu": np.array(float(trainset.global_mean), dtype=np.float64),
        "rating_bu": bu,
        "rating_bi": bi,
        "rating_pu": pu,
        "rating_qi": qi,
    }


def _inner(convert: Callable[[Any], Any], raw: object) -> int:
    """scikit-surprise's inner id for a raw one, or -1 when the trainset does not know it."""
    try:
        return int(convert(raw))
    except ValueError:
        return -1


def artifact_write(path: Path, arrays: dict[str, np.ndarray]) -> tuple[str, int]:
    """Write atomically (temporary file, then rename); returns (sha256, size in bytes)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    buffer = io.BytesIO()
    # Uncompressed: float matrices barely compress, and serving workers load faster without it.
    np.savez(buffer, allow_pickle=False, **arrays)
    data = buffer.getvalue()
    temporary = path.with_suffix(".tmp")
    temporary.write_bytes(data)
    os.replace(temporary, path)
    return hashlib.sha256(data).hexdigest(), len(data)


def artifact_load(path: Path, *, sha256: str) -> Artifact:
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise ArtifactError(f"model artifact {path} is missing") from None
    except OSError as error:
        raise ArtifactError(f"model artifact {path} cannot be read: {error.strerror}") from None
    actual = hashlib.sha256(data).hexdigest()
    if actual != sha256:
        raise ArtifactError(f"model artifact {path} is corrupt: sha256 {actual[:16]}..., expected {sha256[:16]}...")
    try:
        with np.load(io.BytesIO(data), allow_pickle=False) as archive:
            arrays = {name: archive[name] for name in archive.files}
        meta = json.loads(str(arrays.pop("meta")))
    except (ValueError, KeyError, OSError) as error:
        raise ArtifactError(f"model artifact {path} is not a recsite artifact: {error}") from None
    return Artifact(path=path, sha256=actual, meta=meta, arrays=arrays)


def predict_rating(artifact: Artifact, *, viewer_row: int | None, movie_column: int) -> float:
    """The rating model's estimate (baselines plus factors), clipped to 1-5."""
    estimate = float(artifact["rating_mu"]) + float(artifact["rating_bi"][movie_column])
    if viewer_row is not None:
        estimate += float(artifact["rating_bu"][viewer_row])
        if artifact["rating_pu"].shape[1]:
            estimate += float(artifact["rating_pu"][viewer_row] @ artifact["rating_qi"][movie_column])
    return min(5.0, max(1.0, estimate)) if math.isfinite(estimate) else 3.0
