"""dglbs.distributed in one process: torchrun's environment and the no-group paths
(the multi-process behaviour is tested in tests/test_trainer_distributed.py and
tests/integrations)."""
import pytest
import torch

from dglbs.distributed import all_gather_rows, init_from_torchrun_env, world_size_and_rank


@pytest.mark.parametrize("value", ["two", "-1", ""])
def test_a_bad_world_size_names_the_variable(monkeypatch, value):
    monkeypatch.setenv("WORLD_SIZE", value)
    with pytest.raises(ValueError, match=f"the WORLD_SIZE environment variable must be a process count, got '{value}'"):
        init_from_torchrun_env(torch.device("cpu"))


@pytest.mark.parametrize("value", [None, "1"])
def test_one_process_initialises_no_group(monkeypatch, value):
    if value is None:
        monkeypatch.delenv("WORLD_SIZE", raising=False)
    else:
        monkeypatch.setenv("WORLD_SIZE", value)
    assert init_from_torchrun_env(torch.device("cpu")) is False
    assert world_size_and_rank() == (1, 0)


def test_all_gather_rows_is_the_tensor_itself_in_one_process():
    rows = torch.randn(3, 2, requires_grad=True)
    assert all_gather_rows(rows) is rows
    assert all_gather_rows(rows, differentiable=True) is rows
