"""The catalogue and what viewers did with it: movies, viewers, their ratings and watches.

This is the data every other app learns from or explains with; it knows nothing above it.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

from django.db import models

from catalog.identifiers import SLUG_MAX_LENGTH


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

    @property
    def display_title(self) -> str:
        """The title people read, with its year: "Alien (1979)"."""
        return f"{self.title} ({self.year})" if self.year else self.title


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

    # No single-column indexes: the unique (viewer, movie, rated_at) and the (movie, rated_at)
    # indexes lead with each key already, and every extra index slowed importing ratings.
    viewer = models.ForeignKey(Viewer, on_delete=models.CASCADE, related_name="ratings", db_index=False)
    movie = models.ForeignKey(Movie, on_delete=models.CASCADE, related_name="ratings", db_index=False)
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
