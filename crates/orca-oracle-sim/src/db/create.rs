//! `oraclesim create`: a new database home.

use super::blockgen::{self, Profile, Rng};
use super::redo;
use super::{CONTROLFILE_REL, Database, DbError, Result, io_err, julian_of, oracle_now, schema};
use orca_oracle::block::{FileHeaderBlock, Rdba};
use orca_oracle::datafile::{COMPAT_19, FILE_TYPE_DATAFILE, STATUS_11G, STATUS_ONLINE_FUZZY};
use orca_oracle::{Checkpoint, DatafileHeader, OracleTime, Rba, Scn};
use rusqlite::params;
use std::fs::OpenOptions;
use std::io::Write;
use std::path::{Path, PathBuf};

/// What to create.
#[derive(Clone, Debug)]
pub struct CreateOptions {
    /// Home directory (created if missing; must not hold a database).
    pub home: PathBuf,
    /// DB_NAME: 1-8 letters/digits/_ starting with a letter (upper-cased).
    pub name: String,
    /// Number of datafiles: SYSTEM, SYSAUX, UNDOTBS1, USERS, extra undo
    /// tablespaces for RAC threads, then more USERS files.
    pub datafiles: u32,
    /// Size of each datafile in MiB.
    pub size_mb: u64,
    /// Datafile block size.
    pub block_size: usize,
    /// Redo threads (RAC instances).
    pub threads: u16,
    /// Seed for every generated value.
    pub seed: u64,
    /// Size of each online redo log in MiB.
    pub online_log_mb: u64,
    /// What the formatted blocks hold.
    pub fill: Fill,
    /// Other block sizes: one tablespace `TS_<n>K` of one `size_mb` datafile for each
    /// (Oracle's nonstandard block sizes, with their `db_<n>k_cache_size`).
    pub extra_block_sizes: Vec<usize>,
}

/// Content of the formatted blocks of a new database.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Fill {
    /// Rows of words, numbers and dates: compresses about 2-3x, like table data.
    #[default]
    Rows,
    /// Random bytes behind valid headers: incompressible, so a test's byte counts are not
    /// flattered by compression.
    Random,
}

impl CreateOptions {
    /// Options with Oracle-like defaults (8K blocks, 1 thread, 64 MiB logs).
    pub fn new(home: impl Into<PathBuf>, name: &str, datafiles: u32, size_mb: u64) -> Self {
        CreateOptions {
            home: home.into(),
            name: name.to_string(),
            datafiles,
            size_mb,
            block_size: 8192,
            threads: 1,
            seed: 1,
            online_log_mb: 64,
            fill: Fill::Rows,
            extra_block_sizes: Vec::new(),
        }
    }
}

/// One datafile to create.
struct FilePlan {
    file_no: u32,
    ts_no: u32,
    ts_name: String,
    path: PathBuf,
    profile: Profile,
    block_size: usize,
    blocks: u32,
    hwm: u32,
    creation_scn: Scn,
}

/// DB_NAME, upper case, if it is a valid one.
pub(super) fn validate_name(name: &str) -> Result<String> {
    let upper = name.to_ascii_uppercase();
    let ok = !upper.is_empty()
        && upper.len() <= 8
        && upper.starts_with(|c: char| c.is_ascii_alphabetic())
        && upper.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
    if !ok {
        return Err(DbError::Invalid(format!(
            "invalid database name {name:?}: use 1-8 letters, digits or _, starting with a letter"
        )));
    }
    Ok(upper)
}

fn validate(opts: &CreateOptions) -> Result<String> {
    let name = validate_name(&opts.name)?;
    orca_oracle::block::check_block_size(opts.block_size).map_err(|_| {
        DbError::Invalid(format!(
            "invalid --block-size {}: use 2048, 4096, 8192, 16384 or 32768",
            opts.block_size
        ))
    })?;
    if opts.block_size < 2048 {
        return Err(DbError::Invalid(format!(
            "invalid --block-size {}: datafile blocks are at least 2048 bytes",
            opts.block_size
        )));
    }
    for (i, &bs) in opts.extra_block_sizes.iter().enumerate() {
        if orca_oracle::block::check_block_size(bs).is_err()
            || bs < 2048
            || bs == opts.block_size
            || opts.extra_block_sizes[..i].contains(&bs)
        {
            return Err(DbError::Invalid(format!(
                "invalid --block-sizes {bs}: use 2048, 4096, 8192, 16384 or 32768, each once and \
                 not the database's block size {}",
                opts.block_size
            )));
        }
        if opts.size_mb.saturating_mul(1 << 20) / (bs as u64)
            < u64::from(blockgen::FIRST_SEG_BLOCK) + 8
        {
            return Err(DbError::Invalid(format!(
                "--size-mb {} is too small for a datafile of {bs}-byte blocks",
                opts.size_mb
            )));
        }
    }
    if !(1..=1000).contains(&opts.datafiles) {
        return Err(DbError::Invalid(format!(
            "invalid --datafiles {}: use 1 to 1000",
            opts.datafiles
        )));
    }
    if !(1..=8).contains(&opts.threads) {
        return Err(DbError::Invalid(format!(
            "invalid --threads {}: use 1 to 8",
            opts.threads
        )));
    }
    let blocks = opts.size_mb.saturating_mul(1 << 20) / opts.block_size as u64;
    if blocks < u64::from(blockgen::FIRST_SEG_BLOCK) + 8 {
        return Err(DbError::Invalid(format!(
            "--size-mb {} is too small: each datafile needs at least {} blocks",
            opts.size_mb,
            blockgen::FIRST_SEG_BLOCK + 8
        )));
    }
    if blocks > u64::from(orca_oracle::block::MAX_BLOCK_NO) {
        return Err(DbError::Invalid(format!(
            "--size-mb {} is too large: a smallfile datafile holds at most 4194303 blocks",
            opts.size_mb
        )));
    }
    if !(1..=4096).contains(&opts.online_log_mb) {
        return Err(DbError::Invalid(format!(
            "online log size {} MiB: use 1 to 4096",
            opts.online_log_mb
        )));
    }
    Ok(name)
}

/// Tablespace order: files are handed out in this order.
fn tablespace_sequence(threads: u16, n: u32) -> Vec<(u32, String, &'static str)> {
    let mut order: Vec<(u32, String, &'static str)> = vec![
        (0, "SYSTEM".into(), "SYSTEM"),
        (1, "SYSAUX".into(), "SYSAUX"),
        (2, "UNDOTBS1".into(), "UNDO"),
        (4, "USERS".into(), "USERS"),
    ];
    for t in 2..=threads {
        order.push((3 + u32::from(t), format!("UNDOTBS{t}"), "UNDO"));
    }
    while order.len() < n as usize {
        order.push((4, "USERS".into(), "USERS"));
    }
    order.truncate(n as usize);
    order
}

fn file_base_name(ts: &str) -> String {
    match ts {
        "SYSTEM" => "system".into(),
        "SYSAUX" => "sysaux".into(),
        t if t.starts_with("UNDOTBS") => "undotbs".into(),
        t => t.to_ascii_lowercase(),
    }
}

pub(super) fn create(opts: &CreateOptions) -> Result<Database> {
    let name = validate(opts)?;
    let home = &opts.home;
    if home.join(CONTROLFILE_REL).exists() {
        return Err(DbError::Invalid(format!(
            "{} already holds a database; remove it or choose another --home",
            home.display()
        )));
    }
    super::instance::reset_state(home)?;
    let data_dir = home.join("oradata").join(&name);
    for d in [
        home.join("control"),
        data_dir.clone(),
        home.join("onlinelog"),
        home.join("arch"),
        home.join("dbs"),
        home.join("backup"),
        home.join("trace"),
    ] {
        std::fs::create_dir_all(&d)
            .map_err(|e| io_err(format!("cannot create {}", d.display()), e))?;
    }
    let home = home
        .canonicalize()
        .map_err(|e| io_err(format!("cannot resolve {}", opts.home.display()), e))?;
    let data_dir = home.join("oradata").join(&name);

    let mut rng = Rng::new(blockgen::mix(&[opts.seed, 0xDB]));
    let dbid = 1_000_000_000 + rng.below(3_000_000_000) as u32;
    let activation_id = 1_000_000_000 + rng.below(3_000_000_000) as u32;
    let now = oracle_now();
    let start_scn = 1_000_000 + rng.below(9_000_000);
    let blocks = (opts.size_mb * (1 << 20) / opts.block_size as u64) as u32;

    // Files and their tablespaces.
    let mut per_ts_count: std::collections::HashMap<String, u32> = Default::default();
    let mut plans = Vec::new();
    let mut tablespaces: Vec<(u32, String, &'static str)> = Vec::new();
    for (i, (ts_no, ts_name, contents)) in tablespace_sequence(opts.threads, opts.datafiles)
        .into_iter()
        .enumerate()
    {
        let file_no = i as u32 + 1;
        let k = per_ts_count.entry(ts_name.clone()).or_insert(0);
        *k += 1;
        let base = file_base_name(&ts_name);
        let fname = if let Some(undo_no) = ts_name.strip_prefix("UNDOTBS") {
            let t: u32 = undo_no.parse().unwrap_or(1);
            format!("{base}{t:02}.dbf")
        } else {
            format!("{base}{:02}.dbf", k)
        };
        let null_pct = 10 + rng.below(21) as u32;
        let hwm = (blocks - blocks / 100 * null_pct).max(blockgen::FIRST_SEG_BLOCK + 4);
        plans.push(FilePlan {
            file_no,
            ts_no,
            ts_name: ts_name.clone(),
            path: data_dir.join(fname),
            profile: Profile::from_contents(contents),
            block_size: opts.block_size,
            blocks,
            hwm: hwm.min(blocks + 1),
            creation_scn: Scn(start_scn + u64::from(file_no) * 37),
        });
        if !tablespaces.iter().any(|t| t.0 == ts_no) {
            tablespaces.push((ts_no, ts_name, contents));
        }
    }
    for &bs in &opts.extra_block_sizes {
        let file_no = plans.len() as u32 + 1;
        let ts_no = tablespaces.iter().map(|t| t.0).max().unwrap_or(0) + 1;
        let ts_name = format!("TS_{}K", bs / 1024);
        let blocks = (opts.size_mb * (1 << 20) / bs as u64) as u32;
        let null_pct = 10 + rng.below(21) as u32;
        let hwm = (blocks - blocks / 100 * null_pct).max(blockgen::FIRST_SEG_BLOCK + 4);
        plans.push(FilePlan {
            file_no,
            ts_no,
            path: data_dir.join(format!("{}01.dbf", ts_name.to_ascii_lowercase())),
            ts_name: ts_name.clone(),
            profile: Profile::Users,
            block_size: bs,
            blocks,
            hwm: hwm.min(blocks + 1),
            creation_scn: Scn(start_scn + u64::from(file_no) * 37),
        });
        tablespaces.push((ts_no, ts_name, "USERS"));
    }
    let ckpt_scn = Scn(start_scn + 1_000_000);
    let resetlogs_id = now.0;

    // Control file.
    let cf_path = home.join(CONTROLFILE_REL);
    let conn = super::open_connection(&cf_path)?;
    conn.execute_batch(schema::SCHEMA)?;
    super::state::ensure_schema(&conn)?;
    super::dictionary::ensure_schema(&conn)?;
    let db = Database::from_parts(home.clone(), conn)?;
    let c = db.connection();
    let online_blocks = (opts.online_log_mb * (1 << 20) / 512) as u32;
    let jnow = julian_of(now);
    c.execute(
        "INSERT INTO cf_sim (schema_version, current_scn, next_set_count, controlfile_seq,
            redo_block_size, online_log_blocks, seed, bct_status)
         VALUES (?1, ?2, 1, 1, 512, ?3, ?4, 'DISABLED')",
        params![
            schema::SCHEMA_VERSION,
            ckpt_scn.0 as i64,
            online_blocks,
            opts.seed as i64
        ],
    )?;
    c.execute(
        r#"INSERT INTO cf_database ("DBID", "NAME", "CREATED", "RESETLOGS_CHANGE#",
            "RESETLOGS_TIME", "PRIOR_RESETLOGS_CHANGE#", "PRIOR_RESETLOGS_TIME", "LOG_MODE",
            "CHECKPOINT_CHANGE#", "ARCHIVE_CHANGE#", "CONTROLFILE_TYPE", "CONTROLFILE_CREATED",
            "CONTROLFILE_CHANGE#", "CONTROLFILE_TIME", "OPEN_RESETLOGS", "VERSION_TIME",
            "OPEN_MODE", "PROTECTION_MODE", "PROTECTION_LEVEL", "REMOTE_ARCHIVE", "ACTIVATION#",
            "SWITCHOVER#", "DATABASE_ROLE", "ARCHIVELOG_CHANGE#", "ARCHIVELOG_COMPRESSION",
            "SWITCHOVER_STATUS", "DATAGUARD_BROKER", "GUARD_STATUS", "SUPPLEMENTAL_LOG_DATA_MIN",
            "FORCE_LOGGING", "PLATFORM_ID", "PLATFORM_NAME", "RECOVERY_TARGET_INCARNATION#",
            "LAST_OPEN_INCARNATION#", "FLASHBACK_ON", "DB_UNIQUE_NAME", "CDB", "CON_ID",
            "CON_DBID", resetlogs_id, block_size)
           VALUES (?1, ?2, ?3, 1, ?3, 0, NULL, 'ARCHIVELOG', ?4, 0, 'CURRENT', ?3, ?4, ?3,
            'NOT ALLOWED', ?3, 'READ WRITE', 'MAXIMUM PERFORMANCE', 'MAXIMUM PERFORMANCE',
            'ENABLED', ?5, ?5, 'PRIMARY', 0, 'DISABLED', 'NOT ALLOWED', 'DISABLED', 'NONE', 'NO',
            'NO', 13, 'Linux x86 64-bit', 1, 1, 'NO', ?2, 'NO', 0, ?1, ?6, ?7)"#,
        params![
            dbid,
            name,
            jnow,
            ckpt_scn.0 as i64,
            activation_id,
            resetlogs_id,
            opts.block_size as i64
        ],
    )?;
    c.execute(
        r#"INSERT INTO cf_database_incarnation VALUES (1, 1, ?1, 0, NULL, 'CURRENT', ?2, 0, 'NO', 0)"#,
        params![jnow, resetlogs_id],
    )?;
    for (ts_no, ts_name, contents) in &tablespaces {
        c.execute(
            r#"INSERT INTO cf_tablespace VALUES (?1, ?2, 'YES', 'NO', 'YES', NULL, 0, ?3)"#,
            params![ts_no, ts_name, contents],
        )?;
    }
    let host = hostname();
    let lower = name.to_ascii_lowercase();
    for t in 1..=opts.threads {
        let inst = if opts.threads > 1 {
            format!("{lower}{t}")
        } else {
            lower.clone()
        };
        c.execute(
            r#"INSERT INTO cf_instance VALUES (?1, ?1, ?2, ?3, '19.0.0.0.0', '19.3.0.0.0', ?4,
                'OPEN', ?5, ?1, 'STARTED', NULL, 'ALLOWED', 'NO', 'ACTIVE', 'PRIMARY_INSTANCE',
                'NORMAL', 'NO', 0, 'REGULAR', 'EE', NULL, ?6)"#,
            params![
                t,
                inst,
                host,
                jnow,
                if opts.threads > 1 { "YES" } else { "NO" },
                if opts.threads > 1 { "RAC" } else { "SINGLE" }
            ],
        )?;
        let g_cur = 2 * u32::from(t) - 1;
        c.execute(
            r#"INSERT INTO cf_thread VALUES (?1, 'OPEN', 'PUBLIC', 2, ?2, ?3, ?4, 1, ?5, ?3, ?5,
                ?3, 0, NULL, 1, 2, ?5, ?3, 0, 2, 16, ?5, ?6, 0, 0)"#,
            params![t, inst, jnow, g_cur, ckpt_scn.0 as i64, now.0],
        )?;
        for (g, current) in [(g_cur, true), (g_cur + 1, false)] {
            let member = home.join("onlinelog").join(format!("redo{g:02}.log"));
            c.execute(
                r#"INSERT INTO cf_log VALUES (?1, ?2, ?3, ?4, 512, 1, ?5, ?6, ?7, ?8, NULL, NULL, 0)"#,
                params![
                    g,
                    t,
                    if current { 1 } else { 0 },
                    i64::from(online_blocks) * 512,
                    if current { "NO" } else { "YES" },
                    if current { "CURRENT" } else { "UNUSED" },
                    if current { ckpt_scn.0 as i64 } else { 0 },
                    if current { Some(jnow) } else { None },
                ],
            )?;
            c.execute(
                r#"INSERT INTO cf_logfile VALUES (?1, NULL, 'ONLINE', ?2, 'NO', 0)"#,
                params![g, member.to_string_lossy()],
            )?;
        }
    }
    c.execute(
        r#"INSERT INTO cf_controlfile VALUES (NULL, ?1, 'NO', 16384, 1124, 0)"#,
        [cf_path.to_string_lossy()],
    )?;

    // Datafiles: headers and contents, two files at a time (two cores).
    let spec = GenSpec {
        dbid,
        name: name.clone(),
        activation_id,
        now,
        ckpt_scn,
        seed: opts.seed,
        fill: opts.fill,
    };
    let next = std::sync::atomic::AtomicUsize::new(0);
    let workers = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(2)
        .clamp(1, 4);
    let results: Vec<Result<()>> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..workers)
            .map(|_| {
                s.spawn(|| -> Result<()> {
                    loop {
                        let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                        let Some(p) = plans.get(i) else {
                            return Ok(());
                        };
                        write_datafile(&spec, p)?;
                    }
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| {
                h.join()
                    .unwrap_or_else(|_| Err(DbError::Invalid("datafile writer panicked".into())))
            })
            .collect()
    });
    for r in results {
        r?;
    }
    for p in &plans {
        c.execute(
            r#"INSERT INTO cf_datafile ("FILE#", "CREATION_CHANGE#", "CREATION_TIME", "TS#",
                "RFILE#", "STATUS", "ENABLED", "CHECKPOINT_CHANGE#", "CHECKPOINT_TIME",
                "UNRECOVERABLE_CHANGE#", "LAST_CHANGE#", "OFFLINE_CHANGE#", "ONLINE_CHANGE#",
                "ONLINE_TIME", "BYTES", "BLOCKS", "CREATE_BYTES", "BLOCK_SIZE", "NAME",
                "PLUGGED_IN", "BLOCK1_OFFSET", "AUX_NAME", "FIRST_NONLOGGED_SCN", "FOREIGN_DBID",
                "FOREIGN_CREATION_CHANGE#", "PLUGGED_READONLY", "PLUGIN_CHANGE#",
                "PLUGIN_RESETLOGS_CHANGE#", "CON_ID", hwm_blocks, creation_stamp,
                checkpoint_stamp)
               VALUES (?1, ?2, ?3, ?4, ?1, ?5, 'READ WRITE', ?6, ?3, 0, NULL, 0, 0, ?3, ?7, ?8,
                0, ?9, ?10, 0, ?9, 'NONE', 0, 0, 0, 'NO', 0, 0, 0, ?11, ?12, ?12)"#,
            params![
                p.file_no,
                p.creation_scn.0 as i64,
                jnow,
                p.ts_no,
                if p.ts_name == "SYSTEM" {
                    "SYSTEM"
                } else {
                    "ONLINE"
                },
                ckpt_scn.0 as i64,
                i64::from(p.blocks) * p.block_size as i64,
                p.blocks,
                p.block_size as i64,
                p.path.to_string_lossy(),
                p.hwm,
                now.0,
            ],
        )?;
    }

    // Online logs.
    for t in 1..=opts.threads {
        let g_cur = 2 * u32::from(t) - 1;
        for g in [g_cur, g_cur + 1] {
            let path = home.join("onlinelog").join(format!("redo{g:02}.log"));
            let seq = if g == g_cur { 1 } else { 0 };
            redo::init_online_log(
                &db,
                &path,
                t,
                seq,
                ckpt_scn,
                now,
                online_blocks,
                &redo::LogIdentity {
                    dbid,
                    name: name.clone(),
                    activation_id,
                    resetlogs_id,
                    resetlogs_scn: Scn(1),
                    file_no: g as u16,
                },
            )?;
        }
    }

    // Parameters and spfile.
    write_parameters(&db, &home, &name, opts, &tablespaces)?;
    Ok(db)
}

pub(super) fn hostname() -> String {
    std::fs::read_to_string("/etc/hostname")
        .ok()
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "localhost".into())
}

struct GenSpec {
    dbid: u32,
    name: String,
    activation_id: u32,
    now: OracleTime,
    ckpt_scn: Scn,
    seed: u64,
    fill: Fill,
}

/// The datafile header a freshly created file carries.
fn initial_header(spec: &GenSpec, p: &FilePlan) -> DatafileHeader {
    DatafileHeader {
        block_size: p.block_size as u32,
        compat_version: COMPAT_19,
        dbid: spec.dbid,
        db_name: spec.name.clone(),
        controlfile_seq: 1,
        file_size_blocks: p.blocks,
        file_no: p.file_no as u16,
        file_type: FILE_TYPE_DATAFILE,
        activation_id: spec.activation_id,
        root_dba: if p.file_no == 1 {
            Rdba::new(1, 520.min(p.blocks)).map(|r| r.0).unwrap_or(0)
        } else {
            0
        },
        creation_scn: p.creation_scn,
        creation_time: spec.now,
        resetlogs_time: spec.now,
        resetlogs_scn: Scn(1),
        status: STATUS_11G | STATUS_ONLINE_FUZZY,
        checkpoint_count: 1,
        cf_checkpoint_count: 1,
        tablespace_no: p.ts_no,
        tablespace_name: p.ts_name.clone(),
        rfile_no: p.file_no,
        absolute_fuzzy_scn: Scn(0),
        checkpoint: Checkpoint {
            scn: spec.ckpt_scn,
            time: spec.now,
            thread: 1,
            rba: Rba {
                sequence: 1,
                block: 2,
                offset: 16,
            },
        },
    }
}

fn write_datafile(spec: &GenSpec, p: &FilePlan) -> Result<()> {
    let bs = p.block_size;
    let mut f = OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&p.path)
        .map_err(|e| io_err(format!("cannot create {}", p.path.display()), e))?;
    const CHUNK_BLOCKS: usize = 256;
    let mut buf = vec![0u8; CHUNK_BLOCKS * bs];
    FileHeaderBlock::datafile(bs, p.blocks)?.build(&mut buf[..bs])?;
    initial_header(spec, p).build(&mut buf[bs..2 * bs])?;
    let mut filled = 2usize;
    let mut block = 2u32;
    let span = spec.ckpt_scn.0 - p.creation_scn.0;
    let mut rng = Rng::new(blockgen::mix(&[spec.seed, u64::from(p.file_no), 0xF11E]));
    let obj_base = match p.profile {
        Profile::System => 2,
        Profile::Sysaux => 9_000,
        Profile::Undo => 100 + p.file_no * 1000,
        Profile::Users => 70_000 + p.file_no * 1000,
    };
    while block < p.hwm {
        let scn = Scn(p.creation_scn.0 + 1 + rng.below(span.max(2) - 1));
        let seq = 1 + rng.below(2) as u8;
        let off = filled * bs;
        blockgen::format_block(
            &mut buf[off..off + bs],
            p.profile,
            p.file_no,
            block,
            obj_base,
            scn,
            seq,
            &mut rng,
        )?;
        if spec.fill == Fill::Random {
            blockgen::randomize_block(&mut buf[off..off + bs], &mut rng)?;
        }
        filled += 1;
        block += 1;
        if filled == CHUNK_BLOCKS {
            f.write_all(&buf)
                .map_err(|e| io_err(format!("cannot write {}", p.path.display()), e))?;
            filled = 0;
        }
    }
    if filled > 0 {
        f.write_all(&buf[..filled * bs])
            .map_err(|e| io_err(format!("cannot write {}", p.path.display()), e))?;
    }
    // Never-formatted blocks at the end read as zeros.
    f.set_len((u64::from(p.blocks) + 1) * bs as u64)
        .map_err(|e| io_err(format!("cannot size {}", p.path.display()), e))?;
    Ok(())
}

fn write_parameters(
    db: &Database,
    home: &Path,
    name: &str,
    opts: &CreateOptions,
    tablespaces: &[(u32, String, &'static str)],
) -> Result<()> {
    let lower = name.to_ascii_lowercase();
    let cf = home.join(CONTROLFILE_REL);
    let mut params_list: Vec<(String, String, String)> = vec![
        ("*".into(), "compatible".into(), "19.0.0".into()),
        ("*".into(), "control_files".into(), cf.display().to_string()),
        (
            "*".into(),
            "db_block_size".into(),
            opts.block_size.to_string(),
        ),
        ("*".into(), "db_name".into(), name.to_string()),
        ("*".into(), "db_unique_name".into(), name.to_string()),
        (
            "*".into(),
            "log_archive_dest_1".into(),
            format!("LOCATION={}", home.join("arch").display()),
        ),
        (
            "*".into(),
            "log_archive_format".into(),
            "%t_%s_%r.arc".into(),
        ),
        (
            "*".into(),
            "cluster_database".into(),
            if opts.threads > 1 { "TRUE" } else { "FALSE" }.into(),
        ),
        ("*".into(), "undo_management".into(), "AUTO".into()),
    ];
    // Oracle needs a buffer cache for each nonstandard block size before a tablespace of
    // that size can be used.
    for bs in &opts.extra_block_sizes {
        params_list.push((
            "*".into(),
            format!("db_{}k_cache_size", bs / 1024),
            (16u64 << 20).to_string(),
        ));
    }
    for t in 1..=opts.threads {
        let inst = if opts.threads > 1 {
            format!("{lower}{t}")
        } else {
            lower.clone()
        };
        let undo = format!("UNDOTBS{t}");
        params_list.push((inst.clone(), "instance_number".into(), t.to_string()));
        params_list.push((inst.clone(), "thread".into(), t.to_string()));
        if tablespaces.iter().any(|ts| ts.1 == undo) {
            params_list.push((inst, "undo_tablespace".into(), undo));
        }
    }
    let mut text = String::new();
    let mut num = 1;
    for (scope, pname, value) in &params_list {
        let numeric = value.parse::<i64>().is_ok() || value == "TRUE" || value == "FALSE";
        let quoted = if numeric {
            value.clone()
        } else {
            format!("'{value}'")
        };
        text.push_str(&format!("{scope}.{pname}={quoted}\n"));
        if scope == "*" || scope == &lower || scope.ends_with('1') {
            db.connection().execute(
                r#"INSERT INTO cf_parameter VALUES (?1, ?2, 2, ?3, ?3, 'FALSE', 0)"#,
                params![num, pname, value],
            )?;
            num += 1;
        }
    }
    let sp = home.join("dbs").join(format!("spfile{name}.ora"));
    super::write_atomic(&sp, text.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tablespace_order() {
        let t = tablespace_sequence(1, 6);
        let names: Vec<_> = t.iter().map(|x| x.1.as_str()).collect();
        assert_eq!(
            names,
            ["SYSTEM", "SYSAUX", "UNDOTBS1", "USERS", "USERS", "USERS"]
        );
        let t = tablespace_sequence(2, 5);
        let names: Vec<_> = t.iter().map(|x| x.1.as_str()).collect();
        assert_eq!(names, ["SYSTEM", "SYSAUX", "UNDOTBS1", "USERS", "UNDOTBS2"]);
        assert_eq!(tablespace_sequence(1, 2).len(), 2);
    }

    #[test]
    fn rejects_bad_options() {
        let mut o = CreateOptions::new("/nonexistent", "1BAD", 4, 1);
        assert!(validate(&o).is_err());
        o.name = "ORCL".into();
        o.size_mb = 0;
        assert!(validate(&o).is_err());
        o.size_mb = 1;
        o.block_size = 1000;
        assert!(validate(&o).is_err());
        o.block_size = 8192;
        o.threads = 0;
        assert!(validate(&o).is_err());
    }
}
