"""Annotation budget: total volumes, per-round shares, clipping so the last round never overshoots."""

from __future__ import annotations

from dataclasses import dataclass

from assft.errors import BudgetError


@dataclass(frozen=True)
class Budget:
    """`total` volumes spread over `rounds` rounds (equal shares; the remainder goes to the earliest rounds)."""

    total: int
    rounds: int

    def __post_init__(self) -> None:
        if self.rounds < 1:
            raise BudgetError(f"{self.rounds} rounds requested.", fix="use at least one round")
        if self.total < self.rounds:
            raise BudgetError(f"a budget of {self.total} volumes cannot be split over {self.rounds} rounds.",
                              fix="raise the budget or lower the number of rounds")

    def for_round(self, round_index: int) -> int:
        """Volumes to query in round `round_index` (1-based)."""
        if not 1 <= round_index <= self.rounds:
            raise BudgetError(f"round {round_index} is outside 1..{self.rounds}.", fix="the campaign is finished")
        base, extra = divmod(self.total, self.rounds)
        return base + (1 if round_index <= extra else 0)

    def spent_after(self, round_index: int) -> int:
        """Volumes labeled after `round_index` rounds."""
        return sum(self.for_round(r) for r in range(1, round_index + 1))

    def clip(self, requested: int, available: int) -> int:
        """Never select more than what is left in the pool."""
        return max(0, min(requested, available))
