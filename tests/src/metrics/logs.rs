//! Log lines written through `tracing` in this test process, captured once per process.

use std::{
    io,
    sync::{Mutex, Once},
    time::{Duration, Instant},
};

static LINES: Mutex<Vec<u8>> = Mutex::new(Vec::new());
static INSTALL: Once = Once::new();

struct Capture;

impl io::Write for Capture {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        LINES
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .extend_from_slice(buf);
        io::stderr().write_all(buf)?;
        Ok(buf.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// Installs the capturing subscriber (idempotent).
pub fn capture() {
    INSTALL.call_once(|| {
        tracing_subscriber::fmt()
            .with_ansi(false)
            .with_writer(|| Capture)
            .init();
    });
}

/// The first captured line containing every needle.
pub fn find_line(needles: &[&str]) -> Option<String> {
    let lines = LINES.lock().unwrap_or_else(|p| p.into_inner());
    String::from_utf8_lossy(&lines)
        .lines()
        .find(|line| needles.iter().all(|n| line.contains(n)))
        .map(str::to_owned)
}

/// Waits (bounded) for a log line containing every needle; returns it.
pub fn wait_for_line(needles: &[&str], timeout: Duration) -> String {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(line) = find_line(needles) {
            return line;
        }
        if Instant::now() >= deadline {
            let lines = LINES.lock().unwrap_or_else(|p| p.into_inner());
            panic!(
                "no log line containing {needles:?} within {timeout:?}; log so far:\n{}",
                String::from_utf8_lossy(&lines)
            );
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}
