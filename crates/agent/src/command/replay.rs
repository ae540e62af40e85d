//! The replay guard: command ids seen, each kept until its command expires, on disk so that a
//! restart does not reopen the window.
//!
//! A signed command captured on the wire stays validly signed until it expires; without this
//! guard anyone who saw it could have it executed again (a second ClearDtcs, say). The file is
//! rewritten whole (temp file, fsync, rename) after every accepted command, before it runs, so
//! a crash leaves either the old or the new set and never a command that ran without being
//! recorded. The set is small: the policy's max TTL bounds how long an id is kept.
//!
//! Failures are closed: a full guard or one that cannot be saved refuses the command, and a
//! file that exists but cannot be read makes the guard refuse every command issued before the
//! agent started (plus the clock-skew allowance), since any of those might have been seen.

use std::collections::HashMap;
use std::io::Write as _;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use telltale_wire::v1;
use tracing::{error, info};

/// The persisted form.
#[derive(Debug, Default, Serialize, Deserialize)]
struct ReplayFile {
    seen: Vec<Seen>,
}

#[derive(Debug, Serialize, Deserialize)]
struct Seen {
    id: String,
    expires_unix_ms: i64,
}

/// Why the guard refused a command; the words go into the command result.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum ReplayError {
    #[error("command id {0:?} was seen before")]
    Seen(String),
    #[error(
        "the replay record could not be read at start; commands issued before {0} (device clock, ms) are refused: send a new one"
    )]
    BeforeHorizon(i64),
    #[error("{0} unexpired command ids are remembered, the most allowed; retry after some expire")]
    Full(usize),
    #[error("cannot save the replay record {path}: {cause}")]
    Save { path: PathBuf, cause: String },
}

#[derive(Debug)]
pub(crate) struct ReplayGuard {
    path: PathBuf,
    /// Command id → its expiry (device clock, ms).
    seen: HashMap<String, i64>,
    capacity: usize,
    /// Set when the file existed but could not be used: commands issued at or before this are
    /// refused.
    horizon: Option<i64>,
}

impl ReplayGuard {
    /// Loads the record at `path`. Never fails: a missing file is an empty record (first
    /// start), an unusable one sets the horizon (see the module doc).
    pub(crate) fn load(
        path: &Path,
        now_unix_ms: i64,
        skew_ms: i64,
        capacity: usize,
    ) -> ReplayGuard {
        let mut guard = ReplayGuard {
            path: path.to_owned(),
            seen: HashMap::new(),
            capacity,
            horizon: None,
        };
        let parsed = std::fs::read_to_string(path)
            .map_err(|e| (e.kind() == std::io::ErrorKind::NotFound, e.to_string()))
            .and_then(|text| {
                serde_json::from_str::<ReplayFile>(&text).map_err(|e| (false, e.to_string()))
            });
        match parsed {
            Ok(file) => {
                guard.seen = file
                    .seen
                    .into_iter()
                    .filter(|s| s.expires_unix_ms > now_unix_ms)
                    .map(|s| (s.id, s.expires_unix_ms))
                    .collect();
                info!(path = %path.display(), remembered = guard.seen.len(), "replay record loaded");
            }
            Err((true, _)) => {
                info!(path = %path.display(), "no replay record yet; starting empty");
            }
            Err((false, cause)) => {
                let horizon = now_unix_ms.saturating_add(skew_ms);
                error!(
                    path = %path.display(),
                    cause,
                    horizon,
                    "replay record unusable; refusing commands issued before the horizon"
                );
                guard.horizon = Some(horizon);
            }
        }
        guard
    }

    /// Records `command` as seen, or says why it must not run. The record is on disk when
    /// this returns `Ok`.
    pub(crate) fn admit(
        &mut self,
        command: &v1::Command,
        now_unix_ms: i64,
    ) -> Result<(), ReplayError> {
        self.seen.retain(|_, expires| *expires > now_unix_ms);
        if self.seen.contains_key(&command.command_id) {
            return Err(ReplayError::Seen(command.command_id.clone()));
        }
        if let Some(horizon) = self.horizon
            && command.issued_unix_ms <= horizon
        {
            return Err(ReplayError::BeforeHorizon(horizon));
        }
        if self.seen.len() >= self.capacity {
            return Err(ReplayError::Full(self.seen.len()));
        }
        // Kept in memory even if saving fails: the id has been seen either way.
        self.seen
            .insert(command.command_id.clone(), command.expires_unix_ms);
        self.save().map_err(|cause| ReplayError::Save {
            path: self.path.clone(),
            cause: cause.to_string(),
        })
    }

    fn save(&self) -> std::io::Result<()> {
        let mut seen: Vec<Seen> = self
            .seen
            .iter()
            .map(|(id, &expires_unix_ms)| Seen {
                id: id.clone(),
                expires_unix_ms,
            })
            .collect();
        seen.sort_by(|a, b| a.id.cmp(&b.id));
        let text = serde_json::to_vec(&ReplayFile { seen }).map_err(std::io::Error::other)?;
        let dir = match self.path.parent() {
            Some(d) if !d.as_os_str().is_empty() => d.to_owned(),
            _ => PathBuf::from("."),
        };
        std::fs::create_dir_all(&dir)?;
        let mut tmp_name = self.path.file_name().unwrap_or_default().to_owned();
        tmp_name.push(".tmp");
        let tmp = dir.join(tmp_name);
        let mut file = std::fs::File::create(&tmp)?;
        file.write_all(&text)?;
        file.sync_all()?;
        drop(file);
        std::fs::rename(&tmp, &self.path)?;
        // The rename itself is durable only once the directory is synced.
        std::fs::File::open(&dir)?.sync_all()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: i64 = 1_700_000_000_000;

    fn command(id: &str, issued: i64, expires: i64) -> v1::Command {
        v1::Command {
            command_id: id.into(),
            device_id: "car".into(),
            issued_unix_ms: issued,
            expires_unix_ms: expires,
            action: None,
        }
    }

    #[test]
    fn ids_are_remembered_until_expiry_and_across_loads() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub/replay.json");
        let mut g = ReplayGuard::load(&path, NOW, 0, 10);
        assert_eq!(g.admit(&command("a", NOW, NOW + 1000), NOW), Ok(()));
        assert_eq!(
            g.admit(&command("a", NOW, NOW + 1000), NOW + 10),
            Err(ReplayError::Seen("a".into()))
        );
        assert_eq!(g.admit(&command("b", NOW, NOW + 5000), NOW), Ok(()));

        let mut again = ReplayGuard::load(&path, NOW + 10, 0, 10);
        assert_eq!(
            again.admit(&command("a", NOW, NOW + 1000), NOW + 10),
            Err(ReplayError::Seen("a".into()))
        );
        // Once expired the id is forgotten (verify refuses the command as expired anyway).
        let mut later = ReplayGuard::load(&path, NOW + 2000, 0, 10);
        assert_eq!(later.seen.len(), 1);
        assert_eq!(
            later.admit(&command("a", NOW, NOW + 3000), NOW + 2000),
            Ok(())
        );
        assert!(!dir.path().join("sub/replay.json.tmp").exists());
    }

    #[test]
    fn a_full_guard_refuses_rather_than_forgets() {
        let dir = tempfile::tempdir().unwrap();
        let mut g = ReplayGuard::load(&dir.path().join("r.json"), NOW, 0, 2);
        assert_eq!(g.admit(&command("a", NOW, NOW + 100), NOW), Ok(()));
        assert_eq!(g.admit(&command("b", NOW, NOW + 1000), NOW), Ok(()));
        assert_eq!(
            g.admit(&command("c", NOW, NOW + 1000), NOW),
            Err(ReplayError::Full(2))
        );
        // "a" expires, making room.
        assert_eq!(g.admit(&command("c", NOW, NOW + 1000), NOW + 100), Ok(()));
    }

    #[test]
    fn an_unreadable_record_refuses_everything_issued_before_start() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("r.json");
        std::fs::write(&path, b"{ torn").unwrap();
        let mut g = ReplayGuard::load(&path, NOW, 500, 10);
        assert_eq!(
            g.admit(&command("old", NOW + 500, NOW + 9000), NOW + 600),
            Err(ReplayError::BeforeHorizon(NOW + 500))
        );
        assert_eq!(
            g.admit(&command("new", NOW + 501, NOW + 9000), NOW + 600),
            Ok(())
        );
        // The rewritten file is good again.
        let g2 = ReplayGuard::load(&path, NOW + 700, 500, 10);
        assert_eq!(g2.horizon, None);
        assert!(g2.seen.contains_key("new"));
    }

    #[test]
    fn a_record_that_cannot_be_saved_refuses_the_command() {
        let dir = tempfile::tempdir().unwrap();
        let blocker = dir.path().join("blocker");
        let mut g = ReplayGuard::load(&blocker.join("r.json"), NOW, 0, 10);
        // After loading, the parent "directory" becomes a file: saving fails.
        std::fs::write(&blocker, b"").unwrap();
        assert!(matches!(
            g.admit(&command("a", NOW, NOW + 100), NOW),
            Err(ReplayError::Save { .. })
        ));
        // Still remembered in memory.
        assert_eq!(
            g.admit(&command("a", NOW, NOW + 100), NOW),
            Err(ReplayError::Seen("a".into()))
        );
    }
}
