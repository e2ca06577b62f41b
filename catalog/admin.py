from __future__ import annotations

from typing import TypedDict

from django.contrib import admin
from django.db.models import Count, QuerySet
from django.http import HttpRequest
from django_stubs_ext import WithAnnotations

from catalog.models import Movie, Rating, Viewer, Watch
from core.admin_kit import ReadOnlyAdmin, admin_link


class _MovieCounts(TypedDict):
    rating_count: int
    watch_count: int


class _ViewerCounts(TypedDict):
    rating_count: int


@admin.register(Movie)
class MovieAdmin(admin.ModelAdmin[Movie]):
    list_display = ["slug", "title", "year", "genre_list", "rating_count", "watch_count"]
    search_fields = ["slug", "title"]
    list_filter = ["year"]
    readonly_fields = ["created_at"]

    def get_queryset(self, request: HttpRequest) -> QuerySet[Movie]:
        return (
            super()
            .get_queryset(request)
            .annotate(rating_count=Count("ratings", distinct=True), watch_count=Count("watches", distinct=True))
        )

    @admin.display(description="genres")
    def genre_list(self, movie: Movie) -> str:
        return ", ".join(movie.genres)

    @admin.display(ordering="rating_count", description="ratings")
    def rating_count(self, movie: WithAnnotations[Movie, _MovieCounts]) -> int:
        return movie.rating_count

    @admin.display(ordering="watch_count", description="watched by")
    def watch_count(self, movie: WithAnnotations[Movie, _MovieCounts]) -> int:
        return movie.watch_count


@admin.register(Viewer)
class ViewerAdmin(admin.ModelAdmin[Viewer]):
    list_display = ["id", "age", "gender", "occupation", "rating_count", "created_at"]
    list_filter = ["gender", "occupation"]
    search_fields = ["id"]
    readonly_fields = ["created_at"]

    def get_queryset(self, request: HttpRequest) -> QuerySet[Viewer]:
        return super().get_queryset(request).annotate(rating_count=Count("ratings"))

    @admin.display(ordering="rating_count", description="ratings")
    def rating_count(self, viewer: WithAnnotations[Viewer, _ViewerCounts]) -> int:
        return viewer.rating_count


class ViewerMovieAdmin(ReadOnlyAdmin):
    """Rows about one viewer and one movie (ratings, watches), linked to both."""

    list_select_related = ["movie"]
    search_fields = ["=viewer__id", "movie__slug"]
    show_full_result_count = False

    @admin.display(ordering="viewer_id", description="viewer")
    def viewer_link(self, row: Rating | Watch) -> str:
        return admin_link(Viewer, row.viewer_id, row.viewer_id)

    @admin.display(ordering="movie__slug", description="movie")
    def movie_link(self, row: Rating | Watch) -> str:
        return admin_link(Movie, row.movie_id, row.movie.slug)


@admin.register(Rating)
class RatingAdmin(ViewerMovieAdmin):
    list_display = ["rated_at", "viewer_link", "movie_link", "score", "source"]
    list_filter = ["score", "source"]
    date_hierarchy = "rated_at"


@admin.register(Watch)
class WatchAdmin(ViewerMovieAdmin):
    list_display = ["last_seen_at", "viewer_link", "movie_link", "minutes_watched", "max_minute", "first_seen_at"]
    exclude = ["minutes_bitmap"]
