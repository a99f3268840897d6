import hashlib
import importlib

import pytest
from django.db import connection

from accounts.models import AuditEvent
from annotation import services
from annotation.models import AnnotationSettings, ImportBatch, Item, Slot
from annotation.parsing import Message, content_hash
from core.errors import DomainError
from tests.annotation.helpers import chat_line, import_lines, jsonl
from tests.conftest import Personas

pytestmark = pytest.mark.django_db


def test_it_imports_scrubs_and_records_the_batch(personas: Personas) -> None:
    batch = import_lines(
        personas.project,
        personas.data_lead,
        chat_line("Mail me at jo.bloggs@example.com or call +44 20 7946 0958", "Will do, jo.bloggs@example.com."),
        chat_line("Card 4111 1111 1111 1111 was stolen", None, id="ext-7", metadata={"channel": "app"}),
    )
    assert batch.status == "done"
    assert batch.imported_count == 2
    assert batch.scrub_counts == {"EMAIL": 2, "PHONE": 1, "CARD": 1}
    assert len(batch.sha256) == 64
    first, second = Item.objects.filter(batch=batch).order_by("id")
    assert first.messages[0]["content"] == "Mail me at [EMAIL_1] or call [PHONE_1]"
    assert first.response == "Will do, [EMAIL_1]."
    assert second.external_id == "ext-7"
    assert second.metadata == {"channel": "app"}
    assert second.response is None
    assert Slot.objects.filter(item__batch=batch).count() == 2
    assert batch.stored_path == ""
    actions = list(AuditEvent.objects.filter(project=personas.project).values_list("action", flat=True))
    assert "import.start" in actions
    assert "import.done" in actions


def test_it_never_lets_raw_pii_reach_the_database(personas: Personas) -> None:
    import_lines(
        personas.project,
        personas.data_lead,
        chat_line("IBAN GB82 WEST 1234 5698 7654 32 and SSN 123-45-6789, mail a@b.example", "ok a@b.example"),
    )
    with connection.cursor() as cursor:
        for table in ("annotation_item", "annotation_importbatch", "accounts_auditevent"):
            cursor.execute(f"SELECT * FROM {table}")  # noqa: S608 - fixed table names
            dump = repr(cursor.fetchall())
            for raw in ("GB82", "WEST 1234", "123-45-6789", "a@b.example"):
                assert raw not in dump, f"{raw!r} found in {table}"


def test_it_refuses_the_whole_file_for_one_bad_line_and_reports_every_line(personas: Personas) -> None:
    batch = import_lines(
        personas.project,
        personas.data_lead,
        chat_line("Fine question?"),
        '{"messages": [{"role": "user", "content": "broken"}',
        chat_line("Another fine one?"),
        '{"messages": [{"role": "bot", "content": "who am I"}]}',
        '{"messages": [{"role": "user", "content": ""}]}',
    )
    assert batch.status == "refused"
    assert batch.imported_count == 0
    assert [e["line"] for e in batch.errors] == [2, 4, 5]
    assert "invalid JSON" in batch.errors[0]["reason"]
    assert "unknown role 'bot'" in batch.errors[1]["reason"]
    assert "empty content" in batch.errors[2]["reason"]
    assert not Item.objects.filter(project=personas.project).exists()
    assert not Slot.objects.exists()


def test_it_imports_the_rest_and_keeps_the_report_when_skipping_bad_lines(personas: Personas) -> None:
    batch = import_lines(
        personas.project, personas.data_lead, chat_line("Good one?"), "not json at all", chat_line("Good two?"),
        skip_bad_lines=True,
    )  # fmt: skip
    assert batch.status == "done"
    assert batch.imported_count == 2
    assert batch.bad_line_count == 1
    assert batch.errors[0]["line"] == 2


def test_it_reports_duplicates_within_the_file_and_against_the_project(personas: Personas) -> None:
    import_lines(personas.project, personas.data_lead, chat_line("Where is my card?"))
    batch = import_lines(
        personas.project,
        personas.data_lead,
        chat_line("where   is my CARD?"),
        chat_line("Something new?"),
        chat_line("Something  new?"),
    )
    assert batch.status == "done"
    assert batch.imported_count == 1
    assert batch.duplicate_count == 2
    reasons = {d["line"]: d["reason"] for d in batch.duplicates}
    assert reasons[1].startswith("already in the project as item #")
    assert reasons[3] == "same conversation as line 2"


def test_it_keeps_pii_items_out_under_the_reject_policy(personas: Personas) -> None:
    services.annotation_settings_update(
        actor=personas.data_lead, project=personas.project, annotators_per_item=1, lease_minutes=30,
        pii_mode="reject", pii_patterns=[["ACCOUNT", r"ACC-\d{6}"]], pii_terms=["Hildegard"],
    )  # fmt: skip
    batch = import_lines(
        personas.project,
        personas.data_lead,
        chat_line("My account ACC-123456 is blocked"),
        chat_line("Hildegard here, hello"),
        chat_line("No personal data in this one"),
    )
    assert batch.imported_count == 1
    assert batch.pii_rejected_count == 2
    assert batch.scrub_counts == {"ACCOUNT": 1, "TERM": 1}
    assert "the project's policy rejects" in batch.duplicates[0]["reason"]


def _settings(personas: Personas, **pii: str) -> None:
    services.annotation_settings_update(
        actor=personas.data_lead, project=personas.project, annotators_per_item=1, lease_minutes=30,
        pii_mode="replace", pii_patterns=[], pii_terms=[], **pii,
    )  # fmt: skip


def test_it_takes_two_conversations_differing_only_in_a_phone_number_as_duplicates(personas: Personas) -> None:
    batch = import_lines(
        personas.project,
        personas.data_lead,
        chat_line("Please call me back on 0171 1234567", "Sure."),
        chat_line("Please call me back on 0176 7654321", "Sure."),
    )
    assert batch.imported_count == 1
    assert [d["reason"] for d in batch.duplicates] == ["same conversation as line 1"]
    again = import_lines(
        personas.project, personas.data_lead, chat_line("Please call me back on 0151 2345678", "Sure.")
    )
    assert again.imported_count == 0
    assert again.duplicates[0]["reason"].startswith("already in the project as item #")


def test_it_stores_the_hash_of_the_scrubbed_text_as_the_content_hash(personas: Personas) -> None:
    import_lines(personas.project, personas.data_lead, chat_line("Tel. 0171 1234567, mail jo@example.com", "Noted."))
    item = Item.objects.get(project=personas.project)
    assert item.messages[0]["content"] == "Tel. [PHONE_1], mail [EMAIL_1]"
    scrubbed = content_hash([Message("user", "Tel. [PHONE_1], mail [EMAIL_1]")], "Noted.")
    raw = content_hash([Message("user", "Tel. 0171 1234567, mail jo@example.com")], "Noted.")
    assert item.content_hash == scrubbed
    assert item.content_hash != raw
    with connection.cursor() as cursor:
        for table in ("annotation_item", "annotation_importbatch", "accounts_auditevent"):
            cursor.execute(f"SELECT * FROM {table}")  # noqa: S608 - fixed table names
            assert raw not in repr(cursor.fetchall()), table


def test_it_never_lets_phone_numbers_typed_every_which_way_reach_the_database(personas: Personas) -> None:
    _settings(personas, pii_phone_region="DE")
    numbers = ["0171 123456", "0172-1234567", "0151/2345678", "+49 (0)171 1234567", "0049 30 12345678", "030.1234567"]
    import_lines(
        personas.project,
        personas.data_lead,
        *(chat_line(f"Meine Nummer: {number}", f"Danke, wir rufen {number} an.") for number in numbers),
    )
    with connection.cursor() as cursor:
        cursor.execute("SELECT messages::text, response FROM annotation_item")
        dump = repr(cursor.fetchall())
    for number in numbers:
        assert number not in dump
    assert Item.objects.filter(project=personas.project).count() == 1  # all the same once scrubbed


def test_it_reports_uncertain_values_by_line_and_scrubs_them_unless_the_project_keeps_them(
    personas: Personas,
) -> None:
    _settings(personas, pii_phone_region="ES")
    line = chat_line("Details: 412 345 670", "ok")  # possible in Spain, not valid, nothing says phone
    batch = import_lines(personas.project, personas.data_lead, chat_line("Hello there"), line)
    assert batch.uncertain_count == 1
    assert batch.uncertain == [
        {"line": 2, "type": "PHONE", "turn": 0, "column": 9, "hint": "••• ••• •••", "scrubbed": True}
    ]
    assert Item.objects.get(batch=batch, messages__0__content__startswith="Details").messages[0]["content"] == (
        "Details: [PHONE_1]"
    )
    assert "412 345 670" not in repr(list(ImportBatch.objects.values()))

    _settings(personas, pii_uncertain="keep")
    kept = import_lines(personas.project, personas.data_lead, chat_line("Details: 412 345 671", "ok"))
    assert kept.uncertain == [
        {"line": 1, "type": "PHONE", "turn": 0, "column": 9, "hint": "••• ••• •••", "scrubbed": False}
    ]
    assert Item.objects.get(batch=kept).messages[0]["content"] == "Details: 412 345 671"
    assert kept.scrub_counts == {}


def test_it_refuses_an_unknown_choice_for_uncertain_values_or_phone_region_in_the_settings(personas: Personas) -> None:
    with pytest.raises(DomainError) as unsure:
        _settings(personas, pii_uncertain="maybe")
    assert unsure.value.field == "pii_uncertain"
    with pytest.raises(DomainError) as region:
        _settings(personas, pii_phone_region="XX")
    assert region.value.field == "pii_phone_region"
    _settings(personas, pii_phone_region="de", pii_uncertain="keep")
    current = AnnotationSettings.objects.get(project=personas.project)
    assert (current.pii_phone_region, current.pii_uncertain) == ("DE", "keep")
    _settings(personas)  # a caller that does not name them leaves them as they are
    current.refresh_from_db()
    assert (current.pii_phone_region, current.pii_uncertain) == ("DE", "keep")


def test_it_keeps_no_hash_of_the_uploaded_file(personas: Personas) -> None:
    lines = [chat_line("Ring me on 07911 123456 please", "Will do."), chat_line("Nothing personal here")]
    raw = hashlib.sha256(jsonl(*lines)).hexdigest()
    batch = import_lines(personas.project, personas.data_lead, *lines)
    items = Item.objects.filter(batch=batch).order_by("id")
    expected = hashlib.sha256("".join(f"{n}\t{i.content_hash}\n" for n, i in enumerate(items, 1)).encode())
    assert batch.sha256 == expected.hexdigest()
    with connection.cursor() as cursor:
        for table in ("annotation_item", "annotation_importbatch", "accounts_auditevent"):
            cursor.execute(f"SELECT * FROM {table}")  # noqa: S608 - fixed table names
            assert raw not in repr(cursor.fetchall()), table


def test_it_hashes_the_stored_scrubbed_text_of_existing_items_in_the_migration(personas: Personas) -> None:
    from django.apps import apps

    migration = importlib.import_module("annotation.migrations.0007_pii_uncertain_and_phone_region")
    batch = import_lines(
        personas.project, personas.data_lead, chat_line("Call +44 20 7946 0958", "ok"), chat_line("Hi", "ok")
    )
    first, second = Item.objects.filter(batch=batch).order_by("id")
    raw_hash = content_hash([Message("user", "Call +44 20 7946 0958")], "ok")
    Item.objects.filter(pk=first.pk).update(content_hash=raw_hash)  # as imported before scrubbed hashing
    # A second item whose stored text is the same once scrubbed: it must keep a unique hash.
    Item.objects.filter(pk=second.pk).update(messages=first.messages, content_hash="1" * 64)
    ImportBatch.objects.filter(pk=batch.pk).update(sha256="2" * 64)
    migration.rehash_scrubbed_text(apps, None)
    first.refresh_from_db()
    second.refresh_from_db()
    assert first.content_hash == content_hash([Message("user", "Call [PHONE_1]")], "ok")
    tagged = [Message("user", "Call [PHONE_1]"), Message("enclave-item", str(second.pk))]
    assert second.content_hash == content_hash(tagged, "ok")
    batch.refresh_from_db()
    assert batch.sha256 == hashlib.sha256(f"{first.content_hash}\n{second.content_hash}\n".encode()).hexdigest()
