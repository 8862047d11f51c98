"""Pure parsers: bytes in, paper records and problems out. No I/O here."""

from paperdigest.parsers.jsonl import parse_jsonl
from paperdigest.parsers.seeds import parse_seed_dump

__all__ = ["parse_jsonl", "parse_seed_dump"]
