-- Cache schema, migration 3 (pgcachewatch's own; a postgres-cache client treats
-- any version >= 2 as current and keeps working):
--   * times from now(), not timezone('UTC', now()): that is a timestamp without
--     time zone, read back in the session's TimeZone, so outside UTC sessions
--     updated_at was shifted and cleanup removed rows hours early or late;
--   * a session that set pgcachewatch.cache_notify = 'client' (a pgcachewatch
--     client with notify_after_commit) sends its own invalidations after commit,
--     batched: the trigger leaves its writes alone;
--   * a key too long to name in a notification (payload over PostgreSQL's 7999
--     bytes) no longer fails the write: the notification is skipped. pgcachewatch
--     never keeps such keys in its L1, so it needs none.
ALTER TABLE {{entries_table}}
    ALTER COLUMN created_at SET DEFAULT now(),
    ALTER COLUMN updated_at SET DEFAULT now();

CREATE OR REPLACE FUNCTION {{set_updated_function}}() RETURNS trigger AS $$
BEGIN
    NEW.updated_at := now();
    RETURN NEW;
END;
$$ LANGUAGE plpgsql;

CREATE OR REPLACE FUNCTION {{broadcast_function}}()
RETURNS trigger AS $$
DECLARE
    rec {{entries_table}}%ROWTYPE;
    target_channel text := COALESCE(TG_ARGV[0], {{notify_channel_literal}});
    payload text;
BEGIN
    IF current_setting('pgcachewatch.cache_notify', true) = 'client' THEN
        RETURN NULL;
    END IF;
    IF TG_OP = 'DELETE' THEN
        rec := OLD;
    ELSE
        rec := NEW;
    END IF;

    payload := CASE WHEN TG_OP = 'DELETE' THEN 'd' ELSE 'u' END ||
        rec.version::text || '|' || encode(convert_to(rec.cache_key, 'UTF8'), 'hex');

    IF octet_length(payload) <= 7999 THEN
        PERFORM pg_notify(target_channel, payload);
    END IF;
    RETURN NULL; -- an AFTER trigger's result is ignored
END;
$$ LANGUAGE plpgsql;

CREATE OR REPLACE FUNCTION {{cleanup_function}}(limit_rows integer DEFAULT 500)
RETURNS integer AS $$
DECLARE
    removed integer;
BEGIN
    WITH expired AS (
        SELECT cache_key
        FROM {{entries_table}}
        WHERE expires_at IS NOT NULL AND expires_at <= now()
        LIMIT limit_rows
    )
    DELETE FROM {{entries_table}} ce
    USING expired e
    WHERE ce.cache_key = e.cache_key;

    GET DIAGNOSTICS removed = ROW_COUNT;
    RETURN COALESCE(removed, 0);
END;
$$ LANGUAGE plpgsql;
