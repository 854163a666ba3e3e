//! TLS for the test cluster: a CA of its own, one server certificate for every member's
//! address, and a client certificate for etcdctl (common name `root`, which etcd takes as
//! the user once authentication is on).

use std::path::{Path, PathBuf};

use crate::tls::{Issued, TestCa, Usage};

pub struct EtcdTls {
    pub ca: TestCa,
    server: Issued,
    etcdctl: Issued,
}

impl EtcdTls {
    pub(super) fn new(dir: &Path, addresses: &[&str]) -> EtcdTls {
        let ca = TestCa::new(dir, "etcd-ca", "egress test etcd CA");
        let alt_names: Vec<String> = addresses.iter().map(|a| format!("IP:{a}")).collect();
        let server = ca.issue("etcd-server", "etcd", &alt_names.join(","), Usage::Server);
        let etcdctl = ca.issue("etcdctl", "root", "", Usage::Client);
        EtcdTls {
            ca,
            server,
            etcdctl,
        }
    }

    /// A client certificate for `cn` (the etcd user it authenticates as), from this CA.
    pub fn client(&self, cn: &str) -> Issued {
        self.ca
            .issue(&format!("client-{cn}"), cn, "", Usage::Client)
    }

    pub fn ca_file(&self) -> &PathBuf {
        &self.ca.cert
    }

    pub(super) fn server_args(&self) -> Vec<String> {
        vec![
            format!("--cert-file={}", self.server.cert.display()),
            format!("--key-file={}", self.server.key.display()),
            format!("--trusted-ca-file={}", self.ca.cert.display()),
            "--client-cert-auth".to_owned(),
        ]
    }

    pub(super) fn client_args(&self) -> Vec<String> {
        vec![
            format!("--cacert={}", self.ca.cert.display()),
            format!("--cert={}", self.etcdctl.cert.display()),
            format!("--key={}", self.etcdctl.key.display()),
        ]
    }
}
