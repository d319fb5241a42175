-- Table-level notify function: one payload per statement, a superset of the Python
-- pgcachewatch payload (operation, table, sent_at) plus schema. Must stay
-- statement-level and small: it runs inside every writing transaction.
CREATE OR REPLACE FUNCTION {{function}}() RETURNS trigger
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS {{tag}}
BEGIN
    PERFORM {{notify}}({{channel}}, json_build_object(
        'operation', lower(TG_OP),
        'table', TG_TABLE_NAME,
        'schema', TG_TABLE_SCHEMA,
        'sent_at', now())::text);
    RETURN NULL;
END;
{{tag}};
