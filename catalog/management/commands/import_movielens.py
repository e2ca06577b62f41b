"""python manage.py import_movielens PATH: load a GroupLens MovieLens directory."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from catalog import movielens
from catalog.services import movielens_import
from core.progress import progress_bar


class Command(BaseCommand):
    help = "Import movies, viewers and ratings from a MovieLens directory (ml-100k or ml-1m layout)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("path", type=Path)

    def handle(self, *args: Any, **options: Any) -> None:
        path: Path = options["path"]
        try:
            layout = movielens.detect(path)
            ratings_file = path / layout.ratings
            total = sum(1 for _ in ratings_file.open("rb")) if ratings_file.is_file() else 0
            with progress_bar(total=total, description=f"importing {path.name}", unit=" ratings") as bar:
                result = movielens_import(path=path, progress=bar.update)
        except movielens.MovieLensFormatError as error:
            raise CommandError(str(error)) from None
        self.stdout.write(result.summary())
