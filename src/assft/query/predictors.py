"""Window-level work inside one sliding-window pass: gated hooks, MC-dropout BALD and BADGE reduced per window.

`WindowPredictor` is passed to `inference.run_pass(predictor=...)`. For each window it runs one deterministic
forward (the only one the hooks record), then optionally T MC-dropout forwards reduced at once to a BALD map, so
neither T full maps nor full feature maps are ever held.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field

import torch
from torch import nn

from assft.config import ModelConfig
from assft.errors import ConfigError
from assft.inference.reducers import ChannelMoments, PooledEmbedding, Routing, hooked_embedding, hooked_moments
from assft.metrics.scores import compute_bald_from_means
from assft.models.hooks import enable_mc_dropout
from assft.models.zoo import head_keys


@dataclass
class FeatureCapture:
    """What the gated hooks of one pass accumulated."""

    embedding: PooledEmbedding | None = None
    moments: dict[str, ChannelMoments] = field(default_factory=dict)
    head_input: torch.Tensor | None = None  # the last window's head input (B, F, d', h', w')

    @property
    def has_hooks(self) -> bool:
        """True when an embedding or moments are being collected."""
        return self.embedding is not None or bool(self.moments)

    def norm_moments(self) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
        """Layer -> (mean (C,), var (C,)) over every voxel the layer saw."""
        return {name: m.result() for name, m in self.moments.items()}


@contextmanager
def capture_features(*, embedding_module: nn.Module | None, norm_layers: dict[str, nn.Module] | None,
                     head_module: nn.Module | None, gate: Routing) -> Iterator[FeatureCapture]:
    """Hooks for the embedding, norm-layer input moments and head input, recording only while `gate.open`; always
    removed."""
    capture = FeatureCapture()
    with ExitStack() as stack:
        if embedding_module is not None:
            capture.embedding = stack.enter_context(hooked_embedding(embedding_module, gate))
        if norm_layers:
            capture.moments = stack.enter_context(hooked_moments(norm_layers, gate))
        if head_module is not None:
            def keep(module: nn.Module, inputs: tuple) -> None:
                if gate.open:
                    capture.head_input = inputs[0].detach()

            stack.callback(head_module.register_forward_pre_hook(keep).remove)
        yield capture


def find_head_module(model: nn.Module, model_config: ModelConfig) -> nn.Module:
    """The first module (definition order) owning a segmentation-head parameter; its input = penultimate features."""
    owners = {key.rsplit(".", 1)[0] for key in head_keys(model_config)}
    for name, module in model.named_modules():
        if name in owners and any(True for _ in module.parameters(recurse=False)):
            return module
    raise ConfigError(f"cannot find the segmentation head of model {model_config.name!r}.",
                      fix="BADGE needs a network whose head parameters depend on the number of classes")


class WindowPredictor:
    """Window (B, Cin, d, h, w) -> [probs (C)] [bald (1)] channels, or one zero channel when neither is needed."""

    def __init__(self, model: nn.Module, *, channels_last: bool, gate: Routing, capture: FeatureCapture,
                 probs: bool = False, mc_samples: int = 0, grad: bool = False) -> None:
        self.model, self.channels_last, self.gate, self.capture = model, channels_last, gate, capture
        self.probs, self.mc_samples, self.grad = probs, mc_samples, grad
        self.grad_total: torch.Tensor | None = None
        self.grad_count = 0
        if mc_samples:
            n_dropout = enable_mc_dropout(model)
            model.eval()
            if n_dropout == 0:
                raise ConfigError("BALD needs MC dropout, but the network has no dropout layer with p > 0.",
                                  fix="train/build the model with ModelConfig(dropout=0.1) (the default), or pick "
                                      "another strategy")

    @property
    def extra_channels(self) -> tuple[str, ...]:
        """Names of the extra stitched channels (run_pass's extra_channels)."""
        return ("bald",) if self.mc_samples else ()

    def __call__(self, window: torch.Tensor) -> torch.Tensor:
        if self.channels_last:
            window = window.contiguous(memory_format=torch.channels_last_3d)
        outputs = []
        if self.probs or self.grad or self.capture.has_hooks or not self.mc_samples:
            self.gate.open = True
            try:
                logits = self.model(window)
            finally:
                self.gate.open = False
            if self.probs or self.grad:
                probs = torch.softmax(logits.float(), dim=1)
                if self.grad:
                    self._add_grad(probs)
                if self.probs:
                    outputs.append(probs)
        if self.mc_samples:
            outputs.append(self._bald(window))
        if not outputs:
            outputs.append(torch.zeros_like(window[:, :1], dtype=torch.float32))
        return torch.cat(outputs, dim=1)

    def _add_grad(self, probs: torch.Tensor) -> None:
        from assft.metrics.scores import compute_gradient_embedding

        if self.capture.head_input is None:
            raise RuntimeError("the head hook saw no forward pass")
        g = compute_gradient_embedding(probs, self.capture.head_input)
        self.grad_total = g if self.grad_total is None else self.grad_total + g
        self.grad_count += probs.shape[0]

    def _bald(self, window: torch.Tensor) -> torch.Tensor:
        """T MC-dropout samples reduced on the fly: H(mean p) - mean H(p) -> (B, 1, d, h, w)."""
        mean_p: torch.Tensor | None = None
        mean_h: torch.Tensor | None = None
        enable_mc_dropout(self.model)
        try:
            for _ in range(self.mc_samples):
                p = torch.softmax(self.model(window).float(), dim=1)
                h = -torch.special.xlogy(p, p).sum(1, keepdim=True)  # nats, as BALD is defined
                mean_p = p / self.mc_samples if mean_p is None else mean_p + p / self.mc_samples
                mean_h = h / self.mc_samples if mean_h is None else mean_h + h / self.mc_samples
        finally:
            self.model.eval()
        if mean_p is None or mean_h is None:
            raise ConfigError("BALD needs at least one MC sample.", fix="set mc_samples >= 2")
        return compute_bald_from_means(mean_p, mean_h, class_dim=1)

    def grad_embedding(self) -> torch.Tensor:
        """BADGE embedding averaged over windows: (C * F,) float32."""
        if self.grad_total is None:
            raise RuntimeError("no window produced a gradient embedding")
        return (self.grad_total / max(self.grad_count, 1)).flatten().float()
