"""Where the trainer's per-step and per-epoch figures go: a JSON Lines file and TensorBoard.

A JSON Lines file holds one JSON object a line, e.g.::

    {"event": "step", "epoch": 0, "step": 1, "loss": 5.31, "lr": 0.01, ...}
    {"event": "epoch", "epoch": 0, "steps": 9, "loss": 5.12, "cost_s": 0.0002, ...}

Read it with ``pandas.read_json(path, lines=True)`` or :func:`read_metrics`. NaN and
infinite values are written as ``null`` so that every line is valid JSON.
"""
from __future__ import annotations

import importlib.util
import json
import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

TENSORBOARD_HINT = "pip install 'dglbs[tensorboard]' -c constraints.txt"


def _json_value(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def _json_default(value: Any) -> Any:
    """Numbers a hook may add as tensors or numpy scalars become floats; anything else its str."""
    try:
        return _json_value(float(value))
    except (TypeError, ValueError):
        return str(value)


def _scalars(record: Mapping[str, Any]) -> dict[str, float]:
    """The finite numbers of ``record`` (booleans and strings left out)."""
    return {key: float(value) for key, value in record.items()
            if isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)}


class MetricsWriter:
    """Append training records to a JSON Lines file and/or a TensorBoard log.

    Parameters
    ----------
    path : str or Path, optional
        JSON Lines file, created with its parent folders and appended to, so a
        resumed run continues the same file (steps replayed after a resume appear
        again; the later line wins).
    tensorboard_dir : str or Path, optional
        Log folder for :class:`torch.utils.tensorboard.SummaryWriter` (needs the
        ``tensorboard`` package). Step figures are logged as ``step/<name>`` at the
        global step, epoch figures as ``epoch/<name>`` at the epoch number.

    Raises
    ------
    ImportError
        If ``tensorboard_dir`` is given and the ``tensorboard`` package is missing.
    """

    def __init__(self, path: str | Path | None = None, tensorboard_dir: str | Path | None = None) -> None:
        if tensorboard_dir is not None and importlib.util.find_spec("tensorboard") is None:
            raise ImportError(f"tensorboard_dir={str(tensorboard_dir)!r} needs the tensorboard package: "
                              f"{TENSORBOARD_HINT}, or pass tensorboard_dir=None")
        self.path = None if path is None else Path(path)
        self.tensorboard_dir = None if tensorboard_dir is None else Path(tensorboard_dir)
        self._file = None
        self._tensorboard = None

    def open(self) -> None:
        """Open the sinks (again, after :meth:`close`); records are appended."""
        if self.path is not None and self._file is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._file = self.path.open("a", encoding="utf-8")
        if self.tensorboard_dir is not None and self._tensorboard is None:
            from torch.utils.tensorboard import SummaryWriter

            self._tensorboard = SummaryWriter(str(self.tensorboard_dir))

    def write(self, event: str, record: Mapping[str, Any], *, index: int) -> None:
        """Write one record.

        Parameters
        ----------
        event : {"step", "epoch"}
            Becomes the record's ``"event"`` and the TensorBoard tag prefix.
        record : mapping of str to JSON-serialisable values
        index : int
            The x-axis value in TensorBoard (global step or epoch).
        """
        self.open()
        if self._file is not None:
            line = {"event": event} | {key: _json_value(value) for key, value in record.items()}
            self._file.write(json.dumps(line, default=_json_default) + "\n")
            self._file.flush()
        if self._tensorboard is not None:
            for key, value in _scalars(record).items():
                self._tensorboard.add_scalar(f"{event}/{key}", value, index)

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None
        if self._tensorboard is not None:
            self._tensorboard.close()
            self._tensorboard = None

    def __repr__(self) -> str:
        path = None if self.path is None else str(self.path)
        tensorboard = None if self.tensorboard_dir is None else str(self.tensorboard_dir)
        return f"MetricsWriter(path={path!r}, tensorboard_dir={tensorboard!r})"


def read_metrics(path: str | Path, event: str | None = None) -> list[dict[str, Any]]:
    """The records of a JSON Lines metrics file, in order; only ``event`` ones if given.

    ``null`` values (NaN when written) are read back as NaN.
    """
    records = []
    with Path(path).open(encoding="utf-8") as file:
        for number, line in enumerate(file, 1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError as error:
                raise ValueError(f"{path}, line {number}: not a JSON object ({error.msg})") from None
            if event is None or record.get("event") == event:
                records.append({key: math.nan if value is None else value for key, value in record.items()})
    return records
