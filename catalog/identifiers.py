"""The platform's identifiers: viewer ids and movie ids (slugs).

Pure functions and constants, shared by the stream parser, MovieLens import, the simulator and
serving, so that every door into recsite agrees on what an id looks like.
"""

from __future__ import annotations

import re

MAX_VIEWER_ID = 2_147_483_647  # the viewer table's primary key is a signed 32-bit integer
SLUG_MAX_LENGTH = 255

# Platform slugs: lower-case ASCII words joined by '+', with digits, '-', '_', '.', and '+'
# doubled where punctuation was dropped. Anything else (spaces, commas, '/', '=') can't be a slug.
_SLUG = re.compile(r"^[a-z0-9][a-z0-9+_.'&!:-]*$")
# Articles MovieLens moves to the end of a title ("Shawshank Redemption, The (1994)").
_TRAILING_ARTICLE = re.compile(r"^(?P<title>.+), (?P<article>The|A|An|Les|La|Le|L'|Il|Das|Der|Die|El|Los|Las)$")
_NOT_SLUG = re.compile(r"[^a-z0-9 _-]")
_SLUG_YEAR = re.compile(r"^(?P<title>.*?)\+(?P<year>(18[89]\d|19\d\d|20\d\d|21\d\d))$")


def is_slug(text: str) -> bool:
    return len(text) <= SLUG_MAX_LENGTH and text.isascii() and _SLUG.match(text) is not None


def movie_id_fold(text: str) -> str | None:
    """A movie id as the stream wrote it, in the one form recsite stores: ASCII lower case;
    ``None`` when it cannot be a movie id.

    The platform writes ids in lower case, yet a client may not (``Chicken+Run+2000``). MariaDB's
    collation compares ids without case and SQLite with it, so both would disagree about such a
    line; folding it to lower case here makes every database see the same movie. Non-ASCII
    letters are refused rather than folded: a collation may equate them with ASCII ones
    (the long s, U+017F, with ``s``), which is the same disagreement again.
    """
    if not text.isascii():
        return None
    folded = text.lower()
    return folded if is_slug(folded) else None


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


def title_year_from_slug(slug: str) -> tuple[str, int | None]:
    """Best-effort title and year for a movie first seen in the stream."""
    match = _SLUG_YEAR.match(slug)
    title, year = (match["title"], int(match["year"])) if match else (slug, None)
    words = [word for word in re.split(r"\++", title) if word]
    return (" ".join(words).title() or slug), year
