import pytest
import torch

from dglbs.bank import EmbeddingBank


def test_bank_overwrites_rows_and_tracks_coverage():
    bank = EmbeddingBank(4, 2)
    assert not bank.full
    bank.update([0, 2], torch.tensor([[1.0, 0.0], [0.0, 1.0]]))
    bank.update(torch.tensor([1, 3, 0]), torch.ones(3, 2))
    assert bank.full
    assert bank.embeddings.tolist() == [[1, 1], [1, 1], [0, 1], [1, 1]]


def test_bank_rejects_bad_updates():
    bank = EmbeddingBank(4, 2)
    with pytest.raises(ValueError, match=r"expected embeddings of shape \(2, 2\)"):
        bank.update([0, 1], torch.ones(2, 3))
    with pytest.raises(ValueError, match=r"indices must be in \[0, 4\)"):
        bank.update([4], torch.ones(1, 2))
    with pytest.raises(ValueError, match="NaN or inf"):
        bank.update([0], torch.tensor([[float("nan"), 0.0]]))
