"""What every command shares: the app, its options, the store, and clean errors."""

from __future__ import annotations

import functools
import re
import sqlite3
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, ParamSpec, TypeVar

import typer
import typer.core
import typer.rich_utils
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
)
from rich.text import Text

from paperdigest.config import Settings, load_settings
from paperdigest.errors import PaperdigestError, describe_os_error
from paperdigest.ingest import ensure_seeded, needs_seeds
from paperdigest.parsers.text import terminal_text
from paperdigest.paths import bundled_seed_files, resolve_data_dir
from paperdigest.store import Store, check_profile_name

_TYPE_WORDS = {int: "N", float: "NUMBER", str: "TEXT", Path: "PATH"}


def _plain_type(param: Any, ctx: Any) -> str | None:
    """What help shows after an option: a word such as N or PATH, or the choices; never a
    Python type (typer's own `<list[Path]>`, `<bool>`), and nothing after a flag or an
    argument (its name says it)."""
    if getattr(param, "is_flag", False) or getattr(param, "count", False):
        return None
    if isinstance(param, typer.core.TyperArgument):
        return None
    if param.metavar is not None:
        return param.metavar
    desc = param.type_descriptor
    if desc.is_choice:
        return "|".join(str(getattr(c, "value", c)) for c in desc.choices or ())
    annotation = desc.annotation
    if getattr(annotation, "__origin__", None) is list:
        annotation = annotation.__args__[0]
    return "PATH" if desc.is_path else _TYPE_WORDS.get(annotation, "TEXT")


def _plain_usage_error(exc: Any) -> None:
    """A bad flag or argument as one plain line on stderr, like every other error, instead
    of typer's box (which also says "Value error," before the sentence)."""
    if exc.__class__.__name__ == "NoArgsIsHelpError":
        return
    message = exc.format_message().replace("Value error, ", "")
    ctx = getattr(exc, "ctx", None)
    hint = f" (see `{ctx.command_path} --help`)" if ctx is not None else ""
    err.print(f"Error: {message}{hint}", markup=False, soft_wrap=True, highlight=False)


# One place for every command's help and usage errors, rather than a metavar on each
# option and a handler in each command.
typer.core.TyperArgument.display_type_rich = _plain_type  # type: ignore[method-assign]
typer.core.TyperOption.display_type_rich = _plain_type  # type: ignore[method-assign]
typer.rich_utils.rich_format_error = _plain_usage_error

_GLOBAL = {"--data-dir", "--config", "-c"}  # options of the app, each with a value
_PROFILE = {"--profile", "-p"}  # an option of most commands, with a value


def _option_name(arg: str) -> str:
    return arg.split("=", 1)[0] if arg.startswith("--") else arg


def _takes_value(arg: str, names: set[str]) -> bool:
    return "=" not in arg and _option_name(arg) in names


class _GlobalOptionsAnywhere(typer.core.TyperGroup):
    """`paperdigest star X --data-dir D` and `paperdigest --profile bob star X` work as
    `paperdigest --data-dir D star X` and `paperdigest star X --profile bob` do: the
    app's options are lifted to before the command name, `--profile` moved after it."""

    def parse_args(self, ctx: Any, args: list[str]) -> list[str]:
        before, profile, index = self._before_command(args)
        command, rest = args[index : index + 1], args[index + 1 :]
        if not command:  # no command: let the parser say what is wrong
            before, profile = before + profile, []
        lifted, after = _lift_globals(rest)
        return super().parse_args(ctx, before + lifted + command + profile + after)

    def _before_command(self, args: list[str]) -> tuple[list[str], list[str], int]:
        """The app's options, any --profile, and where the command name is."""
        before: list[str] = []
        profile: list[str] = []
        index = 0
        while index < len(args) and args[index] not in self.commands:
            arg = args[index]
            chunk = args[index : index + (2 if _takes_value(arg, _GLOBAL | _PROFILE) else 1)]
            (profile if _option_name(arg) in _PROFILE else before).extend(chunk)
            index += len(chunk)
        return before, profile, index


def _lift_globals(rest: list[str]) -> tuple[list[str], list[str]]:
    """(the app's options found after the command name, everything else), up to `--`."""
    lifted: list[str] = []
    after: list[str] = []
    index = 0
    while index < len(rest):
        arg = rest[index]
        if arg == "--":
            after.extend(rest[index:])
            break
        if _option_name(arg) in _GLOBAL:
            width = 2 if _takes_value(arg, _GLOBAL) else 1
            lifted.extend(rest[index : index + width])
            index += width
        else:
            after.append(arg)
            index += 1
    return lifted, after


app = typer.Typer(
    cls=_GlobalOptionsAnywhere,
    name="paperdigest",
    help="Learns which research papers you care about and mails you a daily digest.",
    epilog="--data-dir and --config may also follow the command name, and a command's "
    "--profile may come before it: paperdigest star ID --data-dir DIR.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    rich_markup_mode="rich",
)

out = Console(highlight=False, soft_wrap=False)
err = Console(stderr=True, highlight=False)

ProfileOption = Annotated[
    str,
    typer.Option(
        "--profile",
        "-p",
        envvar="PAPERDIGEST_PROFILE",
        help="Whose stars, dismissals and history to use.",
    ),
]
JsonOption = Annotated[
    bool, typer.Option("--json", help="Print one JSON array instead of a table.")
]


@dataclass
class AppContext:
    """Set by the top-level options; opened lazily so `--help` needs no store."""

    data_dir_flag: Path | None = None
    config_flag: Path | None = None
    _settings: Settings | None = field(default=None, repr=False)

    @property
    def settings(self) -> Settings:
        if self._settings is None:
            self._settings = load_settings(self.config_flag)
        return self._settings

    @property
    def data_dir(self) -> Path:
        return resolve_data_dir(self.data_dir_flag, self.settings.data_dir)

    @contextmanager
    def store(self) -> Iterator[Store]:
        with Store.open(self.data_dir) as store:
            if store.started_afresh:
                err.print(shown(f"warning: {store.started_afresh}"), soft_wrap=True)
            seed_with_progress(store)
            yield store


DEFAULT_PROFILE = "default"


def known_profiles(settings: Settings, store: Store) -> list[str]:
    """`default`, every configured profile, and every profile the store knows."""
    names = {DEFAULT_PROFILE, *(p.name for p in settings.profiles), *store.profiles()}
    return sorted(names)


def resolve_profile(context: AppContext, store: Store, name: str) -> str:
    """The profile a command names, if it exists: a typo must not start a new profile."""
    import difflib

    check_profile_name(name)
    known = known_profiles(context.settings, store)
    if name in known:
        return name
    close = difflib.get_close_matches(name, known, n=1, cutoff=0.6)
    hint = f"did you mean {close[0]!r}? " if close else ""
    raise PaperdigestError(
        f"no profile named {name!r}; {hint}Create it with `paperdigest profile add {name}` "
        f"(profiles: {', '.join(known)})"
    )


def app_context(ctx: typer.Context) -> AppContext:
    obj = ctx.find_root().obj
    if not isinstance(obj, AppContext):
        obj = AppContext()
        ctx.find_root().obj = obj
    return obj


def progress() -> Progress:
    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=err,
        transient=not err.is_terminal,
    )


def seed_with_progress(store: Store) -> None:
    if not needs_seeds(store):
        return
    files = bundled_seed_files()
    with progress() as bar:
        task = bar.add_task("Loading the bundled seed corpus", total=len(files))
        report = ensure_seeded(store, on_file=lambda *_: bar.advance(task))
    if report is not None:
        err.print(
            f"Loaded {report.stats.new} papers from the bundled seed corpus "
            f"into {store.path.parent}."
        )
        for problem in [*report.problems, *report.stats.warnings]:
            err.print(shown(f"warning: {problem}"))


def index_progress(message: str) -> None:
    """Building the TF-IDF index for a large corpus takes a while: say what is happening."""
    err.print(f"Updating the search index: {message}", markup=False)


P = ParamSpec("P")
R = TypeVar("R")


def shown(text: object) -> Text:
    """Untrusted text (a title, an id, a reason, a server's error) as a table cell or a
    line: never read as rich markup, and no control character reaches the terminal."""
    return Text(terminal_text(str(text)))


def fail(message: str, code: int = 1) -> typer.Exit:
    err.print(f"Error: {terminal_text(message)}", markup=False, soft_wrap=True)
    return typer.Exit(code)


def clean_errors(func: Callable[P, R]) -> Callable[P, R]:
    """Turn expected failures into one line on stderr and a non-zero exit."""

    @functools.wraps(func)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return func(*args, **kwargs)
        except PaperdigestError as exc:
            raise fail(str(exc), exc.exit_code) from None
        except sqlite3.Error as exc:
            if "disk is full" in str(exc):
                raise fail(f"disk full: the database could not be written ({exc}); nothing "
                           "was changed") from None
            raise fail(f"database error: {exc}") from None
        except OSError as exc:
            where = f"{exc.filename}: " if exc.filename else ""
            raise fail(f"{where}{describe_os_error(exc)}") from None
        except RecursionError:
            raise fail("input nested too deeply to read") from None
        except KeyboardInterrupt:
            raise fail("interrupted", 130) from None

    return wrapper


# Left raw by json.dumps(ensure_ascii=False): C1 controls (U+009B is CSI to some terminals),
# DEL, and lone surrogates (which cannot even be written as UTF-8).
_JSON_UNSAFE = re.compile("[\x7f-\x9f\ud800-\udfff]")


def print_json(value: Any) -> None:
    import json

    text = json.dumps(value, ensure_ascii=False, indent=2)
    # Characters that only occur inside JSON strings, so a \\u escape keeps the value.
    text = _JSON_UNSAFE.sub(lambda m: f"\\u{ord(m.group()):04x}", text)
    sys.stdout.write(text + "\n")
