"""The key that signs links: `web.secret_key`, else one generated on first use and kept
in the data dir, readable by its owner only. It is never printed."""

from __future__ import annotations

import contextlib
import os
import secrets
from pathlib import Path

from paperdigest.config import Settings
from paperdigest.errors import PaperdigestError

SECRET_FILE = "web-secret.key"


def secret_key(settings: Settings, data_dir: Path) -> str:
    if settings.web.secret_key is not None:
        return settings.web.secret_key.get_secret_value()  # checked by config: 16+ chars
    path = data_dir / SECRET_FILE
    try:
        return _read(path)
    except FileNotFoundError:
        pass
    try:
        data_dir.mkdir(parents=True, exist_ok=True)
        # Write a private temp file, then link it into place: of two processes starting at
        # once, one key wins and neither ever reads a half-written file.
        temp = data_dir / f".{SECRET_FILE}.{os.getpid()}.{secrets.token_hex(4)}"
        fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w", encoding="ascii") as file:
            file.write(secrets.token_urlsafe(32) + "\n")
        try:
            os.link(temp, path)
        except FileExistsError:
            pass
        finally:
            with contextlib.suppress(OSError):
                temp.unlink()
        return _read(path)
    except OSError as exc:
        raise PaperdigestError(f"cannot keep the web secret key in {data_dir}: "
                               f"{exc.strerror or exc}") from None


def _read(path: Path) -> str:
    value = path.read_text(encoding="ascii").strip()
    if len(value) < 16:
        raise PaperdigestError(f"{path} holds no usable key; delete it to make a new one")
    if path.stat().st_mode & 0o077:
        path.chmod(0o600)
    return value
