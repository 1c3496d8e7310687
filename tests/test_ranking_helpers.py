"""The ranking assertion the search tests rely on: ties within rounding pass, anything else fails."""

import numpy as np
import pytest

from tests.ranking import assert_ranking, cosine_scores, halfvec

SCORES = {1: 0.9, 2: 0.5, 3: 0.5 - 4e-6, 4: 0.1}  # 2 and 3 tie within rounding


def test_the_expected_order_and_a_tie_in_either_order_pass():
    assert_ranking([1, 2, 3, 4], SCORES)
    assert_ranking([1, 3, 2, 4], SCORES)
    assert_ranking([1, 3], SCORES, k=2)  # a tie at the cut: either may be the last result


@pytest.mark.parametrize(("actual", "k"), [
    ([2, 1, 3, 4], None),   # two products that do not tie, swapped
    ([1, 2, 3], None),      # one missing
    ([], None),             # an empty page
    ([1, 2, 2, 4], None),   # one twice
    ([1, 4], 2),            # the wrong second product
    ([1, 2, 3, 4, 9], None),  # one that is not in the catalog
])
def test_anything_else_fails(actual, k):
    with pytest.raises(AssertionError):
        assert_ranking(actual, SCORES, k=k)


def test_scores_are_computed_on_halfvec_values():
    query = np.array([1.0, 1e-4, 0.0], dtype=np.float32)  # 1e-4 survives float16, 1e-8 would not
    assert halfvec([1e-8])[0] == 0.0
    vectors = np.array([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]], dtype=np.float32)
    np.testing.assert_allclose(cosine_scores(query, vectors), [1.0, np.float16(1e-4)], rtol=1e-3)
