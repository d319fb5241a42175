-- What uninstall --source logical finds: the channel's slot ($1) and publication
-- ($2), whichever exist, with the pid of the process using the slot, if any.
SELECT 's' AS kind, slot_name::text AS name, active_pid
  FROM pg_catalog.pg_replication_slots WHERE slot_name = $1
UNION ALL
SELECT 'p', pubname::text, NULL
  FROM pg_catalog.pg_publication WHERE pubname = $2
ORDER BY 1 DESC;
