from __future__ import annotations

import pytest
import torch

from boardgraph.encoders import matryoshka_embeddings, truncate_embedding


def test_truncate_renormalises_by_hand():
    e = torch.tensor([[3.0, 4.0, 12.0], [0.0, 0.0, 1.0]])
    torch.testing.assert_close(truncate_embedding(e, 2), torch.tensor([[0.6, 0.8], [0.0, 0.0]]))  # zero stays zero
    torch.testing.assert_close(truncate_embedding(e, 3), e / torch.tensor([[13.0], [1.0]]))
    assert set(matryoshka_embeddings(e, (1, 3))) == {1, 3}
    with pytest.raises(ValueError, match="cannot truncate a 3-d embedding to 4 dims"):
        truncate_embedding(e, 4)
