"""Served NDCG@10 through HTTP on generated worlds of different density, against popularity and
against the best candidate tuned on each world's own held-out split.

    .venv/bin/python benchmarks/worlds.py                 # the three worlds of docs/learning.md
    .venv/bin/python benchmarks/worlds.py --tiny          # CI: one small world, seconds
    .venv/bin/python benchmarks/worlds.py --write DIR     # the tiny world's files, for the others

Each world is ``recommender.learning.worlds.taste_world`` (hidden tastes, Zipf popularity; a
taste strength of 0 means nothing beats popularity) written in MovieLens-100K's layout and
measured exactly as ``movielens_http.py`` measures MovieLens: recsite is given 75 % of each
viewer's ratings, trains (with model selection, TRAIN_RANKER=auto), and ``GET /recommend`` is
scored against the 25 % held out. The offline columns fit every candidate of every ranker's
grid on the same 75 % and score it on the same 25 %: "best tuned" is the best of them, an
upper bound that peeks at the held-out split, which recsite never sees.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import numpy as np
import scipy.sparse as sp

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.movielens_http import _split, served_ndcg

WORLDS = {
    # name: viewers, movies, interactions, taste strength
    "sparse, no tastes (popularity is the answer)": (20_000, 5_000, 300_000, 0.0),
    "sparse, weak tastes": (20_000, 5_000, 300_000, 0.3),
    "dense, strong tastes": (10_000, 1_500, 280_000, 0.7),
}
TINY = {"tiny": (600, 300, 9_000, 0.5)}


def world_write(directory: Path, *, viewers: int, movies: int, interactions: int, strength: float) -> None:
    """The world as GroupLens' ml-100k files (every interaction rated: ml-100k holds ratings only)."""
    from recommender.learning.worlds import taste_world

    world = taste_world(
        viewers=viewers, movies=movies, interactions=interactions, taste_strength=strength, rated_share=1.0, seed=7
    )
    directory.mkdir(parents=True, exist_ok=True)
    timestamps = 880_000_000 + np.arange(len(world))
    (directory / "u.data").write_text(
        "".join(
            f"{viewer}\t{movie + 1}\t{int(score)}\t{stamp}\n"
            for viewer, movie, score, stamp in zip(
                world.viewers.tolist(), world.movies.tolist(), world.scores.tolist(), timestamps.tolist(), strict=True
            )
        )
    )
    zeros = "|".join(["0"] * 19)
    (directory / "u.item").write_text(
        "".join(f"{m}|Movie {m} (1990)|||http://x|{zeros}\n" for m in range(1, movies + 1))
    )
    genders = "MF"
    (directory / "u.user").write_text(
        "".join(f"{v}|{18 + v % 50}|{genders[v % 2]}|other|00000\n" for v in range(1, viewers + 1))
    )


def offline_candidates(directory: Path, seed: int = 42) -> list[tuple[str, dict[str, object], float]]:
    """Every candidate fitted on the same 75 % and scored on the same 25 % as the HTTP run."""
    from recommender.learning.ranking import RANKERS, Index, ranker_named
    from recommender.learning.selection import candidate_grid, measure
    from recommender.learning.splitting import Interaction, Interactions

    train, held_out = _split((directory / "u.data").read_text().splitlines(), seed)
    given = Interactions.from_records(
        Interaction(int(line.split("\t")[0]), line.split("\t")[1], None) for line in train
    )
    index = Index.of(given)
    x = index.matrix(given)
    column = {movie: i for i, movie in enumerate(index.movies)}
    rows_of, cols = [], []
    for viewer, movies in held_out.items():
        row = int(index.rows(np.array([viewer]))[0])
        for movie in movies:
            if row >= 0 and str(movie) in column:
                rows_of.append(row)
                cols.append(column[str(movie)])
    relevant = sp.csr_matrix((np.ones(len(rows_of), np.float32), (rows_of, cols)), shape=x.shape)
    rows = np.flatnonzero(np.diff(relevant.indptr) > 0)
    figures = []
    for name, params in candidate_grid(RANKERS):
        model = ranker_named(name).fit(x, **params)
        figures.append((name, params, float(measure(model, x, relevant, rows).mean()["ndcg@10"])))
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tiny", action="store_true", help="one small world (CI: checks the benchmark runs)")
    parser.add_argument("--write", type=Path, help="only write the tiny world's files there (for the other benchmarks)")
    args = parser.parse_args()
    if args.write:
        viewers, movies, interactions, strength = TINY["tiny"]
        world_write(args.write, viewers=viewers, movies=movies, interactions=interactions, strength=strength)
        return
    worlds = TINY if args.tiny else WORLDS
    print(f"{'world':<46} {'density':>8} {'served':>7} {'popular':>7} {'best':>7} {'served/best':>11}  best candidate")
    for name, (viewers, movies, interactions, strength) in worlds.items():
        with tempfile.TemporaryDirectory(prefix="recsite-world-") as scratch:
            directory = Path(scratch) / "ml-100k"
            world_write(directory, viewers=viewers, movies=movies, interactions=interactions, strength=strength)
            ratings = sum(1 for _ in (directory / "u.data").open())
            # The worlds' ratings are noise around a taste, for the rating model to have something
            # to fit; the gate's RMSE bound is MovieLens's and is not what this measures.
            served = served_ndcg(directory, ranker="auto", GATE_MAX_RMSE="5")["ndcg@10"]
            candidates = offline_candidates(directory)
        popular = next(ndcg for ranker, _, ndcg in candidates if ranker == "popularity")
        best = max(candidates, key=lambda candidate: candidate[2])
        print(
            f"{name:<46} {ratings / (viewers * movies):>8.4f} {served:>7.4f} {popular:>7.4f} {best[2]:>7.4f} "
            f"{served / best[2]:>11.3f}  {best[0]} {best[1]}",
            flush=True,
        )


if __name__ == "__main__":
    main()
