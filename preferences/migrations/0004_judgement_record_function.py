"""On PostgreSQL, the common judgement submit is one call of a server-side function, ``enclave_judgement_record``
(``preferences.submit_sql.judgement_record``): it locks the user's slot and the item's row, checks that the slot
is leased to them and that the item's judgements and the annotator's quality row are what the web process
read before deciding that nothing but the judgement changes (no adjudication, no quality count), then inserts
the judgement, ends the slot, deletes the draft and appends the audit event (``enclave_audit_append``). Called
alone it is its own transaction: one round trip, no BEGIN or COMMIT. When the slot is no longer leased to the
user (judged already: a resend), it returns the judgement stored under the key, if any, and writes nothing.
Any other case returns no row and writes nothing, and the web process takes the general path. A PL/pgSQL function takes a new snapshot for each
statement, so what it reads after the locks is what the previous holder committed. Table and column names
come from the models' ``_meta`` and states from the enums."""

from django.db import migrations
from django.db.backends.base.schema import BaseDatabaseSchemaEditor
from django.db.migrations.state import StateApps

from annotation.models import SlotState
from core import rawrows

SIGNATURE = """enclave_judgement_record(
    p_item bigint, p_user bigint, p_project bigint, p_judged bigint, p_quality_updated timestamptz,
    p_mode text, p_seed bigint, p_displayed_order jsonb, p_result jsonb, p_displayed_result jsonb, p_rationale text,
    p_time_spent_ms bigint, p_key text, p_created_at timestamptz,
    p_lock bigint, p_event_created_at timestamptz, p_actor_label text, p_action text, p_object_type text,
    p_payload jsonb, p_body_head text, p_body_tail text, p_genesis text
)"""

CREATE = """
CREATE OR REPLACE FUNCTION {signature}
RETURNS TABLE (judgement_id bigint, stored boolean, event_id bigint, event_seq bigint, event_prev_hash text,
               event_hash text)
LANGUAGE plpgsql VOLATILE AS $$
DECLARE
    v_slot bigint;
    v_state text;
    v_id bigint;
BEGIN
    SELECT s.{slot.id}, s.{slot.state} INTO v_slot, v_state
      FROM {slot} s JOIN {item} i ON i.{item.id} = s.{slot.item}
     WHERE s.{slot.item} = p_item AND s.{slot.user} = p_user
       FOR UPDATE OF s FOR NO KEY UPDATE OF i;
    IF v_slot IS NULL OR v_state <> '{leased}' THEN
        -- Judged already (a resend, or a key used elsewhere): what is stored under the key, for the web
        -- process to answer with; nothing when nothing is.
        RETURN QUERY SELECT j.{judgement.id}::bigint, true, NULL::bigint, NULL::bigint, NULL::text, NULL::text
                       FROM {judgement} j WHERE j.{judgement.idempotency_key} = p_key;
        RETURN;
    END IF;
    IF (SELECT count(*) FROM {judgement} j WHERE j.{judgement.item} = p_item AND NOT j.{judgement.is_gold})
       <> p_judged THEN
        RETURN;
    END IF;
    IF NOT EXISTS (SELECT FROM {quality} q WHERE q.{quality.project} = p_project
                      AND q.{quality.annotator} = p_user AND q.{quality.updated_at} = p_quality_updated) THEN
        RETURN;
    END IF;
    INSERT INTO {judgement} ({judgement.item}, {judgement.annotator}, {judgement.mode}, {judgement.seed},
                             {judgement.displayed_order}, {judgement.result}, {judgement.displayed_result},
                             {judgement.rationale}, {judgement.time_spent_ms}, {judgement.idempotency_key},
                             {judgement.is_gold}, {judgement.gold_correct}, {judgement.too_fast},
                             {judgement.created_at})
    VALUES (p_item, p_user, p_mode, p_seed, p_displayed_order, p_result, p_displayed_result, p_rationale,
            p_time_spent_ms, p_key, false, NULL, false, p_created_at)
    RETURNING {judgement.id} INTO v_id;
    UPDATE {slot} SET {slot.state} = '{done}', {slot.leased_until} = NULL WHERE {slot.id} = v_slot;
    DELETE FROM {draft} WHERE {draft.item} = p_item AND {draft.user} = p_user;
    RETURN QUERY
    SELECT v_id, false, a.event_id, a.event_seq, a.event_prev_hash, a.event_hash
      FROM enclave_audit_append(p_lock, p_event_created_at, p_user, p_actor_label, p_action, p_object_type,
                                v_id::text, p_project, p_payload,
                                p_body_head || to_json(v_id::text)::text || p_body_tail, p_genesis) a;
END;
$$;
"""


def _types(signature: str) -> str:
    """The argument types of a signature, as DROP FUNCTION names them."""
    name, _, args = signature.partition("(")
    types = [arg.split()[1] for arg in args.rstrip(")").split(",")]
    return f"{name}({', '.join(types)})"


def create_function(apps: StateApps, schema_editor: BaseDatabaseSchemaEditor) -> None:
    if schema_editor.connection.vendor != "postgresql":
        return
    schema_editor.execute(
        CREATE.format(
            signature=SIGNATURE,
            slot=rawrows.Table(apps.get_model("annotation", "Slot")),
            item=rawrows.Table(apps.get_model("annotation", "Item")),
            draft=rawrows.Table(apps.get_model("annotation", "Draft")),
            judgement=rawrows.Table(apps.get_model("preferences", "Judgement")),
            quality=rawrows.Table(apps.get_model("preferences", "AnnotatorQuality")),
            leased=SlotState.LEASED.value,
            done=SlotState.DONE.value,
        )
    )


def drop_function(apps: StateApps, schema_editor: BaseDatabaseSchemaEditor) -> None:
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(f"DROP FUNCTION IF EXISTS {_types(SIGNATURE)};")


class Migration(migrations.Migration):
    dependencies = [
        ("preferences", "0003_agreement_snapshot_last_judgement"),
        ("annotation", "0007_pii_uncertain_and_phone_region"),
        ("accounts", "0004_audit_append_function"),
    ]

    operations = [migrations.RunPython(create_function, drop_function)]
