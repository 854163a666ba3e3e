//! `[fleet]` against a secured etcd: TLS with client certificates (the certificate's common
//! name is the etcd user) and password authentication, each with a role limited to the
//! fleet's key prefix. A router with the wrong credentials says why in `status`, refuses CLI
//! changes with exit 1, and never writes; a missing credential file stops the agent before
//! it touches the dataplane.

use std::path::{Path, PathBuf};

use tests::{
    agent::{AgentFiles, RELAY, wait_for, wait_until},
    etcd::{
        Etcd,
        fleet::{self, KEY_PREFIX, Router, relay_key},
    },
    tls::{TestCa, Usage},
};

/// `[metrics]` and a `[fleet]` table on router `k` with the given extra `[fleet]` keys.
fn config(etcd: &Etcd, k: usize, fleet_keys: &str) -> String {
    format!(
        "[metrics]\nlisten = \"{}:9725\"\n\n[fleet]\netcd_endpoints = {}\n\
         key_prefix = \"{KEY_PREFIX}\"\n{fleet_keys}\n",
        fleet::router_address(k),
        etcd.endpoints_toml()
    )
}

fn scratch_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("egress-test-{name}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("scratch dir");
    dir
}

fn wait_synced_and_writing(router: &Router, etcd: &Etcd) {
    wait_for("router connected to the secured etcd", 30, || {
        router.fleet_status()["connected"] == true
    });
    router
        .agent
        .cli_ok(&["relay", "add", RELAY, "--comment", "secured"]);
    assert!(
        etcd.get_prefix(KEY_PREFIX)
            .iter()
            .any(|(k, _)| *k == relay_key("192.0.2.10/32")),
        "relay add did not reach etcd"
    );
    wait_for("the fleet relay gets through", 20, || {
        router.relay_connects()
    });
}

/// A router that cannot authenticate: disconnected with `expected` in its error, CLI
/// changes refused with exit 1, nothing written.
fn assert_locked_out(router: &Router, etcd: &Etcd, expected: &str) {
    let mut seen = serde_json::Value::Null;
    let named = wait_until(30, || {
        seen = router.fleet_status();
        seen["connected"] == false
            && seen["last_error"]
                .as_str()
                .is_some_and(|e| e.to_lowercase().contains(expected))
    });
    assert!(
        named,
        "status does not name the failure ({expected}): {seen}"
    );
    let out = router.agent.cli(&["relay", "add", "192.0.2.50"]);
    assert_eq!(
        out.status.code(),
        Some(1),
        "relay add while locked out: {out:?}"
    );
    assert!(
        etcd.get_prefix(KEY_PREFIX)
            .iter()
            .all(|(k, _)| *k != relay_key("192.0.2.50/32")),
        "a locked-out router wrote to etcd"
    );
    assert!(
        !router.subscriber_connects(),
        "locked-out router lets a subscriber through"
    );
}

fn tls_keys(ca: &Path, cert: &Path, key: &Path) -> String {
    format!(
        "ca_file = \"{}\"\ncert_file = \"{}\"\nkey_file = \"{}\"\n",
        ca.display(),
        cert.display(),
        key.display()
    )
}

#[test]
fn tls_with_a_client_certificate_whose_name_is_the_fleet_user() {
    let mut etcd = Etcd::start_tls(1);
    etcd.enable_auth(
        "egress",
        "unused-with-certificates",
        &format!("{KEY_PREFIX}/"),
    );
    let tls = etcd.tls.as_ref().expect("TLS cluster");
    let client = tls.client("egress");
    let keys = tls_keys(tls.ca_file(), &client.cert, &client.key);
    let router = fleet::router_configured(&etcd, 0, &config(&etcd, 0, &keys));
    wait_synced_and_writing(&router, &etcd);

    // A certificate from another CA: etcd refuses the handshake.
    let dir = scratch_dir("other-ca");
    let stranger = TestCa::new(&dir, "other-ca", "some other CA");
    let forged = stranger.issue("forged", "egress", "", Usage::Client);
    let keys = tls_keys(tls.ca_file(), &forged.cert, &forged.key);
    let outsider = fleet::router_configured(&etcd, 1, &config(&etcd, 1, &keys));
    // The refusal comes as a failed handshake or, with TLS 1.3, as a closed connection; both
    // are named transport errors.
    assert_locked_out(&outsider, &etcd, "transport");
    drop(outsider);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn password_authentication_with_a_role_limited_to_the_fleet() {
    let mut etcd = Etcd::start(1);
    etcd.enable_auth("egress", "s3cret", &format!("{KEY_PREFIX}/"));
    let dir = scratch_dir("fleet-password");
    let good = dir.join("good.pw");
    std::fs::write(&good, "s3cret\n").expect("password file");
    let wrong = dir.join("wrong.pw");
    std::fs::write(&wrong, "guess\n").expect("password file");
    let credentials = |file: &Path| {
        format!(
            "username = \"egress\"\npassword_file = \"{}\"\n",
            file.display()
        )
    };

    let router = fleet::router_configured(&etcd, 0, &config(&etcd, 0, &credentials(&good)));
    wait_synced_and_writing(&router, &etcd);
    let outsider = fleet::router_configured(&etcd, 1, &config(&etcd, 1, &credentials(&wrong)));
    assert_locked_out(&outsider, &etcd, "authentication failed");

    // A missing password file stops `run` with the key and path named, before any pin.
    let files = AgentFiles::new();
    let missing = dir.join("missing.pw");
    files.write_config_for(&[], &config(&etcd, 2, &credentials(&missing)));
    let out = tests::agent::cli(&["run", "--config", files.config()]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success(),
        "run with a missing password file: {out:?}"
    );
    assert!(
        stderr.contains("fleet.password_file") && stderr.contains(&missing.display().to_string()),
        "the error does not name the key and file: {stderr}"
    );
    assert!(
        !files.pin_dir.exists(),
        "the agent pinned {} before refusing",
        files.pin_dir.display()
    );
    let _ = std::fs::remove_dir_all(&dir);
}
