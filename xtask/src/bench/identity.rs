//! The traceability rows: RADIUS Interim-Update ingest with many open sessions (and the
//! agent's peak RSS), and `who ADDR --at TIME` over that many sessions and 90 days of
//! history. The real agent runs in a throwaway namespace with no interface attached; its
//! history is seeded with `sqlite3` (the operator's tool) before it starts.

use std::{
    io::Write as _,
    net::UdpSocket,
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    time::{Duration, Instant, SystemTime, UNIX_EPOCH},
};

use anyhow::{Context as _, Result, anyhow, bail};
use md5::{Digest as _, Md5};

use super::{
    lab,
    measure::Stats,
    report::{Row, Target},
};
use crate::netns::Netns;

const SECRET: &[u8] = b"bench-secret";
const RADIUS: &str = "127.0.0.1:1813";
/// Requests in flight: what a busy NAS (or a replicating RADIUS server) keeps outstanding.
const WINDOW: usize = 64;
const DAY_MS: i64 = 86_400_000;

pub struct IdentityScale {
    pub sessions: u32,
    pub updates: u32,
    pub lookups: usize,
}

pub fn rows(binary: &Path, scale: &IdentityScale) -> Result<Vec<Row>> {
    let agent = IdentityAgent::start(binary, scale.sessions)?;
    let label = super::rows::short(scale.sessions as usize);
    println!(
        "identity: {} Interim-Updates over {label} open sessions...",
        scale.updates
    );
    let rate = agent.ingest(scale)?;
    let peak = agent.memory_kib("VmHWM")? as f64 / 1024.0;
    println!("identity: {} `who --at` lookups...", scale.lookups);
    let lookups = agent.lookups(scale)?;
    Ok(vec![
        Row::measured(
            format!("RADIUS Interim-Update ingest, {label} open sessions"),
            &Stats::of(vec![rate]),
            "req/s",
            Target::AtLeast(20_000.0),
        )
        .with_note(format!(
            "{WINDOW} requests in flight, each answered after its commit; 1 in 11 sessions due for its hourly rewrite"
        )),
        Row::measured(
            format!("agent peak RSS, RADIUS ingest with {label} open sessions"),
            &Stats::of(vec![peak]),
            "MiB",
            Target::AtMost(64.0),
        )
        .with_note("VmHWM after the ingest and the lookups"),
        Row::measured(
            format!("`who ADDR --at TIME`, {label} sessions and 90 days of history"),
            &Stats::of(lookups),
            "ms",
            Target::AtMost(20.0),
        )
        .with_note("the CLI process end to end, control socket and SQLite included"),
    ])
}

struct IdentityAgent {
    binary: PathBuf,
    child: Option<Child>,
    dir: PathBuf,
    config: PathBuf,
    pin_dir: PathBuf,
    socket: PathBuf,
    netns: Netns,
    now_ms: i64,
}

impl IdentityAgent {
    fn start(binary: &Path, sessions: u32) -> Result<IdentityAgent> {
        if !binary.is_file() {
            bail!("the agent binary {} does not exist", binary.display());
        }
        let netns = lab::namespace("ident")?;
        let dir =
            std::env::temp_dir().join(format!("egress-bench-identity-{}", std::process::id()));
        std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
        let now_ms = i64::try_from(SystemTime::now().duration_since(UNIX_EPOCH)?.as_millis())?;
        let mut agent = IdentityAgent {
            binary: binary.to_owned(),
            child: None,
            config: dir.join("egress.toml"),
            pin_dir: PathBuf::from(format!(
                "/sys/fs/bpf/egress-bench-ident-{}",
                std::process::id()
            )),
            socket: dir.join("egress.sock"),
            dir,
            netns,
            now_ms,
        };
        std::fs::write(agent.dir.join("radius.secret"), SECRET)?;
        std::fs::write(
            &agent.config,
            format!(
                "pin_dir = \"{}\"\nstate_dir = \"{}\"\n\n[control]\nsocket = \"{}\"\n\n\
                 [identity]\nradius_listen = \"{RADIUS}\"\nradius_clients = [\"127.0.0.1/32\"]\n\
                 radius_secret_file = \"{}\"\nretention_days = 90\n",
                agent.pin_dir.display(),
                agent.dir.join("state").display(),
                agent.socket.display(),
                agent.dir.join("radius.secret").display()
            ),
        )?;
        // The first start creates the schema; the history is seeded while it is stopped.
        agent.spawn()?;
        agent.stop()?;
        agent.seed(sessions)?;
        agent.spawn()?;
        Ok(agent)
    }

    fn spawn(&mut self) -> Result<()> {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.join("agent.log"))?;
        self.child = Some(
            self.netns
                .command(&self.binary)
                .args(["run", "--config"])
                .arg(&self.config)
                .stdout(Stdio::null())
                .stderr(log)
                .spawn()
                .context("starting egress-agent run")?,
        );
        let deadline = Instant::now() + Duration::from_secs(120);
        while self.cli(&["status"]).is_err() {
            if Instant::now() > deadline {
                bail!(
                    "the agent did not answer within 120 s: {}",
                    std::fs::read_to_string(self.dir.join("agent.log")).unwrap_or_default()
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        Ok(())
    }

    fn stop(&mut self) -> Result<()> {
        if let Some(mut child) = self.child.take() {
            // SAFETY: kill(2) on our own child.
            unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
            child.wait()?;
        }
        Ok(())
    }

    /// `sessions` open sessions started within the last 45 days, and as many closed ones
    /// 46 to 90 days ago on the same addresses (100.64.0.0/10). The open ones were last
    /// heard over the last 66 minutes, so one in eleven is due for the hourly rewrite of an
    /// unchanged session (a NAS sending Interim-Updates every 5 to 6 minutes).
    fn seed(&self, sessions: u32) -> Result<()> {
        let db = self.dir.join("state/history.sqlite3");
        let mut sqlite = Command::new("sqlite3")
            .arg(&db)
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .spawn()
            .context("running sqlite3 (Debian package sqlite3)")?;
        let mut sql = std::io::BufWriter::new(sqlite.stdin.take().ok_or_else(|| anyhow!("stdin"))?);
        let n = i64::from(sessions);
        let now = self.now_ms;
        writeln!(sql, "PRAGMA journal_mode=WAL; BEGIN;")?;
        writeln!(
            sql,
            "WITH RECURSIVE c(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM c WHERE i < {n} - 1)
             INSERT INTO sessions (id, nas, acct_session_id, user_name, nas_identifier, start_ms, updated_ms, end_ms)
             SELECT i + 1, 'bng-bench', 'open-' || i, 'user' || i, 'bng-bench', {now} - {DAY_MS} * 45 + (i % 3600) * 1000, {now} - (i % 3960) * 1000, NULL FROM c
             UNION ALL
             SELECT {n} + i + 1, 'bng-bench', 'old-' || i, 'former' || i, 'bng-bench', {now} - {DAY_MS} * 90 + (i % 3600) * 1000, {now} - {DAY_MS} * 46, {now} - {DAY_MS} * 46 FROM c;
             INSERT INTO prefix_lengths VALUES (4, 32);"
        )?;
        for i in 0..n {
            let address = address(i as u32);
            for (id, start) in [
                (i + 1, now - DAY_MS * 45 + (i % 3600) * 1000),
                (n + i + 1, now - DAY_MS * 90 + (i % 3600) * 1000),
            ] {
                writeln!(
                    sql,
                    "INSERT INTO session_addresses VALUES ({id}, 'framed_ip_address', 4, 32, X'{:08X}', {start});",
                    u32::from(address)
                )?;
            }
        }
        writeln!(sql, "COMMIT;")?;
        drop(sql);
        let status = sqlite.wait()?;
        if !status.success() {
            bail!("seeding {} with sqlite3 failed ({status})", db.display());
        }
        Ok(())
    }

    /// Interim-Updates for random open sessions, `WINDOW` in flight; requests per second.
    fn ingest(&self, scale: &IdentityScale) -> Result<f64> {
        let (sessions, updates, now_s) = (scale.sessions, scale.updates, self.now_ms / 1000);
        self.netns
            .within(move || -> Result<f64> {
                let socket = UdpSocket::bind("127.0.0.1:0")?;
                socket.connect(RADIUS)?;
                socket.set_read_timeout(Some(Duration::from_secs(5)))?;
                let (mut sent, mut answered, mut buf) = (0u32, 0u32, [0u8; 64]);
                let mut seed = 0x2545_f491_u32;
                let started = Instant::now();
                while answered < updates {
                    while sent < updates && (sent - answered) < WINDOW as u32 {
                        seed ^= seed << 13;
                        seed ^= seed >> 17;
                        seed ^= seed << 5;
                        let i = seed % sessions;
                        socket.send(&interim(sent as u8, i, now_s))?;
                        sent += 1;
                    }
                    socket
                        .recv(&mut buf)
                        .context("the agent stopped answering Interim-Updates")?;
                    answered += 1;
                }
                Ok(f64::from(updates) / started.elapsed().as_secs_f64())
            })
            .map_err(|err| anyhow!("{err}"))?
    }

    /// `who ADDR --at TIME` wall times in ms, addresses and times spread over the history.
    fn lookups(&self, scale: &IdentityScale) -> Result<Vec<f64>> {
        let mut times = Vec::with_capacity(scale.lookups);
        for k in 0..scale.lookups {
            let i = (k as u32).wrapping_mul(2_654_435_761) % scale.sessions;
            let days_ago = if k % 2 == 0 { 10 } else { 60 };
            let at = rfc3339_utc(self.now_ms / 1000 - days_ago * 86_400);
            let started = Instant::now();
            let out = self.cli(&["who", &address(i).to_string(), "--at", &at, "--json"])?;
            times.push(started.elapsed().as_secs_f64() * 1000.0);
            let expected = if days_ago == 10 { "user" } else { "former" };
            if !out.contains(&format!("\"{expected}{i}\"")) {
                bail!(
                    "`who {} --at {at}` did not name {expected}{i}: {out}",
                    address(i)
                );
            }
        }
        Ok(times)
    }

    fn cli(&self, args: &[&str]) -> Result<String> {
        let out = Command::new(&self.binary)
            .args(args)
            .arg("--socket")
            .arg(&self.socket)
            .output()?;
        if !out.status.success() {
            bail!(
                "`egress-agent {}`: {}",
                args.join(" "),
                String::from_utf8_lossy(&out.stderr).trim()
            );
        }
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }

    fn memory_kib(&self, field: &str) -> Result<u64> {
        let pid = self
            .child
            .as_ref()
            .ok_or_else(|| anyhow!("agent not running"))?
            .id();
        let text = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
        text.lines()
            .find_map(|line| line.strip_prefix(field)?.strip_prefix(':'))
            .and_then(|value| value.trim().trim_end_matches("kB").trim().parse().ok())
            .ok_or_else(|| anyhow!("no {field} in /proc/{pid}/status"))
    }
}

impl Drop for IdentityAgent {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        let _ = Command::new(&self.binary)
            .arg("detach")
            .arg("--pin-dir")
            .arg(&self.pin_dir)
            .arg("--socket")
            .arg(&self.socket)
            .output();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Session `i`'s address in 100.64.0.0/10.
fn address(i: u32) -> std::net::Ipv4Addr {
    std::net::Ipv4Addr::from(0x6440_0000 + (i & 0x003f_ffff))
}

/// A signed Interim-Update for open session `i` (RFC 2866).
fn interim(identifier: u8, i: u32, now_s: i64) -> Vec<u8> {
    let mut attributes: Vec<(u8, Vec<u8>)> = vec![
        (40, 3u32.to_be_bytes().to_vec()),
        (44, format!("open-{i}").into_bytes()),
        (32, b"bng-bench".to_vec()),
        (8, address(i).octets().to_vec()),
    ];
    attributes.push((55, u32::try_from(now_s).unwrap_or(0).to_be_bytes().to_vec()));
    let mut packet = vec![4u8, identifier, 0, 0];
    packet.extend([0u8; 16]);
    for (kind, value) in attributes {
        packet.push(kind);
        packet.push(value.len() as u8 + 2);
        packet.extend(value);
    }
    let len = packet.len() as u16;
    packet[2..4].copy_from_slice(&len.to_be_bytes());
    let mut md5 = Md5::new();
    md5.update(&packet);
    md5.update(SECRET);
    let authenticator: [u8; 16] = md5.finalize().into();
    packet[4..20].copy_from_slice(&authenticator);
    packet
}

/// `2026-12-01T22:30:00Z` of a Unix time.
fn rfc3339_utc(unix: i64) -> String {
    let days = unix.div_euclid(86_400);
    let secs = unix.rem_euclid(86_400);
    // Civil from days (H. Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        secs / 3600,
        secs / 60 % 60,
        secs % 60
    )
}

#[cfg(test)]
mod tests {
    #[test]
    fn rfc3339_of_known_instants() {
        assert_eq!(super::rfc3339_utc(0), "1970-01-01T00:00:00Z");
        assert_eq!(
            super::rfc3339_utc(951_782_400 + 3723),
            "2000-02-29T01:02:03Z"
        );
    }
}
