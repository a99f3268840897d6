"""On PostgreSQL, triggers keep built releases frozen: a built release may only become a tombstone (state,
deleted_by and deleted_at change, nothing else); its files and item rows never change; a frozen release
and its rows cannot be deleted."""

from django.db import migrations
from django.db.backends.base.schema import BaseDatabaseSchemaEditor
from django.db.migrations.state import StateApps

CREATE = """
CREATE OR REPLACE FUNCTION enclave_release_frozen() RETURNS trigger AS $$
BEGIN
    IF OLD.state IN ('built', 'deleted') THEN
        IF TG_OP = 'UPDATE' AND OLD.state = 'built' AND NEW.state = 'deleted'
           AND (to_jsonb(NEW) - 'state' - 'deleted_by_id' - 'deleted_at')
             = (to_jsonb(OLD) - 'state' - 'deleted_by_id' - 'deleted_at') THEN
            RETURN NEW;
        END IF;
        RAISE EXCEPTION 'release %% is frozen: %% refused', OLD.id, TG_OP USING ERRCODE = 'insufficient_privilege';
    END IF;
    IF TG_OP = 'DELETE' THEN RETURN OLD; END IF;
    RETURN NEW;
END;
$$ LANGUAGE plpgsql;

CREATE OR REPLACE FUNCTION enclave_release_rows_frozen() RETURNS trigger AS $$
BEGIN
    IF TG_OP = 'UPDATE' THEN
        RAISE EXCEPTION '%% rows never change: UPDATE refused', TG_TABLE_NAME USING ERRCODE = 'insufficient_privilege';
    END IF;
    IF EXISTS (SELECT 1 FROM releases_release r WHERE r.id = OLD.release_id AND r.state IN ('built', 'deleted')) THEN
        RAISE EXCEPTION 'release %% is frozen: DELETE from %% refused', OLD.release_id, TG_TABLE_NAME
            USING ERRCODE = 'insufficient_privilege';
    END IF;
    RETURN OLD;
END;
$$ LANGUAGE plpgsql;

CREATE TRIGGER releases_release_frozen BEFORE UPDATE OR DELETE ON releases_release
    FOR EACH ROW EXECUTE FUNCTION enclave_release_frozen();
CREATE TRIGGER releases_releasefile_frozen BEFORE UPDATE OR DELETE ON releases_releasefile
    FOR EACH ROW EXECUTE FUNCTION enclave_release_rows_frozen();
CREATE TRIGGER releases_releaseitem_frozen BEFORE UPDATE OR DELETE ON releases_releaseitem
    FOR EACH ROW EXECUTE FUNCTION enclave_release_rows_frozen();
"""

DROP = """
DROP TRIGGER IF EXISTS releases_release_frozen ON releases_release;
DROP TRIGGER IF EXISTS releases_releasefile_frozen ON releases_releasefile;
DROP TRIGGER IF EXISTS releases_releaseitem_frozen ON releases_releaseitem;
DROP FUNCTION IF EXISTS enclave_release_frozen();
DROP FUNCTION IF EXISTS enclave_release_rows_frozen();
"""


def create_triggers(apps: StateApps, schema_editor: BaseDatabaseSchemaEditor) -> None:
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(CREATE)


def drop_triggers(apps: StateApps, schema_editor: BaseDatabaseSchemaEditor) -> None:
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(DROP)


class Migration(migrations.Migration):
    dependencies = [("releases", "0001_initial")]

    operations = [migrations.RunPython(create_triggers, drop_triggers)]
