"""Annotation budget: total volumes, per-round shares, clipping so the last round never overshoots."""

from __future__ import annotations

from dataclasses import dataclass

from assft.errors import BudgetError


@dataclass(frozen=True)
class Budget:
    """`total` volumes spread over `rounds` rounds (equal shares; the remainder goes to the earliest rounds).

    A campaign extended later (`assft campaign extend`) is a sequence of such plans: `segments` holds each one's
    (total, rounds), and `total` and `rounds` are their sums (`Budget.of_segments`).
    """

    total: int
    rounds: int
    segments: tuple[tuple[int, int], ...] = ()

    def __post_init__(self) -> None:
        for total, rounds in self.segments or ((self.total, self.rounds),):
            if rounds < 1:
                raise BudgetError(f"{rounds} rounds requested.", fix="use at least one round")
            if total < rounds:
                raise BudgetError(f"a budget of {total} volumes cannot be split over {rounds} rounds.",
                                  fix="raise the budget or lower the number of rounds")

    @classmethod
    def of_segments(cls, segments: list[tuple[int, int]]) -> Budget:
        """Plans run one after the other: [(total, rounds), ...] -> one Budget over all their rounds."""
        if len(segments) == 1:
            return cls(*segments[0])
        return cls(sum(t for t, _ in segments), sum(r for _, r in segments), tuple(segments))

    def for_round(self, round_index: int) -> int:
        """Volumes to query in round `round_index` (1-based)."""
        if not 1 <= round_index <= self.rounds:
            raise BudgetError(f"round {round_index} is outside 1..{self.rounds}.",
                              fix="the campaign is finished; `assft campaign extend` adds rounds")
        for total, rounds in self.segments or ((self.total, self.rounds),):
            if round_index <= rounds:
                base, extra = divmod(total, rounds)
                return base + (1 if round_index <= extra else 0)
            round_index -= rounds
        raise AssertionError("unreachable: the segments sum to `rounds`")

    def spent_after(self, round_index: int) -> int:
        """Volumes labeled after `round_index` rounds."""
        return sum(self.for_round(r) for r in range(1, round_index + 1))

    def clip(self, requested: int, available: int) -> int:
        """Never select more than what is left in the pool."""
        return max(0, min(requested, available))
