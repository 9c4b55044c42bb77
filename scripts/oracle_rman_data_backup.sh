#!/bin/sh
# Template backup script for the ORCA backup store (incremental merge into a backup mount).
#
#   oracle_rman_data_backup.sh LOG_DIR STORE_HOST MOUNT
#
# 1. GET the mount's status; stop on an error or when too many recovery points wait for upload.
# 2. POST: start the backup; RMAN rolls the image copies in the mount forward
#    (BACKUP INCREMENTAL LEVEL 1 FOR RECOVER OF COPY + RECOVER COPY; the first run makes the
#    level-0 copies) and backs up the archived logs as a backup set into the mount.
# 3. POST uploadlog: the RMAN log goes with the recovery point (maps the database to its files).
# 4. PUT: the store takes the recovery point and uploads it to the vault.
#
# Environment: ORCA_STORE_PORT (9090), ORCA_STORE_SCHEME (http), ORCA_MOUNTPOINT (where this
# host mounts the export; default: the store's mount_path, i.e. the same path on both hosts),
# ORCA_RMAN_TAG (orca_incr_merge), RMAN (rman), ORACLE_SID and the Oracle environment as usual.
# Exit status: 0 success, 1 usage, 2 store refused or unreachable, 3 RMAN failed.

set -u

if [ $# -ne 3 ]; then
    echo "usage: $0 LOG_DIR STORE_HOST MOUNT" >&2
    exit 1
fi
LOG_DIR=$1
STORE_HOST=$2
MOUNT=$3
PORT=${ORCA_STORE_PORT:-9090}
SCHEME=${ORCA_STORE_SCHEME:-http}
TAG=${ORCA_RMAN_TAG:-orca_incr_merge}
RMAN=${RMAN:-rman}
BASE="$SCHEME://$STORE_HOST:$PORT/druva-phoenix/v1/mounts/$MOUNT"

if [ ! -d "$LOG_DIR" ] || [ ! -w "$LOG_DIR" ]; then
    echo "error: log directory $LOG_DIR does not exist or is not writable" >&2
    exit 1
fi
file_stamp=$(date +%Y%m%d_%H%M%S)
LOG="$LOG_DIR/rman_full_backup_$file_stamp.log"

# The value of a JSON field in the store's one-line answer (numbers, booleans, strings).
field() {
    printf '%s' "$1" | sed -n "s/.*\"$2\"[[:space:]]*:[[:space:]]*\"\{0,1\}\([^\",}]*\).*/\1/p"
}

# What each error code means for the person running this script.
explain() {
    case "$1" in
        4295622675) echo "the store is being decommissioned: wait until it is disabled, or contact the administrator" ;;
        4295622676) echo "the store was decommissioned: re-register it (orca store register) and restart its service" ;;
        4295622665) echo "mount '$MOUNT' does not exist on $STORE_HOST: names are case-sensitive; check the name and the store's address" ;;
        4295622669) echo "mount '$MOUNT' is in an inconsistent state on the store: ask the administrator to check it" ;;
        4295622667) echo "mount '$MOUNT' is marked for deletion: wait for the deletion or use another mount" ;;
        4295622670) echo "the store could not export the mount over NFS: clean up stale entries in /etc/exports on the store" ;;
        4295622659) echo "the store did not receive the start of this backup: run the script again from the start" ;;
        4295622664) echo "mount '$MOUNT' has too many recovery points waiting for upload: wait for the uploads, or raise max_pending in the store's configuration and restart it" ;;
        4295622663) echo "the restore path is missing on the store" ;;
        *) echo "the store refused the request" ;;
    esac
}

# call METHOD SUFFIX [curl args...]: the answer on success; a message and exit 2 otherwise.
call() {
    method=$1
    suffix=$2
    shift 2
    if ! answer=$(curl -sS -X "$method" "$@" "$BASE$suffix" 2>&1); then
        echo "error: cannot reach the backup store at $STORE_HOST:$PORT: $answer" >&2
        exit 2
    fi
    code=$(field "$answer" error_code)
    if [ -z "$code" ]; then
        echo "error: unexpected answer from the backup store to $method $suffix: $answer" >&2
        exit 2
    fi
    if [ "$code" != 0 ]; then
        msg=$(field "$answer" error_msg)
        echo "error: $method $suffix: $code $msg" >&2
        echo "       $(explain "$code")" >&2
        exit 2
    fi
    printf '%s' "$answer"
}

echo "checking mount $MOUNT on $STORE_HOST"
status=$(call GET /backup) || exit 2
if [ "$(field "$status" is_reached_max_snapshots)" = true ]; then
    echo "error: $(explain 4295622664)" >&2
    exit 2
fi

echo "starting the backup"
started=$(call POST /backup) || exit 2
mount_path=$(field "$started" mount_path)
MOUNTPOINT=${ORCA_MOUNTPOINT:-$mount_path}
if [ ! -d "$MOUNTPOINT" ]; then
    echo "error: the mount is not at $MOUNTPOINT on this host: mount $STORE_HOST:$mount_path there (NFS), or set ORCA_MOUNTPOINT" >&2
    exit 2
fi
mkdir -p "$MOUNTPOINT/archivelogs" || exit 2

CMDFILE="$LOG_DIR/rman_full_backup_$file_stamp.rcv"
cat > "$CMDFILE" <<RMAN
run {
  allocate channel c1 device type disk format '$MOUNTPOINT/%U';
  sql 'alter system archive log current';
  backup incremental level 1 for recover of copy with tag '$TAG' database;
  recover copy of database with tag '$TAG';
  sql 'alter system archive log current';
  backup as backupset format '$MOUNTPOINT/archivelogs/%d_%h_%e_%s_%t.arc' archivelog all not backed up;
}
RMAN

echo "running RMAN (log: $LOG)"
"$RMAN" target / cmdfile="$CMDFILE" log="$LOG" > /dev/null 2>&1
rman_status=$?
rm -f "$CMDFILE"
if [ $rman_status -ne 0 ]; then
    echo "error: RMAN failed (exit status $rman_status); see $LOG. No recovery point is taken." >&2
    exit 3
fi

echo "uploading the RMAN log"
call POST /uploadlog -H "Content-Type: multipart/form-data" -F "file=@$LOG" \
    -F "mountpoint=$MOUNTPOINT" -F "platform=linux" > /dev/null || exit 2

echo "taking the recovery point"
ended=$(call PUT /backup) || exit 2
echo "recovery point $(field "$ended" snap_name) of mount $MOUNT taken; it uploads in the background"
