//! Configuration values shared by every program: the error that names its key, durations,
//! sizes, files read at start, TOML files with unknown keys refused, and secrets kept out of
//! printed URLs.

use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::de::DeserializeOwned;

/// Why a configuration was refused. [`ConfigError::Invalid`] names the key it is about, as
/// written in the file (`mqtt.url`, `batch.max_age`, `signals[2].period`).
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {source}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("config file {path}: {message}")]
    Parse { path: PathBuf, message: String },
    #[error("{key}: {message}")]
    Invalid { key: String, message: String },
}

/// The error for a bad value of `key`.
pub fn invalid(key: impl Into<String>, message: impl fmt::Display) -> ConfigError {
    ConfigError::Invalid {
        key: key.into(),
        message: message.to_string(),
    }
}

/// Reads and parses a TOML file into `T`; unknown keys (with `deny_unknown_fields`) and wrong
/// types are errors naming the key, line and column.
pub fn load_toml<T: DeserializeOwned>(path: &Path) -> Result<T, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
        path: path.to_owned(),
        source,
    })?;
    parse_toml(&text).map_err(|message| ConfigError::Parse {
        path: path.to_owned(),
        message,
    })
}

/// Parses TOML text; the error is toml's message (with line, column and key).
pub fn parse_toml<T: DeserializeOwned>(text: &str) -> Result<T, String> {
    toml::from_str(text).map_err(|e| e.to_string().trim_end().to_owned())
}

/// Prints a configuration as TOML (for `--print-config`; hide secrets first).
pub fn to_toml<T: serde::Serialize>(value: &T) -> String {
    toml::to_string_pretty(value).unwrap_or_else(|e| format!("# cannot print: {e}\n"))
}

/// Reads a file named by `key` (a certificate, a key, a password file) at start, so a missing
/// file is a start-up error naming the key rather than a reconnect loop later.
pub fn read_file(key: &str, path: &Path) -> Result<Vec<u8>, ConfigError> {
    std::fs::read(path).map_err(|e| invalid(key, format!("{}: {e}", path.display())))
}

/// A password file's content: UTF-8, trailing newline removed.
pub fn read_secret(key: &str, path: &Path) -> Result<String, ConfigError> {
    let bytes = read_file(key, path)?;
    Ok(String::from_utf8(bytes)
        .map_err(|_| invalid(key, "not UTF-8"))?
        .trim_end_matches(['\r', '\n'])
        .to_owned())
}

/// [`parse_duration`] with the error naming `key`.
pub fn duration(key: &str, text: &str) -> Result<Duration, ConfigError> {
    parse_duration(text).map_err(|e| invalid(key, e))
}

/// [`parse_size`] with the error naming `key`.
pub fn size(key: &str, text: &str) -> Result<u64, ConfigError> {
    parse_size(text).map_err(|e| invalid(key, e))
}

/// `250ms`, `30s`, `5m`, `1h`, `30d`, `1.5s`.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let t = text.trim();
    let split = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .ok_or_else(|| format!("{text:?}: give a unit, e.g. 500ms, 30s, 5m, 1h, 30d"))?;
    let (num, unit) = t.split_at(split);
    let n: f64 = num
        .parse()
        .map_err(|_| format!("{text:?}: not a duration (e.g. 500ms, 30s, 5m, 1h, 30d)"))?;
    let secs = match unit.trim() {
        "ms" => n / 1000.0,
        "s" => n,
        "m" | "min" => n * 60.0,
        "h" => n * 3600.0,
        "d" => n * 86_400.0,
        other => return Err(format!("{text:?}: unknown unit {other:?} (ms, s, m, h, d)")),
    };
    if !(secs.is_finite() && (0.0..1.0e9).contains(&secs)) {
        return Err(format!("{text:?}: out of range"));
    }
    Ok(Duration::from_secs_f64(secs))
}

/// `64MiB`, `512KiB`, `1GiB`, `65536` (bytes); `KB`/`MB`/`GB` are read as the binary units too.
pub fn parse_size(text: &str) -> Result<u64, String> {
    let t = text.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let n: u64 = num
        .parse()
        .map_err(|_| format!("{text:?}: not a size (e.g. 64MiB)"))?;
    let mult: u64 = match unit.trim() {
        "" | "B" => 1,
        "KiB" | "KB" | "K" => 1 << 10,
        "MiB" | "MB" | "M" => 1 << 20,
        "GiB" | "GB" | "G" => 1 << 30,
        other => return Err(format!("{text:?}: unknown unit {other:?} (KiB, MiB, GiB)")),
    };
    n.checked_mul(mult)
        .ok_or_else(|| format!("{text:?}: too large"))
}

/// `log.format`: `text` (false) or `json` (true).
pub fn json_logs(key: &str, format: &str) -> Result<bool, ConfigError> {
    match format {
        "text" => Ok(false),
        "json" => Ok(true),
        other => Err(invalid(key, format!("{other:?}: use \"text\" or \"json\""))),
    }
}

/// `log.filter`: a `tracing` filter such as `info,telltale_ingest=debug`.
pub fn log_filter(key: &str, filter: &str) -> Result<(), ConfigError> {
    tracing_subscriber::EnvFilter::try_new(filter)
        .map(|_| ())
        .map_err(|e| invalid(key, e))
}

/// `postgres://user:secret@host/db` → `postgres://user:<redacted>@host/db`; a URL without a
/// password is returned as it is.
pub fn redact_url(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    let Some((auth, host)) = rest.rsplit_once('@') else {
        return url.to_owned();
    };
    match auth.split_once(':') {
        Some((user, _)) => format!("{scheme}://{user}:<redacted>@{host}"),
        None => url.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("30s"), Ok(Duration::from_secs(30)));
        assert_eq!(parse_duration("5m"), Ok(Duration::from_secs(300)));
        assert_eq!(parse_duration("1h"), Ok(Duration::from_secs(3600)));
        assert_eq!(parse_duration("30d"), Ok(Duration::from_secs(30 * 86_400)));
        assert_eq!(parse_duration("1.5s"), Ok(Duration::from_millis(1500)));
        assert!(parse_duration("30").unwrap_err().contains("give a unit"));
        assert!(
            parse_duration("3 weeks")
                .unwrap_err()
                .contains("unknown unit")
        );
        assert!(parse_duration("1..2s").is_err());
        assert!(parse_duration("1e30h").is_err());
    }

    #[test]
    fn sizes() {
        assert_eq!(parse_size("65536"), Ok(65_536));
        assert_eq!(parse_size("512KiB"), Ok(512 * 1024));
        assert_eq!(parse_size("64MiB"), Ok(64 << 20));
        assert_eq!(parse_size("1GB"), Ok(1 << 30));
        assert!(
            parse_size("12 parsecs")
                .unwrap_err()
                .contains("unknown unit")
        );
        assert!(parse_size("MiB").is_err());
        assert!(
            parse_size("99999999999999GiB")
                .unwrap_err()
                .contains("too large")
        );
    }

    #[test]
    fn errors_name_their_key() {
        let e = duration("batch.max_age", "soon").unwrap_err();
        assert!(e.to_string().starts_with("batch.max_age: "), "{e}");
        let e = read_file("mqtt.ca_file", Path::new("/nonexistent/ca.pem")).unwrap_err();
        assert!(
            e.to_string()
                .starts_with("mqtt.ca_file: /nonexistent/ca.pem"),
            "{e}"
        );
        assert!(json_logs("log.format", "xml").is_err());
        assert!(log_filter("log.filter", "info,[[[").is_err());
    }

    #[test]
    fn secrets_leave_urls() {
        assert_eq!(
            redact_url("postgres://app:hunter2@db:5432/telltale"),
            "postgres://app:<redacted>@db:5432/telltale"
        );
        assert_eq!(
            redact_url("postgres://app@db/telltale"),
            "postgres://app@db/telltale"
        );
        assert_eq!(
            redact_url("sqlite:///var/lib/t.db"),
            "sqlite:///var/lib/t.db"
        );
    }

    #[test]
    fn password_files_lose_their_newline() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("pw");
        std::fs::write(&p, "s3cret\n").unwrap();
        assert_eq!(read_secret("mqtt.password_file", &p).unwrap(), "s3cret");
        std::fs::write(&p, [0xff, 0xfe]).unwrap();
        assert!(read_secret("mqtt.password_file", &p).is_err());
    }
}
