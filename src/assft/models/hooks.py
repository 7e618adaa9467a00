"""Model-level switches for passes: MC dropout (the reducers that hooks feed live in `assft.inference.reducers`)."""

from __future__ import annotations

from torch import nn


def enable_mc_dropout(model: nn.Module) -> int:
    """Put only dropout modules in train mode (norms stay in eval); returns how many were enabled."""
    n = 0
    for m in model.modules():
        if isinstance(m, nn.modules.dropout._DropoutNd) or isinstance(m, nn.Dropout):
            if m.p > 0:
                m.train()
                n += 1
    return n
