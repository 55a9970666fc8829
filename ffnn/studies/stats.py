"""The tie rule: when a report may call one setting the best.

A setting is named best only when Welch's t-test between it and the runner-up, on their per-run
values, rejects equal means at the 5 % level (``ALPHA``). Otherwise the two *tie, within noise*.

* Fewer than 2 runs on either side: no claim (``Verdict.kind == "too few repeats"``).
* Per-epoch costs: a train time is ``epochs x cost``, and a cost is a measurement with a spread
  ``s_c`` shared by every run of its timing key. When the two settings have *different* costs,
  each side's systematic spread ``epochs_mean x s_c`` (``Candidate.systematic``) is added in
  quadrature to its standard error: the test is Welch's on
  ``std' = sqrt(std^2 + n * systematic^2)``, i.e. ``var(mean) = std^2/n + systematic^2``
  (``scipy.stats.ttest_ind_from_stats(equal_var=False)``). With the same cost the systematic
  spread cancels out of the difference and is left out.
* Zero variance on both sides (identical per-run values, e.g. equal epochs at one cost): a tie
  when the means are equal within the combined systematic spread, a winner otherwise.
"""

from __future__ import annotations

import math
from collections.abc import Hashable, Sequence
from dataclasses import dataclass, field

import numpy as np

__all__ = ["ALPHA", "Candidate", "Verdict", "best_of"]

ALPHA = 0.05


@dataclass(frozen=True)
class Candidate:
    """One setting's per-run values of a quantity.

    ``systematic``: the spread shared by all its runs (for train time: mean epochs x cost
    spread), added only against a candidate of another ``cost_key``.
    """

    name: str
    values: Sequence[float]
    systematic: float = 0.0
    cost_key: Hashable = None

    @property
    def mean(self) -> float:
        return float(np.mean(self.values)) if len(self.values) else math.nan


@dataclass(frozen=True)
class Verdict:
    """What a report may say: ``kind`` is ``"best"`` (``winner`` beats ``runner_up``),
    ``"tie"`` (``tied``: the leader, the runner-up and every other setting the test cannot tell
    from the leader), ``"too few repeats"`` or ``"none"``
    (no candidate); ``leader`` is the setting with the best mean either way."""

    kind: str
    leader: str | None
    runner_up: str | None = None
    p_value: float = math.nan
    tied: tuple[str, ...] = field(default_factory=tuple)

    @property
    def winner(self) -> str | None:
        return self.leader if self.kind == "best" else None


def best_of(candidates: Sequence[Candidate], *, lower_is_better: bool,
            alpha: float = ALPHA) -> Verdict:
    """Apply the tie rule (module docstring) to the candidate with the best mean and the
    runner-up. Candidates without finite values are ignored."""
    usable = [c for c in candidates if np.isfinite(np.asarray(c.values, float)).any()]
    usable = [Candidate(c.name, [v for v in c.values if math.isfinite(v)], c.systematic,
                        c.cost_key) for c in usable]
    if not usable:
        return Verdict("none", None)
    ranked = sorted(usable, key=lambda c: c.mean if lower_is_better else -c.mean)
    leader = ranked[0]
    if len(ranked) == 1:
        return Verdict("best" if len(leader.values) >= 2 else "too few repeats", leader.name)
    second = ranked[1]
    if len(leader.values) < 2 or len(second.values) < 2:
        return Verdict("too few repeats", leader.name, second.name)
    p = welch_p_value(leader, second)
    if p < alpha:
        return Verdict("best", leader.name, second.name, p)
    tied = [leader.name, second.name] + [
        c.name for c in ranked[2:] if len(c.values) >= 2 and welch_p_value(leader, c) >= alpha]
    return Verdict("tie", leader.name, second.name, p, tuple(tied))


def welch_p_value(a: Candidate, b: Candidate) -> float:
    """Two-sided p-value of equal means (module docstring: systematic spreads, zero variance)."""
    from scipy import stats

    va, vb = np.asarray(a.values, float), np.asarray(b.values, float)
    same_cost = a.cost_key == b.cost_key
    sys_a, sys_b = (0.0, 0.0) if same_cost else (a.systematic, b.systematic)
    diff = abs(va.mean() - vb.mean())
    if np.ptp(va) == 0 and np.ptp(vb) == 0:
        return 1.0 if diff <= math.hypot(sys_a, sys_b) else 0.0
    if sys_a == 0 and sys_b == 0:
        return float(stats.ttest_ind(va, vb, equal_var=False).pvalue)
    std_a = math.sqrt(va.var(ddof=1) + len(va) * sys_a ** 2)
    std_b = math.sqrt(vb.var(ddof=1) + len(vb) * sys_b ** 2)
    return float(stats.ttest_ind_from_stats(va.mean(), std_a, len(va), vb.mean(), std_b,
                                            len(vb), equal_var=False).pvalue)
