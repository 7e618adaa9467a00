"""The one-pass scorer: streams the pool through the engine (windows of several volumes per forward call) and yields
a CaseSummary per case, in pool order (the only place that runs passes for a query).

With θ = θ0 one sliding-window pass per volume yields everything. When the current model θ differs from θ0, KD (and,
with embedding_source "pretrained", the embedding) comes from θ0's hooks-only forward over the same stream of loaded
volumes, in the same loop: the pool is still read once, and the extra cost is recorded as "pass_pretrained_s" (in the
active `assft.utils.timing` record).

θ0 is frozen, so its norm-layer moments of a volume never change: a campaign passes `theta0_moments` (a mapping
case id -> moments, persisted by `assft.query.moment_cache`) and the θ0 pass is skipped for every volume already
seen: from round 2 on, a KD strategy costs θ's pass alone.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Iterable, Iterator, Mapping, MutableMapping
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from assft.config import InferenceConfig
from assft.data.cases import Case
from assft.data.preprocess import LoadedCase, load_case
from assft.inference.engine import hooks_only_predictor, iter_windows_pass
from assft.inference.predict import prepare_model
from assft.inference.predictors import ScoringPredictor, find_head_module
from assft.inference.reducers import GradientEmbedding, Routing, hooked_embedding, hooked_moments
from assft.models.checkpoint import Checkpoint, build_from_checkpoint
from assft.models.source_stats import KnowledgeSource
from assft.models.zoo import bottleneck_module
from assft.query.config import Need, QueryConfig
from assft.query.figures import capture_slices
from assft.metrics.scores import Moments
from assft.query.summaries import CaseSummary, probability_maps, summarize_pass
from assft.utils.timing import add_count, add_time


@dataclass
class QueryModel:
    """A network with the checkpoint it came from (config, labels, kind, preprocessing, fingerprint)."""

    model: nn.Module
    checkpoint: Checkpoint
    path: Path | None = None

    @property
    def has_head(self) -> bool:
        """False for an SSL-only checkpoint (no segmentation head for the target classes yet)."""
        return self.checkpoint.kind != "ssl-only"

    @property
    def name(self) -> str:
        """The registered network name (for hook look-ups)."""
        return self.checkpoint.model_config.name


def load_query_model(path: str | Path, *, allow_partial: bool = False) -> QueryModel:
    """Build a checkpoint's network with its weights (CheckpointError on a missing/foreign/mismatched file)."""
    model, ckpt, _ = build_from_checkpoint(path, allow_partial=allow_partial)
    return QueryModel(model, ckpt, Path(path))


THETA0_NEEDS = frozenset({Need.NORM_STATS, Need.CONSISTENCY})  # KD always comes from the frozen θ0


@dataclass(frozen=True)
class PassPlan:
    """What each model computes per volume, resolved from the needs and whether θ is θ0."""

    current: frozenset[Need]
    pretrained: frozenset[Need]

    @staticmethod
    def build(needs: Iterable[Need], same_model: bool, embedding_source: str) -> PassPlan:
        """Split `needs` between the current model θ and the frozen pre-trained θ0."""
        needs = frozenset(needs)
        if same_model:
            return PassPlan(needs, frozenset())
        current = needs - THETA0_NEEDS
        pretrained = needs & THETA0_NEEDS
        if Need.EMBEDDING in needs and embedding_source == "pretrained":
            current, pretrained = current - {Need.EMBEDDING}, pretrained | {Need.EMBEDDING}
        return PassPlan(current, pretrained)


def iter_summaries(
    cases: Iterable[Case | LoadedCase],
    current: QueryModel,
    needs: Iterable[Need],
    config: QueryConfig,
    inference: InferenceConfig,
    *,
    pretrained: QueryModel | None = None,
    source_stats: Mapping[str, Moments] | None = None,
    theta0_moments: MutableMapping[str, dict] | None = None,
    figures: bool = False,
    seed: int = 0,
    knowledge: KnowledgeSource | None = None,
) -> Iterator[CaseSummary]:
    """Yield one CaseSummary per case, streaming: one volume (and its maps) in memory at a time.

    Args:
        cases: `Case`s to load with the checkpoint's preprocessing, or already loaded `LoadedCase`s.
        current: θ (probabilities, BALD, BADGE, and the embedding by default).
        needs: what to compute (the union of the strategies' `requires`).
        config: query options (ASD threshold/reduction, MC samples, embedding source, KD eps).
        inference: sliding-window settings, shared by θ and θ0.
        pretrained: θ0 for KD; None or `current` itself means θ = θ0 (a single pass).
        source_stats: θ0's source statistics (from `resolve_source_stats`); required for Need.NORM_STATS.
        theta0_moments: case id -> θ0's norm moments {layer: (mean (C,), var (C,))}; read to skip θ0's pass and
            filled with every volume θ0 sees. Only valid for one θ0, preprocessing and sliding window (the caller's
            job: see `assft.query.moment_cache`).
        figures: also cut each volume's figure slices from its probability map (`assft.query.figures`).
        seed: seeds BALD's MC-dropout masks (the caller's global RNG is left untouched).
        knowledge: KD's source (`resolve_knowledge_source`); its statistics replace `source_stats`, and its layers
            are recorded for kd.source "pool" (no source statistics there).

    The active `assft.utils.timing` record (if any) accumulates seconds under load_s, pass_current_s,
    pass_pretrained_s, reduce_s and a "cases" count (plus "theta0_cached": volumes whose θ0 moments came from
    `theta0_moments`).

    Raises:
        ConfigError: probabilities asked of an SSL-only model, or BALD for a net without dropout.
    """
    needs = frozenset(needs)
    pretrained = pretrained or current
    plan = PassPlan.build(needs, pretrained is current, config.embedding_source)
    if knowledge is not None and knowledge.stats is not None:
        source_stats = knowledge.stats
    layers = tuple(source_stats or ()) or (knowledge.layers if knowledge is not None else ())
    if Need.NORM_STATS in needs and not layers:
        raise ValueError("Need.NORM_STATS requires source_stats (see assft.models.source_stats.resolve_source_stats)")
    norm_modules = None
    if layers:
        modules = dict(pretrained.model.named_modules())
        norm_modules = {name: modules[name] for name in layers}
    for key in ("load_s", "pass_current_s", "pass_pretrained_s", "reduce_s", "cases", "theta0_cached"):
        add_time(key, 0.0)  # every key present, even at zero
    if plan.current:
        prepare_model(current.model, inference)
    if plan.pretrained:
        prepare_model(pretrained.model, inference)
    scorer = _PoolPass(current, pretrained, plan, needs, config, inference, source_stats, norm_modules,
                       theta0_moments, figures, seed, knowledge)
    yield from scorer.summaries(cases)


@dataclass
class _PoolPass:
    """The state of one pool pass: θ and θ0, what each must compute, the θ0 moment cache, the seconds loading."""

    current: QueryModel
    pretrained: QueryModel
    plan: PassPlan
    needs: frozenset[Need]
    config: QueryConfig
    inference: InferenceConfig
    source_stats: Mapping[str, Moments] | None
    norm_modules: dict | None
    theta0_moments: MutableMapping[str, dict] | None
    figures: bool = False
    seed: int = 0
    knowledge: KnowledgeSource | None = None
    loading_s: float = 0.0  # seconds spent loading volumes so far: taken out of the passes' own seconds

    @property
    def same_preprocess(self) -> bool:
        return self.current.checkpoint.preprocess == self.pretrained.checkpoint.preprocess

    def summaries(self, cases: Iterable[Case | LoadedCase]) -> Iterator[CaseSummary]:
        """One CaseSummary per volume, in input order: θ (and θ0 for the volumes whose moments are not cached)
        through the pass engine, windows of several volumes per forward call; both models traverse the one stream of
        loaded volumes in the same loop."""
        stream = self._loaded(cases)
        two = self.pretrained is not self.current and bool(self.plan.pretrained)
        main, side = itertools.tee(stream) if two else (stream, iter(()))
        current = self._timed(self._engine(self.current, self.plan.current, main, self._image), "pass_current_s") \
            if self.plan.current else ((pair, {}) for pair in main)
        pretrained = self._timed(self._engine(self.pretrained, self.plan.pretrained,
                                              (pair for pair in side if self._cached(pair[1].case_id) is None),
                                              self._image_pretrained), "pass_pretrained_s")
        for (_, loaded), parts in current:
            cached = self._cached(loaded.case_id)
            if cached is not None:
                parts["norm_moments"] = cached
                add_count("theta0_cached")
            elif two:
                (_, loaded0), parts0 = next(pretrained)
                if loaded0.case_id != loaded.case_id:  # both streams follow the input order
                    raise RuntimeError(f"θ0 pass out of step: {loaded0.case_id} != {loaded.case_id}")
                parts.update(parts0)
            yield self._summarize(loaded, parts)

    @staticmethod
    def _image(pair: tuple) -> torch.Tensor:
        return pair[1].image

    def _image_pretrained(self, pair: tuple) -> torch.Tensor:
        """θ0's input: the loaded volume, or the raw case again under θ0's own preprocessing when it differs."""
        item, loaded = pair
        if self.same_preprocess or not isinstance(item, Case):
            return loaded.image
        t0 = time.perf_counter()
        image = load_case(item, self.pretrained.checkpoint.preprocess, with_label=False).image
        self._loaded_for(time.perf_counter() - t0)
        return image

    def _timed(self, stream: Iterator, key: str) -> Iterator:
        """`stream`'s items, recording the time spent producing them (less volume loading) under `key`."""
        while True:
            t0, load0 = time.perf_counter(), self.loading_s
            try:
                item = next(stream)
            except StopIteration:
                return
            add_time(key, time.perf_counter() - t0 - (self.loading_s - load0))
            yield item

    def _engine(self, qm: QueryModel, needs: frozenset[Need], pairs: Iterable[tuple], image_of) -> Iterator[tuple]:
        """((item, loaded), parts) per volume: probabilities, BALD's map, the embeddings and norm moments as `needs`
        asks."""
        routing = Routing(open=False)
        hooked: dict[str, nn.Module] = {}  # every module a reducer listens to
        with ExitStack() as stack:
            embedding = None
            if Need.EMBEDDING in needs:
                hooked[" embedding"] = bottleneck_module(qm.model, qm.name)
                embedding = stack.enter_context(hooked_embedding(hooked[" embedding"], routing))
            moments = {}
            if Need.NORM_STATS in needs and self.norm_modules:
                hooked.update(self.norm_modules)
                moments = stack.enter_context(hooked_moments(self.norm_modules, routing))
            gradient = GradientEmbedding() if Need.GRAD_EMBEDDING in needs else None
            reducers = [r for r in (embedding, gradient) if r is not None] + list(moments.values())
            probs = bool(needs & {Need.PROBS, Need.CLASS_PE})
            mc_samples = self.config.mc_samples if Need.MC_PROBS in needs else 0
            consistency = Need.CONSISTENCY in needs
            if probs or mc_samples or gradient is not None or consistency:
                predictor = stack.enter_context(ScoringPredictor(
                    qm.model, channels_last=self.inference.channels_last, routing=routing, probs=probs,
                    mc_samples=mc_samples, seed=self.seed, gradient=gradient, record=bool(hooked),
                    consistency=consistency,
                    head=find_head_module(qm.model, qm.checkpoint.model_config) if gradient is not None else None,
                ).hooked())
            else:  # hooks only: the forward stops after the last hooked layer (θ0's pass skips the head)
                predictor = hooks_only_predictor(qm.model, self.inference.channels_last, hooked)
            for pair, out, slot in iter_windows_pass(qm.model, pairs, image_of, self.inference,
                                                     predictor=predictor, routing=routing, reducers=reducers):
                parts: dict = {}
                if consistency:
                    out, parts["consistency"] = out[:-2], out[-2:]
                if probs:
                    parts["probs"] = out[:-1] if mc_samples else out
                if mc_samples:
                    parts["bald_map"] = out[-1]
                if embedding is not None:
                    parts["embedding"] = embedding.result(slot)
                if gradient is not None:
                    parts["grad_embedding"] = gradient.result(slot)
                if moments:
                    parts["norm_moments"] = {name: reducer.result(slot) for name, reducer in moments.items()}
                yield pair, parts

    def _summarize(self, loaded: LoadedCase, parts: dict) -> CaseSummary:
        if self.theta0_moments is not None and self._cached(loaded.case_id) is None and "norm_moments" in parts:
            self.theta0_moments[loaded.case_id] = parts["norm_moments"]  # NORM_STATS always come from θ0
        t0 = time.perf_counter()
        # the figures cut their slices from the same entropy and foreground maps the statistics are reduced from
        maps = probability_maps(parts["probs"], self.config) \
            if self.figures and parts.get("probs") is not None else None
        intensity = Need.INTENSITY in self.needs and self.knowledge is not None
        summary = summarize_pass(loaded.case_id, self.config, source_stats=self.source_stats,
                                 class_pe=Need.CLASS_PE in self.needs, maps=maps, knowledge=self.knowledge,
                                 image=loaded.image if intensity else None, **parts)
        if maps is not None:
            summary.figure = capture_slices(loaded.case_id, loaded.image, parts["probs"], maps.entropy, maps.mask)
        if summary.n_voxels == 0:
            summary.n_voxels = int(loaded.image[0].size)
        add_time("reduce_s", time.perf_counter() - t0)
        add_count("cases")
        return summary

    def _cached(self, case_id: str) -> dict | None:
        return self.theta0_moments.get(case_id) if self.theta0_moments is not None and self.norm_modules else None

    def _loaded(self, cases: Iterable[Case | LoadedCase]) -> Iterator[tuple[Case | LoadedCase, LoadedCase]]:
        for item in cases:
            t0 = time.perf_counter()
            loaded = item if isinstance(item, LoadedCase) else load_case(item, self.current.checkpoint.preprocess,
                                                                         with_label=False)
            self._loaded_for(time.perf_counter() - t0)
            yield item, loaded

    def _loaded_for(self, seconds: float) -> None:
        """Volume loading took `seconds`: recorded as load_s, and kept to take out of the passes' seconds."""
        self.loading_s += seconds
        add_time("load_s", seconds)


def score_cases(cases: Iterable[Case | LoadedCase], current: QueryModel, needs: Iterable[Need], config: QueryConfig,
                inference: InferenceConfig, **kwargs) -> list[CaseSummary]:
    """`iter_summaries` collected into a list (summaries are small; the maps are already dropped)."""
    with torch.inference_mode():
        return list(iter_summaries(cases, current, needs, config, inference, **kwargs))
