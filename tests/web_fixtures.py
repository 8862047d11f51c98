"""Shared by the web tests: a config with [web] set, the app, and reading its forms."""

from __future__ import annotations

import html
import re
from dataclasses import dataclass
from pathlib import Path

from tests.mail_fixtures import write_config

BASE_URL = "http://testserver"  # Starlette's TestClient answers here
SECRET = "test-secret-key-not-for-production"
FIXTURES = Path(__file__).resolve().parent / "fixtures" / "web"
LONG_URL_PAPERS = FIXTURES / "long_url.jsonl"


def web_config(path: Path, smtp: dict[str, object], profiles: list[dict[str, object]],
               base_url: str | None = BASE_URL, **digest: object) -> Path:
    write_config(path, smtp, profiles, **digest)
    lines = ["", "[web]", f'secret_key = "{SECRET}"']
    if base_url:
        lines.append(f'base_url = "{base_url}"')
    with path.open("a", encoding="utf-8") as file:
        file.write("\n".join(lines) + "\n")
    return path


@dataclass(frozen=True)
class Form:
    action: str
    token: str
    do: str | None


_FORM = re.compile(
    r'<form method="post" action="(?P<action>[^"]+)"><input type="hidden" name="form" '
    r'value="(?P<token>[^"]+)">(?:<input type="hidden" name="do" value="(?P<do>[^"]+)">)?'
    r'<button type="submit"[^>]*data-action="(?P<kind>[^"]+)"'
)


def forms(page: str) -> dict[str, list[Form]]:
    """The page's POST forms by their button's data-action."""
    found: dict[str, list[Form]] = {}
    for match in _FORM.finditer(page):
        found.setdefault(match["kind"], []).append(
            Form(html.unescape(match["action"]), html.unescape(match["token"]), match["do"])
        )
    return found


def links_in_text(text: str, label: str) -> list[str]:
    """URLs following `label: ` in a text part, each on its own line."""
    return re.findall(rf"^\s*{re.escape(label)}: (\S+)$", text, flags=re.MULTILINE)


def ingest_long_url_paper(data_dir: Path) -> str:
    """Store the fixture paper as the newest one (the seed corpus is listed on the day it
    is loaded), so a digest without stars shows it first. Returns its title."""
    import json
    from datetime import date, timedelta

    from paperdigest.parsers.jsonl import parse_jsonl
    from paperdigest.store import Store

    row = json.loads(LONG_URL_PAPERS.read_text(encoding="utf-8"))
    row["published"] = (date.today() + timedelta(days=1)).isoformat()
    result = parse_jsonl(json.dumps(row).encode(), "long_url.jsonl")
    with Store.open(data_dir) as store:
        store.ingest(result.records)
    return row["title"]
