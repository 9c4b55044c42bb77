//! The vault's catalog: tokens (only their hashes), recovery points, job records and agent
//! heartbeats. It lives beside the repository's index: `<data>/vault.sqlite` for a local
//! index, the same PostgreSQL database for a shared one, so every vault server over that
//! repository accepts the same tokens and sees the same records and jobs.
//!
//! ```text
//! tokens(hash PK, db, scope, created)       hash = BLAKE3(token); id = hex prefix of it
//! records(type, id, database, kind, state, time, doc)   PK (type, id); doc = the record as JSON
//!     type "recovery point": time = created, state NULL
//!     type "job":            time = requested
//!     type "agent":          time = last heartbeat
//! dedup_groups(name PK, secret, created)    secret: 32 random bytes; NULL for the legacy group
//! group_members(db PK, grp)                 the group each database's chunk ids are keyed by
//! ```
//!
//! Each call is one statement (or one transaction), so a concurrent writer on another server
//! sees all of it or none; `replace` compares the whole stored document, which makes it a
//! compare-and-swap that two servers can race on safely.

mod postgres;
mod sqlite;

use std::path::Path;
use std::sync::Arc;

use orca_repo::{IndexLocation, Store};
use serde::Serialize;
use serde::de::DeserializeOwned;

use super::{Scope, VaultError};
use crate::wire::{Job, JobFilter, RecoveryPoint, RecoveryPointFilter};

/// Hex digits of a token's hash shown as its id: enough to name it, useless to guess it.
const ID_LEN: usize = 16;

/// A token's row; `hash` in lowercase hex.
pub(crate) struct TokenRow {
    pub hash: String,
    pub db: String,
    pub scope: String,
    pub created: i64,
}

/// A dedup group's row; `secret` is `None` for the legacy group.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct GroupRow {
    pub name: String,
    pub secret: Option<Vec<u8>>,
    pub created: i64,
}

/// A record's row: its selection columns and its JSON document.
pub(crate) struct RecordRow<'a> {
    pub kind_of: &'static str,
    pub id: &'a str,
    pub database: &'a str,
    pub kind: &'a str,
    pub state: Option<&'a str>,
    pub time: i64,
    pub doc: String,
}

/// What a catalog backend stores; [`Tokens`] and [`Records`] add the rules.
pub(crate) trait Catalog: Send + Sync {
    /// Where it is, for messages.
    fn location(&self) -> String;
    /// `false` when another token has this hash; `true` also when this very token is stored.
    fn insert_token(
        &self,
        hash: &[u8],
        db: &str,
        scope: &str,
        created: i64,
    ) -> Result<bool, VaultError>;
    /// Tokens whose hex hash starts with `prefix` (lowercase), oldest first.
    fn tokens(&self, prefix: &str) -> Result<Vec<TokenRow>, VaultError>;
    fn delete_tokens(&self, prefix: &str) -> Result<(), VaultError>;
    /// `(db, scope)` of the token with this hash.
    fn token(&self, hash: &[u8]) -> Result<Option<(String, String)>, VaultError>;
    /// `false` when the id is taken.
    fn insert_record(&self, r: &RecordRow<'_>) -> Result<bool, VaultError>;
    fn record(&self, kind_of: &str, id: &str) -> Result<Option<String>, VaultError>;
    /// Documents oldest first, then in the order recorded.
    fn records(&self, kind_of: &str, s: &Selection) -> Result<Vec<String>, VaultError>;
    fn delete_record(&self, kind_of: &str, id: &str) -> Result<bool, VaultError>;
    /// `false` when the stored document is no longer `old_doc`.
    fn replace_record(&self, new: &RecordRow<'_>, old_doc: &str) -> Result<bool, VaultError>;
    /// `false` when a group of this name exists (left as it is).
    fn insert_group(
        &self,
        name: &str,
        secret: Option<&[u8]>,
        created: i64,
    ) -> Result<bool, VaultError>;
    /// Every group, oldest first.
    fn groups(&self) -> Result<Vec<GroupRow>, VaultError>;
    /// `(database, group)` of every database in a group, by database.
    fn members(&self) -> Result<Vec<(String, String)>, VaultError>;
    /// The group `db` is in.
    fn group_of(&self, db: &str) -> Result<Option<GroupRow>, VaultError>;
    /// Puts `db` in `group` unless it is in one already (another server may have just
    /// placed it).
    fn join_if_new(&self, db: &str, group: &str) -> Result<(), VaultError>;
    /// Puts every one of `dbs` in `group`, all in one transaction.
    fn set_group(&self, group: &str, dbs: &[String]) -> Result<(), VaultError>;
}

/// The catalog of the repository directory `data`, wherever its index is.
/// Blocks (PostgreSQL's client is synchronous): call it off the async threads.
pub(crate) fn open(data: &Path) -> Result<Arc<dyn Catalog>, VaultError> {
    let at = Store::index_of(data).map_err(|source| VaultError::Repository {
        path: data.to_path_buf(),
        source: Box::new(source),
    })?;
    Ok(match at {
        IndexLocation::Sqlite(_) => Arc::new(sqlite::SqliteCatalog::open(data)?),
        IndexLocation::Postgres(cfg) => Arc::new(postgres::PgCatalog::open(&cfg)?),
    })
}

fn docs<T: DeserializeOwned>(
    c: &dyn Catalog,
    what: &str,
    docs: Vec<String>,
) -> Result<Vec<T>, VaultError> {
    docs.iter()
        .map(|d| {
            serde_json::from_str(d).map_err(|e| VaultError::Corrupt {
                location: c.location(),
                message: format!("{what}: {e}"),
            })
        })
        .collect()
}

fn to_json<T: Serialize>(v: &T) -> String {
    serde_json::to_string(v).expect("records serialise")
}

/// A token as `orca vault token list` shows it: never the secret.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TokenInfo {
    /// Leading hex digits of the token's hash.
    pub id: String,
    /// The database it is for (an admin token reaches every database).
    pub db: String,
    /// What it may do.
    pub scope: Scope,
    /// Unix seconds.
    pub created: i64,
}

/// The caller, from its token.
#[derive(Debug, Clone)]
pub(crate) struct Caller {
    pub db: String,
    pub scope: Scope,
}

/// Tokens, stored as BLAKE3 hashes.
#[derive(Clone)]
pub struct Tokens(Arc<dyn Catalog>);

impl Tokens {
    /// The tokens of the repository directory `data` (in PostgreSQL when its index is).
    /// Blocks: call it off the async threads.
    pub fn open(data: &Path) -> Result<Tokens, VaultError> {
        open(data).map(Tokens)
    }

    pub(crate) fn of(c: Arc<dyn Catalog>) -> Tokens {
        Tokens(c)
    }

    /// Creates a token; the secret is returned once and only its hash is kept.
    pub fn create(&self, db: &str, scope: Scope) -> Result<String, VaultError> {
        crate::wire::check_database_name(db).map_err(VaultError::InvalidArgument)?;
        let mut raw = [0u8; 24];
        getrandom::fill(&mut raw).map_err(VaultError::Random)?;
        let token = format!("orca_{}", hex::encode(raw));
        let hash = blake3::hash(token.as_bytes());
        if self
            .0
            .insert_token(hash.as_bytes(), db, scope.as_str(), orca_repo::now_unix())?
        {
            Ok(token)
        } else {
            Err(VaultError::InvalidArgument(format!(
                "a token with hash {hash} already exists in {}: create the token again",
                self.0.location()
            )))
        }
    }

    /// Every token, oldest first.
    pub fn list(&self) -> Result<Vec<TokenInfo>, VaultError> {
        self.matching("")
    }

    /// Revokes the one token whose id starts with `id`.
    pub fn revoke(&self, id: &str) -> Result<TokenInfo, VaultError> {
        if id.len() < 4 || !id.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(VaultError::InvalidArgument(format!(
                "{id:?} is not a token id: give at least 4 of the hex digits `orca vault token list` shows"
            )));
        }
        let found = self.matching(id)?;
        let [t] = found.as_slice() else {
            return Err(match found.len() {
                0 => VaultError::TokenNotFound(id.to_string()),
                count => VaultError::AmbiguousToken {
                    prefix: id.to_string(),
                    count,
                },
            });
        };
        self.0.delete_tokens(&id.to_ascii_lowercase())?;
        Ok(t.clone())
    }

    fn matching(&self, prefix: &str) -> Result<Vec<TokenInfo>, VaultError> {
        Ok(self
            .0
            .tokens(&prefix.to_ascii_lowercase())?
            .into_iter()
            .filter_map(|t| {
                Some(TokenInfo {
                    id: t.hash.get(..ID_LEN)?.to_string(),
                    db: t.db,
                    scope: t.scope.parse().ok()?,
                    created: t.created,
                })
            })
            .collect())
    }

    pub(crate) fn lookup(&self, token: &str) -> Result<Option<Caller>, VaultError> {
        let row = self.0.token(blake3::hash(token.as_bytes()).as_bytes())?;
        Ok(row.and_then(|(db, s)| s.parse().ok().map(|scope| Caller { db, scope })))
    }
}

/// The group of the databases whose pieces were in the vault before groups existed: their
/// chunk ids are keyed by the repository key alone, as they were written, so they trust
/// each other as every database did then. Not a valid database name, so no database's
/// own group ever takes it.
pub const LEGACY_GROUP: &str = "legacy-shared";

/// A dedup group as `orca vault group list | show` shows it: never the secret.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct GroupInfo {
    /// The group's name.
    pub name: String,
    /// Whether chunk ids are keyed by the repository key alone (the legacy group).
    pub legacy: bool,
    /// Its databases, by name.
    pub members: Vec<String>,
    /// Unix seconds.
    pub created: i64,
}

/// Dedup groups: which databases share chunks (and so trust each other), and each group's
/// secret, which keys its chunk ids (docs/design.md, "Tenants").
#[derive(Clone)]
pub struct Groups(Arc<dyn Catalog>);

impl Groups {
    /// The groups of the repository directory `data` (in PostgreSQL when its index is).
    /// Blocks: call it off the async threads.
    pub fn open(data: &Path) -> Result<Groups, VaultError> {
        open(data).map(Groups)
    }

    pub(crate) fn of(c: Arc<dyn Catalog>) -> Groups {
        Groups(c)
    }

    /// Every group with its databases, oldest first.
    pub fn list(&self) -> Result<Vec<GroupInfo>, VaultError> {
        let members = self.0.members()?;
        Ok(self
            .0
            .groups()?
            .into_iter()
            .map(|g| GroupInfo {
                members: members
                    .iter()
                    .filter(|(_, grp)| *grp == g.name)
                    .map(|(db, _)| db.clone())
                    .collect(),
                legacy: g.secret.is_none(),
                name: g.name,
                created: g.created,
            })
            .collect())
    }

    /// The group `name`.
    pub fn show(&self, name: &str) -> Result<GroupInfo, VaultError> {
        self.list()?
            .into_iter()
            .find(|g| g.name == name)
            .ok_or_else(|| VaultError::GroupNotFound(name.to_string()))
    }

    /// Creates an empty group with a new random secret.
    pub fn create(&self, name: &str) -> Result<GroupInfo, VaultError> {
        crate::wire::check_database_name(name)
            .map_err(|e| VaultError::InvalidArgument(format!("group name: {e}")))?;
        let secret = random_secret()?;
        if !self
            .0
            .insert_group(name, Some(&secret), orca_repo::now_unix())?
        {
            return Err(VaultError::InvalidArgument(format!(
                "a group named {name} exists already: see `orca vault group show {name}`"
            )));
        }
        self.show(name)
    }

    /// Puts `dbs` in group `name`; refused, changing nothing, when one of them has committed
    /// pieces (`has_pieces`) in another group: their chunk ids are keyed by that group's
    /// secret, and in the new one its backups would share none of its stored chunks.
    pub fn add(
        &self,
        name: &str,
        dbs: &[String],
        has_pieces: &dyn Fn(&str) -> Result<bool, VaultError>,
    ) -> Result<GroupInfo, VaultError> {
        let target = self.show(name)?;
        for db in dbs {
            crate::wire::check_database_name(db).map_err(VaultError::InvalidArgument)?;
            // A database with pieces and no group yet is in the legacy group: its first
            // request puts it there.
            let now = self.0.group_of(db)?.map(|g| g.name);
            let now = now.as_deref().unwrap_or(LEGACY_GROUP);
            if now != target.name && has_pieces(db)? {
                return Err(VaultError::InvalidArgument(format!(
                    "database {db} has committed pieces whose chunk ids are bound to its group \
                     {now}: in group {name} its backups would key ids otherwise, share none of \
                     the chunks it stored and store everything again. Nothing changed. Keep {db} in group {now}, or move it once its \
                     pieces have expired or been deleted (`orca rm`), after a last backup \
                     elsewhere"
                )));
            }
        }
        self.0.set_group(name, dbs)?;
        self.show(name)
    }

    /// Every group's secret: what a deep verify with the repository key needs to check the
    /// chunks of every group against their ids.
    pub fn secrets(&self) -> Result<Vec<[u8; 32]>, VaultError> {
        Ok(self
            .0
            .groups()?
            .into_iter()
            .filter_map(|g| g.secret?.try_into().ok())
            .collect())
    }

    /// The group `db` is in, if it was placed in one.
    pub(crate) fn placed(&self, db: &str) -> Result<Option<GroupRow>, VaultError> {
        self.0.group_of(db)
    }

    /// The group of `db` and its secret. A database not in one yet is placed: in the legacy
    /// group when `legacy` (asked only then) says its pieces were written before groups,
    /// else in a new group of its own name (or the existing group of that name).
    pub(crate) fn of_database(
        &self,
        db: &str,
        legacy: impl FnOnce() -> Result<bool, VaultError>,
    ) -> Result<GroupRow, VaultError> {
        if let Some(g) = self.0.group_of(db)? {
            return Ok(g);
        }
        let now = orca_repo::now_unix();
        let name = if legacy()? {
            self.0.insert_group(LEGACY_GROUP, None, now)?;
            LEGACY_GROUP
        } else {
            self.0.insert_group(db, Some(&random_secret()?), now)?;
            db
        };
        self.0.join_if_new(db, name)?;
        self.0.group_of(db)?.ok_or_else(|| VaultError::Corrupt {
            location: self.0.location(),
            message: format!("database {db} was put in group {name}, which is not there"),
        })
    }
}

fn random_secret() -> Result<[u8; 32], VaultError> {
    let mut secret = [0u8; 32];
    getrandom::fill(&mut secret).map_err(VaultError::Random)?;
    Ok(secret)
}

/// A JSON document kept in `records`, with the columns it is selected by.
pub(crate) trait Record: Serialize + DeserializeOwned + Send + 'static {
    /// The `type` column, and what messages call one.
    const TYPE: &'static str;
    fn id(&self) -> &str;
    fn database(&self) -> &str;
    fn kind(&self) -> &str;
    fn state(&self) -> Option<&str>;
    fn time(&self) -> i64;
}

impl Record for RecoveryPoint {
    const TYPE: &'static str = "recovery point";
    fn id(&self) -> &str {
        &self.id
    }
    fn database(&self) -> &str {
        &self.database
    }
    fn kind(&self) -> &str {
        self.kind.as_str()
    }
    fn state(&self) -> Option<&str> {
        None
    }
    fn time(&self) -> i64 {
        self.created
    }
}

impl Record for Job {
    const TYPE: &'static str = "job";
    fn id(&self) -> &str {
        &self.id
    }
    fn database(&self) -> &str {
        &self.database
    }
    fn kind(&self) -> &str {
        &self.kind
    }
    fn state(&self) -> Option<&str> {
        Some(self.state.as_str())
    }
    fn time(&self) -> i64 {
        self.requested
    }
}

/// Which records to list; `None` matches all.
#[derive(Debug, Default)]
pub(crate) struct Selection {
    pub database: Option<String>,
    pub kind: Option<String>,
    pub state: Option<String>,
    /// `time` at or after.
    pub since: Option<i64>,
    /// `time` before.
    pub until: Option<i64>,
}

impl From<RecoveryPointFilter> for Selection {
    fn from(f: RecoveryPointFilter) -> Self {
        Selection {
            database: f.database,
            kind: f.kind.map(|k| k.as_str().to_string()),
            state: None,
            since: f.since,
            until: f.until,
        }
    }
}

impl From<JobFilter> for Selection {
    fn from(f: JobFilter) -> Self {
        Selection {
            database: f.database,
            kind: f.kind,
            state: f.state.map(|s| s.as_str().to_string()),
            since: f.since,
            until: None,
        }
    }
}

/// Recovery points, job records and agent heartbeats.
pub(crate) struct Records(Arc<dyn Catalog>);

fn row<R: Record>(r: &R) -> RecordRow<'_> {
    RecordRow {
        kind_of: R::TYPE,
        id: r.id(),
        database: r.database(),
        kind: r.kind(),
        state: r.state(),
        time: r.time(),
        doc: to_json(r),
    }
}

impl Records {
    pub fn of(c: Arc<dyn Catalog>) -> Records {
        Records(c)
    }

    /// `false` when the id is taken.
    pub fn insert<R: Record>(&self, r: &R) -> Result<bool, VaultError> {
        self.0.insert_record(&row(r))
    }

    pub fn get<R: Record>(&self, id: &str) -> Result<Option<R>, VaultError> {
        let found = self.0.record(R::TYPE, id)?.into_iter().collect();
        docs(self.0.as_ref(), R::TYPE, found).map(|mut v| v.pop())
    }

    /// Oldest first, then in the order recorded.
    pub fn list<R: Record>(&self, s: &Selection) -> Result<Vec<R>, VaultError> {
        docs(self.0.as_ref(), R::TYPE, self.0.records(R::TYPE, s)?)
    }

    pub fn delete<R: Record>(&self, id: &str) -> Result<bool, VaultError> {
        self.0.delete_record(R::TYPE, id)
    }

    /// Replaces `old` by `new` (same id); `false` when the stored record is no longer `old`
    /// (changed by a concurrent update, perhaps on another server).
    pub fn replace<R: Record>(&self, old: &R, new: &R) -> Result<bool, VaultError> {
        self.0.replace_record(&row(new), &to_json(old))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::{JobProgress, JobState, JobTrigger};
    use orca_testing::pg::PgServer;

    fn job(id: &str, database: &str, requested: i64, state: JobState) -> Job {
        Job {
            id: id.into(),
            database: database.into(),
            kind: "backup".into(),
            state,
            requested,
            started: None,
            finished: None,
            message: String::new(),
            progress: JobProgress::default(),
            trigger: JobTrigger::Manual,
            deadline: None,
            details: Default::default(),
        }
    }

    /// A catalog under test, and what keeps its storage alive.
    struct Opened {
        catalog: Arc<dyn Catalog>,
        _dir: Option<tempfile::TempDir>,
    }

    // The backends' test modules below take these names: their catalogs are named in full.
    fn sqlite() -> Opened {
        let dir = tempfile::tempdir().unwrap();
        Opened {
            catalog: Arc::new(super::sqlite::SqliteCatalog::open(dir.path()).unwrap()),
            _dir: Some(dir),
        }
    }

    /// A database of its own in the PostgreSQL server the tests share.
    fn pg_config() -> orca_repo::PgConfig {
        orca_repo::PgConfig {
            url: PgServer::shared().fresh_database(),
            password_file: None,
            ca_file: None,
        }
    }

    fn postgresql() -> Opened {
        Opened {
            catalog: Arc::new(super::postgres::PgCatalog::open(&pg_config()).unwrap()),
            _dir: None,
        }
    }

    /// What every catalog backend must do alike, one test per property and backend:
    /// `server::db::tests::<backend>::<property>`.
    macro_rules! conformance {
        ($($backend:ident),+ ; $properties:tt) => {
            $(conformance!(@backend $backend $properties);)+
        };
        (@backend $backend:ident [$($property:ident),* $(,)?]) => {
            mod $backend {
                $(
                    #[test]
                    fn $property() {
                        super::$property(super::$backend().catalog);
                    }
                )*
            }
        };
    }

    conformance!(sqlite, postgresql; [
        tokens_are_listed_looked_up_and_revoked,
        a_token_insert_retried_finds_its_own_row,
        a_record_id_is_taken_once,
        records_are_selected_by_database_state_and_time,
        a_replace_is_a_compare_and_swap,
        a_record_is_deleted_once,
        groups_place_databases_once_and_moves_are_whole,
    ]);

    /// A database is placed once (its own group, or the legacy one when it has pieces); a
    /// move of several databases is refused whole when one has pieces elsewhere.
    fn groups_place_databases_once_and_moves_are_whole(c: Arc<dyn Catalog>) {
        let groups = Groups::of(c);
        let own = groups.of_database("ORCL", || Ok(false)).unwrap();
        assert_eq!(own.name, "ORCL");
        assert_eq!(own.secret.as_ref().map(Vec::len), Some(32));
        let again = groups
            .of_database("ORCL", || panic!("a placed database is not asked about"))
            .unwrap();
        assert_eq!(again, own);
        let old = groups.of_database("OLD", || Ok(true)).unwrap();
        assert_eq!((old.name.as_str(), old.secret), (LEGACY_GROUP, None));
        let shared = groups.create("SHARED").unwrap();
        assert!(shared.members.is_empty() && !shared.legacy);
        assert!(groups.create("SHARED").is_err());
        assert!(groups.create("not a name").is_err());
        let pieces = |db: &str| Ok(db == "ORCL");
        let dbs = ["NEW".to_string(), "ORCL".to_string()];
        let e = groups.add("SHARED", &dbs, &pieces).unwrap_err().to_string();
        assert!(
            e.contains("ORCL has committed pieces") && e.contains("Nothing changed"),
            "{e}"
        );
        assert!(groups.show("SHARED").unwrap().members.is_empty());
        let moved = groups.add("SHARED", &dbs[..1], &pieces).unwrap();
        assert_eq!(moved.members, ["NEW"]);
        assert_eq!(
            groups.of_database("NEW", || Ok(true)).unwrap().name,
            "SHARED"
        );
        assert!(matches!(
            groups.add("NOPE", &dbs, &pieces),
            Err(VaultError::GroupNotFound(_))
        ));
        let names: Vec<String> = groups.list().unwrap().into_iter().map(|g| g.name).collect();
        assert_eq!(names.len(), 3, "{names:?}");
    }

    fn tokens_are_listed_looked_up_and_revoked(c: Arc<dyn Catalog>) {
        let tokens = Tokens::of(c);
        let t1 = tokens.create("ORCL", Scope::Backup).unwrap();
        let t2 = tokens.create("SALES", Scope::Restore).unwrap();
        let listed = tokens.list().unwrap();
        assert_eq!(listed.len(), 2);
        assert_eq!(
            (listed[0].db.as_str(), listed[0].scope),
            ("ORCL", Scope::Backup)
        );
        assert_eq!(listed[1].id.len(), ID_LEN);
        let caller = tokens.lookup(&t2).unwrap().unwrap();
        assert_eq!(
            (caller.db.as_str(), caller.scope),
            ("SALES", Scope::Restore)
        );
        assert!(tokens.lookup("orca_not_a_token").unwrap().is_none());
        assert!(matches!(
            tokens.revoke("ffffffffffffffff"),
            Err(VaultError::TokenNotFound(_))
        ));
        assert_eq!(tokens.revoke(&listed[0].id[..8]).unwrap(), listed[0]);
        assert!(tokens.lookup(&t1).unwrap().is_none());
        assert!(tokens.lookup(&t2).unwrap().is_some());
    }

    /// A token insert retried after its answer was lost finds its own row; another's fails.
    fn a_token_insert_retried_finds_its_own_row(c: Arc<dyn Catalog>) {
        let hash = [7u8; 32];
        assert!(c.insert_token(&hash, "ORCL", "backup", 5).unwrap());
        assert!(c.insert_token(&hash, "ORCL", "backup", 5).unwrap());
        assert!(!c.insert_token(&hash, "SALES", "backup", 5).unwrap());
        c.delete_tokens(&hex::encode(hash)).unwrap();
        assert!(c.tokens(&hex::encode(hash)).unwrap().is_empty());
    }

    /// Three jobs: two of ORCL (queued, requested at 200 and 100), one of SALES (running, 150).
    fn three_jobs(records: &Records) -> [Job; 3] {
        let jobs = [
            job("j-a", "ORCL", 200, JobState::Queued),
            job("j-b", "ORCL", 100, JobState::Queued),
            job("j-c", "SALES", 150, JobState::Running),
        ];
        for j in &jobs {
            assert!(records.insert(j).unwrap());
        }
        jobs
    }

    fn ids(records: &Records, s: Selection) -> Vec<String> {
        records
            .list::<Job>(&s)
            .unwrap()
            .into_iter()
            .map(|j| j.id)
            .collect()
    }

    fn orcl() -> Selection {
        Selection {
            database: Some("ORCL".into()),
            ..Default::default()
        }
    }

    fn a_record_id_is_taken_once(c: Arc<dyn Catalog>) {
        let records = Records::of(c);
        let [a, ..] = three_jobs(&records);
        assert!(!records.insert(&a).unwrap(), "an id is taken once");
        assert_eq!(records.get::<Job>("j-a").unwrap(), Some(a.clone()));
        assert_eq!(records.get::<Job>("nope").unwrap(), None);
    }

    fn records_are_selected_by_database_state_and_time(c: Arc<dyn Catalog>) {
        let records = Records::of(c);
        three_jobs(&records);
        assert_eq!(ids(&records, Selection::default()), ["j-b", "j-c", "j-a"]);
        assert_eq!(ids(&records, orcl()), ["j-b", "j-a"]);
        assert_eq!(
            ids(
                &records,
                Selection {
                    state: Some("running".into()),
                    ..Default::default()
                }
            ),
            ["j-c"]
        );
        assert_eq!(
            ids(
                &records,
                Selection {
                    since: Some(150),
                    until: Some(200),
                    ..Default::default()
                }
            ),
            ["j-c"]
        );
    }

    /// The second writer with the same old record loses.
    fn a_replace_is_a_compare_and_swap(c: Arc<dyn Catalog>) {
        let records = Records::of(c);
        let [a, ..] = three_jobs(&records);
        let mut running = a.clone();
        running.state = JobState::Running;
        let mut failed = a.clone();
        failed.state = JobState::Failed;
        assert!(records.replace(&a, &running).unwrap());
        assert!(!records.replace(&a, &failed).unwrap());
        assert_eq!(records.get::<Job>("j-a").unwrap(), Some(running));
    }

    fn a_record_is_deleted_once(c: Arc<dyn Catalog>) {
        let records = Records::of(c);
        three_jobs(&records);
        assert!(records.delete::<Job>("j-b").unwrap());
        assert!(!records.delete::<Job>("j-b").unwrap());
        assert_eq!(ids(&records, orcl()), ["j-a"]);
    }

    /// A second server opening the migrated database sees what the first wrote; the same
    /// record insert retried after a lost answer finds its own row, another call does not.
    #[test]
    fn a_postgresql_catalog_is_shared_by_the_servers_opening_it() {
        let cfg = pg_config();
        let first = Tokens::of(Arc::new(super::postgres::PgCatalog::open(&cfg).unwrap()));
        first.create("ORCL", Scope::Backup).unwrap();
        let pg = super::postgres::PgCatalog::open(&cfg).unwrap();
        let j = job("j-retried", "ORCL", 300, JobState::Queued);
        let r = row(&j);
        assert!(pg.insert_record_once(&r, b"first call").unwrap());
        assert!(pg.insert_record_once(&r, b"first call").unwrap());
        assert!(!pg.insert_record_once(&r, b"second call").unwrap());
        let again = Tokens::of(Arc::new(pg));
        assert_eq!(again.list().unwrap().len(), 1);
    }
}
