"""A simulated streaming platform: viewers, movies, hidden tastes, and the event log they produce.

Deterministic for a given seed. Tastes are latent: each viewer's affinity for a movie is
genre preference (shifted by age and gender, the way real audiences differ) plus a private
low-rank taste, plus the movie's quality. Viewers pick what to watch by affinity and popularity,
watch longer what they like, and rate some of what they watched, so a recommender trained on
the stream has something real to learn, and the hidden affinities are there to check it against.

The platform's client asks recsite for recommendations; ``World.events`` takes a
``recommend`` callable standing in for that call (the default returns the popular titles a naive
server would, so the log has the same shape with or without a running service).
"""

from __future__ import annotations

import heapq
import math
import random
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np

from catalog.identifiers import slug_for

GENRES = (
    "Action", "Adventure", "Animation", "Children's", "Comedy", "Crime", "Documentary", "Drama",
    "Fantasy", "Film-Noir", "Horror", "Musical", "Mystery", "Romance", "Sci-Fi", "Thriller", "War",
    "Western",
)  # fmt: skip
# How common each genre is in a catalogue (MovieLens-like: many dramas and comedies, few noirs).
GENRE_SHARE = np.array([0.12, 0.07, 0.03, 0.05, 0.17, 0.06, 0.03, 0.22, 0.02, 0.01, 0.05, 0.03, 0.03,
                        0.09, 0.05, 0.1, 0.04, 0.02])  # fmt: skip
GENRE_SHARE = GENRE_SHARE / GENRE_SHARE.sum()

# The platform's occupations with uneven shares, as its users report them.
OCCUPATIONS = (
    ("college/grad student", 0.20), ("other", 0.11), ("executive/managerial", 0.10),
    ("academic/educator", 0.09), ("technician/engineer", 0.09), ("programmer", 0.07),
    ("sales/marketing", 0.05), ("writer", 0.04), ("artist", 0.04), ("self-employed", 0.04),
    ("doctor/health care", 0.04), ("K-12 student", 0.03), ("clerical/admin", 0.03),
    ("scientist", 0.03), ("retired", 0.02), ("lawyer", 0.01), ("homemaker", 0.01),
)  # fmt: skip

_WORDS = (
    "night", "river", "silent", "last", "city", "dream", "blue", "iron", "summer", "ghost", "star",
    "king", "lost", "road", "heart", "shadow", "golden", "wild", "secret", "house", "fire", "winter",
    "paper", "moon", "glass", "storm", "little", "dark", "ocean", "garden", "empire", "machine",
    "angel", "midnight", "red", "stranger", "forest", "love", "war", "island", "train", "circus",
)  # fmt: skip
_ODD_TITLES = ("mr. & mrs. {w}", "{w}-{w2}", "{w}_{w2}", "the {w} 2", "{w}: part ii", "{w} & {w2}")
_JUNK_BYTES = [b for b in range(256) if b not in (10, 13)]
LATENT_DIMENSIONS = 8
# How strongly taste, against popularity, decides what a viewer picks. At 3 a ranker trained on
# the stream beats the popularity list by about half again (NDCG@10), as on real data.
CHOICE_SHARPNESS = 3.0
ACTIVE_SHARE = 0.7  # of viewers shown a list who then watch something (from it or not)
RATING_SHARE = 0.6  # of viewings that end with a rating, when a viewer chooses after a list
AGE_GROUPS = ((18, 24), (25, 34), (35, 44), (45, 54), (55, 64))


@dataclass(frozen=True)
class SimViewer:
    id: int
    age: int
    gender: str
    occupation: str


@dataclass(frozen=True)
class SimMovie:
    index: int
    slug: str
    title: str
    year: int | None
    genres: tuple[str, ...]
    runtime: int


@dataclass
class World:
    seed: int
    viewers: list[SimViewer]
    movies: list[SimMovie]
    affinity: np.ndarray  # viewers x movies, the hidden truth
    popularity: np.ndarray  # movies

    @classmethod
    def generate(cls, *, seed: int = 42, viewers: int = 500, movies: int = 400) -> World:
        rng = np.random.default_rng(seed)
        sim_movies, movie_genres = _generate_movies(rng, movies)
        sim_viewers, viewer_genre_taste = _generate_viewers(rng, viewers)
        viewer_latent = rng.normal(0, 0.6, (viewers, LATENT_DIMENSIONS))
        movie_latent = rng.normal(0, 0.6, (movies, LATENT_DIMENSIONS))
        quality = rng.normal(0, 0.5, movies)
        genre_counts = np.maximum(movie_genres.sum(axis=1), 1)
        affinity = (
            viewer_genre_taste @ movie_genres.T / genre_counts
            + viewer_latent @ movie_latent.T / np.sqrt(LATENT_DIMENSIONS)
            + quality
        )
        # Popularity is partly quality, partly luck (marketing), like real box offices.
        popularity = 0.8 * quality + rng.gumbel(0, 0.6, movies)
        return cls(seed=seed, viewers=sim_viewers, movies=sim_movies, affinity=affinity, popularity=popularity)

    def rating_for(self, viewer_index: int, movie_index: int, rng: random.Random) -> int:
        score = 3.3 + 1.1 * self.affinity[viewer_index, movie_index] + rng.gauss(0, 0.6)
        return int(min(5, max(1, round(score))))

    def popular_slugs(self, count: int = 20) -> list[str]:
        return [self.movies[i].slug for i in np.argsort(-self.popularity)[:count]]

    def events(
        self,
        *,
        sessions_per_viewer: float = 8.0,
        start: datetime | None = None,
        days: float = 7.0,
        junk_rate: float = 0.0,
        duplicate_rate: float = 0.02,
        rating_rate: float = 0.35,
        request_rate: float = 0.3,
        older_focus: float = 1.0,
        recommend: Callable[[int], tuple[int, list[str], int] | None] | None = None,
    ) -> Iterator[bytes]:
        """The platform's log, ordered by time: per-minute watch lines, ratings, and the
        platform's record of recommendation requests; ``junk_rate`` mixes in damaged lines.

        ``older_focus`` is how closely viewers aged 45 and over choose by their tastes and the
        charts (1: as closely as the others). Under 1 their choices spread, as on an account a
        household shares, so no model predicts them as well: a real disparity for the fairness
        report to find, which the demo uses.

        ``recommend(viewer_id)`` returns (status, movie ids, response ms), or None when the
        platform sent no request; the default answers with the popular list.
        """
        rng = random.Random(self.seed + 1)
        nprng = np.random.default_rng(self.seed + 2)
        start = start or datetime(2023, 10, 1, tzinfo=UTC)
        horizon = days * 86_400
        popular = self.popular_slugs()
        recommend = recommend or (lambda _viewer_id: (200, popular, max(5, int(rng.lognormvariate(3.5, 0.5)))))
        sessions = _plan_sessions(self, nprng, sessions_per_viewer, horizon, older_focus)

        # Sessions overlap in time; a heap interleaves their lines in timestamp order.
        heap: list[tuple[float, int, int, int]] = []  # (second, order, session, step)
        for order, session in enumerate(sessions):
            heapq.heappush(heap, (session.start, order, order, -1))
        while heap:
            second, order, index, step = heapq.heappop(heap)
            if second > horizon:
                break  # the log as read at the horizon: sessions still running then are cut
            session = sessions[index]
            at = start + timedelta(seconds=second)
            viewer = self.viewers[session.viewer]
            movie = self.movies[session.movie]
            if step == -1:
                if rng.random() < request_rate:
                    answer = recommend(viewer.id)
                    if answer is not None:
                        yield _recommendation_line(at, viewer.id, *answer)
                heapq.heappush(heap, (second + rng.uniform(5, 60), order, index, 0))
                continue
            if step < session.minutes:
                line = f"{_stamp(at, rng)},{viewer.id},GET /data/m/{movie.slug}/{step}.mpg".encode()
                yield line
                if rng.random() < duplicate_rate:
                    yield line
                if junk_rate and rng.random() < junk_rate:
                    yield _junk(rng, at, viewer.id, movie.slug)
                heapq.heappush(heap, (second + 60, order, index, step + 1))
            elif rng.random() < rating_rate * (0.4 + session.completion):
                score = self.rating_for(session.viewer, session.movie, rng)
                yield f"{_stamp(at, rng)},{viewer.id},GET /rate/{movie.slug}={score}".encode()

    def choose(self, viewer: int, listed: list[int], rng: random.Random) -> tuple[int | None, bool]:
        """What a viewer (an index) watches after being shown ``listed`` (movie indexes), and
        whether it came from the list: None for a viewer who watches nothing now; else the
        listed movie their taste picks, taken with a probability that grows with how much they
        like it, or failing that a movie of their own finding (taste and popularity, over the
        whole catalogue)."""
        if rng.random() > ACTIVE_SHARE:
            return None, False
        if listed:
            weights = [math.exp(CHOICE_SHARPNESS * float(self.affinity[viewer, movie])) for movie in listed]
            pick = rng.choices(listed, weights=weights)[0]
            if rng.random() < 1 / (1 + math.exp(-2 * float(self.affinity[viewer, pick]))):
                return pick, True
        appeal = np.exp(CHOICE_SHARPNESS * self.affinity[viewer] + self.popularity)
        return int(rng.choices(range(len(self.movies)), weights=appeal.tolist())[0]), False

    def watch_lines(
        self, viewer: int, movie: int, at: datetime, rng: random.Random, *, minute: timedelta = timedelta(minutes=1)
    ) -> list[tuple[datetime, bytes]]:
        """The lines of one viewing, each with its time: a line per minute watched (more minutes
        for a movie the viewer likes) from ``at`` and, sometimes, a rating after the last.
        ``minute`` is how long a watched minute lasts on the clock: a live player plays the
        platform faster than real time."""
        sim_viewer, sim_movie = self.viewers[viewer], self.movies[movie]
        liking = 1 / (1 + math.exp(-float(self.affinity[viewer, movie])))
        minutes = max(3, round(sim_movie.runtime * liking * rng.uniform(0.5, 1.0)))
        lines = []
        for m in range(minutes):
            stamp = at + m * minute
            lines.append((stamp, f"{_second(stamp)},{sim_viewer.id},GET /data/m/{sim_movie.slug}/{m}.mpg".encode()))
        if rng.random() < RATING_SHARE:
            stamp = at + (minutes + 1) * minute
            score = self.rating_for(viewer, movie, rng)
            lines.append((stamp, f"{_second(stamp)},{sim_viewer.id},GET /rate/{sim_movie.slug}={score}".encode()))
        return lines

    def write_metadata(self, directory: Path) -> None:
        """Write the world's viewers and movies in the MovieLens-100K layout (``u.user``,
        ``u.item``, ``u.genre``), which ``import_movielens`` reads."""
        directory.mkdir(parents=True, exist_ok=True)
        with (directory / "u.user").open("w", encoding="latin-1") as users:
            for v in self.viewers:
                users.write(f"{v.id}|{v.age}|{v.gender}|{v.occupation}|00000\n")
        with (directory / "u.item").open("w", encoding="latin-1") as items:
            for m in self.movies:
                flags = "|".join("1" if genre in m.genres else "0" for genre in ("unknown", *GENRES))
                title = f"{m.title} ({m.year})" if m.year else m.title
                release = f"01-Jan-{m.year}" if m.year else ""
                items.write(f"{m.index + 1}|{title}|{release}|||{flags}\n")
        with (directory / "u.genre").open("w", encoding="latin-1") as genres:
            for number, genre in enumerate(("unknown", *GENRES)):
                genres.write(f"{genre}|{number}\n")
        (directory / "runtimes.tsv").write_text("".join(f"{m.slug}\t{m.runtime}\n" for m in self.movies))


@dataclass(frozen=True)
class _Session:
    viewer: int
    movie: int
    start: float
    minutes: int
    completion: float


def _plan_sessions(
    world: World, rng: np.random.Generator, per_viewer: float, horizon: float, older_focus: float = 1.0
) -> list[_Session]:
    sessions = []
    activity = rng.lognormal(0, 0.7, len(world.viewers))  # a few viewers watch a lot
    activity = activity / activity.mean()
    for v in range(len(world.viewers)):
        count = rng.poisson(per_viewer * activity[v])
        if count == 0:
            continue
        # No draw of its own: at 1 the default world's stream is the same line for line.
        focus = older_focus if world.viewers[v].age >= 45 else 1.0
        scores = focus * (CHOICE_SHARPNESS * world.affinity[v] + world.popularity)
        probabilities = np.exp(scores - scores.max())
        probabilities /= probabilities.sum()
        count = min(count, len(world.movies))
        picks = rng.choice(len(world.movies), size=count, replace=False, p=probabilities)
        starts = np.sort(rng.uniform(0, horizon, count))
        for movie, begin in zip(picks, starts, strict=True):
            like = 1 / (1 + np.exp(-2.5 * world.affinity[v, movie]))
            completion = float(np.clip(rng.beta(1 + 6 * like, 1 + 6 * (1 - like)), 0.02, 1.0))
            runtime = world.movies[movie].runtime
            sessions.append(_Session(v, int(movie), float(begin), max(1, int(runtime * completion)), completion))
    return sessions


def _generate_movies(rng: np.random.Generator, count: int) -> tuple[list[SimMovie], np.ndarray]:
    movies: list[SimMovie] = []
    genres = np.zeros((count, len(GENRES)))
    slugs: set[str] = set()
    words = list(_WORDS)
    for index in range(count):
        for _ in range(1000):
            title = _title(rng, words)
            year = None if rng.random() < 0.02 else int(rng.integers(1930, 2024))
            slug = slug_for(title, year)
            if slug not in slugs:
                break
        slugs.add(slug)
        picked = rng.choice(len(GENRES), size=int(rng.integers(1, 4)), replace=False, p=GENRE_SHARE)
        genres[index, picked] = 1
        runtime = int(np.clip(rng.normal(108, 20), 70, 200))
        movies.append(SimMovie(index, slug, title, year, tuple(GENRES[g] for g in sorted(picked)), runtime))
    return movies, genres


def _title(rng: np.random.Generator, words: list[str]) -> str:
    w, w2, w3 = (words[int(i)] for i in rng.integers(0, len(words), 3))
    if rng.random() < 0.08:
        return str(_ODD_TITLES[int(rng.integers(0, len(_ODD_TITLES)))]).format(w=w, w2=w2).title()
    shape = int(rng.integers(0, 4))
    return [f"The {w} {w2}", f"{w} of the {w2}", f"{w} {w2} {w3}", f"A {w} in {w2}"][shape].title()


def _generate_viewers(rng: np.random.Generator, count: int) -> tuple[list[SimViewer], np.ndarray]:
    occupations, shares = zip(*OCCUPATIONS, strict=True)
    shares_array = np.array(shares) / sum(shares)
    index = {genre: i for i, genre in enumerate(GENRES)}
    viewers = []
    tastes = rng.normal(0, 0.7, (count, len(GENRES)))
    ids = rng.choice(np.arange(1, count * 20), size=count, replace=False)
    for v in range(count):
        age = int(np.clip(rng.gamma(6, 5.5), 13, 80))
        gender = "M" if rng.random() < 0.71 else "F"
        occupation = str(occupations[int(rng.choice(len(occupations), p=shares_array))])
        if occupation == "college/grad student":
            age = int(np.clip(rng.normal(22, 3), 17, 35))
        elif occupation == "retired":
            age = int(np.clip(rng.normal(67, 6), 55, 90))
        # Demographic lean: younger viewers toward action and animation, older toward drama and
        # documentaries; gender shifts romance and action. These are what fairness checks find.
        youth = (35 - age) / 20
        tastes[v, index["Action"]] += 0.5 * youth + (0.3 if gender == "M" else -0.3)
        tastes[v, index["Sci-Fi"]] += 0.4 * youth
        tastes[v, index["Animation"]] += 0.4 * youth
        tastes[v, index["Drama"]] -= 0.4 * youth
        tastes[v, index["Documentary"]] -= 0.5 * youth
        tastes[v, index["Romance"]] += -0.2 if gender == "M" else 0.5
        viewers.append(SimViewer(int(ids[v]), age, gender, occupation))
    return viewers, tastes


def _second(at: datetime) -> str:
    return at.strftime("%Y-%m-%dT%H:%M:%S")


def _stamp(at: datetime, rng: random.Random) -> str:
    # The platform writes seconds, milliseconds or longer fractions, depending on the writer.
    base = at.strftime("%Y-%m-%dT%H:%M:%S")
    roll = rng.random()
    if roll < 0.6:
        return base
    if roll < 0.9:
        return f"{base}.{at.microsecond // 1000:03d}"
    return f"{base}.{at.microsecond:06d}{rng.randrange(1000):03d}"


def recommendation_line(at: datetime, viewer_id: int, status: int, slugs: list[str], response_ms: int) -> bytes:
    """The platform's log line of one recommendation request and its answer."""
    return _recommendation_line(at, viewer_id, status, slugs, response_ms)


def _recommendation_line(at: datetime, viewer_id: int, status: int, slugs: list[str], response_ms: int) -> bytes:
    stamp = at.strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3]
    if status == 200:
        result = ", ".join(slugs)
    else:
        result = (
            f"java.util.concurrent.TimeoutException: Request timeout to recsite/127.0.0.1:8082 after {response_ms} ms"
        )
    request = f"recommendation request recsite:8082, status {status}, result: {result}, {response_ms} ms"
    return f"{stamp},{viewer_id},{request}".encode()


def _junk(rng: random.Random, at: datetime, viewer_id: int, slug: str) -> bytes:
    """One damaged line of the kinds real streams carry."""
    stamp = at.strftime("%Y-%m-%dT%H:%M:%S")
    kinds = [
        f"{stamp},{viewer_id},GET /data/m/{slug}/6x1.mpg".encode(),
        f"{stamp},{viewer_id},GET /rate/{slug}=E".encode(),
        f"{stamp},{viewer_id},GET /rate/{slug}=7".encode(),
        f"{stamp},GET /data/m/{slug}/3.mpg".encode(),
        f"{stamp},{viewer_id}".encode(),
        # Binary junk, without line breaks: a newline would make it two lines of junk.
        bytes(rng.choice(_JUNK_BYTES) for _ in range(rng.randrange(1, 80))),
        b"",
        f"{stamp},{viewer_id},GET /data/m/{'x' * 100_000}/1.mpg".encode(),
        f"2023-13-45T99:99:99,{viewer_id},GET /rate/{slug}=4".encode(),
        f"{stamp},user{viewer_id},GET /rate/{slug}=4".encode(),
        f"{stamp},{viewer_id},POST /login".encode(),
    ]
    return kinds[rng.randrange(len(kinds))]
