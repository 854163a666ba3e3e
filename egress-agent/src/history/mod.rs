//! The history database: sessions (who held an address), evidence reports and their
//! delivery queue, in one SQLite file under `state_dir` that an operator can open with
//! `sqlite3`. WAL, so readers (`who`, `reports`) never wait for the RADIUS writer; a small
//! page cache, so memory stays bounded however many sessions are stored. The schema is
//! versioned with `PRAGMA user_version` and migrated forward on open.
//!
//! Every connection is used from a thread of its own or the blocking pool, never from the
//! daemon's event loop.

mod schema;

use std::{
    path::{Path, PathBuf},
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use rusqlite::Connection;

pub use schema::SCHEMA_VERSION;

/// The database's file name under `state_dir`.
pub const FILE_NAME: &str = "history.sqlite3";

/// Page cache per connection (KiB): bounds memory whatever the table sizes.
const CACHE_KIB: i64 = 8 * 1024;

/// How long a writer waits for another writer before giving up.
const BUSY_TIMEOUT: Duration = Duration::from_secs(10);

#[derive(Debug, thiserror::Error)]
pub enum HistoryError {
    #[error("history database {path}: {source}")]
    Sqlite {
        path: PathBuf,
        source: rusqlite::Error,
    },
    #[error("cannot create state directory {path}: {source}")]
    CreateDir {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(
        "history database {path} has schema version {found}, newer than this agent's {SCHEMA_VERSION}; upgrade the agent"
    )]
    TooNew { path: PathBuf, found: i64 },
}

/// Where the database lives, and how to open connections to it.
#[derive(Clone, Debug)]
pub struct History {
    path: PathBuf,
}

impl History {
    /// Creates or migrates the database under `state_dir`.
    pub fn open(state_dir: &Path) -> Result<History, HistoryError> {
        std::fs::create_dir_all(state_dir).map_err(|source| HistoryError::CreateDir {
            path: state_dir.to_owned(),
            source,
        })?;
        let history = History {
            path: state_dir.join(FILE_NAME),
        };
        let mut conn = history.connect()?;
        // Identity is personal data: root only (SQLite gives -wal and -shm the same mode).
        if let Err(err) = std::fs::set_permissions(
            &history.path,
            std::os::unix::fs::PermissionsExt::from_mode(0o600),
        ) {
            tracing::warn!(%err, path = %history.path.display(), "cannot make the history database 0600");
        }
        schema::migrate(&mut conn).map_err(|err| match err {
            schema::MigrateError::TooNew(found) => HistoryError::TooNew {
                path: history.path.clone(),
                found,
            },
            schema::MigrateError::Sqlite(source) => history.error(source),
        })?;
        Ok(history)
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// A new connection with the agent's settings (WAL, bounded cache, busy timeout).
    pub fn connect(&self) -> Result<Connection, HistoryError> {
        let conn = Connection::open(&self.path).map_err(|e| self.error(e))?;
        conn.busy_timeout(BUSY_TIMEOUT).map_err(|e| self.error(e))?;
        conn.execute_batch(&format!(
            "PRAGMA journal_mode = WAL;
             PRAGMA synchronous = NORMAL;
             PRAGMA foreign_keys = ON;
             PRAGMA cache_size = -{CACHE_KIB};
             PRAGMA temp_store = FILE;
             PRAGMA mmap_size = 0;"
        ))
        .map_err(|e| self.error(e))?;
        Ok(conn)
    }

    /// Names the file in an SQLite error.
    pub fn error(&self, source: rusqlite::Error) -> HistoryError {
        HistoryError::Sqlite {
            path: self.path.clone(),
            source,
        }
    }
}

/// Milliseconds since the Unix epoch: how times are stored (sortable, indexable).
pub fn unix_ms(time: SystemTime) -> i64 {
    time.duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

pub fn now_ms() -> i64 {
    unix_ms(SystemTime::now())
}

/// The instant of a stored millisecond time.
pub fn from_unix_ms(ms: i64) -> SystemTime {
    UNIX_EPOCH + Duration::from_millis(u64::try_from(ms).unwrap_or(0))
}

/// A stored time as the CLI and reports show it (RFC 3339, UTC).
pub fn rfc3339_of_ms(ms: i64) -> String {
    crate::clock::rfc3339(from_unix_ms(ms))
}

/// Parses an operator's RFC 3339 time (`--at`, `--since`).
pub fn parse_rfc3339(text: &str) -> Result<SystemTime, String> {
    time::OffsetDateTime::parse(text.trim(), &time::format_description::well_known::Rfc3339)
        .map(SystemTime::from)
        .map_err(|err| {
            format!("`{text}` is not an RFC 3339 time (e.g. 2026-12-01T22:30:00Z): {err}")
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn opens_migrates_and_reopens() {
        let dir = std::env::temp_dir().join(format!("egress-history-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let history = History::open(&dir).expect("open");
        let conn = history.connect().expect("connect");
        let version: i64 = conn
            .query_row("PRAGMA user_version", [], |row| row.get(0))
            .expect("version");
        assert_eq!(version, SCHEMA_VERSION);
        let mode: String = conn
            .query_row("PRAGMA journal_mode", [], |row| row.get(0))
            .expect("mode");
        assert_eq!(mode, "wal");
        drop(conn);
        History::open(&dir).expect("reopen is a no-op migration");
        let conn = history.connect().expect("connect");
        conn.execute_batch(&format!("PRAGMA user_version = {}", SCHEMA_VERSION + 1))
            .expect("bump");
        drop(conn);
        let err = History::open(&dir).expect_err("newer schema refused");
        assert!(err.to_string().contains("newer than this agent"), "{err}");
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn rfc3339_round_trips_through_ms() {
        let at = parse_rfc3339("2026-12-01T22:30:00.250Z").expect("parse");
        assert_eq!(rfc3339_of_ms(unix_ms(at)), "2026-12-01T22:30:00.250Z");
        let offset = parse_rfc3339("2026-12-01T23:30:00+01:00").expect("offset");
        assert_eq!(rfc3339_of_ms(unix_ms(offset)), "2026-12-01T22:30:00.000Z");
        assert!(parse_rfc3339("yesterday").is_err());
    }
}
