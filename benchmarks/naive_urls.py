"""The naive serving baseline for benchmarks/serving.py: recsite's URLs, but /recommend answered
the way a first prototype would, by calling scikit-surprise's ``predict()`` for every movie the
viewer has not rated and sorting. Loaded only by the benchmark (``ROOT_URLCONF``)."""

from __future__ import annotations

import csv
import os
from pathlib import Path

from django.http import HttpRequest, HttpResponse
from django.urls import path
from surprise import SVD

from recommender.learning.rating import surprise_trainset
from recsite.urls import urlpatterns as recsite_urlpatterns


def _fit() -> tuple[SVD, list[str]]:
    snapshots = Path(os.environ["NAIVE_SNAPSHOT_DIR"])
    newest = max(snapshots.glob("*/ratings.csv"), key=lambda file: file.stat().st_mtime)
    with newest.open() as handle:
        ratings = [(int(row["viewer_id"]), row["movie"], int(row["score"])) for row in csv.DictReader(handle)]
    with (newest.parent / "movies.csv").open() as handle:
        catalogue = [row["movie"] for row in csv.DictReader(handle)]
    return SVD(random_state=0).fit(surprise_trainset(ratings)), catalogue


MODEL, MOVIES = _fit()


def naive_recommend(request: HttpRequest, user_id: str) -> HttpResponse:
    viewer = int(user_id)
    trainset = MODEL.trainset
    rated = set()
    if trainset.knows_user(inner := (trainset.to_inner_uid(viewer) if viewer in trainset._raw2inner_id_users else -1)):
        rated = {trainset.to_raw_iid(item) for item, _ in trainset.ur[inner]}
    predictions = [(MODEL.predict(viewer, movie).est, movie) for movie in MOVIES if movie not in rated]
    predictions.sort(reverse=True)
    return HttpResponse(",".join(movie for _, movie in predictions[:20]), content_type="text/plain")


urlpatterns = [path("recommend/<str:user_id>", naive_recommend), *recsite_urlpatterns]
