"""Infrastructure kept in the database: named locks that hold across processes and hosts."""

from __future__ import annotations

from django.db import models


class NamedLock(models.Model):
    """One row per lock name; held while ``holder`` is set (see ``core.locks``)."""

    name = models.CharField(max_length=64, unique=True)
    holder = models.CharField(max_length=200, blank=True, help_text="host:pid of the process that holds it")
    acquired_at = models.DateTimeField(null=True, blank=True)

    def __str__(self) -> str:
        return f"{self.name} ({self.holder or 'free'})"
