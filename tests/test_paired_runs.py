"""bench.paired_runs: two runs' recall and their paired difference over the same queries (pure functions)."""

import math

import pytest

from bench.paired_runs import compare

SEEN, HELD = {"split": "seen", "change": "colour"}, {"split": "held-out", "change": "kind"}


def test_recall_and_the_paired_difference_by_group():
    # Four queries: A finds the first at rank 0, 3, 20, none (50); B at 1, 0, 20, 4.
    a = [(SEEN, 0), (SEEN, 3), (HELD, 20), (HELD, 50)]
    b = [(SEEN, 1), (SEEN, 0), (HELD, 20), (HELD, 4)]
    result = compare(a, b, ks=(1, 10))
    assert result["all"][1] == {"n": 4, "a": 0.25, "b": 0.25, "diff": 0.0, "se": pytest.approx(math.sqrt(2 / 3) / 2)}
    assert result["all"][10] == {"n": 4, "a": 0.5, "b": 0.75, "diff": 0.25, "se": pytest.approx(0.25)}
    assert result["split=held-out"][10] == {"n": 2, "a": 0.0, "b": 0.5, "diff": 0.5, "se": pytest.approx(0.5)}
    assert result["change=colour"][1] == {"n": 2, "a": 0.5, "b": 0.5, "diff": 0.0, "se": pytest.approx(1.0)}
    assert list(result) == ["all", "split=held-out", "split=seen", "change=colour", "change=kind"]


def test_runs_of_other_queries_are_refused():
    with pytest.raises(ValueError, match="do not answer the same queries"):
        compare([(SEEN, 0), (HELD, 1)], [(HELD, 0), (SEEN, 1)])
    with pytest.raises(ValueError, match="do not answer the same queries"):
        compare([(SEEN, 0)], [(SEEN, 0), (SEEN, 1)])
