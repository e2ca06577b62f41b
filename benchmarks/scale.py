"""recsite at the platform's size: generate, import, train, serve, measure.

    .venv/bin/python benchmarks/scale.py --viewers 100000 --movies 27000 --interactions 2000000
    .venv/bin/python benchmarks/scale.py --viewers 1000000 --movies 27000 --interactions 10000000
    make bench-scale                     # both sizes, one after the other
    .venv/bin/python benchmarks/scale.py ... --engine spark   # the factor models on Spark (local mode)

Everything happens in a scratch directory with its own SQLite database (the embedded default):

1. **Generate** a world in MovieLens-1M's layout (movies.dat, users.dat, ratings.dat) with
   power-law popularity and hidden tastes: each viewer has a taste over 16 topics (Dirichlet),
   each movie one topic and a Zipf popularity within it, and every interaction is drawn from
   taste times popularity. Every rating is an interaction (as in MovieLens).
2. **Import** it with ``manage.py import_movielens`` (ratings per second).
3. **Train** with ``manage.py train``: time and peak resident memory of each step (sampled from
   /proc every 0.2 s and attributed to the step the command reported last), of the command and
   its children (Spark's JVM with ``--engine spark``).
4. **Serve** with gunicorn (two workers, the artifact memory-mapped): load time, each worker's
   resident memory split into the shared mapped files and its own, and p50/p99 of
   ``/recommend`` over HTTP, one request at a time, for known viewers, viewers with a history
   the model never saw (imported after training), and cold viewers (no history).
5. **Quality against the hidden tastes**: for 2,000 known viewers, ten further interactions
   drawn from their own taste (never imported) are the truth; the served lists' NDCG@10 and
   recall@10 against it, next to the most-popular list's.

Nothing is asserted: the figures are printed for the README and docs/scaling.md.
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.serving import _closed_loop, _get, _print, _start_server, _stop_server, scratch_environment

ROOT = Path(__file__).resolve().parent.parent
PYTHON = sys.executable
TOPICS = 16
GENRES = ("Action", "Comedy", "Drama", "Thriller", "Romance", "Sci-Fi", "Horror", "Documentary")
OCCUPATIONS = 21  # MovieLens-1M's occupation codes 0-20
AGES = (1, 18, 25, 35, 45, 50, 56)
FUTURE = 10  # hidden interactions per quality-checked viewer


class World:
    """The hidden truth: tastes, topics and popularity, and a sampler of interactions."""

    def __init__(self, viewers: int, movies: int, seed: int) -> None:
        self.rng = np.random.default_rng(seed)
        self.viewers, self.movies = viewers, movies
        self.topic = self.rng.integers(0, TOPICS, movies)
        # Zipf popularity (exponent 1) in a random order, normalised within each topic.
        popularity = 1.0 / (1.0 + self.rng.permutation(movies))
        self.by_topic = [np.flatnonzero(self.topic == t) for t in range(TOPICS)]
        self.cumulative = [np.cumsum(popularity[m]) / popularity[m].sum() for m in self.by_topic]
        self.taste = self.rng.dirichlet(np.full(TOPICS, 0.3), viewers).astype(np.float32)
        self.quality = self.rng.normal(0.0, 0.6, movies)

    def draw(self, viewer_ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """One interaction per entry of ``viewer_ids`` (0-based): (viewer, movie)."""
        cumulative_taste = np.cumsum(self.taste[viewer_ids], axis=1)
        topics = (self.rng.random(len(viewer_ids))[:, None] > cumulative_taste).sum(axis=1)
        topics = np.minimum(topics, TOPICS - 1)
        movies = np.empty(len(viewer_ids), dtype=np.int64)
        for t in range(TOPICS):
            chosen = np.flatnonzero(topics == t)
            picks = np.searchsorted(self.cumulative[t], self.rng.random(len(chosen)))
            movies[chosen] = self.by_topic[t][np.minimum(picks, len(self.by_topic[t]) - 1)]
        return viewer_ids, movies

    def interactions(self, total: int) -> tuple[np.ndarray, np.ndarray]:
        """About ``total`` distinct (viewer, movie) pairs; activity per viewer is long-tailed."""
        activity = self.rng.lognormal(0.0, 1.0, self.viewers)
        oversample = 1.1  # repeated pairs collapse: draw more, then keep ``total`` of the distinct ones
        while True:
            counts = np.maximum(1, np.round(activity / activity.sum() * total * oversample)).astype(np.int64)
            viewers, movies = self.draw(np.repeat(np.arange(self.viewers), counts))
            pairs = np.unique(viewers * self.movies + movies)
            if len(pairs) >= total:
                break
            oversample *= total / len(pairs) * 1.02
        pairs = np.sort(self.rng.choice(pairs, total, replace=False))
        return pairs // self.movies, pairs % self.movies

    def scores(self, viewers: np.ndarray, movies: np.ndarray) -> np.ndarray:
        affinity = self.taste[viewers, self.topic[movies]] * TOPICS  # 1 is an average topic
        noise = self.rng.normal(0.0, 0.7, len(viewers))
        scores: np.ndarray = np.clip(np.round(3.2 + 0.5 * np.log(affinity + 0.1) + self.quality[movies] + noise), 1, 5)
        return scores.astype(int)


def _write_world(world: World, directory: Path, viewers: np.ndarray, movies: np.ndarray) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    with (directory / "movies.dat").open("w", encoding="latin-1") as handle:
        for movie in range(world.movies):
            genre = GENRES[world.topic[movie] % len(GENRES)]
            handle.write(f"{movie + 1}::Movie {movie + 1} ({1950 + movie % 70})::{genre}\n")
    rng = np.random.default_rng(7)
    genders = rng.choice(["M", "F"], world.viewers, p=[0.7, 0.3])
    ages = rng.choice(AGES, world.viewers)
    occupations = rng.integers(0, OCCUPATIONS, world.viewers)
    with (directory / "users.dat").open("w") as handle:
        handle.writelines(f"{v + 1}::{genders[v]}::{ages[v]}::{occupations[v]}::00000\n" for v in range(world.viewers))
    _write_ratings(world, directory / "ratings.dat", viewers, movies)


def _write_ratings(world: World, path: Path, viewers: np.ndarray, movies: np.ndarray) -> None:
    scores = world.scores(viewers, movies)
    times = 956_703_932 + world.rng.integers(0, 86_400 * 365, len(viewers))
    with path.open("w") as handle:
        for start in range(0, len(viewers), 500_000):
            part = slice(start, start + 500_000)
            handle.writelines(
                f"{v + 1}::{m + 1}::{s}::{t}\n"
                for v, m, s, t in zip(
                    viewers[part].tolist(), movies[part].tolist(), scores[part].tolist(), times[part].tolist(),
                    strict=True,
                )
            )  # fmt: skip


def _manage(env: dict[str, str], *args: str) -> float:
    started = time.perf_counter()
    subprocess.run([PYTHON, "manage.py", *args], cwd=ROOT, env=env, check=True, stdout=subprocess.DEVNULL)
    return time.perf_counter() - started


def _measured(env: dict[str, str], *args: str) -> tuple[float, float]:
    """A manage.py command's seconds and its own peak resident memory (GB)."""
    started = time.perf_counter()
    process = subprocess.Popen([PYTHON, "manage.py", *args], cwd=ROOT, env=env, stdout=subprocess.DEVNULL)
    _, status, usage = os.wait4(process.pid, 0)
    process.returncode = os.waitstatus_to_exitcode(status)
    if process.returncode:
        raise subprocess.CalledProcessError(process.returncode, ["manage.py", *args])
    return time.perf_counter() - started, usage.ru_maxrss / 2**20


def _rss_kb(pid: int) -> dict[str, int]:
    figures = {}
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            key, _, value = line.partition(":")
            if key in ("VmRSS", "RssAnon", "RssFile", "RssShmem", "VmHWM"):
                figures[key] = int(value.split()[0])
    except FileNotFoundError:
        pass
    return figures


def _tree_rss_kb(pid: int) -> int:
    """Resident memory of ``pid`` and every process under it."""
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except (FileNotFoundError, ProcessLookupError, IndexError):
            continue
        children.setdefault(int(fields[1]), []).append(int(stat.parent.name))
    total, todo = 0, [pid]
    while todo:
        current = todo.pop()
        total += _rss_kb(current).get("VmRSS", 0)
        todo.extend(children.get(current, []))
    return total


def _train(env: dict[str, str]) -> tuple[float, list[tuple[str, float, float]], str]:
    """Run ``manage.py train``; (seconds, [(step, seconds, peak GB)], its summary line)."""
    started = time.perf_counter()
    process = subprocess.Popen(
        [PYTHON, "manage.py", "train"], cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    steps: list[Step] = [Step("start", started)]
    lock = threading.Lock()

    def read_steps() -> None:
        assert process.stderr is not None
        for line in process.stderr:
            if line.startswith("[") and "] " in line:
                with lock:
                    steps.append(Step(line.split("] ", 1)[1].strip(), time.perf_counter()))
            else:
                sys.stderr.write(line)

    reader = threading.Thread(target=read_steps)
    reader.start()
    while process.poll() is None:
        rss = _tree_rss_kb(process.pid)
        with lock:
            steps[-1].peak_kb = max(steps[-1].peak_kb, rss)
        time.sleep(0.2)
    reader.join()
    assert process.stdout is not None
    summary = process.stdout.read().strip().splitlines()[-1]  # after any e-mail the console backend printed
    if process.returncode:
        raise SystemExit(f"training failed ({process.returncode})")
    ended = time.perf_counter()
    timed = []
    for step, following in zip(steps, [*steps[1:], Step("end", ended)], strict=True):
        timed.append((step.name, following.at - step.at, step.peak_kb / 1024 / 1024))
    return ended - started, timed, summary


@dataclass
class Step:
    name: str
    at: float
    peak_kb: int = 0


def _ndcg(lists: list[list[int]], truth: list[set[int]], k: int = 10) -> tuple[float, float]:
    discounts = 1.0 / np.log2(np.arange(2, k + 2))
    ndcg, recall = [], []
    for listed, relevant in zip(lists, truth, strict=True):
        hits = np.array([movie in relevant for movie in listed[:k]], dtype=float)
        ideal = discounts[: min(k, len(relevant))].sum()
        ndcg.append(float((hits * discounts[: len(hits)]).sum() / ideal))
        recall.append(hits.sum() / len(relevant))
    return float(np.mean(ndcg)), float(np.mean(recall))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--viewers", type=int, default=100_000)
    parser.add_argument("--movies", type=int, default=27_000)
    parser.add_argument("--interactions", type=int, default=2_000_000)
    parser.add_argument("--engine", choices=("local", "spark"), default=os.environ.get("TRAINING_ENGINE", "local"))
    parser.add_argument("--ranker", default=os.environ.get("TRAIN_RANKER", ""), help="the engine's default unless set")
    parser.add_argument("--seconds", type=float, default=20.0, help="latency run per kind of viewer")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--keep", action="store_true", help="keep the scratch directory")
    args = parser.parse_args()

    scratch = Path(tempfile.mkdtemp(prefix="recsite-scale-", dir=os.environ.get("SCALE_DIR")))
    chosen = {"TRAIN_RANKER": args.ranker} if args.ranker else {}
    env = scratch_environment(
        scratch, TRAINING_ENGINE=args.engine, SNAPSHOT_MIN_RATINGS="1", PROVENANCE_RECORD="true", **chosen
    )
    args.ranker = args.ranker or ("spark-als" if args.engine == "spark" else "auto")
    machine = f"{os.cpu_count()} cores, {os.sysconf('SC_PAGE_SIZE') * os.sysconf('SC_PHYS_PAGES') / 2**30:.0f} GiB"
    print(f"recsite at scale: {args.viewers:,} viewers x {args.movies:,} movies x {args.interactions:,} "
          f"interactions, engine {args.engine}, ranker {args.ranker}; {machine}", flush=True)  # fmt: skip
    print(f"scratch {scratch}", flush=True)
    try:
        _run(args, scratch, env)
    finally:
        if not args.keep:
            shutil.rmtree(scratch, ignore_errors=True)


def _run(args: argparse.Namespace, scratch: Path, env: dict[str, str]) -> None:
    started = time.perf_counter()
    world = World(args.viewers, args.movies, args.seed)
    viewers, movies = world.interactions(args.interactions)
    _write_world(world, scratch / "world", viewers, movies)
    print(f"generate   {len(viewers):,} interactions in {time.perf_counter() - started:.0f}s", flush=True)

    _manage(env, "migrate", "--no-input", "-v", "0")
    seconds = _manage(env, "import_movielens", str(scratch / "world"))
    print(f"import     {len(viewers):,} ratings in {seconds:.0f}s: {len(viewers) / seconds:,.0f} ratings/s", flush=True)

    total, steps, summary = _train(env)
    print(f"train      {total:.0f}s in all; {summary}")
    for name, step_seconds, peak in steps:
        print(f"  {name:<28} {step_seconds:7.1f}s   peak {peak:5.2f} GB")
    print(f"  peak of the whole run {max(peak for _, _, peak in steps):.2f} GB", flush=True)
    artifact = max((p for p in (scratch / "models").glob("v*") if p.is_dir()), key=lambda path: path.stat().st_mtime)
    size = sum(file.stat().st_size for file in artifact.glob("*.npy"))
    print(f"artifact   {size / 2**20:,.0f} MB in {len(list(artifact.glob('*.npy')))} files", flush=True)
    if " rejected" in summary:
        print("the gate refused the version: nothing to report on or to serve", flush=True)
        return
    seconds, peak = _measured(env, "fairness_report")
    print(f"fairness   the version's report (default bootstrap) in {seconds:.0f}s, peak {peak:.2f} GB", flush=True)

    # Viewers the model never saw, with a history imported after training.
    rng = np.random.default_rng(args.seed + 1)
    newcomers = np.arange(args.viewers, args.viewers + 2000)
    world.taste = np.vstack([world.taste, rng.dirichlet(np.full(TOPICS, 0.3), 2000).astype(np.float32)])
    new_viewers, new_movies = world.draw(np.repeat(newcomers, 10))
    pairs = np.unique(new_viewers * world.movies + new_movies)
    later = scratch / "later"
    shutil.copytree(scratch / "world", later, ignore=shutil.ignore_patterns("ratings.dat"))
    with (later / "users.dat").open("a") as handle:
        handle.writelines(f"{v + 1}::F::25::4::00000\n" for v in newcomers.tolist())
    _write_ratings(world, later / "ratings.dat", pairs // world.movies, pairs % world.movies)
    _manage(env, "import_movielens", str(later))

    started = time.perf_counter()
    server = _start_server(env)
    print(f"serve      two workers ready in {time.perf_counter() - started:.1f}s", flush=True)
    try:
        known = rng.choice(args.viewers, 2000, replace=False)
        cold = range(args.viewers + 10_000, args.viewers + 12_000)  # ids nobody has used
        kinds = {
            "known viewers": [f"/recommend/{v + 1}" for v in known.tolist()],
            "new viewers with a history": [f"/recommend/{v + 1}" for v in newcomers.tolist()],
            "cold viewers (no history)": [f"/recommend/{v}" for v in cold],
        }
        # One request at a time: the latency of an answer, not of a queue on two shared cores
        # (the load generator runs on the same machine).
        for label, paths in kinds.items():
            _closed_loop(paths[:200], 1, 3.0)  # warm the paths' pages and connections
            _print(f"  {label}", _closed_loop(paths, 1, args.seconds))
        workers = subprocess.run(["pgrep", "-P", str(server.pid)], capture_output=True, text=True).stdout.split()
        for pid in workers:
            rss = _rss_kb(int(pid))
            resident, own, mapped = (rss.get(key, 0) / 1024 for key in ("VmRSS", "RssAnon", "RssFile"))
            print(f"  worker {pid}: resident {resident:,.0f} MB = own {own:,.0f} MB + mapped files {mapped:,.0f} MB")

        # Quality against the hidden tastes: fresh draws from each viewer's own taste.
        pairs = viewers * world.movies + movies  # sorted: np.unique made them
        future_viewers, future_movies = world.draw(np.repeat(known, FUTURE * 3))
        future = future_viewers * world.movies + future_movies
        position = np.minimum(np.searchsorted(pairs, future), len(pairs) - 1)
        unseen = pairs[position] != future
        truth: dict[int, set[int]] = {int(v): set() for v in known}
        for v, m in zip(future_viewers[unseen].tolist(), future_movies[unseen].tolist(), strict=True):
            if len(truth[v]) < FUTURE:
                truth[v].add(m)
        served = []
        for v in known.tolist():
            status, body = _get(f"/recommend/{v + 1}")
            served.append([_movie_of(slug) for slug in body.decode().split(",") if slug] if status == 200 else [])
        popular = np.argsort(-np.bincount(movies, minlength=world.movies), kind="stable")[:200]
        popular_lists = []
        for v in known.tolist():
            start, end = np.searchsorted(viewers, [v, v + 1])
            mine = set(movies[start:end].tolist())
            popular_lists.append([int(m) for m in popular if int(m) not in mine][:20])
        truths = [truth[int(v)] for v in known]
        recsite_ndcg, recsite_recall = _ndcg(served, truths)
        popular_ndcg, popular_recall = _ndcg(popular_lists, truths)
        print(f"quality    against hidden tastes ({len(known):,} viewers, {FUTURE} future interactions each):")
        print(f"  recsite ({args.ranker:<10}) NDCG@10 {recsite_ndcg:.4f}  recall@10 {recsite_recall:.4f}")
        print(f"  most popular          NDCG@10 {popular_ndcg:.4f}  recall@10 {popular_recall:.4f}", flush=True)
    finally:
        _stop_server(server)
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"(the benchmark itself peaked at {peak_mb:,.0f} MB; figures above are the commands')")


def _movie_of(slug: str) -> int:
    """The benchmark's movies are titled "Movie N (year)": N is the MovieLens id, one more than the index."""
    return int(slug.split("+")[1]) - 1


if __name__ == "__main__":
    main()
