"""Reading library exports as the tools write them (the pure core, no store)."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pytest

from paperdigest.library import Format, detect_format, merge_duplicates, parse_library
from paperdigest.library.entry import LibraryEntry

FIXTURES = Path(__file__).parent / "fixtures" / "library"


def read(name: str):
    return parse_library((FIXTURES / name).read_bytes(), name)


def by_title(entries: list[LibraryEntry]) -> dict[str, LibraryEntry]:
    return {entry.title: entry for entry in entries}


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("better-biblatex.bib", Format.BIBTEX),
        ("better-bibtex.bib", Format.BIBTEX),
        ("zotero.bib", Format.BIBTEX),
        ("google-scholar.bib", Format.BIBTEX),
        ("zotero.csv", Format.CSV),
        ("better-csl.json", Format.CSL_JSON),
        ("zotero.ris", Format.RIS),
        ("reading-list.txt", Format.ID_LIST),
    ],
)
def test_each_export_is_recognised_by_its_content(name: str, expected: Format) -> None:
    assert read(name).format == expected


def test_the_format_comes_from_the_content_not_the_file_name() -> None:
    ris = (FIXTURES / "zotero.ris").read_bytes()
    assert parse_library(ris, "export.bib").format == Format.RIS
    bib = (FIXTURES / "google-scholar.bib").read_bytes()
    assert parse_library(bib, "citations.txt").format == Format.BIBTEX


def test_better_biblatex_decodes_braces_dates_and_eprints() -> None:
    library = read("better-biblatex.bib")
    once = library.entries[0]
    assert once.title == (
        "Once-for-All: Train One Network and Specialize It for Efficient Deployment"
    )
    assert once.authors[:2] == ("Han Cai", "Chuang Gan")
    assert once.arxiv_id == "1908.09791"
    assert once.published == date(2020, 4, 29)
    sensor = library.entries[2]
    assert sensor.arxiv_id == "2503.11731"  # eprint = {2503.11731v2}, version dropped
    assert sensor.published == date(2025, 3, 1)  # date = {2025-03}
    assert library.problems == []


def test_better_bibtex_archiveprefix_months_and_double_braces() -> None:
    library = read("better-bibtex.bib")
    dsnot, esam, deal = library.entries
    assert dsnot.arxiv_id == "2310.08915" and dsnot.published == date(2024, 2, 1)
    assert dsnot.authors[-1] == "Rongrong Ji"
    assert esam.title == "E-SAM: Training-Free Segment Every Entity Model"
    assert esam.arxiv_id == "2503.12094"
    assert deal.title == "Deal or No Deal? End-to-End Learning of Negotiation Dialogues"
    assert (deal.arxiv_id, deal.doi) == (None, "10.18653/v1/d17-1259")
    assert library.problems == []


def test_zotero_bibtex_with_bom_crlf_latex_accents_and_month_macros() -> None:
    library = read("zotero.bib")
    entries = by_title(library.entries)
    attention = entries["Attention Is All You Need"]
    assert attention.authors[-2:] == ("Łukasz Kaiser", "Illia Polosukhin")
    assert attention.published == date(2023, 8, 1)  # month = aug
    assert attention.arxiv_id == "1706.03762"
    wavenet = entries["WaveNet: A Generative Model for Raw Audio"]
    assert wavenet.authors[0] == "Aäron van den Oord"
    # Ids found only in `note = {arXiv:… [cs]}` and only in the URL:
    safe = entries["Safe Vision-Language Models via Unsafe Weights Manipulation"]
    assert safe.arxiv_id == "2503.11742"
    making = next(e for e in library.entries if e.title.startswith("Making every step"))
    assert making.arxiv_id == "2503.11750"
    # The entry without a title or id is reported by key and line, not silently dropped.
    assert [str(p) for p in library.problems] == [
        "zotero.bib: entry noauthor_nodate (line 47): no title, arXiv id or DOI"
    ]


def test_google_scholar_ids_hide_in_the_journal_field() -> None:
    entries = by_title(read("google-scholar.bib").entries)
    deal = entries["Deal or no deal? end-to-end learning for negotiation dialogues"]
    assert deal.arxiv_id == "1706.05125"
    assert deal.authors[2] == "Yann N Dauphin"
    assert entries["Deep learning"].arxiv_id is None
    assert entries["Attention is all you need"].arxiv_id is None  # NeurIPS, no id given


def test_zotero_csv_reads_extra_dois_and_strips_html() -> None:
    library = read("zotero.csv")
    entries = by_title(library.entries)
    assert entries["E-SAM: Training-Free Segment Every Entity Model"].arxiv_id == "2503.12094"
    deep = entries["Deep learning"]
    assert deep.doi == "10.1038/nature14539"
    assert deep.authors == ("Yann LeCun", "Yoshua Bengio", "Geoffrey Hinton")
    assert deep.published == date(2015, 5, 1)
    assert [p.where for p in library.problems] == ["zotero.csv: line 5 (B7T4Y6UE)"]


def test_better_csl_json_names_particles_jats_and_container_title() -> None:
    library = read("better-csl.json")
    wavenet, making, once = library.entries
    assert wavenet.authors[0] == "Aäron van den Oord"
    assert "<" not in wavenet.abstract
    assert wavenet.abstract.startswith("This paper introduces WaveNet")
    assert making.arxiv_id == "2503.11750"  # only in container-title
    assert once.published == date(2020, 1, 1)
    assert "untitled2024" in library.problems[0].where


def test_zotero_ris_reads_authors_dates_and_ids_in_notes() -> None:
    library = read("zotero.ris")
    deep, safe, deal = library.entries
    assert deep.published == date(2015, 5, 1)  # DA  - 2015/05//
    assert deep.doi == "10.1038/nature14539"
    assert safe.authors[0] == "Moreno D'Incà"
    assert deal.arxiv_id == "1706.05125"  # only in M3 and N1
    assert library.problems == []


def test_a_ris_record_without_its_end_tag_does_not_swallow_the_next() -> None:
    text = (
        "TY  - JOUR\nTI  - First paper\nPY  - 2020\n"  # no ER line
        "TY  - JOUR\nTI  - Second paper\nER  - \n"
    )
    library = parse_library(text.encode(), "cut.ris")
    assert [e.title for e in library.entries] == ["First paper", "Second paper"]


def test_reading_list_of_ids_urls_and_dois() -> None:
    library = read("reading-list.txt")
    assert [(e.arxiv_id, e.doi) for e in library.entries] == [
        ("2503.11731", None),
        ("2503.11742", None),
        ("1908.09791", None),
        (None, "10.1038/nature14539"),
        ("2503.12094", "10.48550/arxiv.2503.12094"),
    ]
    assert [p.where for p in library.problems] == ["reading-list.txt: line 8"]


def test_issue_examples_latex_braces_and_accents() -> None:
    text = r"""@article{dup1,
  title = {{Deal} or {No} {Deal}? {{End-to-End}} Learning},
  author = {J\'{e}r\'{e}mie Dupont and M{\"u}ller, Hans and {Google Research}},
  journal = {arXiv preprint arXiv:1706.05125v1},
  month = jun, year = 2017,
}
@article{broken, title = {Never closed
@misc{dup2, title = {Deal or no deal? End-to-end learning}, abstract = {A longer abstract.}}
"""
    library = parse_library(text.encode(), "mine.bib")
    first = library.entries[0]
    assert first.title == "Deal or No Deal? End-to-End Learning"
    assert first.authors == ("Jérémie Dupont", "Hans Müller", "Google Research")
    assert first.published == date(2017, 6, 1)
    assert [str(p) for p in library.problems] == [
        "mine.bib: entry broken (line 7): cannot be parsed (a brace or quote not closed?)"
    ]
    # The same paper under two keys: one entry, the gaps of the first filled from the second.
    merged, problems = merge_duplicates(library.entries)
    assert len(merged) == 1
    assert merged[0].arxiv_id == "1706.05125"
    assert merged[0].abstract == "A longer abstract."
    assert [str(p) for p in problems] == [
        "mine.bib: entry dup2 (line 8): same paper as mine.bib: entry dup1 (line 1)"
    ]


def test_of_two_spellings_of_a_title_the_capitalised_one_is_kept() -> None:
    scholar = LibraryEntry("a", title="Deal or no deal? end-to-end learning", arxiv_id="1706.05125")
    zotero = LibraryEntry("b", title="Deal or No Deal? End-to-End Learning", abstract="Text.")
    (merged,), _ = merge_duplicates([scholar, zotero])
    assert merged.title == "Deal or No Deal? End-to-End Learning"
    assert (merged.arxiv_id, merged.abstract) == ("1706.05125", "Text.")


def test_same_title_different_arxiv_ids_stay_two_papers() -> None:
    a = LibraryEntry("a", title="Introduction", arxiv_id="2501.00001")
    b = LibraryEntry("b", title="Introduction", arxiv_id="2501.00002")
    merged, problems = merge_duplicates([a, b])
    assert merged == [a, b] and problems == []


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"", "the file is empty"),
        (b"\x89PNG\r\n\x1a\n\x00\x00\x00", "a binary file"),
        (b"hello\nworld\nthis is\njust prose\n", "not a library file"),
        (b'[{"title": ', "not valid JSON"),
    ],
)
def test_files_that_are_not_libraries_say_so(data: bytes, message: str) -> None:
    library = parse_library(data, "x")
    assert library.entries == []
    assert message in str(library.problems[0])


def test_a_latin1_bibtex_file_still_reads() -> None:
    data = "@article{k, title = {Café au lait networks}}\n".encode("latin-1")
    assert parse_library(data, "old.bib").entries[0].title == "Café au lait networks"


def test_detect_format_on_text() -> None:
    assert detect_format("  \n@inproceedings{x,\n title={T}}") == Format.BIBTEX
    assert detect_format('"Key","Item Type","Title"\n') == Format.CSV
    assert detect_format("2503.11731\n") == Format.ID_LIST


def test_only_prose_is_latex_decoded_and_undecodable_text_is_kept() -> None:
    text = (
        r"@misc{k, title = {Code at \href{https://github.com/x}},"
        r" url = {https://example.org/a%20b~c},"
        r" abstract = {We get 50\% more for \$5 and \emph{less}.}}"
    )
    (entry,) = parse_library(text.encode(), "k.bib").entries
    assert entry.url == "https://example.org/a%20b~c"  # not a LaTeX comment and a space
    assert entry.abstract == "We get 50% more for $5 and less."
    assert entry.title == r"Code at \href{https://github.com/x}"  # the decoder failed on it


def test_reading_bibtex_reports_each_entry_for_the_progress_bar() -> None:
    seen: list[None] = []
    library = parse_library((FIXTURES / "better-biblatex.bib").read_bytes(), "b.bib",
                            on_entry=lambda: seen.append(None))
    assert len(seen) == len(library.entries) == 5


def test_arxiv_ids_where_dblp_semantic_scholar_mendeley_and_arxiv_put_them() -> None:
    text = r"""@article{DBLP:journals/corr/VaswaniSPUJGKP17,
  author = {Ashish Vaswani and Noam Shazeer},
  title = {Attention Is All You Need},
  journal = {CoRR},
  volume = {abs/1706.03762},
  year = {2017},
  url = {http://arxiv.org/abs/1706.03762},
  eprinttype = {arXiv},
}
@Article{Lewis2017DealON,
 author = {M. Lewis and Denis Yarats},
 journal = {ArXiv},
 title = {Deal or No Deal? End-to-End Learning for Negotiation Dialogues},
 volume = {abs/1706.05125},
 year = {2017}
}
@article{Cai2019,
archivePrefix = {arXiv},
arxivId = {1908.09791},
author = {Cai, Han and Han, Song},
title = {{Once-for-All: Train One Network and Specialize it for Efficient Deployment}},
year = {2019}
}
@misc{oord2016wavenet,
      title={WaveNet: A Generative Model for Raw Audio},
      author={Aaron van den Oord and Sander Dieleman},
      year={2016},
      eprint={1609.03499},
      archivePrefix={arXiv},
      primaryClass={cs.SD},
      url={https://arxiv.org/abs/1609.03499},
}
"""
    library = parse_library(text.encode(), "mixed.bib")
    assert [e.arxiv_id for e in library.entries] == [
        "1706.03762", "1706.05125", "1908.09791", "1609.03499"
    ]
    assert library.entries[3].authors == ("Aaron van den Oord", "Sander Dieleman")


def test_a_bare_percent_sign_does_not_cut_an_abstract() -> None:
    text = "@article{m, title = {T}, abstract = {Accuracy rises by 5% on \\emph{all} tasks.}}"
    (entry,) = parse_library(text.encode(), "mendeley.bib").entries
    assert entry.abstract == "Accuracy rises by 5% on all tasks."
