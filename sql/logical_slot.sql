-- The replication slot of install --source logical, made after the publication
-- committed (a logical slot cannot be made in a transaction that has written, and
-- it must not start before the publication exists). An existing slot of that name
-- is kept, with the changes it holds, if it is a pgoutput slot of this database.
DO {{tag}}
DECLARE
    s record;
BEGIN
    SELECT slot_type, plugin, database INTO s
      FROM pg_catalog.pg_replication_slots WHERE slot_name = {{slot}};
    IF NOT FOUND THEN
        PERFORM pg_catalog.pg_create_logical_replication_slot({{slot}}, 'pgoutput');
    ELSIF s.slot_type IS DISTINCT FROM 'logical' OR s.plugin IS DISTINCT FROM 'pgoutput'
          OR s.database IS DISTINCT FROM current_database() THEN
        RAISE EXCEPTION 'replication slot % exists and is not a pgoutput slot of database %',
            {{slot}}, current_database() USING ERRCODE = '42710';
    END IF;
END
{{tag}};
