"""Window-level work of a scoring pass: the deterministic forward the hooks record, BALD's MC-dropout forwards reduced
per window, and BADGE's gradient embedding routed per batch row.

`ScoringPredictor` is the engine's predictor (`iter_windows_pass(predictor=...)`) for the query's strategies. A batch
may hold windows of several volumes: hooks and the gradient embedding follow `Routing.slots`, and BALD's map is an
extra output channel the engine stitches per volume like the probabilities, so neither T full probability maps nor
full feature maps are ever held.

MC dropout draws its masks from a generator private to the predictor, seeded from the query's seed: the same config
and seed give the same BALD scores, and the caller's global RNG is left as it was. The masks of one window depend on
which windows share its forward call (dropout draws one tensor per batch), so BALD with several volumes per call
is reproducible but not equal to BALD one volume at a time; every other output is (to float rounding).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch
from torch import nn

from assft.config import ModelConfig
from assft.errors import ConfigError
from assft.inference.reducers import GradientEmbedding, Routing
from assft.metrics.knowledge_gap import compute_disagreement, perturb_batch
from assft.metrics.scores import compute_bald_from_means
from assft.models.hooks import enable_mc_dropout
from assft.models.zoo import head_keys


def find_head_module(model: nn.Module, model_config: ModelConfig) -> nn.Module:
    """The first module (definition order) owning a segmentation-head parameter; its input = penultimate features."""
    owners = {key.rsplit(".", 1)[0] for key in head_keys(model_config)}
    for name, module in model.named_modules():
        if name in owners and any(True for _ in module.parameters(recurse=False)):
            return module
    raise ConfigError(f"cannot find the segmentation head of model {model_config.name!r}.",
                      fix="BADGE needs a network whose head parameters depend on the number of classes")


class _PrivateGenerator:
    """The global generator of `device`, swapped for a private state around a block (dropout takes no generator)."""

    def __init__(self, seed: int, device: torch.device) -> None:
        self.device = device
        self.cuda = device.type == "cuda"
        with torch.random.fork_rng(devices=[device] if self.cuda else []):
            torch.manual_seed(seed)
            self.state = torch.cuda.get_rng_state(device) if self.cuda else torch.get_rng_state()

    @contextmanager
    def active(self) -> Iterator[None]:
        with torch.random.fork_rng(devices=[self.device] if self.cuda else []):
            if self.cuda:
                torch.cuda.set_rng_state(self.state, self.device)
            else:
                torch.set_rng_state(self.state)
            yield
            self.state = torch.cuda.get_rng_state(self.device) if self.cuda else torch.get_rng_state()


class ScoringPredictor:
    """Window batch (B, Cin, d, h, w) -> [probs (C)] [bald (1)] [foreground, disagreement (2)] channels, or one zero
    channel when none is asked.

    Args:
        model: the network, in eval mode.
        channels_last: run the forward in `channels_last_3d`.
        routing: the engine's routing; open only during the deterministic forward, so hooks never record the MC
            forwards.
        probs: return the class probabilities.
        mc_samples: T > 0 adds BALD's channel, H(mean p) - mean H(p) over T MC-dropout forwards per window (nats).
        seed: seeds the MC-dropout masks.
        gradient: BADGE's reducer; with it, `head` (the segmentation head module) must be given.
        record: run the deterministic forward even when only BALD is asked (hooked reducers listen to it).
        consistency: add the foreground probability 1 - p0 and the disagreement with the perturbed windows
            (`assft.metrics.knowledge_gap.perturb_batch`, one more forward of twice the batch, hooks closed).
    """

    def __init__(self, model: nn.Module, *, channels_last: bool, routing: Routing, probs: bool = False,
                 mc_samples: int = 0, seed: int = 0, gradient: GradientEmbedding | None = None,
                 head: nn.Module | None = None, record: bool = False, consistency: bool = False) -> None:
        self.model, self.channels_last, self.routing = model, channels_last, routing
        self.consistency = consistency
        self.probs, self.mc_samples, self.gradient, self.record = probs, mc_samples, gradient, record
        self._head_input: torch.Tensor | None = None
        self._head = head
        if gradient is not None and head is None:
            raise ValueError("the gradient embedding needs the head module (find_head_module)")
        self._generator = None
        if mc_samples:
            n_dropout = enable_mc_dropout(model)
            model.eval()
            if n_dropout == 0:
                raise ConfigError("BALD needs MC dropout, but the network has no dropout layer with p > 0.",
                                  fix="train/build the model with ModelConfig(dropout=0.1) (the default), or pick "
                                      "another strategy")
            self._generator = _PrivateGenerator(seed, next(model.parameters()).device)

    @contextmanager
    def hooked(self) -> Iterator[ScoringPredictor]:
        """Within the block, keep the head's input of each recorded forward (BADGE); the hook is always removed."""
        if self._head is None:
            yield self
            return

        def keep(module: nn.Module, inputs: tuple) -> None:
            if self.routing.open:
                self._head_input = inputs[0].detach()

        handle = self._head.register_forward_pre_hook(keep)
        try:
            yield self
        finally:
            handle.remove()

    def __call__(self, window: torch.Tensor) -> torch.Tensor:
        if self.channels_last:
            window = window.contiguous(memory_format=torch.channels_last_3d)
        outputs = []
        consistency = None
        if self.probs or self.gradient is not None or self.record or self.consistency or not self.mc_samples:
            logits = self.model(window)  # the engine opened the routing: hooks record this forward only
            if self.consistency:
                consistency = self._consistency(window, torch.softmax(logits.float(), dim=1))
            if self.probs or self.gradient is not None:
                probs = torch.softmax(logits.float(), dim=1)
                if self.gradient is not None:
                    if self._head_input is None:
                        raise RuntimeError("the head hook saw no forward pass (use the predictor inside hooked())")
                    self.gradient.add(probs, self._head_input, self.routing.slots)
                    self._head_input = None
                if self.probs:
                    outputs.append(probs)
        if self.mc_samples:
            outputs.append(self._bald(window))
        if consistency is not None:
            outputs.append(consistency)
        if not outputs:
            outputs.append(torch.zeros_like(window[:, :1], dtype=torch.float32))
        return torch.cat(outputs, dim=1)

    def _consistency(self, window: torch.Tensor, probs: torch.Tensor) -> torch.Tensor:
        """(B, 2, d, h, w): the foreground probability 1 - p0 and the disagreement with the perturbed windows."""
        was_open, self.routing.open = self.routing.open, False  # hooks never record the perturbed forward
        try:
            perturbed = perturb_batch(window)
            if self.channels_last:
                perturbed = perturbed.contiguous(memory_format=torch.channels_last_3d)
            other = torch.softmax(self.model(perturbed).float(), dim=1)
        finally:
            self.routing.open = was_open
        return torch.cat([1.0 - probs[:, :1], compute_disagreement(probs, other)], dim=1)

    def _bald(self, window: torch.Tensor) -> torch.Tensor:
        """T MC-dropout samples reduced on the fly: H(mean p) - mean H(p) -> (B, 1, d, h, w)."""
        was_open, self.routing.open = self.routing.open, False  # hooks never record the stochastic forwards
        mean_p = mean_h = torch.zeros(())
        enable_mc_dropout(self.model)
        try:
            assert self._generator is not None
            with self._generator.active():
                for _ in range(self.mc_samples):
                    p = torch.softmax(self.model(window).float(), dim=1)
                    h = -torch.special.xlogy(p, p).sum(1, keepdim=True)  # nats, as BALD is defined
                    mean_p = mean_p + p / self.mc_samples
                    mean_h = mean_h + h / self.mc_samples
        finally:
            self.model.eval()
            self.routing.open = was_open
        return compute_bald_from_means(mean_p, mean_h, class_dim=1)
