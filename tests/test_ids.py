from __future__ import annotations

import pytest

from paperdigest.ids import normalise_arxiv_id, normalise_title, title_hash


@pytest.mark.parametrize(
    "text",
    [
        "2503.11731",
        "2503.11731v2",
        "arXiv:2503.11731",
        "ARXIV:2503.11731v3",
        "https://arxiv.org/abs/2503.11731v1",
        "http://export.arxiv.org/abs/2503.11731",
        "https://arxiv.org/pdf/2503.11731v2.pdf",
    ],
)
def test_every_spelling_of_an_arxiv_id_is_one_paper(text: str) -> None:
    assert normalise_arxiv_id(text) == "2503.11731"


def test_old_style_ids_and_non_ids() -> None:
    assert normalise_arxiv_id("hep-th/9901001v2") == "hep-th/9901001"
    assert normalise_arxiv_id("3f2a91c0") is None
    assert normalise_arxiv_id("Once-for-All") is None


def test_title_hash_ignores_case_punctuation_and_spacing() -> None:
    assert normalise_title("Once-for-All:  Train ONE Network") == "once for all train one network"
    same = title_hash("once for all train one network")
    assert title_hash("Once-for-All: Train One Network") == same
    assert len(title_hash("anything")) == 8
