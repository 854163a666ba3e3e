//! A lab authoritative DNS server: knotd started from a temp directory inside a lab
//! namespace, serving the zones it is given on one address; killed and reaped on drop.

use std::{
    fs,
    path::{Path, PathBuf},
    process::{Child, Stdio},
    time::Duration,
};

use crate::{Echo, LabError, Netns, command, write_file as write};

/// How often, 100 ms apart, every zone is asked for its SOA before knotd counts as broken.
const READY_ATTEMPTS: u32 = 100;

#[derive(Debug)]
pub struct Knot {
    child: Child,
    log: PathBuf,
}

impl Knot {
    /// Serves `zones` (origin, zone file text) on `address`:53 inside `ns`; `dir` holds its
    /// config, zone files, database and log. Returns once every zone answers its SOA.
    pub fn start(
        ns: &Netns,
        dir: &Path,
        address: &str,
        zones: &[(String, String)],
        echo: Echo,
    ) -> Result<Knot, LabError> {
        let zone_dir = dir.join("zones");
        for path in [zone_dir.clone(), dir.join("db")] {
            fs::create_dir_all(&path).map_err(|source| LabError::File { path, source })?;
        }
        // Zone files are the source of truth: knotd never writes them back nor journals.
        let mut conf = format!(
            "server:\n    listen: {address}@53\n    rundir: \"{run}\"\n    user: root:root\n\
             database:\n    storage: \"{run}/db\"\n\
             log:\n  - target: stderr\n    any: warning\n\
             template:\n  - id: default\n    storage: \"{zones}\"\n    file: \"%s.zone\"\n    zonefile-sync: -1\n    journal-content: none\n\
             zone:\n",
            run = dir.display(),
            zones = zone_dir.display(),
        );
        for (origin, text) in zones {
            write(&zone_dir.join(format!("{origin}.zone")), text)?;
            conf.push_str(&format!("  - domain: {origin}\n"));
        }
        let conf_path = dir.join("knot.conf");
        write(&conf_path, &conf)?;
        let log = dir.join("knotd.log");
        let log_file = fs::File::create(&log).map_err(|source| LabError::File {
            path: log.clone(),
            source,
        })?;
        let mut cmd = ns.command("knotd");
        cmd.arg("-c")
            .arg(&conf_path)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log_file);
        if echo == Echo::Commands {
            println!("  $ {} 2> {}", command::describe(&cmd), log.display());
        }
        let child = cmd.spawn().map_err(|source| LabError::Start {
            command: command::describe(&cmd),
            source,
        })?;
        let mut knot = Knot { child, log };
        knot.wait_ready(ns, address, zones)?;
        Ok(knot)
    }

    /// Every zone answers its SOA (a hang guard, not a timing check).
    fn wait_ready(
        &mut self,
        ns: &Netns,
        address: &str,
        zones: &[(String, String)],
    ) -> Result<(), LabError> {
        for _ in 0..READY_ATTEMPTS {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Err(self.not_ready(format!("exited ({status})")));
            }
            let ready = zones.iter().all(|(origin, _)| {
                ns.command("kdig")
                    .args([
                        &format!("@{address}"),
                        "+short",
                        "+time=1",
                        "+retry=0",
                        origin,
                        "SOA",
                    ])
                    .output()
                    .is_ok_and(|out| out.status.success() && !out.stdout.is_empty())
            });
            if ready {
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        Err(self.not_ready(format!(
            "did not serve its zones on {address} within {} s",
            READY_ATTEMPTS / 10
        )))
    }

    fn not_ready(&self, why: String) -> LabError {
        LabError::NotReady {
            what: "knotd".into(),
            why,
            log: self.log_text(),
        }
    }

    /// knotd's warnings and errors so far.
    pub fn log_text(&self) -> String {
        fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Knot {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
