"""What the recommender learns from: movies, viewers, their ratings and what they watched."""

from __future__ import annotations

import re
from collections.abc import Iterable
from datetime import datetime
from pathlib import Path

from django.conf import settings
from django.db import models

from stream.parsing import SLUG_MAX_LENGTH

# Articles MovieLens moves to the end of a title ("Shawshank Redemption, The (1994)").
_TRAILING_ARTICLE = re.compile(r"^(?P<title>.+), (?P<article>The|A|An|Les|La|Le|L'|Il|Das|Der|Die|El|Los|Las)$")
_NOT_SLUG = re.compile(r"[^a-z0-9 _-]")
_SLUG_YEAR = re.compile(r"^(?P<title>.*?)\+(?P<year>(18[89]\d|19\d\d|20\d\d|21\d\d))$")


class Movie(models.Model):
    """A title in the platform's catalogue, identified by the platform's slug."""

    slug = models.CharField(max_length=SLUG_MAX_LENGTH, unique=True, help_text="the platform's movie id")
    title = models.CharField(max_length=300)
    year = models.PositiveSmallIntegerField(null=True, blank=True)
    genres = models.JSONField(default=list, blank=True)
    runtime_minutes = models.PositiveSmallIntegerField(null=True, blank=True)
    source_id = models.PositiveIntegerField(
        null=True, blank=True, db_index=True, help_text="id in the dataset it was imported from (MovieLens)"
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["slug"]

    def __str__(self) -> str:
        return self.slug

    @staticmethod
    def slug_for(title: str, year: int | None) -> str:
        """The platform's slug: lower case, punctuation dropped, each space a ``+``, then the year.

        Dropping punctuation but keeping every space is what produces the platform's doubled
        ``+`` ("Mr. & Mrs. Smith" becomes ``mr++mrs+smith+2005``).
        """
        match = _TRAILING_ARTICLE.match(title.strip())
        if match:
            title = f"{match['article']} {match['title']}"
        words = _NOT_SLUG.sub("", title.strip().lower()).strip()
        slug = words.replace(" ", "+")
        if year is not None:
            slug = f"{slug}+{year}" if slug else str(year)
        return slug[:SLUG_MAX_LENGTH]

    @staticmethod
    def title_year_from_slug(slug: str) -> tuple[str, int | None]:
        """Best-effort title and year for a movie first seen in the stream."""
        match = _SLUG_YEAR.match(slug)
        title, year = (match["title"], int(match["year"])) if match else (slug, None)
        words = [word for word in re.split(r"\++", title) if word]
        return (" ".join(words).title() or slug), year


class Viewer(models.Model):
    """A user of the streaming platform (not a Django login). Demographics may arrive later."""

    class Gender(models.TextChoices):
        FEMALE = "F", "female"
        MALE = "M", "male"
        OTHER = "X", "other"

    id = models.PositiveIntegerField(primary_key=True, help_text="the platform's user id")
    age = models.PositiveSmallIntegerField(null=True, blank=True)
    gender = models.CharField(max_length=1, choices=Gender.choices, blank=True)
    occupation = models.CharField(max_length=64, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["id"]

    def __str__(self) -> str:
        return f"viewer {self.id}"

    @property
    def is_profiled(self) -> bool:
        return self.age is not None or bool(self.gender) or bool(self.occupation)


class Rating(models.Model):
    """One rating event. A viewer's latest rating of a movie is the current one; the history is
    kept because feedback-loop analysis looks at how ratings move."""

    class Source(models.TextChoices):
        STREAM = "stream"
        MOVIELENS = "movielens"

    viewer = models.ForeignKey(Viewer, on_delete=models.CASCADE, related_name="ratings")
    movie = models.ForeignKey(Movie, on_delete=models.CASCADE, related_name="ratings")
    score = models.PositiveSmallIntegerField()
    rated_at = models.DateTimeField()
    source = models.CharField(max_length=16, choices=Source.choices, default=Source.STREAM)

    class Meta:
        constraints = [
            # The natural key of a rating event: ingesting the same line twice inserts nothing.
            models.UniqueConstraint(fields=["viewer", "movie", "rated_at"], name="rating_event_unique"),
            models.CheckConstraint(condition=models.Q(score__gte=1, score__lte=5), name="rating_score_1_to_5"),
        ]
        indexes = [models.Index(fields=["movie", "rated_at"], name="rating_movie_time")]

    def __str__(self) -> str:
        return f"{self.viewer_id} rated {self.movie_id} {self.score}"


class Watch(models.Model):
    """What one viewer watched of one movie, folded from the platform's one-line-per-minute log.

    The set of minutes seen is kept as a bitmap, so merging the same minute twice (a replayed
    batch, a duplicate line) changes nothing: ingestion stays idempotent without storing lines.
    """

    viewer = models.ForeignKey(Viewer, on_delete=models.CASCADE, related_name="watches")
    movie = models.ForeignKey(Movie, on_delete=models.CASCADE, related_name="watches")
    minutes_bitmap = models.BinaryField(default=b"", editable=False)
    minutes_watched = models.PositiveIntegerField(default=0)
    max_minute = models.PositiveIntegerField(default=0, help_text="the furthest minute reached")
    first_seen_at = models.DateTimeField()
    last_seen_at = models.DateTimeField()

    class Meta:
        verbose_name_plural = "watches"
        constraints = [models.UniqueConstraint(fields=["viewer", "movie"], name="watch_viewer_movie_unique")]
        indexes = [models.Index(fields=["movie", "last_seen_at"], name="watch_movie_time")]

    def __str__(self) -> str:
        return f"{self.viewer_id} watched {self.minutes_watched} min of {self.movie_id}"

    def merge(self, *, minutes: Iterable[int], first_seen_at: datetime, last_seen_at: datetime) -> None:
        bitmap = int.from_bytes(bytes(self.minutes_bitmap or b""), "little")
        for minute in minutes:
            bitmap |= 1 << minute
        self.minutes_bitmap = bitmap.to_bytes((bitmap.bit_length() + 7) // 8, "little")
        self.minutes_watched = bitmap.bit_count()
        self.max_minute = max(bitmap.bit_length() - 1, 0)
        self.first_seen_at = min(self.first_seen_at, first_seen_at) if self.first_seen_at else first_seen_at
        self.last_seen_at = max(self.last_seen_at, last_seen_at) if self.last_seen_at else last_seen_at

    def has_watched(self, minute: int) -> bool:
        return bool(int.from_bytes(bytes(self.minutes_bitmap or b""), "little") >> minute & 1)


class ModelVersion(models.Model):
    """A trained model registered with its full lineage: data, code, parameters, metrics, gate.

    One versioned artifact may bundle a ranker (the top-20 list viewers see) and a rating model
    (RMSE, and the order of ties); the registry and the gate treat it as one thing.
    """

    class Status(models.TextChoices):
        TRAINING = "training"
        FAILED = "failed"
        CANDIDATE = "candidate"
        REJECTED = "rejected"
        CANARY = "canary"
        STABLE = "stable"
        RETIRED = "retired"

    version = models.PositiveIntegerField(unique=True)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.TRAINING, db_index=True)
    rating_algorithm = models.CharField(max_length=32, help_text="scikit-surprise rating model")
    ranker = models.CharField(max_length=32, help_text="model that ranks the served list")
    params = models.JSONField(default=dict, help_text="hyper-parameters of both models, and the split")
    snapshot = models.ForeignKey(
        "provenance.DataSnapshot", on_delete=models.PROTECT, related_name="model_versions", null=True, blank=True
    )
    training_started_at = models.DateTimeField()
    training_finished_at = models.DateTimeField(null=True, blank=True)
    metrics = models.JSONField(default=dict, blank=True)
    group_metrics = models.JSONField(default=dict, blank=True, help_text="metrics per demographic group")
    gate = models.JSONField(default=dict, blank=True, help_text="the gate's inputs, verdict and reasons")
    artifact_path = models.CharField(max_length=500, blank=True, help_text="relative to MODEL_DIR")
    artifact_sha256 = models.CharField(max_length=64, blank=True)
    artifact_bytes = models.PositiveBigIntegerField(null=True, blank=True)
    dvc_md5 = models.CharField("DVC md5", max_length=64, blank=True)
    dvc_file = models.CharField("DVC file", max_length=500, blank=True)
    code_revision = models.CharField(max_length=64, blank=True, help_text="git commit of the training code")
    error = models.TextField(blank=True)

    class Meta:
        ordering = ["-version"]
        get_latest_by = "version"

    def __str__(self) -> str:
        return f"v{self.version} ({self.ranker}+{self.rating_algorithm}, {self.status})"

    @property
    def artifact_file(self) -> Path:
        return Path(settings.MODEL_DIR) / self.artifact_path

    @property
    def rmse(self) -> float | None:
        return self.metrics.get("rmse")

    @property
    def ndcg_at_10(self) -> float | None:
        return self.metrics.get("ndcg@10")

    @property
    def training_seconds(self) -> float | None:
        if self.training_finished_at is None:
            return None
        return (self.training_finished_at - self.training_started_at).total_seconds()


class ModelStatusChange(models.Model):
    """Every status a version passed through, so "which version served at time T" has an answer."""

    model_version = models.ForeignKey(ModelVersion, on_delete=models.CASCADE, related_name="status_changes")
    from_status = models.CharField(max_length=16, blank=True)
    to_status = models.CharField(max_length=16, choices=ModelVersion.Status.choices)
    at = models.DateTimeField(db_index=True)
    reason = models.TextField(blank=True)
    actor = models.CharField(max_length=150, blank=True, help_text="who or what made the change")

    class Meta:
        ordering = ["at", "id"]
        indexes = [models.Index(fields=["to_status", "at"], name="status_change_to_at")]

    def __str__(self) -> str:
        return (
            f"v{self.model_version.version}: {self.from_status or '-'} -> {self.to_status} at {self.at:%Y-%m-%d %H:%M}"
        )
