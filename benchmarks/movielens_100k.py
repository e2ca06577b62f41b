"""Write the real MovieLens-100K dataset in its GroupLens layout (u.data, u.item, u.user).

There is no internet here, only package registries. RecBole's wheel on PyPI ships MovieLens-100K
(GroupLens' ratings, items and users, in its "atomic file" format); this script fetches that
wheel with pip and converts the files back to the ml-100k layout that ``import_movielens`` and
``benchmarks/training.py`` read:

    .venv/bin/python benchmarks/movielens_100k.py var/ml-100k
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

GENRES = (
    "unknown", "Action", "Adventure", "Animation", "Children's", "Comedy", "Crime", "Documentary",
    "Drama", "Fantasy", "Film-Noir", "Horror", "Musical", "Mystery", "Romance", "Sci-Fi", "Thriller",
    "War", "Western",
)  # fmt: skip
WHEEL = "recbole==1.2.1"
PREFIX = "recbole/dataset_example/ml-100k/ml-100k."


def _atomic(archive: zipfile.ZipFile, suffix: str) -> list[list[str]]:
    lines = archive.read(PREFIX + suffix).decode("latin-1").splitlines()
    return [line.split("\t") for line in lines[1:] if line]


def main() -> None:
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    out = Path(sys.argv[1])
    out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as download:
        subprocess.run(
            [sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "--dest", download, WHEEL], check=True
        )
        wheel = next(Path(download).glob("recbole-*.whl"))
        with zipfile.ZipFile(wheel) as archive:
            ratings = _atomic(archive, "inter")
            items = _atomic(archive, "item")
            users = _atomic(archive, "user")
    with (out / "u.data").open("w") as handle:
        for user, item, rating, stamp in ratings:
            handle.write(f"{user}\t{item}\t{int(float(rating))}\t{int(float(stamp))}\n")
    with (out / "u.item").open("w", encoding="latin-1") as handle:
        for item, title, year, genres in items:
            flags = "|".join("1" if genre in genres.split() else "0" for genre in GENRES)
            dated = f"{title} ({year})" if year else title
            handle.write(f"{item}|{dated}|||http://movielens.org|{flags}\n")
    with (out / "u.user").open("w", encoding="latin-1") as handle:
        for user, age, gender, occupation, zip_code in users:
            handle.write(f"{user}|{age}|{gender}|{occupation}|{zip_code}\n")
    print(f"wrote MovieLens-100K to {out}: {len(ratings):,} ratings, {len(items):,} movies, {len(users):,} users")


if __name__ == "__main__":
    main()
