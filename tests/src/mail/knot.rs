//! A real authoritative DNS server: knotd started from a temporary directory inside a test
//! namespace, serving the zones it is given; stopped (and waited for) on drop.

use std::{
    fs,
    path::Path,
    process::{Child, Stdio},
    time::Duration,
};

use egress_lab::Netns;

use super::DNS;

pub struct Knot {
    child: Child,
}

impl Knot {
    /// Serves `zones` (origin, zone file text) on `DNS`:53 inside `ns`; `dir` holds its files.
    pub fn start(ns: &Netns, dir: &Path, zones: &[(String, String)]) -> Knot {
        let zone_dir = dir.join("zones");
        fs::create_dir_all(&zone_dir).expect("create zone dir");
        fs::create_dir_all(dir.join("db")).expect("create knot db dir");
        let mut conf = format!(
            "server:\n    listen: {DNS}@53\n    rundir: {run}\n\
             database:\n    storage: {run}/db\n\
             log:\n  - target: stderr\n    any: warning\n\
             template:\n  - id: default\n    storage: {zones}\n    file: \"%s.zone\"\n    zonefile-sync: -1\n    journal-content: none\n\
             zone:\n",
            run = dir.display(),
            zones = zone_dir.display(),
        );
        for (origin, text) in zones {
            fs::write(zone_dir.join(format!("{origin}.zone")), text).expect("write zone");
            conf.push_str(&format!("  - domain: {origin}\n"));
        }
        let conf_path = dir.join("knot.conf");
        fs::write(&conf_path, conf).expect("write knot.conf");
        let log = fs::File::create(dir.join("knotd.log")).expect("knotd log");
        let child = ns
            .command("knotd")
            .arg("-c")
            .arg(&conf_path)
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("cannot start knotd (is knot installed? `cargo xtask setup`)");
        let mut knot = Knot { child };
        knot.wait_ready(ns, dir, zones);
        knot
    }

    /// Every zone answers its SOA (a hang guard, not a timing check).
    fn wait_ready(&mut self, ns: &Netns, dir: &Path, zones: &[(String, String)]) {
        for _ in 0..100 {
            if let Ok(Some(status)) = self.child.try_wait() {
                let log = fs::read_to_string(dir.join("knotd.log")).unwrap_or_default();
                panic!("knotd exited ({status}): {log}");
            }
            let ready = zones.iter().all(|(origin, _)| {
                ns.command("kdig")
                    .args([
                        &format!("@{DNS}"),
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
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        let log = fs::read_to_string(dir.join("knotd.log")).unwrap_or_default();
        panic!("knotd did not serve its zones within 10 s: {log}");
    }
}

impl Drop for Knot {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
