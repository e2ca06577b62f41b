"""Offline accuracy of every model recsite can train, on a MovieLens directory.

    .venv/bin/python benchmarks/movielens_100k.py var/ml-100k      # the real data, once
    .venv/bin/python benchmarks/training.py var/ml-100k [--tune] [--svdpp]

Prints, on the same per-viewer stratified 75/25 split (Microsoft Recommenders' protocol: all
held-out items relevant, ranking over items the viewer has not seen):
- each rating model's RMSE, MAE and fit time, and 5-fold cross-validated RMSE for SVD (with
  recsite's defaults and with scikit-surprise's own, whose published figure is 0.934);
- each ranker's precision, recall and NDCG at 10 and 20, coverage and fit time, next to the
  popularity baseline and to SVD used as a ranker.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "recsite.settings")

import django

django.setup()

import numpy as np  # noqa: E402
from surprise import SVD  # noqa: E402
from surprise.model_selection import cross_validate  # noqa: E402

from catalog import movielens  # noqa: E402
from recommender.learning.evaluation import RANK_CUTOFFS, ranking_metrics  # noqa: E402
from recommender.learning.pipeline import train_and_evaluate  # noqa: E402
from recommender.learning.ranking import RANKERS, SELECT, Index, top_n  # noqa: E402
from recommender.learning.rating import SVD_DEFAULTS, surprise_dataset, surprise_trainset  # noqa: E402
from recommender.learning.splitting import Interaction, Interactions, split_by_viewer  # noqa: E402

Ratings = list[tuple[int, str, int]]


def _load(path: Path) -> tuple[Interactions, dict[int, tuple[int | None, str, str]], Ratings]:
    layout = movielens.detect(path)
    slugs = {row.source_id: row.slug for row in movielens.read_movies(path, layout)}
    viewers: dict[int, tuple[int | None, str, str]] = {
        row.id: (row.age, row.gender, row.occupation) for row in movielens.read_viewers(path, layout)
    }
    ratings = [(r.viewer_id, slugs[r.movie_source_id], r.score) for r in movielens.read_ratings(path, layout)]
    latest = {(viewer, movie): score for viewer, movie, score in ratings}
    interactions = Interactions.from_records(
        (Interaction(viewer, movie, score) for (viewer, movie), score in latest.items()), slugs.values()
    )
    return interactions, viewers, ratings


def _cv_rmse(ratings: Ratings, params: dict[str, Any], folds: int) -> float:
    with surprise_dataset(ratings) as data:
        result = cross_validate(SVD(**params, random_state=0), data, measures=["rmse"], cv=folds, verbose=False)
    return float(np.mean(result["test_rmse"]))


def _svd_as_ranker(interactions: Interactions, params: dict[str, Any]) -> dict[str, float]:
    """Rank every unseen movie by SVD's predicted rating (what a rating-only system serves),
    fitted on the same training split the rankers are measured on."""
    split = split_by_viewer(interactions, seed=42)
    model = SVD(**params, random_state=42).fit(surprise_trainset(split.train.ratings()))
    index = Index.of(interactions)
    seen, held_out = index.matrix(split.train), index.matrix(split.test)
    trainset = model.trainset
    viewer_rows = index.rows(np.array([trainset.to_raw_uid(u) for u in trainset.all_users()]))
    columns = np.array([trainset.to_raw_iid(i) for i in trainset.all_items()])
    # Small data only (MovieLens-100K): the benchmark holds the full score matrix.
    scores = np.full(seen.shape, model.trainset.global_mean, dtype=np.float32)
    scores += np.bincount(columns, weights=model.bi, minlength=seen.shape[1])[None, :].astype(np.float32)
    scores[viewer_rows] += model.bu[:, None].astype(np.float32)
    factors = np.zeros((seen.shape[0], model.pu.shape[1]), np.float32)
    factors[viewer_rows] = model.pu
    movie_factors = np.zeros((seen.shape[1], model.qi.shape[1]), np.float32)
    movie_factors[columns] = model.qi
    scores += factors @ movie_factors.T
    return ranking_metrics(top_n(scores, seen, max(RANK_CUTOFFS)), held_out)


def _row(name: str, metrics: dict[str, Any], seconds: float) -> str:
    figures = "  ".join(
        f"{metrics.get(f'{kind}@{k}', float('nan')):.4f}"
        for k in RANK_CUTOFFS
        for kind in ("precision", "recall", "ndcg")
    )
    return f"{name:<26} {figures}  {metrics.get('coverage@20', float('nan')):8.4f}  {seconds:7.2f}s"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("path", type=Path)
    parser.add_argument("--folds", type=int, default=5)
    parser.add_argument("--tune", action="store_true", help="also grid-search SVD on the training split")
    parser.add_argument("--svdpp", action="store_true", help="also fit SVD++ (slow: minutes)")
    args = parser.parse_args()

    interactions, viewers, ratings = _load(args.path)
    print(f"{args.path}: {len(ratings):,} ratings, {len(viewers):,} viewers, {len(interactions.catalogue):,} movies\n")

    print(f"{'rating model':<26} {'RMSE':>7} {'MAE':>7} {'fit':>8}")
    algorithms = ["baseline", "svd", "knnbaseline", "blend"] + (["svdpp"] if args.svdpp else [])
    runs = {}
    for name in algorithms:
        models = train_and_evaluate(
            interactions=interactions,
            demographics=viewers,
            rating_algorithm=name,
            ranker="popularity",
        )
        runs[name] = models
        m = models.metrics
        print(f"{name:<26} {m['rmse']:7.4f} {m['mae']:7.4f} {m['seconds']['rating model']:7.2f}s")
    if args.tune:
        started = time.perf_counter()
        tuned = train_and_evaluate(
            interactions=interactions,
            demographics=viewers,
            rating_algorithm="svd",
            ranker="popularity",
            tune=True,
        )
        m, seconds = tuned.metrics, time.perf_counter() - started
        print(f"{'svd --tune':<26} {m['rmse']:7.4f} {m['mae']:7.4f} {seconds:7.2f}s  best {m['tuning']['best']}")
    print()
    print(f"{args.folds}-fold cross-validated RMSE of SVD on all ratings (scikit-surprise publishes 0.934):")
    surprise_defaults = {"n_factors": 100, "n_epochs": 20, "lr_all": 0.005, "reg_all": 0.02}
    for label, params in (("scikit-surprise defaults", surprise_defaults), ("recsite defaults", SVD_DEFAULTS)):
        print(f"  {label:<26} {_cv_rmse(ratings, params, args.folds):.4f}   {params}")

    print()
    header = "  ".join(f"{kind[:4]}@{k:<2}" for k in RANK_CUTOFFS for kind in ("precision", "recall", "ndcg"))
    print(f"{'ranker':<26} {header}  coverage      fit")
    for ranker in [*RANKERS, SELECT]:
        models = train_and_evaluate(
            interactions=interactions,
            demographics=viewers,
            rating_algorithm="baseline",
            ranker=ranker,
        )
        label = f"{SELECT}: {models.ranker}" if ranker == SELECT else ranker
        print(_row(label, models.metrics, models.metrics["seconds"]["ranker (held-out)"]))
        if ranker == "ease":
            print(_row("  popularity on this split", models.metrics["popularity"], 0.0))
    started = time.perf_counter()
    svd_ranking = _svd_as_ranker(interactions, runs["svd"].rating_params)
    print(_row("svd (by predicted rating)", svd_ranking, time.perf_counter() - started))


if __name__ == "__main__":
    main()
