"""What the command-line programs built on dglbs share (the examples' ``dglbs-*`` commands).

- :func:`run_main` runs a ``main(argv)`` and turns the errors a user can fix (a bad
  value, a missing file or extra) into one line on stderr and exit status 2, as
  argparse does for a bad flag. ``DGLBS_TRACEBACK=1`` shows the traceback instead.
- :func:`extra_imports` turns a missing optional dependency into a message that
  names the extra to install, before anything else runs (even ``--help``).
- :func:`data_dir_argument` reads ``--data-dir`` with the same meaning everywhere:
  the folder that holds ``tu/``, ``sts/``, ``fashion-mnist/`` ... (see
  :mod:`dglbs.data.paths`).
- :func:`configure_logging` sends the ``dglbs`` loggers to stderr without breaking
  progress bars.
"""
from __future__ import annotations

import argparse
import importlib.util
import logging
import os
import sys
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from tqdm import tqdm

from .data.paths import DATA_ENV_VAR, DATA_LAYOUT, default_data_location

TRACEBACK_ENV_VAR = "DGLBS_TRACEBACK"

OWN_PACKAGES = ("dglbs", "dglbs_models", "dglbs_examples")
"""A missing module of these is a broken install, not a missing extra."""

LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")


class UsageError(Exception):
    """A bad command-line value; the message names the flag and how to fix it."""


class MissingExtraError(ImportError):
    """An optional dependency is not installed; the message names the extra that brings it."""


def program_name() -> str:
    """The running program's name, as argparse shows it."""
    return Path(sys.argv[0]).name or "python"


def print_error(message: str) -> int:
    """``<program>: error: <message>`` on stderr, on one line; returns the exit status 2."""
    print(f"{program_name()}: error: {' '.join(message.split())}", file=sys.stderr)
    return 2


@contextmanager
def extra_imports(extra: str, importer: str, *, requires: Sequence[str] = ()) -> Iterator[None]:
    """Imports inside the block need the ``extra`` extra of dglbs.

    A ``ModuleNotFoundError`` inside the block becomes :class:`MissingExtraError`
    whose message names the missing module and ``pip install 'dglbs[extra]'``; when
    ``importer`` is ``"__main__"`` (a script run directly) it is printed as one line
    and the program exits with status 2.

    Parameters
    ----------
    extra : str
        The extra (``[options.extras_require]`` key) that brings the dependencies.
    importer : str
        The importing module's ``__name__``.
    requires : sequence of str
        Modules checked to be installed before the block runs, without importing
        them: those the program imports only later (e.g. ``"transformers"``).
    """
    try:
        for name in requires:
            if importlib.util.find_spec(name) is None:
                raise ModuleNotFoundError(f"No module named {name!r}", name=name)
        yield
    except ModuleNotFoundError as error:
        if error.name is None or error.name.split(".")[0] in OWN_PACKAGES:
            raise
        where = program_name() if importer == "__main__" else importer
        message = (f"{where} needs the {extra!r} extra (no module named {error.name.split('.')[0]!r}): "
                   f"pip install 'dglbs[{extra}]'")
        if importer == "__main__":
            raise SystemExit(print_error(message)) from None
        raise MissingExtraError(message, name=error.name) from None


def run_main(main: Callable[[Sequence[str] | None], Any], argv: Sequence[str] | None = None) -> int:
    """Run ``main(argv)`` as a command: errors a user can fix become one line.

    :class:`UsageError`, ``ImportError``, ``ValueError`` and ``OSError`` (missing
    files, unreadable data) are printed as ``<program>: error: <message>`` on stderr
    and give exit status 2, unless ``$DGLBS_TRACEBACK`` is set, which re-raises them.

    Returns
    -------
    int
        The exit status, 0 on success; pass it to ``sys.exit``.
    """
    try:
        main(argv)
    except (UsageError, ImportError, ValueError, OSError) as error:
        if os.environ.get(TRACEBACK_ENV_VAR):
            raise
        return print_error(str(error) or type(error).__name__)
    return 0


def data_dir_argument(value: str | None) -> Path:
    """The data folder of a ``--data-dir`` value (None: the default), checked to exist.

    Raises
    ------
    UsageError
        If the folder does not exist; the message says which flag or variable to set.
    """
    if value is None:
        path, origin = default_data_location()
        if not path.is_dir():
            raise UsageError(f"the data folder {str(path)!r} (from {origin}) does not exist; pass --data-dir "
                             f"the folder that holds {DATA_LAYOUT}, or set {DATA_ENV_VAR} to it")
        return path
    path = Path(value).expanduser()
    if not path.is_dir():
        raise UsageError(f"--data-dir {value!r} is not a folder; pass the folder that holds {DATA_LAYOUT}")
    return path


def data_subfolder(data_dir: Path, name: str, what: str) -> Path:
    """``data_dir / name``, checked to exist; the error names ``--data-dir``."""
    folder = data_dir / name
    if not folder.is_dir():
        raise UsageError(f"no {name}/ folder in the data folder {str(data_dir)!r} ({what} are read from it); "
                         f"pass --data-dir the folder that holds {name}/")
    return folder


def add_data_dir_argument(parser: argparse.ArgumentParser) -> None:
    """``--data-dir`` with the help text every example shares."""
    path, origin = default_data_location()
    parser.add_argument("--data-dir", help=f"the folder that holds {DATA_LAYOUT} (default: {str(path)!r}, "
                                           f"from {origin})")


def add_output_arguments(parser: argparse.ArgumentParser) -> None:
    """``--progress/--no-progress`` (for ``Trainer(progress=...)``) and ``--log-level``
    (for :func:`configure_logging`)."""
    parser.add_argument("--progress", action=argparse.BooleanOptionalAction, default=None,
                        help="progress bars (default: only when stderr is a terminal)")
    parser.add_argument("--log-level", choices=LOG_LEVELS, default="INFO",
                        help="least level of the log lines on stderr: per-epoch figures are INFO, "
                             "graph refreshes and checkpoints DEBUG (default: INFO)")


class TqdmHandler(logging.Handler):
    """Writes records to the current ``sys.stderr`` through ``tqdm.write``, so they do
    not break an active progress bar."""

    def emit(self, record: logging.LogRecord) -> None:
        try:
            tqdm.write(self.format(record), file=sys.stderr)
        except Exception:  # noqa: BLE001 - logging's own contract: never raise from emit
            self.handleError(record)


def configure_logging(level: str = "INFO", loggers: Sequence[str] = ("dglbs", "dglbs_examples")) -> None:
    """Send ``loggers`` at ``level`` and above to stderr, one time-stamped line each.

    Calling it again replaces the handler it installed (no duplicate lines).
    """
    if level not in LOG_LEVELS:
        raise ValueError(f"level must be one of {LOG_LEVELS}, got {level!r}")
    handler = TqdmHandler()
    handler.setFormatter(logging.Formatter("%(asctime)s %(message)s", datefmt="%H:%M:%S"))
    for name in loggers:
        logger = logging.getLogger(name)
        for old in [old for old in logger.handlers if isinstance(old, TqdmHandler)]:
            logger.removeHandler(old)
        logger.addHandler(handler)
        logger.setLevel(level)
