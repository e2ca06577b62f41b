"""Interactions as columns, and splitting them into what a model learns from and what it is
measured on.

Interactions are held as numpy columns (viewer id, movie column, score) rather than one Python
object each: ten million of them take 160 MB this way, and several gigabytes as objects.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np


@dataclass(frozen=True)
class Interaction:
    """One (viewer, movie) interaction, for building small data sets by hand."""

    viewer: int
    movie: str
    score: int | None  # the current rating, when the viewer rated it


@dataclass
class Interactions:
    """One entry per (viewer, movie): ``movies`` are columns of ``catalogue`` (sorted slugs) and
    ``scores`` hold the current rating, NaN when the viewer watched without rating."""

    viewers: np.ndarray  # int64 viewer ids
    movies: np.ndarray  # int32 columns of the catalogue
    scores: np.ndarray  # float32
    catalogue: list[str]

    @classmethod
    def from_records(cls, records: Iterable[Interaction], catalogue: Iterable[str] = ()) -> Interactions:
        records = list(records)
        movies = sorted(set(catalogue) | {record.movie for record in records})
        column = {movie: i for i, movie in enumerate(movies)}
        return cls(
            viewers=np.array([record.viewer for record in records], dtype=np.int64),
            movies=np.array([column[record.movie] for record in records], dtype=np.int32),
            scores=np.array([np.nan if record.score is None else record.score for record in records], np.float32),
            catalogue=movies,
        )

    def __len__(self) -> int:
        return len(self.viewers)

    def subset(self, mask: np.ndarray) -> Interactions:
        return Interactions(self.viewers[mask], self.movies[mask], self.scores[mask], self.catalogue)

    @property
    def rated(self) -> np.ndarray:
        rated: np.ndarray = ~np.isnan(self.scores)
        return rated

    def ratings(self) -> RatedRows:
        """(viewer id, movie column, score) of the rated entries, made one at a time."""
        return RatedRows(self.subset(self.rated))

    def rating_count(self) -> int:
        return int(self.rated.sum())


@dataclass
class RatedRows:
    """The rated entries as rows, sized (scikit-surprise asks for the length) but never held as
    a list: ten million tuples would be a gigabyte."""

    rated: Interactions

    def __len__(self) -> int:
        return len(self.rated)

    def __iter__(self) -> Iterator[tuple[int, int, float]]:
        for start in range(0, len(self.rated), 65_536):
            chunk = slice(start, start + 65_536)
            yield from zip(
                self.rated.viewers[chunk].tolist(),
                self.rated.movies[chunk].tolist(),
                self.rated.scores[chunk].tolist(),
                strict=True,
            )


@dataclass
class Split:
    """A per-viewer stratified split, fixed by ``seed``: each viewer's interactions are shuffled
    and ``test_share`` of them held out (viewers with one interaction keep it for training)."""

    seed: int
    test_share: float
    held_out: np.ndarray  # boolean, one per interaction
    train: Interactions
    test: Interactions

    def describe(self) -> dict[str, Any]:
        return {
            "seed": self.seed,
            "test_share": self.test_share,
            "protocol": "per-viewer stratified split of interactions; ratings evaluated on held-out rated pairs",
            "train_interactions": len(self.train),
            "test_interactions": len(self.test),
            "train_ratings": self.train.rating_count(),
            "test_ratings": self.test.rating_count(),
        }


def split_by_viewer(interactions: Interactions, *, seed: int, test_share: float = 0.25) -> Split:
    count = len(interactions)
    shuffle = np.random.default_rng(seed).random(count)
    order = np.lexsort((shuffle, interactions.viewers))  # by viewer, then in random order
    viewers = interactions.viewers[order]
    starts = np.flatnonzero(np.r_[True, viewers[1:] != viewers[:-1]]) if count else np.array([], np.int64)
    sizes = np.diff(np.r_[starts, count])
    # np.round rounds halves to even, as Python's round() does.
    held = np.where(sizes > 1, np.round(sizes * test_share), 0).astype(np.int64)
    position = np.arange(count) - np.repeat(starts, sizes)
    held_out = np.empty(count, dtype=bool)
    held_out[order] = position < np.repeat(held, sizes)
    return Split(
        seed=seed,
        test_share=test_share,
        held_out=held_out,
        train=interactions.subset(~held_out),
        test=interactions.subset(held_out),
    )
