"""Follow and mute rules, and which papers they match (pure: no store, no clock).

An author rule matches by normalised name: case, accents and punctuation are folded, and
a given name may be an initial, so "Y. LeCun", "yann lecun" and "LeCun, Yann" are one
person. A keyword rule matches its words as whole words (or a phrase) in the title or
abstract, singular or plural ("graph network" finds "graph networks", and the reverse).
A paper matched by a mute rule is never shown, even when a follow rule matches it too.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from enum import StrEnum
from functools import cached_property

from paperdigest.models import Paper


class Action(StrEnum):
    follow = "follow"
    mute = "mute"


class Field(StrEnum):
    author = "author"
    keyword = "keyword"


# The combining marks NFKD splits accents into (a regex: a generator over every character
# of every abstract made matching 50x slower).
_MARKS = re.compile("[\u0300-\u036f\u1ab0-\u1aff\u1dc0-\u1dff\u20d0-\u20ff\ufe20-\ufe2f]")
_NON_WORD = re.compile(r"[\W_]+")
# Most text is ASCII: a translation table folds it 2.5x faster than the regex.
_ASCII_NON_WORD = {c: " " for c in range(128) if not chr(c).isalnum()}


def fold(text: str) -> str:
    """Lower case, accents removed, every run of non-word characters one space."""
    if text.isascii():
        return " ".join(text.lower().translate(_ASCII_NON_WORD).split())
    text = _MARKS.sub("", unicodedata.normalize("NFKD", text))
    return _NON_WORD.sub(" ", text.casefold()).strip()


@dataclass(frozen=True)
class Name:
    """A person's name as (family name, given names), folded."""

    family: str
    given: tuple[str, ...]

    @classmethod
    def parse(cls, text: str) -> Name:
        if "," in text:  # "LeCun, Yann": family name first
            family, _, given = text.partition(",")
            family_words, given_words = fold(family).split(), fold(given).split()
        else:
            # "Y.LeCun" folds to "y lecun"; "Yann LeCun" to "yann lecun".
            words = fold(text).split()
            family_words, given_words = words[-1:], words[:-1]
        return cls(" ".join(family_words), tuple(given_words))

    def same_person(self, other: Name) -> bool:
        """Same family name, and first given names that agree (an initial agrees with any
        name it starts); a name without a given name agrees with every given name."""
        if not self.family or self.family != other.family:
            return False
        if not self.given or not other.given:
            return True
        mine, theirs = self.given[0], other.given[0]
        if len(mine) == 1 or len(theirs) == 1:
            return mine[0] == theirs[0]
        return mine == theirs


def normalise_rule_value(field: Field, value: str) -> str:
    """The key a rule is stored under ("y lecun", "graph neural networks"); rules are
    compared with Rule.same_as, which also knows that "Y. LeCun" is "Yann LeCun"."""
    if field is Field.author:
        name = Name.parse(value)
        return " ".join((*name.given, name.family)).strip()
    return fold(value)


def check_rule_value(field: Field, value: str) -> str:
    """The value, trimmed; ValueError with a plain sentence when it holds no word."""
    value = " ".join(value.split())
    if not normalise_rule_value(field, value):
        raise ValueError(f"give the {field.value} as words, not {value!r}")
    return value


def keyword_words(value: str) -> list[str]:
    """A keyword's folded words, the last one without a plural "s": "models" also finds
    "model" (the pattern allows "s" or "es" after it)."""
    words = fold(value).split()
    last = words[-1] if words else ""
    if len(last) > 3 and last.endswith("s") and not last.endswith("ss"):
        words[-1] = last[:-1]
    return words


@dataclass(frozen=True)
class Rule:
    action: Action
    field: Field
    value: str

    @cached_property
    def _name(self) -> Name:
        return Name.parse(self.value)

    @cached_property
    def _pattern(self) -> re.Pattern[str]:
        words = keyword_words(self.value)
        # Folded text has single spaces between words and one at each end (paper_text):
        # spaces mark whole words, and a pattern that starts with a literal is searched
        # 25x faster than one that starts with a lookbehind.
        return re.compile(" " + re.escape(" ".join(words)) + "(?:e?s)? ")

    def matches(self, paper: Paper, folded_text: str | None = None) -> str | None:
        """The paper's author name or the keyword that matched, or None."""
        if self.field is Field.author:
            return next(
                (a for a in paper.authors if self._name.same_person(Name.parse(a))), None
            )
        text = folded_text if folded_text is not None else paper_text(paper)
        return self.value if self._pattern.search(text) else None

    @property
    def family_name(self) -> str:
        """An author rule's folded family name."""
        return self._name.family

    def same_as(self, other: Rule) -> bool:
        """One rule in two spellings: "Y. LeCun" and "yann lecun", "GANs" and "gans"."""
        if (self.action, self.field) != (other.action, other.field):
            return False
        if self.field is Field.author:
            return self._name.same_person(other._name)
        return fold(self.value) == fold(other.value)


def paper_text(paper: Paper) -> str:
    """Title and abstract folded, with a space at each end (see Rule._pattern)."""
    return " " + fold(paper.title + " " + paper.abstract) + " "


@dataclass(frozen=True)
class Verdict:
    muted: bool
    reason: str | None  # "follows author Yann LeCun" when a follow rule matched


def judge(paper: Paper, rules: Sequence[Rule]) -> Verdict:
    """What the rules say about one paper: mute wins over follow."""
    text = paper_text(paper) if any(r.field is Field.keyword for r in rules) else ""
    followed: str | None = None
    for rule in rules:
        matched = rule.matches(paper, text)
        if matched is None:
            continue
        if rule.action is Action.mute:
            return Verdict(muted=True, reason=None)
        if followed is None:
            what = matched if rule.field is Field.author else f"“{matched}”"
            followed = f"follows {rule.field.value} {what}"
    return Verdict(muted=False, reason=followed)


@dataclass(frozen=True)
class Sorted:
    """Papers split by the rules: the muted ones, and the followed ones with why."""

    muted: frozenset[int]
    followed: tuple[tuple[Paper, str], ...]


def sort_papers(papers: Iterable[Paper], rules: Sequence[Rule]) -> Sorted:
    """Muted pks, and followed papers (in the order given) with their reason."""
    muted: set[int] = set()
    followed: list[tuple[Paper, str]] = []
    if not rules:
        return Sorted(frozenset(), ())
    for paper in papers:
        verdict = judge(paper, rules)
        if verdict.muted:
            muted.add(paper.pk)
        elif verdict.reason is not None:
            followed.append((paper, verdict.reason))
    return Sorted(frozenset(muted), tuple(followed))


def is_muted(paper: Paper, rules: Sequence[Rule]) -> bool:
    return any(r.action is Action.mute for r in rules) and judge(paper, rules).muted
