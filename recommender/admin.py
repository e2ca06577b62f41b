from __future__ import annotations

from django.contrib import admin
from django.db.models import Count, QuerySet
from django.http import HttpRequest
from django.urls import reverse
from django.utils.html import format_html

from recommender.models import Movie, Rating, Viewer, Watch
from recsite.admin import ReadOnlyAdmin


def _link(model: str, pk: object, label: object) -> str:
    return format_html('<a href="{}">{}</a>', reverse(f"admin:recommender_{model}_change", args=[pk]), label)


@admin.register(Movie)
class MovieAdmin(admin.ModelAdmin):
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
    def rating_count(self, movie: Movie) -> int:
        return movie.rating_count  # type: ignore[attr-defined]

    @admin.display(ordering="watch_count", description="watched by")
    def watch_count(self, movie: Movie) -> int:
        return movie.watch_count  # type: ignore[attr-defined]


@admin.register(Viewer)
class ViewerAdmin(admin.ModelAdmin):
    list_display = ["id", "age", "gender", "occupation", "rating_count", "created_at"]
    list_filter = ["gender", "occupation"]
    search_fields = ["id"]
    readonly_fields = ["created_at"]

    def get_queryset(self, request: HttpRequest) -> QuerySet[Viewer]:
        return super().get_queryset(request).annotate(rating_count=Count("ratings"))

    @admin.display(ordering="rating_count", description="ratings")
    def rating_count(self, viewer: Viewer) -> int:
        return viewer.rating_count  # type: ignore[attr-defined]


@admin.register(Rating)
class RatingAdmin(ReadOnlyAdmin):
    list_display = ["rated_at", "viewer_link", "movie_link", "score", "source"]
    list_filter = ["score", "source"]
    list_select_related = ["movie"]
    search_fields = ["=viewer__id", "movie__slug"]
    date_hierarchy = "rated_at"
    show_full_result_count = False

    @admin.display(ordering="viewer_id", description="viewer")
    def viewer_link(self, rating: Rating) -> str:
        return _link("viewer", rating.viewer_id, rating.viewer_id)

    @admin.display(ordering="movie__slug", description="movie")
    def movie_link(self, rating: Rating) -> str:
        return _link("movie", rating.movie_id, rating.movie.slug)


@admin.register(Watch)
class WatchAdmin(ReadOnlyAdmin):
    list_display = ["last_seen_at", "viewer_link", "movie_link", "minutes_watched", "max_minute", "first_seen_at"]
    list_select_related = ["movie"]
    search_fields = ["=viewer__id", "movie__slug"]
    exclude = ["minutes_bitmap"]
    show_full_result_count = False

    @admin.display(ordering="viewer_id", description="viewer")
    def viewer_link(self, watch: Watch) -> str:
        return _link("viewer", watch.viewer_id, watch.viewer_id)

    @admin.display(ordering="movie__slug", description="movie")
    def movie_link(self, watch: Watch) -> str:
        return _link("movie", watch.movie_id, watch.movie.slug)
