//! Data dictionary and job views that DBA scripts query next to the V$ views: DBA_DATA_FILES,
//! DBA_TABLESPACES, DBA_TEMP_FILES, V$RMAN_BACKUP_JOB_DETAILS, V$BACKUP_SET_DETAILS,
//! V$SESSION_LONGOPS, V$RECOVERY_AREA_USAGE. Views over the control-file tables, created in
//! every control file that lacks them.

use rusqlite::Connection;

use super::Result;

const SCHEMA: &str = r#"
CREATE VIEW IF NOT EXISTS "DBA_DATA_FILES" AS SELECT
    d."NAME" AS "FILE_NAME", d."FILE#" AS "FILE_ID", t."NAME" AS "TABLESPACE_NAME",
    d."BYTES" AS "BYTES", d."BLOCKS" AS "BLOCKS", 'AVAILABLE' AS "STATUS",
    d."RFILE#" AS "RELATIVE_FNO", 'NO' AS "AUTOEXTENSIBLE", 0 AS "MAXBYTES", 0 AS "MAXBLOCKS",
    0 AS "INCREMENT_BY", d."BYTES" - 8 * d."BLOCK_SIZE" AS "USER_BYTES",
    d."BLOCKS" - 8 AS "USER_BLOCKS", d."STATUS" AS "ONLINE_STATUS",
    'OFF' AS "LOST_WRITE_PROTECT"
FROM cf_datafile d JOIN cf_tablespace t ON t."TS#" = d."TS#";

CREATE VIEW IF NOT EXISTS "DBA_TABLESPACES" AS SELECT
    t."NAME" AS "TABLESPACE_NAME",
    (SELECT min(d."BLOCK_SIZE") FROM cf_datafile d WHERE d."TS#" = t."TS#") AS "BLOCK_SIZE",
    65536 AS "INITIAL_EXTENT", NULL AS "NEXT_EXTENT", 1 AS "MIN_EXTENTS",
    2147483645 AS "MAX_EXTENTS", 2147483645 AS "MAX_SIZE", NULL AS "PCT_INCREASE",
    65536 AS "MIN_EXTLEN",
    CASE WHEN EXISTS (SELECT 1 FROM cf_datafile d WHERE d."TS#" = t."TS#"
                      AND d."STATUS" IN ('OFFLINE', 'RECOVER'))
         THEN 'OFFLINE' ELSE 'ONLINE' END AS "STATUS",
    CASE WHEN t.contents = 'UNDO' THEN 'UNDO' ELSE 'PERMANENT' END AS "CONTENTS",
    'LOGGING' AS "LOGGING", 'NO' AS "FORCE_LOGGING", 'LOCAL' AS "EXTENT_MANAGEMENT",
    'SYSTEM' AS "ALLOCATION_TYPE",
    CASE WHEN t.contents IN ('SYSTEM', 'UNDO') THEN 'MANUAL' ELSE 'AUTO' END
        AS "SEGMENT_SPACE_MANAGEMENT",
    t."BIGFILE" AS "BIGFILE", 'NO' AS "ENCRYPTED"
FROM cf_tablespace t;

CREATE VIEW IF NOT EXISTS "DBA_TEMP_FILES" AS SELECT
    NULL AS "FILE_NAME", NULL AS "FILE_ID", NULL AS "TABLESPACE_NAME", NULL AS "BYTES",
    NULL AS "BLOCKS", NULL AS "STATUS", NULL AS "RELATIVE_FNO", NULL AS "AUTOEXTENSIBLE",
    NULL AS "MAXBYTES", NULL AS "MAXBLOCKS", NULL AS "INCREMENT_BY", NULL AS "USER_BYTES",
    NULL AS "USER_BLOCKS"
WHERE 0;

CREATE VIEW IF NOT EXISTS "V$RMAN_BACKUP_JOB_DETAILS" AS SELECT
    s."RECID" AS "SESSION_KEY", s."RECID" AS "SESSION_RECID", s."STAMP" AS "SESSION_STAMP",
    s."COMMAND_ID" AS "COMMAND_ID", s."START_TIME" AS "START_TIME", s."END_TIME" AS "END_TIME",
    c.input AS "INPUT_BYTES", c.output AS "OUTPUT_BYTES",
    c.device AS "OUTPUT_DEVICE_TYPE", c.autobackups AS "AUTOBACKUP_COUNT",
    CASE WHEN c.autobackups > 0 THEN 'YES' ELSE 'NO' END AS "AUTOBACKUP_DONE",
    s."STATUS" AS "STATUS", c.input_type AS "INPUT_TYPE", 'NO' AS "OPTIMIZED",
    round((coalesce(s."END_TIME", SYSDATE()) - s."START_TIME") * 86400) AS "ELAPSED_SECONDS",
    CASE WHEN c.output > 0 THEN 1.0 * c.input / c.output ELSE 0 END AS "COMPRESSION_RATIO",
    sim_size_display(c.input) AS "INPUT_BYTES_DISPLAY",
    sim_size_display(c.output) AS "OUTPUT_BYTES_DISPLAY",
    sim_time_display(round((coalesce(s."END_TIME", SYSDATE()) - s."START_TIME") * 86400))
        AS "TIME_TAKEN_DISPLAY"
FROM cf_rman_status s JOIN (
    SELECT "SESSION_RECID" AS session, sum("INPUT_BYTES") AS input,
        sum("OUTPUT_BYTES") AS output, max("OUTPUT_DEVICE_TYPE") AS device,
        sum(CASE WHEN "OPERATION" LIKE '%AUTOBACKUP%' THEN 1 ELSE 0 END) AS autobackups,
        (SELECT b."OBJECT_TYPE" FROM cf_rman_status b
         WHERE b."SESSION_RECID" = x."SESSION_RECID" AND b."ROW_LEVEL" = 1
           AND b."OPERATION" = 'BACKUP' AND b."OBJECT_TYPE" IS NOT NULL
         ORDER BY b."RECID" LIMIT 1) AS input_type
    FROM cf_rman_status x WHERE "ROW_LEVEL" >= 1 GROUP BY "SESSION_RECID"
    HAVING sum(CASE WHEN "OPERATION" = 'BACKUP' THEN 1 ELSE 0 END) > 0
) c ON c.session = s."RECID"
WHERE s."ROW_LEVEL" = 0;

CREATE VIEW IF NOT EXISTS "V$BACKUP_SET_DETAILS" AS SELECT
    st."SESSION_RECID" AS "SESSION_KEY", st."SESSION_RECID" AS "SESSION_RECID",
    st."SESSION_STAMP" AS "SESSION_STAMP", b."RECID" AS "BS_KEY", b."RECID" AS "RECID",
    b."STAMP" AS "STAMP", b."SET_STAMP" AS "SET_STAMP", b."SET_COUNT" AS "SET_COUNT",
    b."BACKUP_TYPE" AS "BACKUP_TYPE", b."CONTROLFILE_INCLUDED" AS "CONTROLFILE_INCLUDED",
    b."INCREMENTAL_LEVEL" AS "INCREMENTAL_LEVEL", b."PIECES" AS "PIECES",
    b."START_TIME" AS "START_TIME", b."COMPLETION_TIME" AS "COMPLETION_TIME",
    b."ELAPSED_SECONDS" AS "ELAPSED_SECONDS", b."BLOCK_SIZE" AS "BLOCK_SIZE",
    b."KEEP" AS "KEEP", b."KEEP_UNTIL" AS "KEEP_UNTIL", b."KEEP_OPTIONS" AS "KEEP_OPTIONS",
    p."DEVICE_TYPE" AS "DEVICE_TYPE", p."COMPRESSED" AS "COMPRESSED",
    p.num AS "NUM_COPIES", p.bytes AS "OUTPUT_BYTES",
    (SELECT sum(f."BLOCKS" * f."BLOCK_SIZE") FROM cf_backup_datafile f
     WHERE f."SET_STAMP" = b."SET_STAMP" AND f."SET_COUNT" = b."SET_COUNT") AS "ORIGINAL_INPUT_BYTES",
    sim_size_display(p.bytes) AS "OUTPUT_BYTES_DISPLAY",
    sim_time_display(b."ELAPSED_SECONDS") AS "TIME_TAKEN_DISPLAY",
    b."MULTI_SECTION" AS "MULTI_SECTION"
FROM cf_backup_set b JOIN (
    SELECT "SET_STAMP" AS set_stamp, "SET_COUNT" AS set_count, max("DEVICE_TYPE") AS "DEVICE_TYPE",
        max("COMPRESSED") AS "COMPRESSED", count(DISTINCT "COPY#") AS num, sum("BYTES") AS bytes,
        max("RMAN_STATUS_RECID") AS status_recid
    FROM cf_backup_piece WHERE "STATUS" = 'A' GROUP BY "SET_STAMP", "SET_COUNT"
) p ON p.set_stamp = b."SET_STAMP" AND p.set_count = b."SET_COUNT"
LEFT JOIN cf_rman_status st ON st."RECID" = p.status_recid;

CREATE TABLE IF NOT EXISTS sim_longops (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    sid INTEGER, opname TEXT, set_count INTEGER, sofar INTEGER, totalwork INTEGER,
    start_time REAL, last_update REAL
);

CREATE VIEW IF NOT EXISTS "V$SESSION_LONGOPS" AS SELECT
    l.sid AS "SID", 0 AS "SERIAL#", l.opname AS "OPNAME", NULL AS "TARGET",
    'Set Count' AS "TARGET_DESC", l.sofar AS "SOFAR", l.totalwork AS "TOTALWORK",
    'Blocks' AS "UNITS", l.start_time AS "START_TIME", l.last_update AS "LAST_UPDATE_TIME",
    CASE WHEN l.sofar > 0 AND l.sofar < l.totalwork
         THEN round((l.last_update - l.start_time) * 86400 * (l.totalwork - l.sofar) / l.sofar)
         ELSE 0 END AS "TIME_REMAINING",
    round((l.last_update - l.start_time) * 86400) AS "ELAPSED_SECONDS",
    l.opname || ': Set Count ' || l.set_count || ': ' || l.sofar || ' out of ' || l.totalwork
        || ' Blocks done' AS "MESSAGE",
    0 AS "CONTEXT", 0 AS "CON_ID"
FROM sim_longops l
UNION ALL SELECT
    s."SID" AS "SID", 0 AS "SERIAL#",
    'RMAN: aggregate input' AS "OPNAME", NULL AS "TARGET", NULL AS "TARGET_DESC",
    s."INPUT_BYTES" / 8192 AS "SOFAR", s."INPUT_BYTES" / 8192 AS "TOTALWORK",
    'Blocks' AS "UNITS", s."START_TIME" AS "START_TIME",
    coalesce(s."END_TIME", SYSDATE()) AS "LAST_UPDATE_TIME", 0 AS "TIME_REMAINING",
    round((coalesce(s."END_TIME", SYSDATE()) - s."START_TIME") * 86400) AS "ELAPSED_SECONDS",
    NULL AS "MESSAGE", s."COMMAND_ID" AS "CONTEXT", 0 AS "CON_ID"
FROM cf_rman_status s WHERE s."ROW_LEVEL" = 1 AND s."OPERATION" IN ('BACKUP', 'RESTORE');

CREATE VIEW IF NOT EXISTS "V$RECOVERY_AREA_USAGE" AS
SELECT 'CONTROL FILE' AS "FILE_TYPE", 0 AS "PERCENT_SPACE_USED",
    0 AS "PERCENT_SPACE_RECLAIMABLE", 0 AS "NUMBER_OF_FILES", 0 AS "CON_ID"
UNION ALL SELECT 'REDO LOG', 0, 0, 0, 0
UNION ALL SELECT 'ARCHIVED LOG', 0, 0, 0, 0
UNION ALL SELECT 'BACKUP PIECE', 0, 0, 0, 0
UNION ALL SELECT 'IMAGE COPY', 0, 0, 0, 0
UNION ALL SELECT 'FLASHBACK LOG', 0, 0, 0, 0
UNION ALL SELECT 'FOREIGN ARCHIVED LOG', 0, 0, 0, 0
UNION ALL SELECT 'AUXILIARY DATAFILE COPY', 0, 0, 0, 0;
"#;

/// Creates these views if the control file lacks them.
pub(crate) fn ensure_schema(conn: &Connection) -> Result<()> {
    conn.execute_batch(SCHEMA)?;
    Ok(())
}
