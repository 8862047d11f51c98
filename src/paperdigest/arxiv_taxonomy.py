"""arXiv's category taxonomy (pure): which category ids exist, and what a typo meant.

The ids are those of arxiv.org/category_taxonomy. A category the feed or the API does not
know returns nothing at all, so a typo in the config is caught when it is loaded.
"""

from __future__ import annotations

import difflib

_GROUPS: dict[str, str] = {
    "cs": "AI AR CC CE CG CL CR CV CY DB DC DL DM DS ET FL GL GR GT HC IR IT LG LO MA MM MS "
    "NA NE NI OH OS PF PL RO SC SD SE SI SY",
    "econ": "EM GN TH",
    "eess": "AS IV SP SY",
    "math": "AC AG AP AT CA CO CT CV DG DS FA GM GN GR GT HO IT KT LO MG MP NA NT OA OC PR "
    "QA RA RT SG SP ST",
    "astro-ph": "CO EP GA HE IM SR",
    "cond-mat": "dis-nn mes-hall mtrl-sci other quant-gas soft stat-mech str-el supr-con",
    "nlin": "AO CD CG PS SI",
    "physics": "acc-ph ao-ph app-ph atm-clus atom-ph bio-ph chem-ph class-ph comp-ph data-an "
    "ed-ph flu-dyn gen-ph geo-ph hist-ph ins-det med-ph optics plasm-ph pop-ph soc-ph "
    "space-ph",
    "q-bio": "BM CB GN MN NC OT PE QM SC TO",
    "q-fin": "CP EC GN MF PM PR RM ST TR",
    "stat": "AP CO ME ML OT TH",
}
# Archives that are categories themselves, with no subject after a dot.
_STANDALONE = ("gr-qc", "hep-ex", "hep-lat", "hep-ph", "hep-th", "math-ph", "nucl-ex",
               "nucl-th", "quant-ph")

CATEGORIES: frozenset[str] = frozenset(
    [f"{group}.{subject}" for group, subjects in _GROUPS.items() for subject in subjects.split()]
    + list(_STANDALONE)
)

# Names people reach for that arXiv spells otherwise.
_USUAL_MISTAKES: dict[str, tuple[str, ...]] = {
    "cs.ml": ("cs.LG", "stat.ML"),
    "ml": ("cs.LG", "stat.ML"),
    "cs.nlp": ("cs.CL",),
    "nlp": ("cs.CL",),
}
_BY_FOLDED = {name.casefold(): name for name in CATEGORIES}


def suggestions(name: str) -> tuple[str, ...]:
    """The categories `name` was most likely meant to be, best first; () if none is close."""
    folded = name.strip().casefold()
    if folded in _USUAL_MISTAKES:
        return _USUAL_MISTAKES[folded]
    if folded in _BY_FOLDED:
        return (_BY_FOLDED[folded],)  # right name, wrong case: cs.lg
    close = difflib.get_close_matches(folded, list(_BY_FOLDED), n=2, cutoff=0.75)
    return tuple(_BY_FOLDED[match] for match in close)


def check_category(name: str) -> str:
    """`name` if arXiv has that category; else ValueError saying what was probably meant."""
    if name in CATEGORIES:
        return name
    message = f"{name!r} is not an arXiv category"
    guesses = suggestions(name)
    if guesses:
        message += "; did you mean " + " or ".join(guesses) + "?"
    else:
        message += " (see https://arxiv.org/category_taxonomy)"
    raise ValueError(message)
