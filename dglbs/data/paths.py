"""Where the benchmark data lives.

Every loader and every example reads its files below one *data folder*, the folder
that holds ``tu/``, ``sts/``, ``text/``, ``molecules/``, ``fashion-mnist/`` (and any
other image dataset's folder, e.g. ``cifar-10-batches-py/``). It is, in this order:

1. the folder given explicitly (``--data-dir`` on the command line; in Python the
   loader's ``root``);
2. ``$DGLBS_DATA``, when set and non-empty;
3. in a source checkout (the folder holding ``dglbs/`` also holds ``setup.cfg``),
   ``<checkout>/../shared/data``, where this project's bundled data lies;
4. otherwise (an installed package) ``$XDG_DATA_HOME/dglbs``, by default
   ``~/.local/share/dglbs``.
"""
from __future__ import annotations

import os
from pathlib import Path

DATA_ENV_VAR = "DGLBS_DATA"

CACHE_ENV_VAR = "DGLBS_CACHE"
"""Overrides the folder loaders keep parsed copies in (see :func:`cache_dir`)."""

DATA_LAYOUT = "tu/, sts/, text/, molecules/, fashion-mnist/ ..."
"""What a data folder holds, for messages."""


def _checkout_root() -> Path | None:
    """The source checkout this package is imported from, or None for an installed package."""
    root = Path(__file__).resolve().parents[2]  # <root>/dglbs/data/paths.py
    return root if (root / "setup.cfg").is_file() and (root / "dglbs" / "__init__.py").is_file() else None


def default_data_location() -> tuple[Path, str]:
    """The data folder used when none is given, and where that choice came from.

    Returns
    -------
    (path, origin) : (pathlib.Path, str)
        Absolute path (which may not exist) and a phrase such as ``"$DGLBS_DATA"``
        for messages.
    """
    from_env = os.environ.get(DATA_ENV_VAR, "")
    if from_env:
        return Path(from_env).expanduser().resolve(), f"${DATA_ENV_VAR}"
    checkout = _checkout_root()
    if checkout is not None:
        return (checkout.parent / "shared" / "data").resolve(), "the source checkout's default <checkout>/../shared/data"
    data_home = Path(os.environ.get("XDG_DATA_HOME") or Path.home() / ".local" / "share").expanduser()
    return (data_home / "dglbs").resolve(), "the installed package's default $XDG_DATA_HOME/dglbs"


def default_data_dir() -> Path:
    """The data folder used when a loader is given no explicit directory.

    See the module docstring for the order of choices.

    Returns
    -------
    pathlib.Path
        Absolute path of an existing directory.

    Raises
    ------
    FileNotFoundError
        If the chosen directory does not exist.
    """
    path, origin = default_data_location()
    if not path.is_dir():
        raise FileNotFoundError(
            f"data folder {str(path)!r} (from {origin}) does not exist; set {DATA_ENV_VAR} to the folder that "
            f"holds {DATA_LAYOUT}, or pass the dataset's folder as root="
        )
    return path


def cache_dir() -> Path:
    """Folder of the loaders' caches (parsed TU tables, converted molecules):
    ``$DGLBS_CACHE`` if set and non-empty, else ``$XDG_CACHE_HOME/dglbs``, else
    ``~/.cache/dglbs``. Never the data folder, which may be read-only or shared."""
    base = os.environ.get(CACHE_ENV_VAR, "")
    if not base:
        xdg = os.environ.get("XDG_CACHE_HOME", "")
        base = (Path(xdg) if xdg else Path.home() / ".cache") / "dglbs"
    return Path(base).expanduser()
