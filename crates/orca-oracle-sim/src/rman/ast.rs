//! The parsed form of the RMAN commands the simulator understands.

/// A top-level command with the source line it starts on.
#[derive(Debug, Clone, PartialEq)]
pub struct Stmt {
    pub cmd: Command,
    pub line: usize,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum DeviceType {
    Disk,
    Sbt,
}

impl DeviceType {
    /// As RMAN prints it (and V$BACKUP_PIECE.DEVICE_TYPE stores it).
    pub fn name(self) -> &'static str {
        match self {
            DeviceType::Disk => "DISK",
            DeviceType::Sbt => "SBT_TAPE",
        }
    }
}

/// A time given as an SQL date expression ('SYSDATE-1', "to_date(...)"), evaluated at run time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TimeExpr(pub String);

#[derive(Debug, Clone, PartialEq)]
pub enum Command {
    Run(Vec<Stmt>),
    Allocate(Allocate),
    Release(Option<String>),
    Configure(Configure),
    Set(SetCmd),
    Send {
        channel: Option<String>,
        device: Option<DeviceType>,
        text: String,
    },
    Backup(Box<Backup>),
    /// BACKUP BACKUPSET ALL (None) | n[, ...] [FORMAT 'fmt'[, ...]].
    BackupBackupset {
        sets: Option<Vec<u64>>,
        formats: Vec<String>,
    },
    RecoverCopy {
        datafiles: Option<Vec<u32>>,
        tag: Option<String>,
        until: Option<TimeExpr>,
    },
    Restore(Restore),
    Recover(Recover),
    Validate(Validate),
    Delete(Delete),
    Crosscheck(Crosscheck),
    List(List),
    Report(Report),
    Catalog(Catalog),
    Sql(String),
    /// SHOW ALL (None) or SHOW <setting> (its CONFIGURE name, as `RETENTION POLICY`).
    Show(Option<String>),
    Change(Change),
    Startup {
        force: bool,
        mount_only: bool,
        nomount: bool,
    },
    Shutdown {
        abort: bool,
    },
    AlterDatabase(AlterDatabase),
    Switch(super::newname::Switch),
    BlockRecover(super::blockrecover::BlockRecover),
    Exit,
    /// Lost control file / new host / incarnations.
    Dr(DrCommand),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AlterDatabase {
    Mount,
    Open { resetlogs: bool },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SetCmd {
    CommandId(String),
    Until(Until),
    Dbid(u64),
    Echo(bool),
    Newname(super::newname::Newname),
    /// SET CONTROLFILE AUTOBACKUP FORMAT FOR DEVICE TYPE d TO 'fmt' (inside RUN).
    AutobackupFormat {
        device: DeviceType,
        format: String,
    },
    /// SET ENCRYPTION ON [IDENTIFIED BY p [ONLY]] (None: SET ENCRYPTION OFF).
    Encryption(Option<EncryptionSet>),
    /// SET DECRYPTION IDENTIFIED BY p [, p ...].
    Decryption(Vec<String>),
}

/// SET ENCRYPTION ON: transparent (no password, the wallet), dual (a password and the
/// wallet) or password-only (ONLY).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EncryptionSet {
    pub password: Option<String>,
    pub only: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Until {
    Time(TimeExpr),
    Scn(u64),
    Sequence { sequence: u64, thread: u32 },
}

/// ALLOCATE CHANNEL (inside RUN) or ALLOCATE CHANNEL FOR MAINTENANCE (outside).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Allocate {
    /// None for FOR MAINTENANCE channels (named ORA_MAINT_<dev>_n).
    pub name: Option<String>,
    pub device: DeviceType,
    pub opts: ChannelOptions,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ChannelOptions {
    pub parms: Option<String>,
    pub formats: Vec<String>,
    pub maxpiecesize: Option<u64>,
    pub maxopenfiles: Option<u32>,
    pub rate: Option<u64>,
    pub send: Option<String>,
    pub connect: Option<String>,
    pub trace: Option<u64>,
}

impl ChannelOptions {
    /// Options set here override those of `base` (ALLOCATE over CONFIGURE CHANNEL).
    pub fn over(&self, base: &ChannelOptions) -> ChannelOptions {
        ChannelOptions {
            parms: self.parms.clone().or_else(|| base.parms.clone()),
            formats: if self.formats.is_empty() {
                base.formats.clone()
            } else {
                self.formats.clone()
            },
            maxpiecesize: self.maxpiecesize.or(base.maxpiecesize),
            maxopenfiles: self.maxopenfiles.or(base.maxopenfiles),
            rate: self.rate.or(base.rate),
            send: self.send.clone().or_else(|| base.send.clone()),
            connect: self.connect.clone().or_else(|| base.connect.clone()),
            trace: self.trace.or(base.trace),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RetentionPolicy {
    RecoveryWindow(u32),
    Redundancy(u32),
    None,
}

/// CONFIGURE: `value` None means CLEAR.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Configure {
    Retention(Option<RetentionPolicy>),
    Channel {
        number: Option<u32>,
        device: DeviceType,
        opts: Option<ChannelOptions>,
    },
    Device {
        device: DeviceType,
        setting: Option<DeviceSetting>,
    },
    DefaultDevice(Option<DeviceType>),
    ControlfileAutobackup(Option<bool>),
    AutobackupFormat {
        device: DeviceType,
        format: Option<String>,
    },
    /// Settings accepted and stored but without effect in the simulator
    /// (BACKUP OPTIMIZATION, SNAPSHOT CONTROLFILE NAME, ARCHIVELOG DELETION POLICY, ...).
    Other {
        name: String,
        value: Option<String>,
    },
    /// CONFIGURE EXCLUDE FOR TABLESPACE t [CLEAR].
    Exclude {
        tablespace: String,
        clear: bool,
    },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceSetting {
    pub parallelism: u32,
    pub backup_type: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Incremental {
    pub level: u8,
    pub cumulative: bool,
}

/// KEEP FOREVER | KEEP UNTIL TIME 't' [LOGS | NOLOGS] [RESTORE POINT name] of a BACKUP.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Keep {
    /// None: FOREVER.
    pub until: Option<TimeExpr>,
    /// LOGS (Some(true)) / NOLOGS (Some(false)); neither: as the database's state says.
    pub logs: Option<bool>,
    pub restore_point: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NotBackedUp {
    /// NOT BACKED UP (never backed up).
    Ever,
    Since(TimeExpr),
    Times(u32),
}

/// Operands that may be given for the whole BACKUP or for one object.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BackupOpts {
    pub filesperset: Option<u32>,
    pub section_size: Option<u64>,
    pub maxsetsize: Option<u64>,
    pub tag: Option<String>,
    pub formats: Vec<String>,
    pub not_backed_up: Option<NotBackedUp>,
    /// DELETE INPUT (false) / DELETE ALL INPUT (true).
    pub delete_input: Option<bool>,
    pub copies: Option<u32>,
    pub pool: Option<u32>,
    /// KEEP ...: an archival backup, outside the retention policy.
    pub keep: Option<Keep>,
    pub include_controlfile: bool,
    pub skip_inaccessible: bool,
    /// FORCE: back up even what BACKUP OPTIMIZATION would skip.
    pub force: bool,
    /// NOEXCLUDE: BACKUP DATABASE takes tablespaces CONFIGURE EXCLUDE leaves out.
    pub noexclude: bool,
    /// CHANNEL c: the sets are written on that allocated channel only.
    pub channel: Option<String>,
}

impl BackupOpts {
    /// Operands set here override `base`.
    pub fn over(&self, base: &BackupOpts) -> BackupOpts {
        BackupOpts {
            filesperset: self.filesperset.or(base.filesperset),
            section_size: self.section_size.or(base.section_size),
            maxsetsize: self.maxsetsize.or(base.maxsetsize),
            tag: self.tag.clone().or_else(|| base.tag.clone()),
            formats: if self.formats.is_empty() {
                base.formats.clone()
            } else {
                self.formats.clone()
            },
            not_backed_up: self
                .not_backed_up
                .clone()
                .or_else(|| base.not_backed_up.clone()),
            delete_input: self.delete_input.or(base.delete_input),
            copies: self.copies.or(base.copies),
            pool: self.pool.or(base.pool),
            keep: self.keep.clone().or_else(|| base.keep.clone()),
            include_controlfile: self.include_controlfile || base.include_controlfile,
            skip_inaccessible: self.skip_inaccessible || base.skip_inaccessible,
            force: self.force || base.force,
            noexclude: self.noexclude || base.noexclude,
            channel: self.channel.clone().or_else(|| base.channel.clone()),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ArchivelogRange {
    All,
    /// FROM SEQUENCE / UNTIL SEQUENCE / SEQUENCE n / SEQUENCE BETWEEN a AND b, optional THREAD.
    Sequence {
        from: Option<u64>,
        until: Option<u64>,
        thread: Option<u32>,
    },
    Scn {
        from: Option<u64>,
        until: Option<u64>,
    },
    Time {
        from: Option<TimeExpr>,
        until: Option<TimeExpr>,
    },
    /// COMPLETED AFTER / BEFORE / BETWEEN: by the time the log was archived.
    Completed {
        after: Option<TimeExpr>,
        before: Option<TimeExpr>,
    },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BackupObject {
    Database,
    Datafile(Vec<u32>),
    Tablespace(Vec<String>),
    Archivelog(ArchivelogRange),
    CurrentControlfile,
    Spfile,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BackupSpec {
    pub object: BackupObject,
    pub opts: BackupOpts,
    /// DATAFILE '<name>': resolved to file numbers (into `object`) when the command runs.
    pub datafile_names: Vec<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Backup {
    pub incremental: Option<Incremental>,
    /// INCREMENTAL FROM SCN n: every block changed after n, tied to no level-0 parent.
    pub from_scn: Option<u64>,
    pub as_copy: bool,
    /// AS COMPRESSED BACKUPSET: Some(true); AS BACKUPSET: Some(false); neither: the
    /// configured BACKUP TYPE of the device.
    pub compressed: Option<bool>,
    pub validate: bool,
    /// FOR RECOVER OF COPY [WITH TAG 't']: Some(tag).
    pub recover_of_copy: Option<Option<String>>,
    pub datafilecopy_format: Option<String>,
    pub device: Option<DeviceType>,
    pub opts: BackupOpts,
    pub specs: Vec<BackupSpec>,
    /// PLUS ARCHIVELOG and its own operands.
    pub plus_archivelog: Option<BackupOpts>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RestoreObject {
    Database,
    Datafile(Vec<u32>),
    Tablespace(Vec<String>),
    Archivelog(ArchivelogRange),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Restore {
    pub object: RestoreObject,
    pub from_tag: Option<String>,
    pub validate: bool,
    pub preview: bool,
    /// PREVIEW SUMMARY.
    pub preview_summary: bool,
    pub until: Option<Until>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RecoverObject {
    Database,
    Datafile(Vec<u32>),
    Tablespace(Vec<String>),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Recover {
    pub object: RecoverObject,
    pub until: Option<Until>,
    pub noredo: bool,
    pub delete_archivelog: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Validate {
    Database,
    Datafile(Vec<u32>),
    Tablespace(Vec<String>),
    Backupset(Vec<u64>),
}

/// A piece named by handle or by BP key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PieceRef {
    Handle(String),
    Key(u64),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DeleteWhat {
    Backuppiece(Vec<PieceRef>),
    Backupset(Vec<u64>),
    Obsolete(Option<RetentionPolicy>),
    Expired(ListKind),
    /// BACKUP [OF object] [TAG t]: with OF, the sets holding that object, whole.
    Backup {
        tag: Option<String>,
        of: Option<BackupObject>,
    },
    Archivelog {
        range: ArchivelogRange,
        backed_up: Option<(u32, Option<DeviceType>)>,
    },
    /// COPY [OF DATABASE | OF DATAFILE n[, ...]] [TAG t] (files None: every copy).
    Copy {
        tag: Option<String>,
        files: Option<Vec<u32>>,
    },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delete {
    pub noprompt: bool,
    pub force: bool,
    pub what: DeleteWhat,
    pub device: Option<DeviceType>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ListKind {
    Backup,
    Archivelog(ArchivelogRange),
    Copy,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Crosscheck {
    pub kind: ListKind,
    pub pieces: Vec<PieceRef>,
    pub tag: Option<String>,
    /// BACKUP OF object: the pieces of the sets holding it, as LIST and DELETE select them.
    pub of: Option<BackupObject>,
    pub device: Option<DeviceType>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum List {
    Backup {
        summary: bool,
        expired: bool,
        of: Option<BackupObject>,
        tag: Option<String>,
        sets: Vec<u64>,
        device: Option<DeviceType>,
        /// RECOVERABLE: only sets a restore can use (complete, every piece AVAILABLE).
        recoverable: bool,
    },
    Copy,
    Archivelog(ArchivelogRange),
    /// LIST EXPIRED ARCHIVELOG: logs a crosscheck did not find.
    ExpiredArchivelog(ArchivelogRange),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Report {
    Obsolete {
        policy: Option<RetentionPolicy>,
        device: Option<DeviceType>,
    },
    Schema,
    /// REPORT NEED BACKUP [REDUNDANCY n | DAYS n | RECOVERY WINDOW OF n DAYS] [DATABASE]
    /// (None: the configured retention policy).
    NeedBackup(Option<NeedBackup>),
    /// REPORT UNRECOVERABLE: files changed by NOLOGGING operations since their last backup.
    Unrecoverable,
}

/// What REPORT NEED BACKUP measures.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NeedBackup {
    /// Fewer than n full or level-0 backups (sets or copies).
    Redundancy(u32),
    /// Recovery would need more than n days of archived logs.
    Days(u32),
    /// No backup old enough to recover to any point of the last n days.
    Window(u32),
}

/// CHANGE BACKUPSET n[, ...] | BACKUPPIECE n|'handle'[, ...] <action>.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Change {
    pub what: ChangeWhat,
    pub action: ChangeAction,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ChangeWhat {
    Backupset(Vec<u64>),
    Backuppiece(Vec<PieceRef>),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ChangeAction {
    Unavailable,
    Available,
    Uncatalog,
    /// KEEP FOREVER (None) or KEEP UNTIL TIME t.
    Keep(Option<TimeExpr>),
    Nokeep,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Catalog {
    StartWith {
        prefix: String,
        noprompt: bool,
    },
    Backuppiece {
        device: Option<DeviceType>,
        handles: Vec<String>,
    },
    Datafilecopy {
        paths: Vec<String>,
        level0: bool,
        tag: Option<String>,
    },
    Archivelog(Vec<String>),
}

/// The commands of disaster recovery: restoring the spfile and control file without a
/// mounted control file, and incarnations.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DrCommand {
    /// RESTORE SPFILE [TO [PFILE] 'path'] FROM ...
    RestoreSpfile {
        to: Option<String>,
        from: FileSource,
    },
    /// RESTORE CONTROLFILE [TO 'path'] FROM ...
    RestoreControlfile {
        to: Option<String>,
        from: FileSource,
    },
    /// RESET DATABASE TO INCARNATION n
    ResetIncarnation(u32),
    /// LIST INCARNATION [OF DATABASE [name]]
    ListIncarnation,
}

/// Where a control file or spfile is restored from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FileSource {
    /// FROM AUTOBACKUP [MAXSEQ n] [MAXDAYS n]: search `%F` handles.
    Autobackup {
        maxseq: Option<u32>,
        maxdays: Option<u32>,
    },
    /// FROM 'handle'.
    Handle(String),
    /// No FROM: the backups the mounted control file records.
    Repository,
}

impl DrCommand {
    /// Name in RMAN-03002 ("failure of restore command").
    pub fn command_name(&self) -> &'static str {
        match self {
            DrCommand::RestoreSpfile { .. } | DrCommand::RestoreControlfile { .. } => "restore",
            DrCommand::ResetIncarnation(_) => "reset",
            DrCommand::ListIncarnation => "list",
        }
    }

    /// V$RMAN_STATUS.OPERATION, for commands that get a row.
    pub fn operation(&self) -> Option<&'static str> {
        match self {
            DrCommand::RestoreSpfile { .. } | DrCommand::RestoreControlfile { .. } => {
                Some("RESTORE")
            }
            DrCommand::ListIncarnation => Some("LIST"),
            DrCommand::ResetIncarnation(_) => None,
        }
    }
}
