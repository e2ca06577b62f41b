"""Reads of the catalogue shared by the pages above it."""

from __future__ import annotations

from collections.abc import Iterable

from catalog.models import Movie


def movie_titles(slugs: Iterable[str]) -> dict[str, str]:
    """Each known movie id's title with its year ("Alien (1979)"), in one query; an id the
    catalogue does not know is left out (the caller shows the id itself)."""
    wanted = set(slugs)
    if not wanted:
        return {}
    return {
        movie.slug: movie.display_title for movie in Movie.objects.filter(slug__in=wanted).only("slug", "title", "year")
    }
