"""Artifacts as memory-mapped files: one copy of the pages for every worker of a host."""

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from recommender.artifacts import ArtifactError, artifact_load, artifact_write

CHILD = """
import sys
import numpy as np
from recommender.artifacts import artifact_load
artifact = artifact_load(__import__("pathlib").Path(sys.argv[1]), sha256=sys.argv[2])
print(int(np.asarray(artifact["top"]).sum(dtype=np.int64)), flush=True)  # touches every page
sys.stdin.readline()
"""


def _mapping(pid: int, file: Path) -> dict[str, int]:
    """The kB figures of the one mapping of ``file`` in the process's smaps."""
    figures: dict[str, int] = {}
    inside = False
    for line in Path(f"/proc/{pid}/smaps").read_text().splitlines():
        fields = line.split()
        if "-" in fields[0] and len(fields) >= 5:  # a mapping's header line
            inside = fields[-1] == str(file)
        elif inside and line.endswith(" kB"):
            figures[fields[0].rstrip(":")] = int(fields[1])
    return figures


def test_two_processes_share_one_copy_of_a_mapped_artifact(tmp_path):
    top = np.arange(4_000_000, dtype=np.int32).reshape(-1, 100)  # 16 MB
    sha256, size = artifact_write(tmp_path / "v1", meta={"ranker_kind": "popularity"}, arrays={"top": top})
    root = Path(__file__).resolve().parents[2]
    workers = [
        subprocess.Popen(
            [sys.executable, "-c", CHILD, str(tmp_path / "v1"), sha256],
            cwd=root,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        for _ in range(2)
    ]
    try:
        sums = [worker.stdout.readline().strip() for worker in workers]
        figures = [_mapping(worker.pid, tmp_path / "v1" / "top.npy") for worker in workers]
    finally:
        for worker in workers:
            worker.communicate("\n", timeout=30)

    assert sums == [str(int(top.sum(dtype=np.int64)))] * 2
    assert size > top.nbytes
    for mapped in figures:
        assert mapped["Rss"] >= 15_000  # each sees the whole 16 MB array...
        # ...as the page cache's pages, shared with the other (dirty until the kernel writes
        # the fresh file back, clean after), none of them a private copy...
        assert mapped["Shared_Clean"] + mapped["Shared_Dirty"] >= 0.95 * mapped["Rss"]
        assert mapped["Private_Clean"] + mapped["Private_Dirty"] == 0
        assert mapped["Pss"] <= 0.55 * mapped["Rss"]  # ...and is charged for half of them


def test_a_mapped_array_cannot_be_written_through(tmp_path):
    sha256, _ = artifact_write(tmp_path / "v1", meta={}, arrays={"top": np.zeros((3, 2), np.int32)})

    artifact = artifact_load(tmp_path / "v1", sha256=sha256)

    with pytest.raises(ValueError, match="read-only"):
        artifact["top"][0, 0] = 1


def test_an_artifact_from_before_the_directory_format_asks_for_a_retraining(tmp_path):
    old = tmp_path / "v0001-abc.npz"
    old.write_bytes(b"PK")

    with pytest.raises(ArtifactError, match="single file from an older recsite: retrain"):
        artifact_load(old, sha256="0" * 64)
