"""Issues 11 and 12's acceptance targets and goals, each as a measurement of a saved benchmark run.

A ``Check`` reads its figure from ``Results`` (the medians of one run, built by
``bench/report.py``) and says whether it holds; the report prints each one in its group's table
and all of them in the summary tables. A figure that the run does not contain is ``None``
("not measured"), never a pass.
"""

from collections.abc import Callable
from dataclasses import dataclass, field


@dataclass
class Results:
    """Medians of one run, in seconds, keyed as the benchmarks record them.

    ``epoch[(workload, optimizer, row)]``, ``dense[row]`` and ``busy[row]`` (W1 next to a busy
    core): per-epoch time, where ``row`` is ``"<implementation> <threads>t"``;
    ``grouped[(mode, k, hidden, threads)]``: ``{"call": s, "per_model_epoch": s}``;
    ``compile[mode]``: whole-process seconds; ``estimator[(data, name)]``: ``fit`` seconds;
    ``study[(study, grouping)]``: wall seconds; ``kernels_code_lines``: the code-line count of
    ``kernels/`` (or None)."""

    epoch: dict = field(default_factory=dict)
    dense: dict = field(default_factory=dict)
    busy: dict = field(default_factory=dict)
    grouped: dict = field(default_factory=dict)
    compile: dict = field(default_factory=dict)
    estimator: dict = field(default_factory=dict)
    study: dict = field(default_factory=dict)
    kernels_code_lines: int | None = None

    def cold_compile(self):
        cold, warm = self.compile.get("cold"), self.compile.get("warm")
        return cold - warm if cold is not None and warm is not None else None


def ratio(a, b):
    """``a / b``, or None when either is missing."""
    return a / b if a is not None and b is not None else None


@dataclass(frozen=True)
class Check:
    """One target or goal: ``measure(results)`` is the figure, ``holds(figure)`` the verdict."""

    kind: str  # "target" (acceptance) or "goal"
    suite: str  # the table it belongs to
    key: tuple  # which line of that table it annotates
    row: str
    threads: str
    text: str
    measure: Callable[[Results], float | None]
    holds: Callable[[float], bool]
    unit: str  # "x", "ms", "s" or "lines"

    def figure(self, results: Results) -> str:
        value = self.measure(results)
        if value is None:
            return "not measured"
        if self.unit == "x":
            return f"{value:.2f}x"
        if self.unit == "ms":
            return f"{value * 1e3:.1f} ms"
        if self.unit == "s":
            return f"{value:.1f} s"
        return f"{value:.0f}"

    def verdict(self, results: Results) -> str:
        value = self.measure(results)
        return "-" if value is None else ("yes" if self.holds(value) else "no")


def _epoch(workload, row):
    return lambda r: r.epoch.get((workload, "adam", row))


def _vs(workload, other, row):
    return lambda r: ratio(r.epoch.get((workload, "adam", other)),
                           r.epoch.get((workload, "adam", row)))


def _vs_torch(workload, row="ffnn-numba 1t"):
    return _vs(workload, "torch 2t", row)


def _grouped(mode, k, hidden, threads, what):
    return lambda r: r.grouped.get((mode, k, hidden, threads), {}).get(what)


def _at_least(x):
    return lambda v: v >= x


def _at_most(x):
    return lambda v: v <= x


def _epoch_checks():
    checks = []
    for workload, times in (("W1", 4.5), ("W2", 2.8), ("W3", 10)):
        checks.append(Check("target", "epoch", (workload, "adam"), workload, "1",
                            f">= {times}x PyTorch", _vs_torch(workload), _at_least(times), "x"))
    for workload, ms in (("W1", 8), ("W2", 30), ("W3", 10), ("W4", 60)):
        checks.append(Check("goal", "epoch", (workload, "adam"), workload, "1", f"<= {ms} ms",
                            _epoch(workload, "ffnn-numba 1t"), _at_most(ms / 1e3), "ms"))
    checks.append(Check("goal", "epoch", ("W1", "adam"), "W1", "1", ">= 6x PyTorch",
                        _vs_torch("W1"), _at_least(6), "x"))
    # issue 12: the two-layer W5, ffnn-numba at 2 threads
    checks.append(Check("target", "epoch", ("W5", "adam"), "W5", "2", ">= 1.3x PyTorch",
                        _vs_torch("W5", "ffnn-numba 2t"), _at_least(1.3), "x"))
    checks.append(Check("target", "epoch", ("W5", "adam"), "W5", "2", ">= 2x scikit-learn",
                        _vs("W5", "sklearn 2t", "ffnn-numba 2t"), _at_least(2), "x"))
    checks.append(Check("goal", "epoch", ("W5", "adam"), "W5", "2", ">= 2x PyTorch",
                        _vs_torch("W5", "ffnn-numba 2t"), _at_least(2), "x"))
    return checks


def _speed_up(slow, fast):
    """Whole-call time of grouped row ``slow`` over that of row ``fast``."""
    return lambda r: ratio(_grouped(*slow, "call")(r), _grouped(*fast, "call")(r))


def _grouped_checks():
    many5, many10, many10x2 = ("train_many", 5, 10, 1), ("train_many", 10, 10, 1), \
        ("train_many", 10, 10, 2)
    checks = [
        Check("target", "grouped", many5, "`train_many` K = 5, hidden 10", "1",
              ">= 2x faster than the same five trained alone (whole calls)",
              _speed_up(("alone", 5, 10, 1), many5), _at_least(2), "x"),
        Check("target", "grouped", many10x2, "`train_many` K = 10, hidden 10", "2",
              ">= 1.6x faster than at 1 thread (whole calls)", _speed_up(many10, many10x2),
              _at_least(1.6), "x"),
    ]
    for key, row, ms in ((many5, "K = 5", 3), (many10x2, "K = 10", 1.5),
                         (("train_many", 5, 100, 1), "K = 5, hidden 100", 40)):
        checks.append(Check("goal", "grouped", key, row, str(key[3]),
                            f"<= {ms} ms per model-epoch", _grouped(*key, "per_model_epoch"),
                            _at_most(ms / 1e3), "ms"))
    return checks


def _dense_vs(other):
    return lambda r: ratio(r.dense.get(other), r.dense.get("ffnn-numba 2t"))


def _other_checks():
    return [
        Check("target", "dense", (), "dense W2", "2", ">= 1.0x PyTorch", _dense_vs("torch 2t"),
              _at_least(1.0), "x"),
        Check("target", "dense", (), "dense W2", "2", ">= 1.3x scikit-learn",
              _dense_vs("sklearn 2t"), _at_least(1.3), "x"),
        Check("goal", "dense", (), "dense W2", "2", ">= 1.5x PyTorch", _dense_vs("torch 2t"),
              _at_least(1.5), "x"),
        # issue 11: <= 10 s; issue 13: <= 10 % above the 10.0 s issue 12 reached
        Check("target", "compile", (), "cold compile (cold - warm process)", "-",
              "<= 11 s (issue 13: issue 12's 10.0 s + 10 %)", Results.cold_compile,
              _at_most(11), "s"),
        Check("goal", "compile", (), "cold compile (cold - warm process)", "-", "<= 6 s",
              Results.cold_compile, _at_most(6), "s"),
        # issue 11: <= 1,100 for the one-layer engine (it reached 1,063); issue 12 allowed 20 %
        # above that with depth (it reached 1,221); issue 13 allows 10 % above that: 1,343
        Check("target", "kernels", (), "`kernels/` code lines", "-",
              "<= 1,343 (issue 13: issue 12's 1,221 + 10 %)",
              lambda r: r.kernels_code_lines, _at_most(1343), "lines"),
        Check("target", "estimator", (), "`MLPClassifier.fit`, adam, raw float32", "every core",
              ">= 2x scikit-learn", lambda r: ratio(r.estimator.get(("raw float32", "sklearn")),
                                                    r.estimator.get(("raw float32", "ffnn"))),
              _at_least(2), "x"),
        Check("goal", "study", ("all", "grouped"), "`ffnn-run study all` (600 runs)", "default",
              "<= 4 min wall", lambda r: r.study.get(("all", "grouped")), _at_most(240), "s"),
    ]


CHECKS = [*_epoch_checks(), *_grouped_checks(), *_other_checks()]


def checks_for(suite: str, key: tuple = ()) -> list[Check]:
    return [c for c in CHECKS if c.suite == suite and c.key == key]
