from __future__ import annotations

from pathlib import Path

import pytest

from dglbs.data import paths
from dglbs.data.paths import DATA_ENV_VAR, default_data_dir


def test_env_var_wins(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(DATA_ENV_VAR, str(tmp_path))
    assert default_data_dir() == tmp_path.resolve()


def test_default_is_shared_data_next_to_repo(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(DATA_ENV_VAR, raising=False)
    repo_root = Path(paths.__file__).resolve().parents[2]  # <repo>/dglbs/data/paths.py
    assert default_data_dir() == (repo_root / ".." / "shared" / "data").resolve()


def test_missing_directory_names_path_and_env_var(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    missing = tmp_path / "nowhere"
    monkeypatch.setenv(DATA_ENV_VAR, str(missing))
    with pytest.raises(FileNotFoundError, match=rf"{missing}.*{DATA_ENV_VAR}"):
        default_data_dir()


def test_an_installed_package_defaults_to_xdg_data_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(DATA_ENV_VAR, raising=False)
    monkeypatch.setattr(paths, "_checkout_root", lambda: None)  # as in site-packages: no setup.cfg beside dglbs/
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path))
    assert paths.default_data_location()[0] == tmp_path / "dglbs"
    with pytest.raises(FileNotFoundError, match=r"installed package's default \$XDG_DATA_HOME/dglbs.*set DGLBS_DATA"):
        default_data_dir()
    (tmp_path / "dglbs").mkdir()
    assert default_data_dir() == tmp_path / "dglbs"
    monkeypatch.delenv("XDG_DATA_HOME")
    monkeypatch.setenv("HOME", str(tmp_path))
    assert paths.default_data_location()[0] == tmp_path / ".local" / "share" / "dglbs"
