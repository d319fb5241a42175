-- Cache schema, migration 4 (pgcachewatch's own; a postgres-cache client treats any
-- version >= 2 as current and keeps working): the cache's functions run with a
-- pinned search_path, pg_catalog first, then the schema they and the table were
-- made in (the current one), then pg_temp last. A writer whose search_path puts a
-- schema of look-alike functions or operators before pg_catalog cannot change what
-- the triggers send or what cleanup removes, and a writer with another search_path
-- still finds the cache table. The names below are quoted identifiers of letters,
-- digits and underscores (the prefix rule), so they sit safely in the literals.
DO $pgcw$
DECLARE
    path text := pg_catalog.format('pg_catalog, %I, pg_temp', pg_catalog.current_schema());
BEGIN
    EXECUTE 'ALTER FUNCTION {{set_updated_function}}() SET search_path = ' || path;
    EXECUTE 'ALTER FUNCTION {{broadcast_function}}() SET search_path = ' || path;
    EXECUTE 'ALTER FUNCTION {{cleanup_function}}(integer) SET search_path = ' || path;
END
$pgcw$;
