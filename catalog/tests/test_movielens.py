from pathlib import Path

import pytest
from django.core.management import CommandError, call_command
from django.db import connection

from catalog import movielens, services
from catalog.identifiers import slug_for, title_year_from_slug
from catalog.models import Movie, Rating, Viewer
from catalog.movielens import MovieLensFormatError
from catalog.services import movielens_import

# The database engine shapes what this checks: it runs on SQLite and on MariaDB.
pytestmark = pytest.mark.engine


FLAGS_DRAMA = "|".join(["0"] * 8 + ["1"] + ["0"] * 10)  # unknown, Action, ... Drama is the 9th flag
FLAGS_COMEDY_ROMANCE = "|".join("1" if i in (5, 14) else "0" for i in range(19))


def _ml100k(directory: Path, *, ratings: str | None = None) -> Path:
    directory.mkdir()
    (directory / "u.item").write_text(
        f"1|Shawshank Redemption, The (1994)|01-Jan-1994||http://x|{FLAGS_DRAMA}\n"
        f"2|Mr. & Mrs. Smith (2005)|01-Jan-2005||http://x|{FLAGS_COMEDY_ROMANCE}\n"
        f"3|Chasing Amy (1997)|01-Jan-1997||http://x|{FLAGS_COMEDY_ROMANCE}\n"
        f"4|Chasing Amy (1997)|01-Jan-1997||http://x|{FLAGS_COMEDY_ROMANCE}\n",
        encoding="latin-1",
    )
    (directory / "u.user").write_text(
        "1|24|M|technician|85711\n2|53|F|other|94043\n3|23|M|student|32067\n", encoding="latin-1"
    )
    (directory / "u.data").write_text(
        ratings
        if ratings is not None
        else "1\t1\t5\t874965758\n2\t2\t3\t876893171\n3\t4\t4\t878542960\n1\t3\t2\t874965800\n"
    )
    return directory


def test_imports_ml100k_movies_viewers_and_ratings(db, tmp_path):
    result = movielens_import(path=_ml100k(tmp_path / "ml-100k"))

    assert (result.layout, result.movies, result.viewers, result.ratings, result.ratings_new) == ("ml-100k", 3, 3, 4, 4)
    shawshank = Movie.objects.get(slug="the+shawshank+redemption+1994")
    assert (shawshank.title, shawshank.year, shawshank.genres, shawshank.source_id) == (
        "Shawshank Redemption, The",
        1994,
        ["Drama"],
        1,
    )
    assert Movie.objects.get(slug="mr++mrs+smith+2005").genres == ["Comedy", "Romance"]
    viewer = Viewer.objects.get(id=3)
    assert (viewer.age, viewer.gender, viewer.occupation) == (23, "M", "student")
    # MovieLens lists Chasing Amy under ids 3 and 4: both ratings land on one movie.
    assert Rating.objects.filter(movie__slug="chasing+amy+1997").count() == 2


def test_a_second_import_counts_only_the_ratings_it_added(db, tmp_path):
    directory = _ml100k(tmp_path / "ml-100k")
    movielens_import(path=directory)
    with (directory / "u.data").open("a") as handle:
        handle.write("2\t1\t4\t880000000\n")

    again = movielens_import(path=directory)

    assert (again.ratings, again.ratings_new) == (5, 1)
    added = Rating.objects.get(viewer_id=2, movie__slug="the+shawshank+redemption+1994")
    assert (added.score, int(added.rated_at.timestamp()), added.source) == (4, 880000000, "movielens")


def test_importing_twice_changes_nothing(db, tmp_path):
    directory = _ml100k(tmp_path / "ml-100k")
    movielens_import(path=directory)

    again = movielens_import(path=directory)

    assert again.ratings_new == 0
    assert (Movie.objects.count(), Viewer.objects.count(), Rating.objects.count()) == (3, 3, 4)


def test_imports_ml1m_layout(db, tmp_path):
    directory = tmp_path / "ml-1m"
    directory.mkdir()
    (directory / "movies.dat").write_text("1::Toy Story (1995)::Animation|Children's|Comedy\n", encoding="latin-1")
    (directory / "users.dat").write_text("1::F::1::10::48067\n2::M::56::16::70072\n", encoding="latin-1")
    (directory / "ratings.dat").write_text("1::1::5::978300760\n2::1::3::978298413\n")

    result = movielens_import(path=directory)

    assert (result.layout, result.movies, result.viewers, result.ratings) == ("ml-1m", 1, 2, 2)
    assert Movie.objects.get().genres == ["Animation", "Children's", "Comedy"]
    assert Viewer.objects.get(id=1).occupation == "K-12 student"
    assert Viewer.objects.get(id=2).occupation == "self-employed"


def test_names_the_file_and_line_of_a_malformed_rating(db, tmp_path):
    directory = _ml100k(tmp_path / "ml-100k", ratings="1\t1\t5\t874965758\n2\t2\tfive\t876893171\n")

    with pytest.raises(MovieLensFormatError, match=r"u\.data:2: rating 'five' is not a number"):
        movielens_import(path=directory)


def test_rejects_a_rating_for_a_movie_not_in_the_catalogue(db, tmp_path):
    directory = _ml100k(tmp_path / "ml-100k", ratings="1\t99\t5\t874965758\n")

    with pytest.raises(MovieLensFormatError, match=r"u\.data:1: movie id 99 is not in the movie file"):
        movielens_import(path=directory)


def test_command_reports_a_directory_that_is_not_movielens(db, tmp_path):
    with pytest.raises(CommandError, match="not a MovieLens directory"):
        call_command("import_movielens", str(tmp_path))


def test_command_prints_a_summary(db, tmp_path, capsys):
    call_command("import_movielens", str(_ml100k(tmp_path / "ml-100k")))

    assert "imported MovieLens (ml-100k): 3 movies, 3 viewers, 4 ratings read, 4 new" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("title", "year", "slug"),
    [
        ("Shawshank Redemption, The", 1994, "the+shawshank+redemption+1994"),
        ("Mr. & Mrs. Smith", 2005, "mr++mrs+smith+2005"),
        ("Spider-Man", 2002, "spider-man+2002"),
        ("Se7en", 1995, "se7en+1995"),
        ("Untitled", None, "untitled"),
    ],
)
def test_slugs_follow_the_platform_format(title, year, slug):
    assert slug_for(title, year) == slug


def test_title_and_year_come_back_from_a_slug():
    assert title_year_from_slug("mr++mrs+smith+2005") == ("Mr Mrs Smith", 2005)
    assert title_year_from_slug("untitled") == ("Untitled", None)


def test_the_column_reader_reads_what_the_row_reader_reads_across_runs(tmp_path):
    lines = [f"{v}\t{m}\t{1 + (v + m) % 5}\t{874965758 + v}\n" for v in range(1, 40) for m in range(1, 5)]
    lines.insert(17, "\n")  # a blank line: that run is read by line, the others in one step
    directory = _ml100k(tmp_path / "ml-100k", ratings="".join(lines))
    layout = movielens.detect(directory)

    runs = list(movielens.read_rating_columns(directory, layout, lines=25))
    rows = list(movielens.read_ratings(directory, layout))

    assert len(runs) == 7
    assert sum(len(run) for run in runs) == len(rows) == 156
    joined = [
        (int(line), int(viewer), int(movie), int(score), int(stamp))
        for run in runs
        for line, viewer, movie, score, stamp in zip(
            run.lines, run.viewer_ids, run.movie_source_ids, run.scores, run.timestamps, strict=True
        )
    ]
    assert joined == [(r.line, r.viewer_id, r.movie_source_id, r.score, r.timestamp) for r in rows]


@pytest.mark.parametrize(
    ("bad", "message"),
    [
        ("7\t1\t6\t874965758\n", r"u\.data:30: rating 6 is not 1-5"),
        ("7\t1\n", r"u\.data:30: expected 4 fields"),
        ("7\t1\t4.5\t874965758\n", r"u\.data:30: rating '4\.5' is not a number"),
    ],
)
def test_the_column_reader_names_the_line_of_a_bad_rating(tmp_path, bad, message):
    good = "".join(f"{v}\t1\t3\t874965758\n" for v in range(29))
    directory = _ml100k(tmp_path / "ml-100k", ratings=good + bad + good)

    with pytest.raises(MovieLensFormatError, match=message):
        list(movielens.read_rating_columns(directory, movielens.detect(directory), lines=20))


def test_a_bulk_import_rebuilds_the_index_it_set_aside(db, tmp_path, monkeypatch):
    monkeypatch.setattr(services, "_is_bulk_load", lambda ratings_file: True)
    directory = _ml100k(tmp_path / "ml-100k")

    movielens_import(path=directory)

    assert Rating.objects.count() == 4
    assert "rating_movie_time" in _indexes(Rating)


def test_a_bulk_import_that_fails_keeps_its_index_and_a_corrected_rerun_completes(db, tmp_path, monkeypatch):
    monkeypatch.setattr(services, "_is_bulk_load", lambda ratings_file: True)
    monkeypatch.setattr(services, "_RATINGS_BATCH", 4)
    good = "".join(f"{v}\t{m}\t3\t874965758\n" for v in (1, 2, 3) for m in (1, 2, 3))
    directory = _ml100k(tmp_path / "ml-100k", ratings=good + "1\t99\t5\t874965758\n")

    with pytest.raises(MovieLensFormatError, match="movie id 99"):
        movielens_import(path=directory)

    assert "rating_movie_time" in _indexes(Rating)
    # SQLite's bulk load is one transaction; MariaDB keeps the batches it committed.
    assert Rating.objects.count() == (0 if connection.vendor == "sqlite" else 8)
    (directory / "u.data").write_text(good)
    assert movielens_import(path=directory).ratings == 9
    assert Rating.objects.count() == 9


def _indexes(model: type[Rating]) -> set[str]:
    with connection.cursor() as cursor:
        return set(connection.introspection.get_constraints(cursor, model._meta.db_table))
