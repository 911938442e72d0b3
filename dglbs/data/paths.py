"""Where the bundled benchmark data lives."""
from __future__ import annotations

import os
from pathlib import Path

DATA_ENV_VAR = "DGLBS_DATA"


def default_data_dir() -> Path:
    """The data directory used when a loader is given no explicit directory.

    It is ``$DGLBS_DATA`` when that environment variable is set and non-empty,
    else ``<repo_root>/../shared/data``, where ``<repo_root>`` is the folder that
    holds the ``dglbs`` package. The fallback only makes sense for a source
    checkout; an installed package should set ``DGLBS_DATA``.

    Returns
    -------
    pathlib.Path
        Absolute path of an existing directory.

    Raises
    ------
    FileNotFoundError
        If the chosen directory does not exist.
    """
    from_env = os.environ.get(DATA_ENV_VAR, "")
    if from_env:
        path = Path(from_env).expanduser().resolve()
        origin = f"the {DATA_ENV_VAR} environment variable"
    else:
        repo_root = Path(__file__).resolve().parents[2]
        path = (repo_root.parent / "shared" / "data").resolve()
        origin = f"the default (<repo_root>/../shared/data; {DATA_ENV_VAR} is not set)"
    if not path.is_dir():
        raise FileNotFoundError(
            f"data directory {str(path)!r} from {origin} does not exist; set "
            f"{DATA_ENV_VAR} to the folder holding the data (e.g. the one with tu/) "
            "or pass the directory explicitly"
        )
    return path
