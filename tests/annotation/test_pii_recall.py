"""The scrubber on its generated evaluation set (``pii_corpus``): recall per kind of phone number and the
survival of every kind of decoy, on seeds other than the one the README's table was measured with."""

import pytest

from tests.annotation.pii_corpus import DECOY_KINDS, PHONE_KINDS, measure


@pytest.mark.parametrize("seed", [1, 7])
def test_it_finds_98_percent_of_every_kind_of_phone_number_and_keeps_99_percent_of_decoys(seed: int) -> None:
    table, misses = measure(seed, 250)
    assert set(table) == set(PHONE_KINDS) | set(DECOY_KINDS)
    for kind in PHONE_KINDS:
        found, _, total = table[kind]
        assert total == 250
        assert found / total >= 0.98, (kind, [case.text for case in misses[kind][:5]])
    for kind in DECOY_KINDS:
        kept, _, total = table[kind]
        assert kept / total >= 0.99, (kind, [case.text for case in misses[kind][:5]])
