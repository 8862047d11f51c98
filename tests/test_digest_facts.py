"""The details line under a digest item: what it shows, and that untrusted values stay inert."""

from __future__ import annotations

from datetime import date

from paperdigest.digest import assemble_digest, item_for
from paperdigest.models import Paper
from paperdigest.render import make_environment, render_digest

PAPER = Paper(
    pk=1, id="2202.12139", title="Testing Deep Learning Models", abstract="Deep Learning.",
    authors=("Mohit Kumar Ahuja",), url="https://arxiv.org/abs/2202.12139",
    listed=date(2022, 2, 24), arxiv_id="2202.12139",
)


def render(paper: Paper):
    digest = assemble_digest(date(2022, 2, 24), "ada", [item_for(paper, 1.0, "new")])
    return render_digest(digest, make_environment())


def test_no_details_line_when_no_source_said_anything() -> None:
    item = item_for(PAPER, 1.0, "new")
    assert item.facts == () and item.facts_lines == []
    assert "   Deep Learning.\n   -- new [id 2202.12139]" in render(PAPER).text


def test_links_other_than_web_links_are_never_shown() -> None:
    hostile = Paper(**{**PAPER.__dict__, "github": "javascript:alert(1)",
                       "project_page": "data:text/html,<b>x</b>",
                       "organization": "<script>alert(1)</script>"})
    rendered = render(hostile)
    assert "javascript:" not in rendered.html and "data:text" not in rendered.html
    assert "<script>alert(1)</script>" not in rendered.html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in rendered.html


def test_a_doi_becomes_a_doi_org_link_with_its_characters_escaped() -> None:
    rendered = render(Paper(**{**PAPER.__dict__, "doi": '10.1000/a"b<c>'}))
    assert '<a href="https://doi.org/10.1000/a%22b%3Cc%3E"' in rendered.html
    assert "DOI <https://doi.org/10.1000/a%22b%3Cc%3E>" in rendered.text
