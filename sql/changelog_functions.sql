-- What the triggers call instead of pg_notify() when the channel has a change log:
-- one row per payload, and the NOTIFY as well unless the writing session set
-- pgcachewatch.notify = off (ALTER ROLE/DATABASE ... SET works too), so LISTEN
-- clients and pollers can share a channel.
CREATE OR REPLACE FUNCTION {{write_function}}(ch text, body text) RETURNS void
LANGUAGE plpgsql AS {{tag}}
BEGIN
    INSERT INTO {{log_table}} (channel, payload) VALUES (ch, body);
    IF current_setting('pgcachewatch.notify', true) IS DISTINCT FROM 'off' THEN
        PERFORM pg_notify(ch, body);
    END IF;
END;
{{tag}};
-- One poll, in one statement so that one snapshot decides everything: the horizon
-- (the oldest transaction still running: every xid below it has ended, and every
-- xid to come is above it), the snapshot itself, the pruning watermark, and up to
-- max_rows rows after (after_xid, after_seq) and below the horizon, in (xid, seq)
-- order, leaving out those of transactions visible in history (a poller's first
-- snapshot: what had committed before it started is not news). Always at least
-- one row: without log rows, their columns are NULL.
CREATE OR REPLACE FUNCTION {{read_function}}(after_xid pg_catalog.xid8, after_seq bigint,
                                             max_rows integer,
                                             history pg_catalog.pg_snapshot)
RETURNS TABLE (horizon pg_catalog.xid8, snapshot text, pruned_xid pg_catalog.xid8,
               pruned_seq bigint, pruned_rows bigint, xid pg_catalog.xid8, seq bigint,
               created_at timestamptz, channel text, payload text)
LANGUAGE sql STABLE AS {{tag}}
    SELECT h.horizon, h.snap::text, p.pruned_xid, p.pruned_seq, p.pruned_rows,
           l.xid, l.seq, l.created_at, l.channel, l.payload
      FROM (SELECT pg_current_snapshot() AS snap,
                   pg_snapshot_xmin(pg_current_snapshot()) AS horizon) h
     CROSS JOIN {{pruned_table}} p
      LEFT JOIN LATERAL (
           SELECT c.xid, c.seq, c.created_at, c.channel, c.payload
             FROM {{log_table}} c
            WHERE (c.xid, c.seq) > (after_xid, after_seq) AND c.xid < h.horizon
              AND (history IS NULL OR NOT pg_visible_in_snapshot(c.xid, history))
            ORDER BY c.xid, c.seq
            LIMIT max_rows) l ON true
     ORDER BY l.xid, l.seq
{{tag}};
-- Removes rows older than retention_ms (by created_at, the writing transaction's
-- start) and raises the watermark to the highest position removed, so that a
-- poller whose position is below it knows it lost rows. Pollers call it
-- (source_poll.c); any session may. Returns the number of rows removed.
CREATE OR REPLACE FUNCTION {{prune_function}}(retention_ms bigint) RETURNS bigint
LANGUAGE plpgsql AS {{tag}}
DECLARE
    n bigint;
    top_xid pg_catalog.xid8;
    top_seq bigint;
BEGIN
    WITH d AS (
        DELETE FROM {{log_table}}
         WHERE created_at < now() - retention_ms * interval '1 millisecond'
        RETURNING xid, seq)
    SELECT d.xid, d.seq, count(*) OVER () INTO top_xid, top_seq, n
      FROM d ORDER BY d.xid DESC, d.seq DESC LIMIT 1;
    IF n > 0 THEN
        UPDATE {{pruned_table}} p
           SET pruned_rows = p.pruned_rows + n,
               pruned_xid = CASE WHEN (top_xid, top_seq) > (p.pruned_xid, p.pruned_seq)
                                 THEN top_xid ELSE p.pruned_xid END,
               pruned_seq = CASE WHEN (top_xid, top_seq) > (p.pruned_xid, p.pruned_seq)
                                 THEN top_seq ELSE p.pruned_seq END;
    END IF;
    RETURN coalesce(n, 0);
END;
{{tag}};
