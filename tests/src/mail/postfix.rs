//! A real Postfix smart relay: its own config and queue directories, Dovecot's SASL holding
//! the test account, and TLS with a certificate from a CA the test generates
//! (openssl). Started inside a test namespace; stopped (and its master waited for) on drop.

use std::{
    fs,
    os::unix::fs::PermissionsExt as _,
    path::{Path, PathBuf},
    process::Command,
    time::{Duration, Instant},
};

use egress_lab::Netns;

use super::{RELAY, RELAY_V6, dovecot::Dovecot};

pub const ACCOUNT: &str = "audit@isp.example";
pub const PASSWORD: &str = "correct horse battery staple";
pub const HOST: &str = "smtp.isp.example";

/// How the relay is (mis)configured; `Default` is the correct set-up.
#[derive(Clone, Copy, Debug, Default)]
pub struct Setup {
    /// Port 25 relays for anyone.
    pub open_relay: bool,
    /// `smtpd_tls_auth_only = no`: AUTH offered before STARTTLS.
    pub auth_before_tls: bool,
    /// 587 without STARTTLS.
    pub no_starttls: bool,
    /// No implicit-TLS service on 465.
    pub no_465: bool,
    /// No `reject_sender_login_mismatch`: a logged-in user may send as anyone.
    pub no_login_mismatch: bool,
}

/// The test CA and the relay's certificate (for `smtp.isp.example`).
pub struct Certificates {
    pub ca: PathBuf,
    pub cert: PathBuf,
    pub key: PathBuf,
}

pub fn make_certificates(dir: &Path) -> Certificates {
    let path = |name: &str| dir.join(name);
    let openssl = |args: &[&str]| {
        let out = Command::new("openssl")
            .args(args)
            .current_dir(dir)
            .output()
            .expect("cannot run openssl");
        assert!(
            out.status.success(),
            "openssl {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    let ec = [
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:prime256v1",
        "-nodes",
    ];
    openssl(
        &[
            &["req", "-x509"][..],
            &ec,
            &[
                "-keyout",
                "ca.key",
                "-out",
                "ca.pem",
                "-days",
                "2",
                "-subj",
                "/CN=egress audit test CA",
                "-addext",
                "basicConstraints=critical,CA:TRUE",
                "-addext",
                "keyUsage=critical,keyCertSign,cRLSign",
            ],
        ]
        .concat(),
    );
    openssl(
        &[
            &["req"][..],
            &ec,
            &[
                "-keyout",
                "smtp.key",
                "-out",
                "smtp.csr",
                "-subj",
                &format!("/CN={HOST}"),
            ],
        ]
        .concat(),
    );
    fs::write(
        path("smtp.ext"),
        format!(
            "subjectAltName=DNS:{HOST}\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n"
        ),
    )
    .expect("write ext");
    openssl(&[
        "x509",
        "-req",
        "-in",
        "smtp.csr",
        "-CA",
        "ca.pem",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-out",
        "smtp.pem",
        "-days",
        "2",
        "-extfile",
        "smtp.ext",
    ]);
    Certificates {
        ca: path("ca.pem"),
        cert: path("smtp.pem"),
        key: path("smtp.key"),
    }
}

pub struct Relay {
    netns: PathBuf,
    config_dir: PathBuf,
    master_pid_file: PathBuf,
    pub maillog: PathBuf,
    /// Dropped after the Drop below has stopped Postfix: smtpd never loses its SASL server.
    pub dovecot: Dovecot,
}

impl Relay {
    pub fn start(ns: &Netns, dir: &Path, certs: &Certificates, setup: Setup) -> Relay {
        let config_dir = dir.join("etc");
        let (queue, data) = (dir.join("queue"), dir.join("data"));
        // Dovecot puts its auth socket in the queue's private/ (smtpd_sasl_path is relative to
        // the queue directory); Postfix wants that directory its own, mode 0700.
        let private = queue.join("private");
        for path in [&config_dir, &private, &data] {
            fs::create_dir_all(path).expect("create postfix dir");
        }
        for path in [&data, &private] {
            let ok = Command::new("chown")
                .arg("postfix")
                .arg(path)
                .status()
                .is_ok_and(|s| s.success());
            assert!(ok, "chown postfix {}", path.display());
        }
        fs::set_permissions(&private, fs::Permissions::from_mode(0o700)).expect("chmod private");
        let dovecot = Dovecot::start(
            ns,
            &dir.join("dovecot"),
            &private.join("auth"),
            ACCOUNT,
            PASSWORD,
        );
        let maillog = dir.join("maillog");
        fs::write(
            config_dir.join("main.cf"),
            main_cf(dir, &queue, &data, &maillog, certs, setup),
        )
        .expect("main.cf");
        fs::write(config_dir.join("master.cf"), master_cf(setup)).expect("master.cf");
        let relay = Relay {
            netns: ns.path(),
            master_pid_file: queue.join("pid").join("master.pid"),
            config_dir,
            maillog,
            dovecot,
        };
        let out = relay.postfix("start");
        assert!(
            out.status.success(),
            "postfix start: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        relay.wait_listening(ns, setup);
        relay
    }

    fn postfix(&self, verb: &str) -> std::process::Output {
        Command::new("nsenter")
            .arg(format!("--net={}", self.netns.display()))
            .arg("postfix")
            .arg("-c")
            .arg(&self.config_dir)
            .arg(verb)
            .output()
            .expect("cannot run postfix")
    }

    fn wait_listening(&self, ns: &Netns, setup: Setup) {
        let ports: &[u16] = if setup.no_465 {
            &[25, 587]
        } else {
            &[25, 587, 465]
        };
        let start = Instant::now();
        loop {
            let up = ns
                .within(|| {
                    ports.iter().all(|port| {
                        std::net::TcpStream::connect_timeout(
                            &format!("{RELAY}:{port}").parse().expect("addr"),
                            Duration::from_millis(300),
                        )
                        .is_ok()
                    })
                })
                .unwrap_or(false);
            if up {
                return;
            }
            assert!(
                start.elapsed() < Duration::from_secs(20),
                "postfix not listening: {}",
                fs::read_to_string(&self.maillog).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        let master = fs::read_to_string(&self.master_pid_file)
            .ok()
            .and_then(|t| t.trim().parse::<i32>().ok());
        let _ = self.postfix("stop");
        if let Some(pid) = master {
            let start = Instant::now();
            while Path::new(&format!("/proc/{pid}")).exists()
                && start.elapsed() < Duration::from_secs(5)
            {
                std::thread::sleep(Duration::from_millis(50));
            }
            if Path::new(&format!("/proc/{pid}")).exists() {
                // SAFETY: kill() on the pid the master we started recorded.
                unsafe { libc::kill(pid, libc::SIGKILL) };
            }
        }
    }
}

fn main_cf(
    dir: &Path,
    queue: &Path,
    data: &Path,
    maillog: &Path,
    certs: &Certificates,
    setup: Setup,
) -> String {
    format!(
        "compatibility_level = 3.6
queue_directory = {queue}
data_directory = {data}
mail_owner = postfix
setgid_group = postdrop
maillog_file = {maillog}
maillog_file_prefixes = {dir}
myhostname = {HOST}
mydomain = isp.example
inet_interfaces = {RELAY}, [{RELAY_V6}]
inet_protocols = all
mynetworks = 127.0.0.0/8
mydestination =
local_recipient_maps =
alias_maps =
alias_database =
relay_domains =
smtpd_peername_lookup = no
smtpd_tls_cert_file = {cert}
smtpd_tls_key_file = {key}
smtpd_tls_security_level = may
smtpd_tls_auth_only = {auth_only}
smtpd_sasl_type = dovecot
smtpd_sasl_path = private/auth
{login_maps}smtpd_relay_restrictions = permit_mynetworks, reject_unauth_destination
",
        queue = queue.display(),
        data = data.display(),
        maillog = maillog.display(),
        dir = dir.display(),
        // Without the map the mismatch restriction has nothing to compare: both go together.
        login_maps = if setup.no_login_mismatch {
            String::new()
        } else {
            format!("smtpd_sender_login_maps = inline:{{ {ACCOUNT}={ACCOUNT} }}\n")
        },
        cert = certs.cert.display(),
        key = certs.key.display(),
        auth_only = if setup.auth_before_tls { "no" } else { "yes" },
    )
}

fn master_cf(setup: Setup) -> String {
    let relay_25 = if setup.open_relay {
        "\n  -o mynetworks=0.0.0.0/0,[::]/0"
    } else {
        ""
    };
    let tls_587 = if setup.no_starttls { "none" } else { "may" };
    let sender = if setup.no_login_mismatch {
        ""
    } else {
        "reject_sender_login_mismatch"
    };
    let submission_opts = format!(
        "  -o smtpd_sasl_auth_enable=yes\n  -o smtpd_sender_restrictions={sender}\n  -o smtpd_relay_restrictions=permit_sasl_authenticated,reject"
    );
    let smtps = if setup.no_465 {
        String::new()
    } else {
        format!(
            "465       inet  n       -       n       -       -       smtpd\n  -o smtpd_tls_wrappermode=yes\n{submission_opts}\n"
        )
    };
    format!(
        "25        inet  n       -       n       -       -       smtpd{relay_25}
587       inet  n       -       n       -       -       smtpd
  -o smtpd_tls_security_level={tls_587}
{submission_opts}
{smtps}pickup    unix  n       -       n       60      1       pickup
cleanup   unix  n       -       n       -       0       cleanup
qmgr      unix  n       -       n       300     1       qmgr
tlsmgr    unix  -       -       n       1000?   1       tlsmgr
rewrite   unix  -       -       n       -       -       trivial-rewrite
bounce    unix  -       -       n       -       0       bounce
defer     unix  -       -       n       -       0       bounce
trace     unix  -       -       n       -       0       bounce
verify    unix  -       -       n       -       1       verify
flush     unix  n       -       n       1000?   0       flush
proxymap  unix  -       -       n       -       -       proxymap
smtp      unix  -       -       n       -       -       smtp
relay     unix  -       -       n       -       -       smtp
showq     unix  n       -       n       -       -       showq
error     unix  -       -       n       -       -       error
retry     unix  -       -       n       -       -       error
discard   unix  -       -       n       -       -       discard
anvil     unix  -       -       n       -       1       anvil
scache    unix  -       -       n       -       1       scache
postlog   unix-dgram n  -       n       -       1       postlogd
"
    )
}
