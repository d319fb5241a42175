-- The change log of one channel, for the polling source (docs/source_poll.md): one
-- row per payload the channel's triggers send, written inside the writing
-- transaction. Pollers read it in (xid, seq) order, only below the oldest
-- transaction still running, so a transaction that commits late is never
-- skipped. LOGGED on purpose: a crash empties an UNLOGGED table, and the rows no
-- poller had read yet would be gone without a trace. The one-row table next to it
-- records the highest position pruning ever removed, which is how a poller tells
-- that rows it had not read are gone.
CREATE TABLE IF NOT EXISTS {{log_table}} (
    xid pg_catalog.xid8 NOT NULL DEFAULT pg_catalog.pg_current_xact_id(),
    seq bigint GENERATED ALWAYS AS IDENTITY,
    created_at timestamptz NOT NULL DEFAULT pg_catalog.now(),
    channel text NOT NULL,
    payload text NOT NULL,
    PRIMARY KEY (xid, seq)
);
CREATE TABLE IF NOT EXISTS {{pruned_table}} (
    one boolean PRIMARY KEY DEFAULT true CHECK (one),
    pruned_xid pg_catalog.xid8 NOT NULL DEFAULT '0',
    pruned_seq bigint NOT NULL DEFAULT 0,
    pruned_rows bigint NOT NULL DEFAULT 0
);
INSERT INTO {{pruned_table}} DEFAULT VALUES ON CONFLICT DO NOTHING;
