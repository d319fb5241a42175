-- DDL event-trigger function (install --ddl): one schema-change payload per object
-- a command created, altered or dropped, on the table triggers' channel. Its
-- "operation" is "ddl", which Python pgcachewatch listeners do not know (see
-- README.md). Must never fail for a payload's size, since a failure here aborts
-- the user's DDL: a long object_identity is halved until the payload fits.
CREATE OR REPLACE FUNCTION {{function}}() RETURNS event_trigger
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS {{tag}}
DECLARE
    objs json;
    o json;
    ident text;
    cut boolean;
    payload text;
BEGIN
    IF TG_EVENT = 'sql_drop' THEN
        -- The catalog rows are gone: the table comes from the object's address. A
        -- dropped table's dependents (its indexes, type, triggers) are not
        -- reported, only what the command named and tables dropped with it.
        SELECT json_agg(json_build_object(
                   'command_tag', TG_TAG,
                   'object_type', d.object_type,
                   'object_identity', d.object_identity,
                   'schema', CASE
                       WHEN d.object_type IN ('table', 'foreign table') THEN d.schema_name
                       WHEN d.object_type IN ('table column', 'trigger', 'table constraint',
                                              'rule', 'policy') THEN d.address_names[1]
                   END,
                   'table', CASE
                       WHEN d.object_type IN ('table', 'foreign table') THEN d.object_name
                       WHEN d.object_type IN ('table column', 'trigger', 'table constraint',
                                              'rule', 'policy') THEN d.address_names[2]
                   END))
          INTO objs
          FROM pg_event_trigger_dropped_objects() d
         WHERE d.original OR d.object_type IN ('table', 'foreign table');
    ELSE
        -- An index, trigger or constraint names the table it belongs to.
        SELECT json_agg(json_build_object(
                   'command_tag', d.command_tag,
                   'object_type', d.object_type,
                   'object_identity', d.object_identity,
                   'schema', n.nspname,
                   'table', c.relname))
          INTO objs
          FROM pg_event_trigger_ddl_commands() d
          LEFT JOIN pg_class c ON c.relkind IN ('r', 'p', 'f') AND c.oid = CASE
              WHEN d.classid = 'pg_class'::regclass THEN coalesce(
                  (SELECT i.indrelid FROM pg_index i WHERE i.indexrelid = d.objid), d.objid)
              WHEN d.classid = 'pg_trigger'::regclass THEN
                  (SELECT t.tgrelid FROM pg_trigger t WHERE t.oid = d.objid)
              WHEN d.classid = 'pg_constraint'::regclass THEN
                  (SELECT k.conrelid FROM pg_constraint k WHERE k.oid = d.objid)
          END
          LEFT JOIN pg_namespace n ON n.oid = c.relnamespace;
    END IF;
    FOR o IN SELECT value FROM json_array_elements(coalesce(objs, '[]'::json)) LOOP
        ident := coalesce(o->>'object_identity', '');
        cut := false;
        LOOP
            payload := json_strip_nulls(json_build_object(
                'operation', 'ddl',
                'event', TG_EVENT,
                'command_tag', o->>'command_tag',
                'object_type', o->>'object_type',
                'object_identity', ident,
                'identity_truncated', CASE WHEN cut THEN true END,
                'schema', o->>'schema',
                'table', o->>'table',
                'sent_at', now()))::text;
            EXIT WHEN octet_length(payload) < {{max_payload}} OR ident = '';
            ident := left(ident, length(ident) / 2); -- characters: UTF-8 stays whole
            cut := true;
        END LOOP;
        PERFORM pg_notify({{channel}}, payload);
    END LOOP;
END;
{{tag}};
