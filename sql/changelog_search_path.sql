-- The functions that name the change log (the writer, reader and pruner, and the
-- notify functions that call the writer) find it in the schema it was just created
-- in: current_schema(), where the unqualified CREATEs above put everything. It comes
-- after pg_catalog, so nothing there can shadow a built-in, and pg_temp is last.
DO {{tag}}
DECLARE
    fn text;
BEGIN
    FOREACH fn IN ARRAY ARRAY[{{signatures}}]::text[] LOOP
        EXECUTE pg_catalog.format('ALTER FUNCTION %s SET search_path = pg_catalog, %I, pg_temp',
                                  fn, pg_catalog.current_schema());
    END LOOP;
END
{{tag}};
