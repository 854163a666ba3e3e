//! A throwaway certificate authority for tests (Debian's `openssl`): P-256 keys, two-day
//! certificates, subject alternative names as the servers are reached (IP or DNS).

use std::{
    fs,
    path::{Path, PathBuf},
    process::Command,
};

/// What a certificate is for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Usage {
    Server,
    Client,
}

/// A certificate and its key.
pub struct Issued {
    pub cert: PathBuf,
    pub key: PathBuf,
}

/// A CA in `dir` (`<name>.pem`, `<name>.key`).
pub struct TestCa {
    dir: PathBuf,
    name: String,
    pub cert: PathBuf,
}

impl TestCa {
    /// A new CA called `subject` with its files in `dir`, named `<name>.pem`, `<name>.key`.
    pub fn new(dir: &Path, name: &str, subject: &str) -> TestCa {
        fs::create_dir_all(dir).expect("create CA dir");
        let ca = TestCa {
            dir: dir.to_owned(),
            name: name.to_owned(),
            cert: dir.join(format!("{name}.pem")),
        };
        ca.openssl(
            &[
                &["req", "-x509"][..],
                &NEW_KEY,
                &[
                    "-keyout",
                    &format!("{name}.key"),
                    "-out",
                    &format!("{name}.pem"),
                    "-days",
                    "2",
                    "-subj",
                    &format!("/CN={subject}"),
                    "-addext",
                    "basicConstraints=critical,CA:TRUE",
                    "-addext",
                    "keyUsage=critical,keyCertSign,cRLSign",
                ],
            ]
            .concat(),
        );
        ca
    }

    /// A certificate for common name `cn`, valid for `alt_names` (e.g. `IP:192.0.2.1,DNS:x`;
    /// empty for none), signed by this CA; files `<file>.pem` and `<file>.key`.
    pub fn issue(&self, file: &str, cn: &str, alt_names: &str, usage: Usage) -> Issued {
        self.openssl(
            &[
                &["req"][..],
                &NEW_KEY,
                &[
                    "-keyout",
                    &format!("{file}.key"),
                    "-out",
                    &format!("{file}.csr"),
                    "-subj",
                    &format!("/CN={cn}"),
                ],
            ]
            .concat(),
        );
        let purpose = match usage {
            Usage::Server => "serverAuth",
            Usage::Client => "clientAuth",
        };
        let mut extensions = format!("basicConstraints=CA:FALSE\nextendedKeyUsage={purpose}\n");
        if !alt_names.is_empty() {
            extensions += &format!("subjectAltName={alt_names}\n");
        }
        fs::write(self.dir.join(format!("{file}.ext")), extensions).expect("write extensions");
        self.openssl(&[
            "x509",
            "-req",
            "-in",
            &format!("{file}.csr"),
            "-CA",
            &format!("{}.pem", self.name),
            "-CAkey",
            &format!("{}.key", self.name),
            "-CAcreateserial",
            "-out",
            &format!("{file}.pem"),
            "-days",
            "2",
            "-extfile",
            &format!("{file}.ext"),
        ]);
        Issued {
            cert: self.dir.join(format!("{file}.pem")),
            key: self.dir.join(format!("{file}.key")),
        }
    }

    fn openssl(&self, args: &[&str]) {
        let out = Command::new("openssl")
            .args(args)
            .current_dir(&self.dir)
            .output()
            .expect("cannot run openssl (Debian package openssl)");
        assert!(
            out.status.success(),
            "openssl {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

/// A new P-256 key, unencrypted.
const NEW_KEY: [&str; 5] = [
    "-newkey",
    "ec",
    "-pkeyopt",
    "ec_paramgen_curve:prime256v1",
    "-nodes",
];
