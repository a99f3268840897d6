"""Property-based fuzzing of the whole import (parse → scrub → dedup → insert): whatever the bytes, it
ends as a batch with a report, never with an exception."""

import io
import json

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from annotation import services
from annotation.models import ImportStatus
from tests.conftest import Personas

pytestmark = pytest.mark.django_db

_json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=40),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4),
    max_leaves=12,
)
_chat_like = st.fixed_dictionaries(
    {
        "messages": st.lists(
            st.fixed_dictionaries(
                {"role": st.sampled_from(["user", "assistant", "system", "bot", ""]), "content": _json_values}
            ),
            max_size=4,
        )
    },
    optional={"id": _json_values, "metadata": _json_values},
)
_lines = st.lists(
    st.one_of(st.binary(max_size=80), _chat_like.map(lambda d: json.dumps(d).encode())), min_size=1, max_size=12
)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(lines=_lines, fmt=st.sampled_from(["chat_jsonl", "prompt_response_jsonl"]), skip=st.booleans())
def test_it_ends_any_file_as_a_batch_with_a_report(
    personas: Personas, lines: list[bytes], fmt: str, skip: bool
) -> None:
    data = b"\n".join(lines)
    batch = services.import_start(
        actor=personas.data_lead, project=personas.project, upload=io.BytesIO(data),
        source_name="fuzz.jsonl", fmt=fmt, skip_bad_lines=skip,
    )  # fmt: skip
    assert batch.status in {ImportStatus.DONE, ImportStatus.REFUSED}
    assert batch.bad_line_count == len(batch.errors) or batch.bad_line_count > 1000
    if batch.status == ImportStatus.REFUSED:
        assert batch.imported_count == 0
        assert batch.errors
    # Generated lines may hold newlines themselves: errors are numbered by physical line of the file.
    assert all(1 <= e["line"] <= data.count(b"\n") + 1 for e in batch.errors)
