-- What uninstall drops, read from the catalogs: $1 holds the signatures of this
-- channel's functions, resolved with to_regprocedure() through search_path exactly
-- as they were created (two signatures may name one function: DISTINCT); $2 the
-- channel's change-log tables, resolved with to_regclass() the same way. Rows: kind
-- ('t' trigger, 'e' event trigger, 'f' function, 'r' table), then names, raw
-- (quoted by the caller; a function's argument types in relname), tables last. Triggers are found by the function they call, whatever their names;
-- those cloned onto partitions go with their parent. A table notify function can
-- have no event trigger nor the DDL function a table trigger (their return types
-- differ), so one query serves uninstall and uninstall --ddl.
WITH fn AS (
    SELECT DISTINCT p.oid, n.nspname, p.proname
      FROM unnest($1::text[]) AS s(signature)
      JOIN pg_catalog.pg_proc p ON p.oid = pg_catalog.to_regprocedure(s.signature)
      JOIN pg_catalog.pg_namespace n ON n.oid = p.pronamespace
)
SELECT kind, name, nspname, relname FROM (
    SELECT 't' AS kind, t.tgname::text AS name, cn.nspname::text AS nspname,
           c.relname::text AS relname, 0 AS ord
      FROM pg_catalog.pg_trigger t
      JOIN fn ON fn.oid = t.tgfoid
      JOIN pg_catalog.pg_class c ON c.oid = t.tgrelid
      JOIN pg_catalog.pg_namespace cn ON cn.oid = c.relnamespace
     WHERE NOT t.tgisinternal AND t.tgparentid = 0
    UNION ALL
    SELECT 'e', e.evtname::text, NULL, NULL, 0
      FROM pg_catalog.pg_event_trigger e
      JOIN fn ON fn.oid = e.evtfoid
    UNION ALL
    SELECT 'f', fn.proname::text, fn.nspname::text,
           pg_catalog.pg_get_function_identity_arguments(fn.oid), 1
      FROM fn
    UNION ALL
    SELECT DISTINCT 'r', c.relname::text, rn.nspname::text, NULL, 2
      FROM unnest($2::text[]) AS r(name)
      JOIN pg_catalog.pg_class c ON c.oid = pg_catalog.to_regclass(r.name)
      JOIN pg_catalog.pg_namespace rn ON rn.oid = c.relnamespace
) o
ORDER BY ord, nspname, relname, name;
