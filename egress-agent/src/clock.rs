//! Time as the agent shows it: the dataplane's `bpf_ktime_get_ns` timestamps (CLOCK_MONOTONIC)
//! turned into wall-clock time, and wall-clock time as RFC 3339 (UTC, milliseconds).

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use time::OffsetDateTime;

/// The two clocks read at (nearly) the same instant.
#[derive(Clone, Copy, Debug)]
pub struct Clocks {
    pub monotonic_ns: u64,
    pub wall: SystemTime,
}

impl Clocks {
    pub fn now() -> Clocks {
        Clocks {
            monotonic_ns: monotonic_ns(),
            wall: SystemTime::now(),
        }
    }

    /// The wall-clock time of a monotonic timestamp taken earlier (or, by clock skew, later).
    pub fn wall_of(&self, monotonic_ns: u64) -> SystemTime {
        if monotonic_ns <= self.monotonic_ns {
            let ago = Duration::from_nanos(self.monotonic_ns - monotonic_ns);
            self.wall.checked_sub(ago).unwrap_or(UNIX_EPOCH)
        } else {
            self.wall + Duration::from_nanos(monotonic_ns - self.monotonic_ns)
        }
    }
}

/// CLOCK_MONOTONIC in ns: the clock `bpf_ktime_get_ns` reads.
pub fn monotonic_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid timespec; CLOCK_MONOTONIC always exists on Linux.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    (ts.tv_sec as u64)
        .saturating_mul(1_000_000_000)
        .saturating_add(ts.tv_nsec as u64)
}

/// `2024-05-01T12:34:56.789Z`: fixed width, so listings line up and sort as text.
pub fn rfc3339(time: SystemTime) -> String {
    let at = OffsetDateTime::from(time);
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:03}Z",
        at.year(),
        u8::from(at.month()),
        at.day(),
        at.hour(),
        at.minute(),
        at.second(),
        at.millisecond()
    )
}

/// [`rfc3339`] of now.
pub fn now_rfc3339() -> String {
    rfc3339(SystemTime::now())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc3339_formats_known_instants() {
        assert_eq!(rfc3339(UNIX_EPOCH), "1970-01-01T00:00:00.000Z");
        let leap_day = UNIX_EPOCH + Duration::from_millis(951_782_400_000 + 3_723_456);
        assert_eq!(rfc3339(leap_day), "2000-02-29T01:02:03.456Z");
        let new_year = UNIX_EPOCH + Duration::from_secs(1_735_689_599);
        assert_eq!(rfc3339(new_year), "2024-12-31T23:59:59.000Z");
        assert_eq!(now_rfc3339().len(), 24);
    }

    #[test]
    fn monotonic_timestamps_map_to_the_past() {
        let clocks = Clocks::now();
        let earlier = clocks.wall_of(clocks.monotonic_ns - 5_000_000_000);
        assert_eq!(
            clocks.wall.duration_since(earlier).ok(),
            Some(Duration::from_secs(5))
        );
        assert!(clocks.monotonic_ns > 0);
    }
}
