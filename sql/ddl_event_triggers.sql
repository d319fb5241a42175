-- The DDL event triggers (install --ddl), both calling the one DDL function.
DROP EVENT TRIGGER IF EXISTS {{trigger_end}};
CREATE EVENT TRIGGER {{trigger_end}} ON ddl_command_end
    EXECUTE FUNCTION {{function}}();
DROP EVENT TRIGGER IF EXISTS {{trigger_drop}};
CREATE EVENT TRIGGER {{trigger_drop}} ON sql_drop
    EXECUTE FUNCTION {{function}}();
