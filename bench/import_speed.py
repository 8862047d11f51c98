"""Speed of `paperdigest import` (issue 14): a library of N real arXiv papers.

    python bench/import_speed.py [--data PATH] [--entries 1000]

Half the library's papers are already stored (matched: every other one by its arXiv
`eprint`, the rest by title), half are not (added with their abstracts). Every entry has
its real title and abstract, so LaTeX decoding does the work it does on a real export.
Times: reading the file, the first import (match, add, star), a second one (which changes
nothing), and a whole `paperdigest import` process (read and a third import). Progress
goes to stderr; the last stdout line is one JSON object with the figures. The data file is
read from disk only, never fetched.
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import subprocess
import sys
import tempfile
import time
from datetime import date
from itertools import islice
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
DEFAULT_DATA = REPO.parent / "shared" / "data" / "arxiv-listings-2025-2026.jsonl.gz"
sys.path.insert(0, str(REPO / "src"))

from paperdigest.library_import import import_library, read_library_file  # noqa: E402
from paperdigest.models import PaperRecord  # noqa: E402
from paperdigest.store import Store  # noqa: E402


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def bibtex(paper: dict, n: int) -> str:
    def braces(text: str) -> str:
        return text.replace("{", "(").replace("}", ")")

    eprint = f"  eprint = {{{paper['id']}}},\n  eprinttype = {{arXiv}},\n" if n % 2 else ""
    return (
        f"@online{{key{n},\n  title = {{{braces(paper['title'])}}},\n"
        f"  abstract = {{{braces(paper['abstract'])}}},\n{eprint}"
        f"  date = {{{paper['listing_date']}}},\n}}\n\n"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--entries", type=int, default=1000)
    args = parser.parse_args()
    with gzip.open(args.data, "rt", encoding="utf-8") as lines:
        papers = [json.loads(line) for line in islice(lines, args.entries)]
    with tempfile.TemporaryDirectory() as tmp:
        data_dir = Path(tmp) / "data"
        library = Path(tmp) / "library.bib"
        library.write_text("".join(bibtex(p, n) for n, p in enumerate(papers)), "utf-8")
        with Store.open(data_dir) as store:
            store.set_meta("seeded", "1")  # no seed corpus: only what the bench stores
            store.ingest(
                PaperRecord(title=p["title"], abstract=p["abstract"], arxiv_id=p["id"],
                            published=date.fromisoformat(p["listing_date"]))
                for p in papers[: len(papers) // 2]
            )
            log(f"{store.count_papers()} papers stored; importing {len(papers)} entries")
            started, cpu = time.perf_counter(), time.process_time()
            parsed = read_library_file(library)
            read_s, read_cpu = time.perf_counter() - started, time.process_time() - cpu
            started = time.perf_counter()
            first = import_library(store, "default", [(str(library), parsed)])
            first_s = time.perf_counter() - started
            started = time.perf_counter()
            again = import_library(store, "default", [(str(library), parsed)])
            again_s = time.perf_counter() - started
        log(f"first: {first.matched} matched, {first.added} added; "
            f"again: {again.already_starred} already starred")
        env = {**os.environ, "PYTHONPATH": str(REPO / "src")}
        started = time.perf_counter()
        subprocess.run(
            [sys.executable, "-c", "from paperdigest.cli import main; main()",
             "--data-dir", str(data_dir), "import", "--json", str(library)],
            check=True, env=env, stdout=subprocess.DEVNULL,
        )
        process_s = time.perf_counter() - started
    figures = {
        "entries": len(papers),
        "read_file_s": round(read_s, 2),
        "read_file_cpu_s": round(read_cpu, 2),  # what the machine's other jobs do not slow
        "first_import_s": round(first_s, 2),
        "second_import_s": round(again_s, 2),
        "cli_process_s": round(process_s, 2),
        "load_average_1min": round(os.getloadavg()[0], 1),
    }
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
