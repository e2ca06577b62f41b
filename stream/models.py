"""What the stream tells us besides ratings and watches: the platform's log of our answers,
the lines we could not read, and a record of each ingestion run."""

from __future__ import annotations

from django.db import models


class ObservedRecommendation(models.Model):
    """A recommendation request as the platform logged it (what its client saw of our answer)."""

    requested_at = models.DateTimeField()
    viewer = models.ForeignKey("catalog.Viewer", on_delete=models.CASCADE, related_name="observed_recommendations")
    host = models.CharField(max_length=255, blank=True)
    status = models.PositiveSmallIntegerField(help_text="HTTP status; 0 when the client gave up")
    results = models.TextField(blank=True, help_text="movie ids in the order served, comma-separated")
    result_count = models.PositiveSmallIntegerField(default=0)
    error = models.TextField(blank=True, help_text="the client's exception text when status is not 200")
    response_ms = models.PositiveIntegerField()
    # sha1 of the event's fields: the same logged line ingested twice is stored once.
    event_hash = models.CharField(max_length=40, unique=True, editable=False)

    class Meta:
        indexes = [
            models.Index(fields=["viewer", "requested_at"], name="observed_viewer_time"),
            models.Index(fields=["requested_at"], name="observed_time"),
        ]

    def __str__(self) -> str:
        return f"{self.viewer_id} at {self.requested_at:%Y-%m-%d %H:%M:%S}: status {self.status}"


class RejectedLine(models.Model):
    """A line that could not be read, kept verbatim (up to a bound) for a person to look at."""

    line_hash = models.CharField(max_length=40, unique=True, editable=False)
    reason = models.CharField(max_length=32, db_index=True)
    detail = models.CharField(max_length=200, blank=True)
    raw = models.TextField(help_text="the line as received, cut to 2,000 characters")
    length = models.PositiveIntegerField(help_text="length of the line as received")
    source = models.CharField(max_length=300, blank=True)
    received_at = models.DateTimeField(db_index=True)

    class Meta:
        ordering = ["-received_at"]

    def __str__(self) -> str:
        return f"{self.reason}: {self.raw[:60]}"


class RejectionOverflow(models.Model):
    """Rejected lines past the storage bound: counted per reason, not kept."""

    reason = models.CharField(max_length=32, unique=True)
    count = models.PositiveBigIntegerField(default=0)
    last_at = models.DateTimeField(null=True)

    def __str__(self) -> str:
        return f"{self.reason}: {self.count}"


class IngestRun(models.Model):
    """One run of the consumer over a source: what it read and how it went."""

    class Status(models.TextChoices):
        RUNNING = "running"
        FINISHED = "finished"
        STOPPED = "stopped"  # asked to stop (SIGTERM): what it stored is committed
        FAILED = "failed"
        # Its process is gone (SIGKILL, out of memory): the counts are what it had stored.
        ABANDONED = "abandoned"

    source = models.CharField(max_length=300)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.RUNNING)
    started_at = models.DateTimeField()
    finished_at = models.DateTimeField(null=True, blank=True)
    lines = models.PositiveBigIntegerField(default=0)
    watches = models.PositiveBigIntegerField(default=0, help_text="watch lines (one per minute)")
    ratings = models.PositiveBigIntegerField(default=0)
    recommendations = models.PositiveBigIntegerField(default=0)
    rejected = models.PositiveBigIntegerField(default=0)
    batches = models.PositiveIntegerField(default=0)
    error = models.TextField(blank=True)
    holder = models.CharField(max_length=120, blank=True, help_text="host:pid of the consumer process")
    updated_at = models.DateTimeField(null=True, blank=True, help_text="when its counts were last saved")

    class Meta:
        ordering = ["-started_at"]

    def __str__(self) -> str:
        return f"{self.source} at {self.started_at:%Y-%m-%d %H:%M}"

    @property
    def duration_seconds(self) -> float | None:
        if self.finished_at is None:
            return None
        return (self.finished_at - self.started_at).total_seconds()

    @property
    def lines_per_second(self) -> float | None:
        seconds = self.duration_seconds
        return self.lines / seconds if seconds else None

    def summary(self) -> str:
        rate = f", {self.lines_per_second:,.0f} lines/s" if self.lines_per_second else ""
        return (
            f"{self.status}: {self.lines:,} lines from {self.source} in {self.duration_seconds or 0:.1f}s{rate}: "
            f"{self.watches:,} watch, {self.ratings:,} rate, {self.recommendations:,} recommendation, "
            f"{self.rejected:,} rejected"
        )
