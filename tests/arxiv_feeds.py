"""arXiv responses built from real papers, for a local HTTP server to serve.

The papers are real (tests/fixtures/arxiv/listings-sample.jsonl.gz, see the README there).
`rss_feed` writes the daily announcement feed as arXiv's RSS specification describes it
(info.arxiv.org/help/rss_specifications.html); `atom_page` writes a page of the search API
shaped like a real response (../shared/data/real-api/arxiv/query_testing_page1.xml).
"""

from __future__ import annotations

import gzip
import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from functools import cache
from pathlib import Path
from xml.sax.saxutils import escape
from zoneinfo import ZoneInfo

SAMPLE = Path(__file__).parent / "fixtures" / "arxiv" / "listings-sample.jsonl.gz"
NEW_YORK = ZoneInfo("America/New_York")
RSS = "application/rss+xml; charset=utf-8"
ATOM = "application/atom+xml; charset=utf-8"
# Authors and licences are not in the listings file; items carry these stand-ins unless a
# paper brings its own "authors" (and maybe "doi" and "journal_ref").
AUTHORS = ("Ada Lovelace", "Alan Turing", "Grace Hopper")
LICENSE = "http://creativecommons.org/licenses/by/4.0/"


@cache
def _sample() -> tuple[dict, ...]:
    with gzip.open(SAMPLE, "rt", encoding="utf-8") as lines:
        return tuple(json.loads(line) for line in lines)


def papers(day: str | None = None, categories: Iterable[str] | None = None) -> list[dict]:
    """Sample papers listed on `day` (all days if None) in any of `categories`."""
    wanted = set(categories) if categories is not None else None
    return [
        p for p in _sample()
        if (day is None or p["listing_date"] == day)
        and (wanted is None or wanted & set(p["categories"]))
    ]


@dataclass(frozen=True)
class Item:
    paper: dict
    announce_type: str = "new"  # new, cross, replace or replace-cross
    version: int = 1


def items_for(feed_categories: Sequence[str], chosen: Iterable[dict]) -> list[Item]:
    """As arXiv lists papers in a feed: new in their primary category, else a cross-list."""
    wanted = set(feed_categories)
    return [
        Item(p, "new" if p["primary"] in wanted else "cross")
        for p in chosen
        if wanted & set(p["categories"])
    ]


def _rfc822(moment: datetime) -> str:
    return moment.strftime("%a, %d %b %Y %H:%M:%S %z")


def rss_feed(categories: Sequence[str], day: date, items: Sequence[Item]) -> bytes:
    """The feed of `categories` announced on `day` (midnight in New York, as arXiv dates it)."""
    name = "+".join(categories)
    announced = datetime.combine(day, time(0, 0), NEW_YORK)
    built = announced.astimezone(ZoneInfo("UTC")) + timedelta(minutes=30)
    parts = [
        "<?xml version='1.0' encoding='UTF-8'?>\n"
        '<rss xmlns:arxiv="http://arxiv.org/schemas/atom" '
        'xmlns:dc="http://purl.org/dc/elements/1.1/" '
        'xmlns:atom="http://www.w3.org/2005/Atom" '
        'xmlns:content="http://purl.org/rss/1.0/modules/content/" version="2.0">\n'
        "  <channel>\n"
        f"    <title>{name} updates on arXiv.org</title>\n"
        f"    <link>http://rss.arxiv.org/rss/{name}</link>\n"
        f"    <description>{name} updates on the arXiv.org e-print archive.</description>\n"
        f'    <atom:link href="https://rss.arxiv.org/rss/{name}" rel="self" '
        'type="application/rss+xml"/>\n'
        "    <docs>http://www.rssboard.org/rss-specification</docs>\n"
        "    <language>en-us</language>\n"
        f"    <lastBuildDate>{_rfc822(built)}</lastBuildDate>\n"
        "    <managingEditor>rss-help@arxiv.org</managingEditor>\n"
        f"    <pubDate>{_rfc822(announced)}</pubDate>\n"
        "    <skipDays>\n      <day>Saturday</day>\n      <day>Sunday</day>\n    </skipDays>\n"
    ]
    for item in items:
        paper = item.paper
        versioned = f"{paper['id']}v{item.version}"
        categories_xml = "".join(
            f"      <category>{escape(c)}</category>\n" for c in paper["categories"]
        )
        extra = "".join(
            f"      <arxiv:{tag}>{escape(paper[key])}</arxiv:{tag}>\n"
            for key, tag in (("doi", "DOI"), ("journal_ref", "journal_reference"))
            if paper.get(key)
        )
        authors = ", ".join(paper.get("authors") or AUTHORS)
        parts.append(
            "    <item>\n"
            f"      <title>{escape(paper['title'])}</title>\n"
            f"      <link>https://arxiv.org/abs/{paper['id']}</link>\n"
            f"      <description>arXiv:{versioned} Announce Type: {item.announce_type} \n"
            f"Abstract: {escape(paper['abstract'])}</description>\n"
            f'      <guid isPermaLink="false">oai:arXiv.org:{versioned}</guid>\n'
            f"{categories_xml}"
            f"      <pubDate>{_rfc822(announced)}</pubDate>\n"
            f"      <arxiv:announce_type>{item.announce_type}</arxiv:announce_type>\n"
            f"      <dc:rights>{LICENSE}</dc:rights>\n"
            f"      <dc:creator>{escape(authors)}</dc:creator>\n"
            f"{extra}"
            "    </item>\n"
        )
    parts.append("  </channel>\n</rss>\n")
    return "".join(parts).encode("utf-8")


def submitted(paper: dict) -> datetime:
    """A submission time for the API: the weekday before the listing day, at 15:00 UTC."""
    day = date.fromisoformat(paper["listing_date"]) - timedelta(days=1)
    while day.weekday() >= 5:  # a Monday listing was submitted on the Friday
        day -= timedelta(days=1)
    return datetime.combine(day, time(15, 0), ZoneInfo("UTC"))


def atom_page(query: str, entries: Sequence[dict], start: int, total: int) -> bytes:
    """One page of `GET /api/query`, newest first, as the real API writes it."""
    parts = [
        "<?xml version='1.0' encoding='UTF-8'?>\n"
        '<feed xmlns:opensearch="http://a9.com/-/spec/opensearch/1.1/" '
        'xmlns:arxiv="http://arxiv.org/schemas/atom" xmlns="http://www.w3.org/2005/Atom">\n'
        "  <id>https://arxiv.org/api/+yL+2aOC2tMwSSbNUvwVflQZ4gc</id>\n"
        f"  <title>arXiv Query: search_query={escape(query)}&amp;id_list=&amp;start={start}"
        f"&amp;max_results={len(entries)}</title>\n"
        "  <updated>2026-07-01T22:09:27Z</updated>\n"
        f"  <opensearch:itemsPerPage>{len(entries)}</opensearch:itemsPerPage>\n"
        f"  <opensearch:totalResults>{total}</opensearch:totalResults>\n"
        f"  <opensearch:startIndex>{start}</opensearch:startIndex>\n"
    ]
    for paper in entries:
        when = submitted(paper).strftime("%Y-%m-%dT%H:%M:%SZ")
        categories_xml = "".join(
            f'    <category term="{escape(c)}" scheme="http://arxiv.org/schemas/atom"/>\n'
            for c in paper["categories"]
        )
        authors_xml = "".join(
            f"    <author>\n      <name>{escape(a)}</name>\n    </author>\n" for a in AUTHORS
        )
        parts.append(
            "  <entry>\n"
            f"    <id>http://arxiv.org/abs/{paper['id']}v1</id>\n"
            f"    <title>{escape(paper['title'])}</title>\n"
            f"    <updated>{when}</updated>\n"
            f'    <link href="https://arxiv.org/abs/{paper["id"]}v1" rel="alternate" '
            'type="text/html"/>\n'
            f'    <link href="https://arxiv.org/pdf/{paper["id"]}v1" rel="related" '
            'type="application/pdf" title="pdf"/>\n'
            f"    <summary>{escape(paper['abstract'])}</summary>\n"
            f"{categories_xml}"
            f"    <published>{when}</published>\n"
            f'    <arxiv:primary_category term="{escape(paper["primary"])}"/>\n'
            f"{authors_xml}"
            "  </entry>\n"
        )
    parts.append("</feed>\n")
    return "".join(parts).encode("utf-8")
