"""A damaged index is rebuilt, never trusted (issue 12, item 5).

Random bytes are written inside valid `.npy` headers of each array the index keeps, then
`recommend` and `preview` run in a child process (so a segfault fails the test instead of
killing pytest) and must print what they print from a fresh build.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from paperdigest.corpus_index import INDEX_DIR, MANIFEST
from paperdigest.store import Store

PARTS = ["indices", "data", "indptr", "tindices", "tdata", "tindptr", "vectors", "pks", "days"]
# The parts whose damage once made `preview` segfault or print "0 papers" (the others go
# through the same loader and checks; recommend covers each of them).
PREVIEWED = {"indices", "data", "vectors", "pks"}


def _run(data_dir: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", "from paperdigest.cli import main; main()",
         "--data-dir", str(data_dir), *args],
        capture_output=True, text=True,
    )


def _damage(path: Path, seed: int) -> None:
    """Random bytes over the whole payload; the .npy header stays valid."""
    with open(path, "r+b") as handle:
        np.lib.format.read_magic(handle)
        np.lib.format.read_array_header_1_0(handle)
        start = handle.tell()
        size = path.stat().st_size - start
        handle.write(np.random.default_rng(seed).bytes(size))
    assert path.stat().st_size == start + size


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory, seeded_db: Path) -> tuple[Path, str, str]:
    """A starred store with its index cache, and what recommend and preview print."""
    data_dir = tmp_path_factory.mktemp("damaged") / "data"
    data_dir.mkdir()
    shutil.copy(seeded_db, data_dir / seeded_db.name)
    with Store.open(data_dir) as store:
        for (pk,) in store.conn.execute("SELECT pk FROM papers ORDER BY pk LIMIT 3").fetchall():
            store.star("default", store.papers([pk])[0])
    recommend = _run(data_dir, "recommend", "--json", "--limit", "10")
    assert recommend.returncode == 0, recommend.stderr
    preview = _run(data_dir, "preview")
    assert preview.returncode == 0, preview.stderr
    assert (data_dir / INDEX_DIR / MANIFEST).exists()
    return data_dir, recommend.stdout, preview.stdout


def _damaged_copy(source: Path, target: Path, part: str) -> Path:
    shutil.copytree(source, target)
    index = target / INDEX_DIR
    (segment,) = json.loads((index / MANIFEST).read_text())["segments"]
    _damage(index / f"{segment['name']}.{part}.npy", seed=PARTS.index(part))
    return target


@pytest.mark.parametrize("part", PARTS)
def test_random_bytes_in_any_index_array_give_the_fresh_digest(
    part: str, built: tuple[Path, str, str], tmp_path: Path
) -> None:
    source, fresh_recommend, fresh_preview = built

    recommend = _run(_damaged_copy(source, tmp_path / "a", part),
                     "recommend", "--json", "--limit", "10")
    assert recommend.returncode == 0, recommend.stderr  # -11 was a segfault
    assert "rebuilding the index cache" in recommend.stderr
    assert recommend.stdout == fresh_recommend
    assert len(json.loads(recommend.stdout)) == 10  # never a "0 papers" digest

    if part not in PREVIEWED:
        return
    preview = _run(_damaged_copy(source, tmp_path / "b", part), "preview")
    assert preview.returncode == 0, preview.stderr
    assert "rebuilding the index cache" in preview.stderr
    assert preview.stdout == fresh_preview


_MANY = """
import json, sys
from pathlib import Path
from datetime import date
from paperdigest.service import Reader, select_picks_many
from paperdigest.store import Store
with Store.open(Path(sys.argv[1])) as store:
    readers = [Reader(name, date.today()) for name in ("default", "second")]
    picks = dict(select_picks_many(store, readers, 10, 7, block=1))
print(json.dumps({name: [p.paper.pk for p in s.picks] for name, s in picks.items()}))
"""


@pytest.mark.parametrize("part", ["indices", "data", "vectors"])
def test_send_all_ranks_from_a_rebuilt_index_when_the_cache_is_damaged(
    part: str, built: tuple[Path, str, str], tmp_path: Path
) -> None:
    """The batch ranking of `send --all` and the daemon (select_picks_many), in a child
    process: the same picks as from a fresh build, for every profile."""
    source = tmp_path / "source"
    shutil.copytree(built[0], source)
    with Store.open(source) as store:
        for (pk,) in store.conn.execute("SELECT pk FROM papers ORDER BY pk DESC LIMIT 2"):
            store.star("second", store.papers([pk])[0])
    fresh = subprocess.run([sys.executable, "-c", _MANY, str(source)],
                           capture_output=True, text=True)
    assert fresh.returncode == 0, fresh.stderr
    expected = json.loads(fresh.stdout)
    assert all(len(expected[name]) == 10 for name in ("default", "second"))

    damaged = _damaged_copy(source, tmp_path / "damaged", part)
    result = subprocess.run([sys.executable, "-c", _MANY, str(damaged)],
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stderr  # -11 would be a segfault
    assert json.loads(result.stdout) == expected
