"""Splitting interactions into what a model learns from and what it is measured on."""

from __future__ import annotations

import random
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Interaction:
    viewer: int
    movie: str
    score: int | None  # the current rating, when the viewer rated it


@dataclass
class Split:
    """A per-viewer stratified split, fixed by ``seed``: each viewer's interactions are shuffled
    and ``test_share`` of them held out (viewers with one interaction keep it for training)."""

    seed: int
    test_share: float
    train: list[Interaction]
    test: list[Interaction]

    @property
    def train_ratings(self) -> list[tuple[int, str, int]]:
        return [(i.viewer, i.movie, i.score) for i in self.train if i.score is not None]

    @property
    def test_ratings(self) -> list[tuple[int, str, int]]:
        return [(i.viewer, i.movie, i.score) for i in self.test if i.score is not None]

    def describe(self) -> dict[str, Any]:
        return {
            "seed": self.seed,
            "test_share": self.test_share,
            "protocol": "per-viewer stratified split of interactions; ratings evaluated on held-out rated pairs",
            "train_interactions": len(self.train),
            "test_interactions": len(self.test),
            "train_ratings": len(self.train_ratings),
            "test_ratings": len(self.test_ratings),
        }


def split_by_viewer(interactions: Iterable[Interaction], *, seed: int, test_share: float = 0.25) -> Split:
    by_viewer: dict[int, list[Interaction]] = defaultdict(list)
    for interaction in interactions:
        by_viewer[interaction.viewer].append(interaction)
    rng = random.Random(seed)
    train: list[Interaction] = []
    test: list[Interaction] = []
    for viewer in sorted(by_viewer):
        items = sorted(by_viewer[viewer], key=lambda i: i.movie)
        rng.shuffle(items)
        held_out = round(len(items) * test_share) if len(items) > 1 else 0
        test.extend(items[:held_out])
        train.extend(items[held_out:])
    return Split(seed=seed, test_share=test_share, train=train, test=test)
