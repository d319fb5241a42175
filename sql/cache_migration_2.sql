-- Cache schema, migration 2: postgres-cache's migration 2, the compact payload:
-- 'u' (insert or update) or 'd' (delete), the version, '|', the key's UTF-8 bytes
-- in hex.
CREATE OR REPLACE FUNCTION {{broadcast_function}}()
RETURNS trigger AS $$
DECLARE
    rec {{entries_table}}%ROWTYPE;
    target_channel text := COALESCE(TG_ARGV[0], {{notify_channel_literal}});
    event_code text;
    payload text;
BEGIN
    IF TG_OP = 'DELETE' THEN
        rec := OLD;
        event_code := 'd';
    ELSE
        rec := NEW;
        event_code := 'u';
    END IF;

    payload := event_code || rec.version::text || '|' ||
        encode(convert_to(rec.cache_key, 'UTF8'), 'hex');

    PERFORM pg_notify(target_channel, payload);

    IF TG_OP = 'DELETE' THEN
        RETURN OLD;
    ELSE
        RETURN NEW;
    END IF;
END;
$$ LANGUAGE plpgsql;
