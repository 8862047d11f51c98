"""Checks of names and addresses a user or a config file gives (pure).

A profile name becomes part of file names (the dry-run outbox) and an email address part
of a message's headers, so both are checked before anything uses them.
"""

from __future__ import annotations

import re
from email.headerregistry import Address
from email.utils import parseaddr

PROFILE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.@-]{0,63}$")
PROFILE_NAME_RULE = "use letters, digits, '.', '_', '-' or '@' (up to 64, starting with a " \
    "letter or digit)"


def profile_name_problem(name: str) -> str | None:
    """Why `name` cannot be a profile name ("../../x" and "/tmp/x" cannot), or None."""
    if PROFILE_NAME.fullmatch(name):
        return None
    return f"invalid profile name {name!r}: {PROFILE_NAME_RULE}"


ADDRESS_EXAMPLE = "such as ada@example.org"


class NotAnAddressError(ValueError):
    """Words that are not an address at all (a caller may add ADDRESS_EXAMPLE)."""


def email_address(value: str) -> str:
    """One email address, as `ada@example.org` or `Ada Lovelace <ada@example.org>`,
    normalised; ValueError saying why for anything else (a line break, several addresses,
    words that are not an address)."""
    if any(ord(c) < 32 or ord(c) == 127 for c in value):
        raise ValueError(f"{value!r} contains a line break or a control character")
    text = value.strip()
    if "," in text or ";" in text:
        raise ValueError(f"{value!r} holds several addresses; give them one at a time")
    name, spec = parseaddr(text) if "<" in text else ("", text)
    try:
        address = Address(display_name=name, addr_spec=spec)
    except Exception:  # the parser raises several kinds; all mean "not an address"
        address = None
    if address is None or not address.username or not address.domain:
        raise NotAnAddressError(f"{value!r} is not an email address")
    return str(address)
