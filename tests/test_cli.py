"""dglbs.cli: one-line errors, missing extras, the data folder, logging."""
import argparse
import logging
import sys

import pytest

from dglbs import cli
from dglbs.cli import (
    MissingExtraError, UsageError, configure_logging, data_dir_argument, data_subfolder, extra_imports, run_main,
)
from dglbs.data import paths
from dglbs.data.paths import DATA_ENV_VAR


def test_run_main_turns_user_errors_into_one_line_and_status_2(monkeypatch, capsys):
    monkeypatch.setattr(sys, "argv", ["dglbs-demo"])
    monkeypatch.delenv(cli.TRACEBACK_ENV_VAR, raising=False)
    for error, line in ((UsageError("--data-dir 'x' is not a folder"), "--data-dir 'x' is not a folder"),
                        (ValueError("bad\n  value"), "bad value"),
                        (FileNotFoundError("no such file 'y'"), "no such file 'y'"),
                        (MissingExtraError("needs the 'graph' extra"), "needs the 'graph' extra")):
        def main(argv, error=error):
            raise error
        assert run_main(main) == 2
        assert capsys.readouterr().err == f"dglbs-demo: error: {line}\n"
    seen = []
    assert run_main(seen.append, ["--x"]) == 0 and seen == [["--x"]]


def test_run_main_lets_bugs_and_requested_tracebacks_through(monkeypatch):
    def buggy(argv):
        raise TypeError("unsupported operand")

    with pytest.raises(TypeError):
        run_main(buggy)

    def bad_value(argv):
        raise ValueError("bad value")

    monkeypatch.setenv(cli.TRACEBACK_ENV_VAR, "1")
    with pytest.raises(ValueError, match="bad value"):
        run_main(bad_value)


def test_missing_module_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "sklearn", None)
    with pytest.raises(MissingExtraError, match=r"^some.module needs the 'graph' extra \(no module named 'sklearn'\): "
                                                r"pip install 'dglbs\[graph\]'$"):
        with extra_imports("graph", "some.module"):
            import sklearn  # noqa: F401
    # A module checked without importing it.
    monkeypatch.setitem(sys.modules, "transformers", None)
    with pytest.raises(MissingExtraError, match="'text' extra .* 'transformers'"):
        with extra_imports("text", "some.module", requires=("transformers",)):
            pass


def test_missing_module_in_a_script_prints_one_line_and_exits_2(monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "sklearn", None)
    monkeypatch.setattr(sys, "argv", ["graph_tu.py", "--help"])
    with pytest.raises(SystemExit) as exit_info:
        with extra_imports("graph", "__main__"):
            import sklearn  # noqa: F401
    assert exit_info.value.code == 2
    assert capsys.readouterr().err == ("graph_tu.py: error: graph_tu.py needs the 'graph' extra (no module named "
                                       "'sklearn'): pip install 'dglbs[graph]'\n")


def test_a_broken_install_is_not_reported_as_a_missing_extra():
    with pytest.raises(ModuleNotFoundError) as error_info:
        with extra_imports("graph", "some.module"):
            import dglbs.no_such_module  # noqa: F401
    assert not isinstance(error_info.value, MissingExtraError)


def test_data_dir_argument_names_the_flag_or_the_variable(tmp_path, monkeypatch):
    assert data_dir_argument(str(tmp_path)) == tmp_path
    with pytest.raises(UsageError, match=r"^--data-dir '.*nowhere' is not a folder; pass the folder that holds tu/"):
        data_dir_argument(str(tmp_path / "nowhere"))
    monkeypatch.setenv(DATA_ENV_VAR, str(tmp_path / "gone"))
    with pytest.raises(UsageError, match=r"'.*gone' \(from \$DGLBS_DATA\) does not exist; pass --data-dir"):
        data_dir_argument(None)
    monkeypatch.setenv(DATA_ENV_VAR, str(tmp_path))
    assert data_dir_argument(None) == tmp_path.resolve()
    with pytest.raises(UsageError, match=r"no tu/ folder in the data folder .*; pass --data-dir the folder that "
                                         r"holds tu/"):
        data_subfolder(tmp_path, "tu", "TU datasets")
    (tmp_path / "tu").mkdir()
    assert data_subfolder(tmp_path, "tu", "TU datasets") == tmp_path / "tu"


def test_shared_arguments_parse_progress_and_log_level():
    parser = argparse.ArgumentParser()
    cli.add_data_dir_argument(parser)
    cli.add_output_arguments(parser)
    assert vars(parser.parse_args([])) == {"data_dir": None, "progress": None, "log_level": "INFO"}
    args = parser.parse_args(["--no-progress", "--log-level", "DEBUG", "--data-dir", "d"])
    assert (args.progress, args.log_level, args.data_dir) == (False, "DEBUG", "d")
    assert parser.parse_args(["--progress"]).progress is True


def test_configure_logging_writes_dglbs_records_to_stderr_once(capsys):
    # tests/conftest.py puts the loggers back as they were after the test.
    logger = logging.getLogger("dglbs.trainer")
    configure_logging("INFO")
    configure_logging("INFO")  # again: still one handler
    logger.info("epoch 0: loss 1.0")
    logger.debug("hidden at INFO")
    err = capsys.readouterr().err
    assert err.count("epoch 0: loss 1.0") == 1 and "hidden" not in err
    with pytest.raises(ValueError, match="level must be one of"):
        configure_logging("LOUD")


def test_installed_default_data_folder_is_named_in_the_error(tmp_path, monkeypatch):
    monkeypatch.delenv(DATA_ENV_VAR, raising=False)
    monkeypatch.setattr(paths, "_checkout_root", lambda: None)
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path))
    with pytest.raises(UsageError, match=r"data folder '.*dglbs' \(from the installed package's default "
                                         r"\$XDG_DATA_HOME/dglbs\) does not exist; pass --data-dir"):
        data_dir_argument(None)
