"""Ranking-quality benchmark on CiteULike-a style data (cold-start protocol).

A user's library items outside the cold set are their stars, every cold paper is a
candidate, and the user's cold items are the relevant ones. Users without stars or without
cold items are skipped. Prints recall@10/20/50/100 and nDCG@10 (binary relevance, recall
divided by the number of relevant items) for three methods:

  centroid  TF-IDF centroid of the stars (Rocchio), arxiv-sanity-lite vectorizer
  asl-svm   arxiv-sanity-lite: LinearSVC(C=0.01, balanced), stars vs every other paper
  paperdigest  paperdigest.ranking.Ranker with make_vectorizer, fit_term_embedding and
               make_title_vectorizer (the title channel), all fitted on all papers

The last stdout line is JSON with paperdigest's figures only.

    python bench/quality.py                      # full run (~5 min on 2 cores)
    python bench/quality.py --limit-users 300    # quick look
"""

from __future__ import annotations

import argparse
import gzip
import json
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import scipy.sparse as sp
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.svm import LinearSVC

from arxiv_sanity_lite import SVM_PARAMS, VECTORIZER_PARAMS

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT.parent / "shared" / "data" / "citeulike-a"

try:
    from paperdigest.features import make_title_vectorizer, make_vectorizer, paper_text
    from paperdigest.ranking import Ranker, select
    from paperdigest.recommend import BACKGROUND_ROWS
    from paperdigest.term_embedding import TermVectors, fit_term_embedding
except ImportError:  # fresh clone, package not installed
    sys.path.insert(0, str(ROOT / "src"))
    from paperdigest.features import make_title_vectorizer, make_vectorizer, paper_text
    from paperdigest.ranking import Ranker, select
    from paperdigest.recommend import BACKGROUND_ROWS
    from paperdigest.term_embedding import TermVectors, fit_term_embedding

KS = (10, 20, 50, 100)
User = tuple[np.ndarray, np.ndarray]  # (star paper rows, relevant candidate positions)
Scorer = Callable[[np.ndarray], np.ndarray]  # star rows -> top-100 candidate positions


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def open_text(path: Path) -> Iterator[str]:
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rt", encoding="utf-8") as fh:
        yield from (line for line in fh if line.strip())


def load(
    papers_path: Path, users_path: Path, cold_path: Path
) -> tuple[list[str], list[str], np.ndarray, list[User]]:
    """Texts and titles by row, cold rows, and evaluable users; paper ids need not be
    contiguous."""
    papers = [json.loads(line) for line in open_text(papers_path)]
    row = {p["id"]: i for i, p in enumerate(papers)}
    texts = [paper_text(p.get("title") or "", p.get("abstract") or "") for p in papers]
    titles = [p.get("title") or "" for p in papers]
    cold_ids = {int(tok) for tok in cold_path.read_text().split()}
    cold = np.array(sorted(row[i] for i in cold_ids if i in row), dtype=np.int64)
    is_cold = np.zeros(len(papers), bool)
    is_cold[cold] = True
    cand_pos = np.full(len(papers), -1, np.int64)
    cand_pos[cold] = np.arange(cold.shape[0])
    users: list[User] = []
    for line in open_text(users_path):
        lib = np.array(sorted({row[i] for i in json.loads(line)["library"] if i in row}), int)
        stars, rel = lib[~is_cold[lib]], lib[is_cold[lib]]
        if stars.size and rel.size:
            users.append((stars, cand_pos[rel]))
    return texts, titles, cold, users


def evaluate(name: str, users: list[User], top_of: Scorer) -> tuple[np.ndarray, float]:
    """Per-user metric rows [r@10, r@20, r@50, r@100, ndcg@10] and ms per user."""
    disc = 1.0 / np.log2(np.arange(2, 12))
    rows = np.zeros((len(users), len(KS) + 1))
    t0 = time.perf_counter()
    for u, (stars, rel) in enumerate(users):
        top = np.asarray(top_of(stars))[:100]
        hit = np.isin(top, rel)
        rows[u, : len(KS)] = [hit[:k].sum() / rel.size for k in KS]
        rows[u, -1] = (hit[:10] * disc[: hit[:10].size]).sum() / disc[: min(10, rel.size)].sum()
        if (u + 1) % 250 == 0 or u + 1 == len(users):
            elapsed = time.perf_counter() - t0
            log(f"  {name}: {u + 1}/{len(users)} users, {elapsed:.0f} s")
    return rows, (time.perf_counter() - t0) * 1000 / max(len(users), 1)


def summary(rows: np.ndarray) -> dict[str, float]:
    means = rows.mean(axis=0) if rows.size else np.zeros(len(KS) + 1)
    out = {f"recall@{k}": round(float(m), 4) for k, m in zip(KS, means[: len(KS)], strict=True)}
    out["ndcg@10"] = round(float(means[-1]), 4)
    return out


def top100(scores: np.ndarray) -> np.ndarray:
    return np.lexsort((np.arange(scores.shape[0]), -scores))[:100]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--papers", type=Path, default=DATA / "papers.jsonl.gz")
    ap.add_argument("--users", type=Path, default=DATA / "users.jsonl")
    ap.add_argument("--cold", type=Path, default=DATA / "cold-items.txt")
    ap.add_argument("--limit-users", type=int, default=0, help="evaluate a random subset")
    ap.add_argument("--seed", type=int, default=0, help="user subset / halves / background")
    ap.add_argument(
        "--background",
        type=int,
        default=BACKGROUND_ROWS,
        help="corpus rows passed to Ranker.fit as background (as the shell does)",
    )
    ap.add_argument("--skip-svm", action="store_true", help="skip the slow LinearSVC baseline")
    ap.add_argument(
        "--no-term-vectors",
        action="store_true",
        help="rank without the term vectors (with --no-titles: the 2026-11-24 release)",
    )
    ap.add_argument(
        "--no-titles",
        action="store_true",
        help="rank without the title n-gram channel (the 2026-11-25 release)",
    )
    args = ap.parse_args()

    log(f"loading {args.papers}")
    texts, titles, cold, users = load(args.papers, args.users, args.cold)
    if args.limit_users and args.limit_users < len(users):
        pick = np.random.default_rng(args.seed)
        keep = np.sort(pick.choice(len(users), args.limit_users, replace=False))
        users = [users[i] for i in keep]
    n_papers = len(texts)
    warm = np.setdiff1d(np.arange(n_papers), cold)
    log(f"{n_papers} papers, {cold.size} candidates, {len(users)} users")

    # Baselines: the published vectorizer, fitted on the non-cold papers.
    asl = TfidfVectorizer(**VECTORIZER_PARAMS).fit([texts[i] for i in warm])
    xa = sp.csr_matrix(asl.transform(texts), dtype=np.float64)
    xa_cand = xa[cold]

    def centroid(stars: np.ndarray) -> np.ndarray:
        c = np.asarray(xa[stars].sum(axis=0)).ravel()
        return top100(xa_cand @ (c / max(float(np.linalg.norm(c)), 1e-12)))

    def asl_svm(stars: np.ndarray) -> np.ndarray:
        y = np.zeros(n_papers)
        y[stars] = 1
        clf = LinearSVC(**SVM_PARAMS, max_iter=10000)
        return top100(clf.fit(xa, y).decision_function(xa_cand))

    # paperdigest: the production vectorizer fitted on every paper (the shell fits on the
    # whole corpus; candidate text is known at ranking time), and a fixed corpus sample as
    # background, as the shell passes it.
    vec = make_vectorizer(n_papers)
    x = sp.csr_matrix(vec.fit_transform(texts), dtype=np.float32)
    x_cand = x[cold]
    # Independent generators, so the halves and the sample don't shift with other options.
    bg_pick = np.random.default_rng(args.seed)
    bg_rows = np.sort(bg_pick.choice(n_papers, min(args.background, n_papers), replace=False))
    x_bg = x[bg_rows]
    t0 = time.perf_counter()
    # The term vectors are fitted with the vocabulary, on the same papers, as the shell does.
    embedding = (
        None if args.no_term_vectors else fit_term_embedding(x, vec.get_feature_names_out())
    )
    log(
        f"paperdigest vocabulary: {x.shape[1]} terms; background {x_bg.shape[0]} rows; "
        f"term vectors fitted in {time.perf_counter() - t0:.1f} s"
    )

    # The title channel's n-grams, fitted on every title as the shell does.
    title_vec = make_title_vectorizer(n_papers)
    t = None if args.no_titles else sp.csr_matrix(title_vec.fit_transform(titles), dtype=np.float32)
    t_cand = None if t is None else t[cold]
    t_bg = None if t is None else t[bg_rows]
    # Every paper's vector is computed once, as the shell's index keeps them.
    term_vectors = None if embedding is None else TermVectors(embedding)
    vectors = None if term_vectors is None else term_vectors.embed(x)

    def kept(rows: np.ndarray) -> np.ndarray | None:
        return None if vectors is None else vectors[rows]

    def paperdigest(stars: np.ndarray) -> np.ndarray:
        ranker = Ranker(term_embedding=term_vectors).fit(
            x[stars],
            background=x_bg,
            star_vectors=kept(stars),
            background_vectors=kept(bg_rows),
            star_titles=None if t is None else t[stars],
            background_titles=t_bg,
        )
        return select(ranker.score(x_cand, kept(cold), t_cand), x_cand, 100)

    methods: list[tuple[str, Scorer]] = [("centroid", centroid)]
    if not args.skip_svm:
        methods.append(("asl-svm", asl_svm))
    methods.append(("paperdigest", paperdigest))

    half = np.zeros(len(users), bool)
    # Half A is the half the defaults were tuned on (seed 0); half B is the held-out check.
    half[np.random.default_rng(args.seed).permutation(len(users))[: len(users) // 2]] = True
    results: dict[str, tuple[np.ndarray, float]] = {}
    for name, fn in methods:
        log(f"running {name}")
        results[name] = evaluate(name, users, fn)

    header = f"{'method':<12} {'users':>6} " + " ".join(f"{f'r@{k}':>7}" for k in KS)
    print(header + f" {'nDCG@10':>8} {'ms/user':>8}")
    for subset, mask in (("all", np.ones(len(users), bool)), ("half A", half), ("half B", ~half)):
        print(f"-- {subset} (seed {args.seed})")
        for name, (rows, ms) in results.items():
            s = summary(rows[mask])
            cells = " ".join(f"{s[f'recall@{k}']:>7.4f}" for k in KS)
            print(f"{name:<12} {int(mask.sum()):>6} {cells} {s['ndcg@10']:>8.4f} {ms:>8.2f}")
    rows, ms = results["paperdigest"]
    print(json.dumps({"users": len(users), **summary(rows), "ms_per_user": round(ms, 2)}))


if __name__ == "__main__":
    main()
