"""Splitting the profiles over machines (pure): `send --all --shard K/N`.

A profile's shard is a hash of its name, so every host computes the same split with no
coordination, and it stays put when other profiles are added. Python's hash() is salted
per process, so a fixed digest (BLAKE2b) is used instead.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Sequence
from typing import TypeVar

from paperdigest.errors import PaperdigestError

T = TypeVar("T")


def parse_shard(text: str) -> tuple[int, int]:
    """'K/N' -> (K, N), with 1 <= K <= N."""
    match = re.fullmatch(r"\s*(\d+)\s*/\s*(\d+)\s*", text)
    if not match:
        raise PaperdigestError(f"--shard {text!r}: expected K/N, such as 1/4")
    k, n = int(match[1]), int(match[2])
    if not 1 <= k <= n:
        raise PaperdigestError(f"--shard {text!r}: K must be between 1 and N")
    return k, n


def shard_of(name: str, n: int) -> int:
    """The shard (1..n) that serves the profile `name`."""
    digest = hashlib.blake2b(name.encode("utf-8"), digest_size=8).digest()
    return int.from_bytes(digest, "big") % n + 1


def take_shard(items: Sequence[T], names: Sequence[str], k: int, n: int) -> list[T]:
    """The items whose name falls in shard k of n, in their order."""
    return [item for item, name in zip(items, names, strict=True) if shard_of(name, n) == k]
