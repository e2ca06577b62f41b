"""MovieLens-100K through the HTTP API, scored as Microsoft Recommenders scores its models.

    .venv/bin/python benchmarks/movielens_100k.py var/ml-100k      # the real data, once
    .venv/bin/python benchmarks/movielens_http.py var/ml-100k [--ranker ease]

The protocol (Microsoft Recommenders' ``python_stratified_split`` and ``ndcg_at_k``): each
viewer's ratings are split 75/25 at random (seed 42); recsite is given only the 75 % (imported
with ``import_movielens``, trained with ``manage.py train``, served by gunicorn); then
``GET /recommend/<viewer>`` is asked for every viewer, and its first ten movies are scored
against that viewer's held-out quarter (every held-out movie relevant, binary NDCG). Nothing
of the held-out quarter reaches recsite, and recsite's own internal split is its own business:
what is scored is what a viewer would get.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.serving import _get, _start_server, _stop_server, scratch_environment

ROOT = Path(__file__).resolve().parent.parent


def _split(lines: list[str], seed: int) -> tuple[list[str], dict[int, set[int]]]:
    """Each viewer's ratings, 75 % given and 25 % held out (movie ids), at random."""
    by_viewer: dict[int, list[str]] = defaultdict(list)
    for line in lines:
        by_viewer[int(line.split("\t")[0])].append(line)
    rng = np.random.default_rng(seed)
    train: list[str] = []
    held_out: dict[int, set[int]] = {}
    for viewer, rows in sorted(by_viewer.items()):
        order = rng.permutation(len(rows))
        cut = round(len(rows) * 0.75)
        train += [rows[i] for i in order[:cut]]
        held_out[viewer] = {int(rows[i].split("\t")[1]) for i in order[cut:]}
    return train, held_out


def _ndcg_at_10(lists: dict[int, list[str]], held_out: dict[int, set[str]]) -> tuple[float, float]:
    discounts = 1.0 / np.log2(np.arange(2, 12))
    ndcg, precision = [], []
    for viewer, relevant in held_out.items():
        if not relevant:
            continue
        hits = np.array([movie in relevant for movie in lists.get(viewer, [])[:10]], dtype=float)
        ideal = discounts[: min(10, len(relevant))].sum()
        ndcg.append(float((hits * discounts[: len(hits)]).sum() / ideal))
        precision.append(hits.sum() / 10)
    return float(np.mean(ndcg)), float(np.mean(precision))


def served_ndcg(path: Path, *, ranker: str, seed: int = 42, **settings: str) -> dict[str, float]:
    """Give recsite the 75 % of ``path``'s ratings (a GroupLens ml-100k directory), train it,
    ask ``GET /recommend`` for every viewer and score the first ten against the 25 % held out."""
    from catalog import movielens

    scratch = Path(tempfile.mkdtemp(prefix="recsite-http-"))
    env = scratch_environment(scratch, TRAIN_RANKER=ranker, **settings)
    try:
        given = scratch / "ml-100k"
        shutil.copytree(path, given)
        train, held_out = _split((path / "u.data").read_text().splitlines(), seed)
        (given / "u.data").write_text("\n".join(train) + "\n")
        # MovieLens lists a few titles under two ids; recsite folds them into one slug.
        slug_of = {row.source_id: row.slug for row in movielens.read_movies(given, movielens.detect(given))}
        relevant = {viewer: {slug_of[movie] for movie in movies} for viewer, movies in held_out.items()}
        started = time.perf_counter()
        for command in (["migrate", "--no-input", "-v", "0"], ["import_movielens", str(given)], ["train"]):
            result = subprocess.run(
                [sys.executable, "manage.py", *command], cwd=ROOT, env=env, check=True, capture_output=True, text=True
            )
            if command[0] == "train":
                # The last line is train's verdict (before it, the notification's mail, printed).
                print("  " + result.stdout.strip().splitlines()[-1], flush=True)
        trained = time.perf_counter() - started
        server = _start_server(env)
        started = time.perf_counter()
        try:
            lists = {}
            for viewer in held_out:
                status, body = _get(f"/recommend/{viewer}")
                if status != 200:
                    raise SystemExit(f"/recommend/{viewer} answered {status}")
                lists[viewer] = [slug for slug in body.decode().split(",") if slug]
        finally:
            _stop_server(server)
        ndcg, precision = _ndcg_at_10(lists, relevant)
        return {
            "ndcg@10": ndcg,
            "precision@10": precision,
            "viewers": len(lists),
            "asked_seconds": time.perf_counter() - started,
            "train_seconds": trained,
        }
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("path", type=Path)
    parser.add_argument("--ranker", default=os.environ.get("TRAIN_RANKER", "auto"))
    parser.add_argument("--seed", type=int, default=42)
    args = parser.parse_args()
    figures = served_ndcg(args.path, ranker=args.ranker, seed=args.seed)
    print(
        f"{args.path} over HTTP, ranker {args.ranker}: NDCG@10 {figures['ndcg@10']:.4f}, "
        f"precision@10 {figures['precision@10']:.4f} ({figures['viewers']} viewers asked in "
        f"{figures['asked_seconds']:.1f}s; trained in {figures['train_seconds']:.1f}s)"
    )


if __name__ == "__main__":
    main()
