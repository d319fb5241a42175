-- The superuser check of install --ddl. Only a superuser may create event
-- triggers: say so plainly, before anything is created, instead of PostgreSQL's
-- bare "permission denied".
DO {{tag}}
BEGIN
    IF NOT coalesce((SELECT rolsuper FROM pg_catalog.pg_roles
                      WHERE rolname = current_user), false) THEN
        RAISE EXCEPTION 'pgcachewatch install --ddl needs a superuser: only a superuser may create event triggers, and role % is not one', current_user
            USING ERRCODE = '42501';
    END IF;
END
{{tag}};
