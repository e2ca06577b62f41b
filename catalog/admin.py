from __future__ import annotations

from django.contrib import admin

from catalog.models import Movie, Rating, Viewer, Watch
from core.admin_kit import CappedCountPaginator, ReadOnlyAdmin, admin_link


@admin.register(Movie)
class MovieAdmin(ReadOnlyAdmin):
    """The catalogue, as the platform and MovieLens describe it: read-only audit data.

    No per-row counts on the list: two distinct counts per movie took a second for 685 movies.
    A movie's page shows its ratings and watches."""

    list_display = ["title", "year", "genre_list", "slug", "runtime_minutes"]
    search_fields = ["=slug", "title"]
    list_filter = ["year"]
    show_full_result_count = False
    paginator = CappedCountPaginator

    @admin.display(description="genres")
    def genre_list(self, movie: Movie) -> str:
        return ", ".join(movie.genres)


@admin.register(Viewer)
class ViewerAdmin(ReadOnlyAdmin):
    """The platform's viewers: read-only (their ids are the platform's). A viewer's page shows
    their ratings, watches and every list served to them."""

    list_display = ["id", "age", "gender", "occupation", "created_at"]
    # Gender's choices are fixed; occupations would be a distinct over every viewer (0.4 s at a
    # million): the fairness report has the groups.
    list_filter = ["gender"]
    search_fields = ["=id"]
    search_help_text = "a viewer id (exact)"
    show_full_result_count = False
    paginator = CappedCountPaginator


class ViewerMovieAdmin(ReadOnlyAdmin):
    """Rows about one viewer and one movie (ratings, watches), linked to both."""

    list_select_related = ["movie"]
    search_fields = ["=viewer__id", "=movie__slug"]
    search_help_text = "a viewer id or a movie id (exact)"
    show_full_result_count = False
    paginator = CappedCountPaginator

    @admin.display(ordering="viewer_id", description="viewer")
    def viewer_link(self, row: Rating | Watch) -> str:
        return admin_link(Viewer, row.viewer_id, row.viewer_id)

    @admin.display(ordering="movie__title", description="movie")
    def movie_link(self, row: Rating | Watch) -> str:
        return admin_link(Movie, row.movie_id, row.movie.display_title)


@admin.register(Rating)
class RatingAdmin(ViewerMovieAdmin):
    list_display = ["rated_at", "viewer_link", "movie_link", "score", "source"]
    list_filter = ["score", "source"]
    date_hierarchy = "rated_at"


@admin.register(Watch)
class WatchAdmin(ViewerMovieAdmin):
    list_display = ["last_seen_at", "viewer_link", "movie_link", "minutes_watched", "max_minute", "first_seen_at"]
    exclude = ["minutes_bitmap"]
