-- Cache schema, migration 1: postgres-cache's migration 1 (the table, its expiry
-- index, the updated_at and broadcast triggers, the cleanup function), with the
-- table UNLOGGED unless the cache was configured LOGGED ({{durability}} is
-- "UNLOGGED" or empty). Names are quoted by the library; the channel is a literal.
CREATE {{durability}} TABLE IF NOT EXISTS {{entries_table}} (
    cache_key text PRIMARY KEY,
    value bytea NOT NULL,
    version bigint NOT NULL DEFAULT 1,
    expires_at timestamptz,
    created_at timestamptz NOT NULL DEFAULT timezone('UTC', now()),
    updated_at timestamptz NOT NULL DEFAULT timezone('UTC', now())
);

CREATE INDEX IF NOT EXISTS {{expires_index}} ON {{entries_table}} (expires_at);

CREATE OR REPLACE FUNCTION {{set_updated_function}}() RETURNS trigger AS $$
BEGIN
    NEW.updated_at := timezone('UTC', now());
    RETURN NEW;
END;
$$ LANGUAGE plpgsql;

DROP TRIGGER IF EXISTS {{set_updated_trigger}} ON {{entries_table}};
CREATE TRIGGER {{set_updated_trigger}}
BEFORE UPDATE ON {{entries_table}}
FOR EACH ROW
EXECUTE FUNCTION {{set_updated_function}}();

CREATE OR REPLACE FUNCTION {{broadcast_function}}()
RETURNS trigger AS $$
DECLARE
    rec {{entries_table}}%ROWTYPE;
    target_channel text := COALESCE(TG_ARGV[0], {{notify_channel_literal}});
BEGIN
    IF TG_OP = 'DELETE' THEN
        rec := OLD;
    ELSE
        rec := NEW;
    END IF;

    PERFORM pg_notify(
        target_channel,
        json_build_object(
            'key', rec.cache_key,
            'version', rec.version,
            'event', TG_OP
        )::text
    );

    IF TG_OP = 'DELETE' THEN
        RETURN OLD;
    ELSE
        RETURN NEW;
    END IF;
END;
$$ LANGUAGE plpgsql;

DROP TRIGGER IF EXISTS {{broadcast_trigger}} ON {{entries_table}};
CREATE TRIGGER {{broadcast_trigger}}
AFTER INSERT OR UPDATE OR DELETE ON {{entries_table}}
FOR EACH ROW
EXECUTE FUNCTION {{broadcast_function}}({{notify_channel_literal}});

CREATE OR REPLACE FUNCTION {{cleanup_function}}(limit_rows integer DEFAULT 500)
RETURNS integer AS $$
DECLARE
    removed integer;
BEGIN
    WITH expired AS (
        SELECT cache_key
        FROM {{entries_table}}
        WHERE expires_at IS NOT NULL AND expires_at <= timezone('UTC', now())
        LIMIT limit_rows
    )
    DELETE FROM {{entries_table}} ce
    USING expired e
    WHERE ce.cache_key = e.cache_key;

    GET DIAGNOSTICS removed = ROW_COUNT;
    RETURN COALESCE(removed, 0);
END;
$$ LANGUAGE plpgsql;
