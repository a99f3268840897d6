"""On PostgreSQL, the audit chain's append is one server-side function: it takes the chain lock and then
inserts the next link, so an append is one statement and one round trip instead of two, and the lock is
never held while an answer travels back to the web process. Its INSERT is the statement
the Python side used to send after the lock (see ``_APPEND_SQL`` in ``accounts.sql``); a PL/pgSQL function takes a
new snapshot for each statement, so the head it reads is the one the previous holder committed."""

from django.db import migrations
from django.db.backends.base.schema import BaseDatabaseSchemaEditor
from django.db.migrations.state import StateApps

CREATE = """
CREATE OR REPLACE FUNCTION enclave_audit_append(
    p_lock bigint, p_created_at timestamptz, p_actor_id bigint, p_actor_label text, p_action text,
    p_object_type text, p_object_id text, p_project_id bigint, p_payload jsonb, p_body_prefix text,
    p_genesis text
) RETURNS TABLE (event_id bigint, event_seq bigint, event_prev_hash text, event_hash text)
LANGUAGE plpgsql VOLATILE AS $$
BEGIN
    PERFORM pg_advisory_xact_lock(p_lock);
    RETURN QUERY
    INSERT INTO accounts_auditevent (seq, created_at, actor_id, actor_label, action, object_type, object_id,
                                     project_id, payload, prev_hash, hash)
    SELECT head.seq + 1, p_created_at, p_actor_id, p_actor_label, p_action, p_object_type, p_object_id,
           p_project_id, p_payload, head.hash,
           encode(sha256(convert_to(head.hash || E'\\n' || p_body_prefix || (head.seq + 1)::text || '}', 'UTF8')),
                  'hex')
    FROM (SELECT coalesce(last.seq, 0) AS seq, coalesce(last.hash, p_genesis) AS hash
          FROM (SELECT 1) AS one
          LEFT JOIN (SELECT e.seq, e.hash FROM accounts_auditevent e ORDER BY e.seq DESC LIMIT 1) AS last
            ON true) AS head
    RETURNING id::bigint, seq::bigint, prev_hash::text, hash::text;
END;
$$;
"""

DROP = "DROP FUNCTION IF EXISTS enclave_audit_append(bigint, timestamptz, bigint, text, text, text, text, bigint, jsonb, text, text);"


def create_function(apps: StateApps, schema_editor: BaseDatabaseSchemaEditor) -> None:
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(CREATE)


def drop_function(apps: StateApps, schema_editor: BaseDatabaseSchemaEditor) -> None:
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(DROP)


class Migration(migrations.Migration):
    dependencies = [("accounts", "0003_api_token_info")]

    operations = [migrations.RunPython(create_function, drop_function)]
