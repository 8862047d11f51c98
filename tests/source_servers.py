"""Local stand-ins for the Hugging Face and arXiv APIs, serving real recorded responses.

Each behaves like the live API in what paperdigest relies on: Daily Papers pages with
`limit` (50 unless given, at most `max_limit`) and `p`; arXiv sorts by `sortBy`, pages by
`start` and `max_results`, and answers under the real feed's header. They run inside
pytest-httpserver, a real HTTP server on localhost. tests/fixtures/sources/README.md
says where every response came from.
"""

from __future__ import annotations

import copy
import json
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any

from pytest_httpserver import HTTPServer
from werkzeug import Request, Response

FIXTURES = Path(__file__).parent / "fixtures" / "sources"
REAL_DAYS = ("2024-03-12", "2024-10-10", "2025-09-30")
ATOM = "application/atom+xml; charset=utf-8"


def fixture(name: str) -> bytes:
    return (FIXTURES / name).read_bytes()


def real_day(day: str) -> list[dict[str, Any]]:
    """The items the real API sent for one day."""
    return json.loads(fixture(f"hf_{day}.json"))


def listed_on(items: Sequence[dict[str, Any]], day: date) -> list[dict[str, Any]]:
    """Items as the API sends them for `day`: `paper.submittedOnDailyAt` on that day."""
    moved = copy.deepcopy(list(items))
    for item in moved:
        item["paper"]["submittedOnDailyAt"] = f"{day.isoformat()}T07:30:00.000Z"
    return moved


def busy_day(day: date) -> list[dict[str, Any]]:
    """105 real papers on one day: the three recorded days served together."""
    return listed_on([i for d in reversed(REAL_DAYS) for i in real_day(d)], day)


@dataclass
class DailyPapersAPI:
    """GET /api/daily_papers?date=D[&limit=N][&p=P], paged like the real API."""

    days: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    default_limit: int = 50
    max_limit: int = 100
    refuse_limit_over: int | None = None  # answer 400 to a larger `limit` instead of capping
    # (day, page) -> HTTP status to answer instead of the page
    failures: dict[tuple[str, int], int] = field(default_factory=dict)
    requests: list[dict[str, str]] = field(default_factory=list)

    def __call__(self, request: Request) -> Response:
        args = dict(request.args)
        self.requests.append(args)
        day = args.get("date", "")
        try:
            limit = min(int(args.get("limit", self.default_limit)), self.max_limit)
            page = int(args.get("p", 0))
        except ValueError:
            return Response('{"error":"Invalid query"}', status=400)
        if self.refuse_limit_over is not None and limit > self.refuse_limit_over:
            return Response('{"error":"limit is too large"}', status=400)
        status = self.failures.get((day, page))
        if status is not None:
            return Response("Service Unavailable", status=status)
        items = self.days.get(day, [])[page * limit : (page + 1) * limit]
        return Response(json.dumps(items), content_type="application/json")

    def install(self, server: HTTPServer) -> DailyPapersAPI:
        server.expect_request("/api/daily_papers").respond_with_handler(self)
        return self

    def pages_of(self, day: str) -> list[int]:
        return [int(r.get("p", 0)) for r in self.requests if r.get("date") == day]


def real_days_api() -> DailyPapersAPI:
    return DailyPapersAPI({day: real_day(day) for day in REAL_DAYS})


# -- arXiv ------------------------------------------------------------------------------

_ENTRY = re.compile(rb"  <entry>.*?</entry>\n", re.S)


@dataclass(frozen=True)
class Entry:
    xml: bytes  # byte for byte as arXiv sent it

    def _field(self, name: str) -> str:
        found = re.search(rb"<" + name.encode() + rb">([^<]+)<", self.xml)
        assert found is not None
        return found.group(1).decode()

    @property
    def published(self) -> str:
        return self._field("published")

    @property
    def updated(self) -> str:
        return self._field("updated")

    def redated(self, day: date) -> Entry:
        """The same entry first published (and last updated) on `day`."""
        stamp = day.isoformat().encode()
        xml = re.sub(rb"(<(published|updated)>)\d{4}-\d\d-\d\d", rb"\g<1>" + stamp, self.xml)
        return Entry(xml)


def real_entries() -> list[Entry]:
    """The 20 entries of the two recorded `search_query=testing` pages."""
    return [
        Entry(match.group(0))
        for name in ("arxiv_query_testing_page1.xml", "arxiv_query_testing_page2.xml")
        for match in _ENTRY.finditer(fixture(name))
    ]


@dataclass
class ArxivAPI:
    """GET /api/query?search_query=cat:X&sortBy=...&start=S&max_results=N over `entries`."""

    entries: list[Entry] = field(default_factory=real_entries)
    # (status, body) to answer every request with instead, e.g. arXiv's 400 error feed
    refuse: tuple[int, bytes] | None = None
    requests: list[dict[str, str]] = field(default_factory=list)

    def __call__(self, request: Request) -> Response:
        args = dict(request.args)
        self.requests.append(args)
        if self.refuse is not None:
            status, body = self.refuse
            return Response(body, status=status, content_type=ATOM)
        key = "updated" if args.get("sortBy") == "lastUpdatedDate" else "published"
        ordered = sorted(self.entries, key=lambda e: getattr(e, key), reverse=True)
        start, size = int(args.get("start", 0)), int(args.get("max_results", 10))
        page = ordered[start : start + size]
        header = fixture("arxiv_query_testing_page1.xml").split(b"  <entry>")[0]
        header = re.sub(rb"(<opensearch:itemsPerPage>)\d+", rb"\g<1>%d" % len(page), header)
        header = re.sub(rb"(<opensearch:totalResults>)\d+", rb"\g<1>%d" % len(ordered), header)
        header = re.sub(rb"(<opensearch:startIndex>)\d+", rb"\g<1>%d" % start, header)
        body = header + b"".join(e.xml for e in page) + b"</feed>\n"
        return Response(body, content_type=ATOM)

    def install(self, server: HTTPServer) -> ArxivAPI:
        server.expect_request("/api/query").respond_with_handler(self)
        return self
