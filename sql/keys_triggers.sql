-- Transition tables need one trigger per event; TRUNCATE has no rows to report.
DROP TRIGGER IF EXISTS {{trigger}} ON {{table}};
CREATE TRIGGER {{trigger}} AFTER TRUNCATE ON {{table}}
    FOR EACH STATEMENT EXECUTE FUNCTION {{function}}();
DROP TRIGGER IF EXISTS {{trigger_ins}} ON {{table}};
CREATE TRIGGER {{trigger_ins}} AFTER INSERT ON {{table}}
    REFERENCING NEW TABLE AS pgcw_new
    FOR EACH STATEMENT EXECUTE FUNCTION {{keys_function}}();
DROP TRIGGER IF EXISTS {{trigger_upd}} ON {{table}};
CREATE TRIGGER {{trigger_upd}} AFTER UPDATE ON {{table}}
    REFERENCING OLD TABLE AS pgcw_old NEW TABLE AS pgcw_new
    FOR EACH STATEMENT EXECUTE FUNCTION {{keys_function}}();
DROP TRIGGER IF EXISTS {{trigger_del}} ON {{table}};
CREATE TRIGGER {{trigger_del}} AFTER DELETE ON {{table}}
    REFERENCING OLD TABLE AS pgcw_old
    FOR EACH STATEMENT EXECUTE FUNCTION {{keys_function}}();
