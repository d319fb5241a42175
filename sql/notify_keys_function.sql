-- Notify function with primary-key values, for the statement-level INSERT, UPDATE
-- and DELETE triggers that expose transition tables pgcw_new / pgcw_old.
-- Payload: the table-level members plus "pk" (key columns, in key order), "keys"
-- (one JSON array per affected row; for UPDATE the distinct union of old and new
-- keys) and "part" (1-based). Keys are split over as many notifications as needed
-- so that every payload is at most 7999 bytes (octet_length). No primary key, or
-- one key too large for a payload: one table-level payload. No rows: no payload.
-- Set-based on purpose: it must stay cheap for statements touching 10k rows.
CREATE OR REPLACE FUNCTION {{function}}() RETURNS trigger
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS {{tag}}
DECLARE
    max_payload constant int := 7999;
    pk text[];
    cols text;
    src text;
    header text;
    room bigint;
    any_rows boolean;
    r record;
BEGIN
    SELECT array_agg(a.attname::text ORDER BY k.ord) INTO pk
      FROM pg_catalog.pg_index i
     CROSS JOIN LATERAL unnest(i.indkey::int2[]) WITH ORDINALITY AS k(attnum, ord)
      JOIN pg_catalog.pg_attribute a
        ON a.attrelid = i.indrelid AND a.attnum = k.attnum
     WHERE i.indrelid = TG_RELID AND i.indisprimary;

    IF pk IS NOT NULL THEN
        SELECT string_agg(format('%I', c), ', ' ORDER BY o) INTO cols
          FROM unnest(pk) WITH ORDINALITY AS u(c, o);
        src := CASE TG_OP
            WHEN 'INSERT' THEN format('SELECT %s FROM pgcw_new', cols)
            WHEN 'DELETE' THEN format('SELECT %s FROM pgcw_old', cols)
            ELSE format('SELECT %1$s FROM pgcw_old UNION SELECT %1$s FROM pgcw_new', cols)
        END;
        header := json_build_object(
            'operation', lower(TG_OP), 'table', TG_TABLE_NAME,
            'schema', TG_TABLE_SCHEMA, 'sent_at', now(), 'pk', pk)::text;
        -- Room for the keys: the header without its closing brace, the keys and
        -- part members, at most 10 digits of part number, and the closing brace.
        -- Each key costs its length plus 2 for ', ' (the first one does not).
        room := max_payload + 2 - octet_length(header) + 1
              - octet_length(', "keys" : [') - octet_length('], "part" : ') - 10 - 1;
        -- Parts by running offset: a part spans offsets [g*b, (g+1)*b) with
        -- b = room - widest key, so no part exceeds room (its last key starts below
        -- the bound and is at most the widest). The keys are rendered once
        -- (MATERIALIZED), as inlining would build each JSON key three times.
        FOR r IN EXECUTE format($q$
            WITH k AS MATERIALIZED (
                SELECT k, octet_length(k) + 2 AS w
                  FROM (SELECT json_build_array(%1$s)::text AS k
                          FROM (%2$s) AS s ORDER BY %1$s) AS s2
            ), x AS (
                SELECT k, sum(w) OVER (ROWS UNBOUNDED PRECEDING) - w AS off,
                       max(w) OVER () AS widest
                  FROM k
            )
            SELECT row_number() OVER (ORDER BY g) AS part, keys, widest
              FROM (SELECT off / greatest($1 - widest, 1) AS g,
                           string_agg(k, ', ' ORDER BY off) AS keys,
                           max(widest) AS widest
                      FROM x GROUP BY 1) p
             ORDER BY g
            $q$, cols, src) USING room
        LOOP
            IF r.widest > room THEN
                pk := NULL; -- one key alone does not fit: say "the table changed"
                any_rows := true;
                EXIT;
            END IF;
            PERFORM {{notify}}({{channel}}, left(header, -1) || ', "keys" : [' || r.keys
                || '], "part" : ' || r.part || '}');
        END LOOP;
        IF pk IS NOT NULL THEN
            RETURN NULL;
        END IF;
    ELSE
        EXECUTE format('SELECT EXISTS (SELECT FROM %s)',
                       CASE TG_OP WHEN 'INSERT' THEN 'pgcw_new' ELSE 'pgcw_old' END)
           INTO any_rows;
    END IF;

    IF any_rows THEN
        PERFORM {{notify}}({{channel}}, json_build_object(
            'operation', lower(TG_OP), 'table', TG_TABLE_NAME,
            'schema', TG_TABLE_SCHEMA, 'sent_at', now())::text);
    END IF;
    RETURN NULL;
END;
{{tag}};
