//! The deployment files name only settings the programs have. There is no container engine on
//! these machines, so the Compose, Kubernetes and systemd files are checked by reading: every
//! `TELLTALE_*` environment variable they set must be one the binary lists in its `--help`,
//! and every `${VARIABLE}` Compose substitutes must be in `example.env`. (The Mosquitto
//! configuration and ACL are run for real in `ingest.rs` and `agent_tls.rs`; the agent's
//! example TOML is parsed by its unit tests.)

use std::collections::BTreeSet;
use std::process::Command;

use telltale_e2e::binary;
use telltale_e2e::rig::repo;

/// Every `env: NAME` in the `--help` of `bin args..`.
fn help_envs(bin: &str, args: &[&str]) -> BTreeSet<String> {
    let out = Command::new(binary(bin))
        .args(args)
        .arg("--help")
        .output()
        .expect("run --help");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    text.split("env: ")
        .skip(1)
        .map(|rest| {
            rest.chars()
                .take_while(|c| c.is_ascii_uppercase() || *c == '_')
                .collect()
        })
        .collect()
}

/// `TELLTALE_*` names in `text` outside comments: (set as variables, substituted as
/// `${NAME}`).
fn names(text: &str) -> (BTreeSet<String>, BTreeSet<String>) {
    let (mut set, mut substituted) = (BTreeSet::new(), BTreeSet::new());
    let code: String = text
        .lines()
        .filter(|l| !l.trim_start().starts_with('#'))
        .map(|l| l.split(" #").next().unwrap_or(""))
        .collect::<Vec<_>>()
        .join("\n");
    let text = code.as_str();
    for (at, _) in text.match_indices("TELLTALE_") {
        let name: String = text[at..]
            .chars()
            .take_while(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || *c == '_')
            .collect();
        if text[..at].ends_with("${") {
            substituted.insert(name);
        } else {
            set.insert(name);
        }
    }
    (set, substituted)
}

#[test]
fn deployment_files_set_only_settings_the_programs_have() {
    let mut known = help_envs("telltale-ingest", &[]);
    known.extend(help_envs("telltale-agent", &[]));
    known.extend(help_envs("telltale-crm", &["serve"]));
    known.extend(help_envs("telltale-crm", &["leads", "list"]));
    assert!(
        known.contains("TELLTALE_INGEST_MQTT_URL") && known.contains("TELLTALE_CRM_LINK_KEY_FILE"),
        "{known:?}"
    );
    let example_env =
        std::fs::read_to_string(repo().join("deploy/compose/example.env")).expect("example.env");
    let defined: BTreeSet<String> = example_env
        .lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| l.split_once('=').map(|(k, _)| k.trim().to_owned()))
        .collect();
    for file in [
        "deploy/compose/compose.yaml",
        "deploy/k8s/telltale.yaml",
        "deploy/systemd/telltale-agent.service",
    ] {
        let text =
            std::fs::read_to_string(repo().join(file)).unwrap_or_else(|e| panic!("{file}: {e}"));
        let (set, substituted) = names(&text);
        for name in &set {
            assert!(
                known.contains(name),
                "{file} sets {name}, which no Telltale program reads"
            );
        }
        for name in &substituted {
            assert!(
                defined.contains(name),
                "{file} substitutes ${{{name}}}, missing from example.env"
            );
        }
    }
    // What the Compose file substitutes is all the example asks for, and no more.
    let compose =
        std::fs::read_to_string(repo().join("deploy/compose/compose.yaml")).expect("compose");
    assert_eq!(names(&compose).1, defined);
}
