"""The scrubber on its generated evaluation set (``pii_corpus``): recall per kind of phone number and the
survival of every kind of decoy, on seeds other than the one the README's table was measured with."""

import pytest

from annotation.pii import PiiPolicy, Scrubber, compile_policy
from tests.annotation.pii_corpus import DECOY_KINDS, PHONE_KINDS, generate, measure


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


def test_it_reads_each_planted_number_as_one_number() -> None:
    scrubbers: dict[str, Scrubber] = {}
    split = []
    for case in generate(3, 150, 0):
        scrubber = scrubbers.setdefault(
            case.region, compile_policy(PiiPolicy(mode="replace", default_phone_region=case.region))
        )
        result = scrubber.scrub([case.text])
        if len(result.findings) != max(1, len(case.parts)):
            split.append((case.text, result.texts[0]))
    assert len(split) <= 0.01 * 150 * 5, split[:5]
