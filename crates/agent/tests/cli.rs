//! `telltale-agent` start-up: the effective configuration (file, then environment, then flags)
//! and the refusal of bad configuration with a message that names the key.

use std::process::{Command, Output};

fn agent(args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_telltale-agent"));
    cmd.args(args);
    for (k, _) in std::env::vars() {
        if k.starts_with("TELLTALE_AGENT_") {
            cmd.env_remove(k);
        }
    }
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.output().expect("run telltale-agent")
}

#[test]
fn print_config_shows_flags_over_environment_over_file() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("agent.toml");
    std::fs::write(
        &file,
        "device_id = \"from-file\"\nlink = \"sim:file\"\n[mqtt]\nurl = \"mqtt://file:1883\"\nusername = \"u\"\npassword = \"s3cret\"\n[spool]\nmax_size = \"1MiB\"\n",
    )
    .unwrap();
    let out = agent(
        &[
            "--config",
            file.to_str().unwrap(),
            "--link",
            "sim:flag",
            "--print-config",
        ],
        &[
            ("TELLTALE_AGENT_LINK", "sim:env"),
            ("TELLTALE_AGENT_MQTT_URL", "mqtt://env:1883"),
        ],
    );
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(text.contains("device_id = \"from-file\""), "{text}");
    assert!(
        text.contains("link = \"sim:flag\""),
        "flag beats env: {text}"
    );
    assert!(
        text.contains("url = \"mqtt://env:1883\""),
        "env beats file: {text}"
    );
    assert!(text.contains("max_size = \"1MiB\""), "{text}");
    assert!(!text.contains("s3cret"), "password printed: {text}");
}

#[test]
fn bad_configuration_is_refused_naming_the_key() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("agent.toml");
    std::fs::write(
        &file,
        "device_id = \"d\"\nlink = \"sim:x\"\n[spool]\nfsync = \"sometimes\"\n",
    )
    .unwrap();
    let out = agent(&["--config", file.to_str().unwrap()], &[]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("spool.fsync"), "{err}");

    std::fs::write(&file, "device_id = \"d\"\n[mqtt]\nurl = 5\n").unwrap();
    let out = agent(&["--config", file.to_str().unwrap()], &[]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("url") && err.contains("agent.toml"), "{err}");

    let out = agent(&["--link", "sim:x"], &[]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("device_id"), "{err}");

    let missing = dir.path().join("nope.toml");
    let out = agent(&["--config", missing.to_str().unwrap()], &[]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("nope.toml"));
}
