"""Model selection: which ranker, with which parameters, serves this platform's data.

The defaults of each ranker were tuned on one data set; the best regularisation depends on the
data's density, and on some data nothing beats the most-popular list. So at every training the
candidates (each ranker over its small ``grid``, popularity among them) are fitted on a part of
the training split and compared on a validation part carved out of it, by NDCG@10. The winner
is what the pipeline then refits on the whole training split and measures on the held-out
split, which selection never sees.

Candidates run in rounds (every ranker's first grid point, then every second one...), so a time
budget that runs out cuts each ranker's grid short rather than leaving a ranker out. Popularity
runs first and wins ties: a personal model serves only if it measures better.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import dataclass
from itertools import zip_longest
from typing import Any

import numpy as np
import scipy.sparse as sp

from recommender.learning.evaluation import RANK_CUTOFFS, PerViewer, ranking_per_viewer
from recommender.learning.ranking import RANKERS, Popularity, Ranker, batches, ranker_named

SELECTED_BY = "ndcg@10"


@dataclass(frozen=True)
class Candidate:
    """One ranker with one set of parameters, as measured on the validation split."""

    ranker: str
    params: dict[str, Any]
    figures: dict[str, float]  # on the validation split; empty when it was not fitted
    seconds: float
    error: str = ""  # why it could not be fitted (it then takes no part)

    @property
    def score(self) -> float:
        return float(self.figures.get(SELECTED_BY, -1.0))

    def describe(self) -> dict[str, Any]:
        described: dict[str, Any] = {
            "ranker": self.ranker,
            "params": self.params,
            SELECTED_BY: self.figures.get(SELECTED_BY),
            "recall@10": self.figures.get("recall@10"),
            "seconds": self.seconds,
        }
        if self.error:
            described["error"] = self.error
        return described


@dataclass(frozen=True)
class Selection:
    candidates: list[Candidate]  # in the order they ran
    skipped: list[tuple[str, dict[str, Any]]]  # not run: the budget was spent
    budget_seconds: float
    validation_viewers: int

    @property
    def chosen(self) -> Candidate:
        """The best by NDCG@10; the earliest among equals (popularity runs first)."""
        fitted = [candidate for candidate in self.candidates if not candidate.error]
        return max(fitted, key=lambda candidate: candidate.score)

    def describe(self) -> dict[str, Any]:
        """What the version's metrics store, and its console page shows."""
        return {
            "selected_by": SELECTED_BY,
            "chosen": {"ranker": self.chosen.ranker, "params": self.chosen.params},
            "candidates": [candidate.describe() for candidate in self.candidates],
            "skipped": [{"ranker": name, "params": params} for name, params in self.skipped],
            "budget_seconds": self.budget_seconds,
            "seconds": round(sum(candidate.seconds for candidate in self.candidates), 3),
            "validation_viewers": self.validation_viewers,
        }


def candidate_grid(names: Iterable[str]) -> list[tuple[str, dict[str, Any]]]:
    """Every ranker's grid points in rounds, popularity first, then in the registry's order (the
    default, EASE, second: it is cheap at any size); each with its full parameters."""
    order = list(RANKERS)
    names = sorted(set(names), key=lambda name: (name != Popularity.name, order.index(ranker_named(name).name)))
    grids = [[(name, ranker_named(name).parameters(point)) for point in ranker_named(name).grid] for name in names]
    rounds = zip_longest(*grids)
    return [candidate for round_ in rounds for candidate in round_ if candidate is not None]


def measure(model: Ranker, x: sp.csr_matrix, held_out: sp.csr_matrix, rows: np.ndarray) -> PerViewer:
    """Each of ``rows``' figures for ``model``'s top lists over what ``x`` lacks of ``held_out``."""
    width = max(RANK_CUTOFFS)
    return PerViewer.concatenate(
        [ranking_per_viewer(model.top_rows(x, batch, width), held_out[batch], batch) for batch in batches(rows)]
    )


def ranker_select(
    x: sp.csr_matrix,
    validation: sp.csr_matrix,
    rows: np.ndarray,
    *,
    names: Iterable[str],
    budget_seconds: float,
) -> Selection:
    """Fit each candidate on ``x`` and measure it on ``rows`` of ``validation``, until the
    budget is spent (the first two, popularity and one personal ranker, always run)."""
    grid = candidate_grid(names)
    candidates: list[Candidate] = []
    started = time.perf_counter()
    for position, (name, params) in enumerate(grid):
        if position >= 2 and time.perf_counter() - started >= budget_seconds:
            return Selection(candidates, grid[position:], budget_seconds, len(rows))
        began = time.perf_counter()
        try:
            model = ranker_named(name).fit(x, **params)
            figures = measure(model, x, validation, rows).mean()
            error = ""
        except (ImportError, MemoryError, ValueError, np.linalg.LinAlgError) as failure:
            # A grid point the data or the host cannot take (a singular matrix, too little
            # memory, a native library missing) is left out with its reason; the others compete.
            figures, error = {}, f"{type(failure).__name__}: {failure}"
        candidates.append(Candidate(name, params, figures, round(time.perf_counter() - began, 3), error))
    return Selection(candidates, [], budget_seconds, len(rows))
