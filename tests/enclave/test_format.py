import pytest

from enclave.templatetags.enclave_format import duration_ms


@pytest.mark.parametrize(
    ("ms", "text"),
    [(None, "0 s"), (0, "0 s"), (1000, "1 s"), (45_400, "45 s"), (200_000, "3 min 20 s"), (120_000, "2 min"),
     (3_900_000, "1 h 5 min")],
)  # fmt: skip
def test_it_reads_durations_like_a_person(ms: int | None, text: str) -> None:
    assert duration_ms(ms) == text
