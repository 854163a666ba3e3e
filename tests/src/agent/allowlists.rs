//! Big allowlists for the scale tests, as config-file TOML.

use std::net::Ipv4Addr;

use super::{EXEMPT, RELAY};

/// `count` exempt prefixes of mixed lengths in 100.64.0.0/10 (none near the lab's
/// 192.0.2.0/24), plus 64 covering /16s, quoted for a TOML array.
pub fn many_exempt(count: u32) -> Vec<String> {
    (0..count)
        .map(|n| {
            let addr = Ipv4Addr::from(0x6440_0000 + n * 16);
            let len = [32, 30, 28, 29, 32, 31][(n % 6) as usize];
            format!("\"{addr}/{len}\"")
        })
        .chain((0..64).map(|n| format!("\"100.{}.0.0/16\"", 96 + n)))
        .collect()
}

/// An `[allow]` table: the lab's relay, its exempt customer and `exempt`.
pub fn allow(exempt: &[String]) -> String {
    format!(
        "[allow]\nrelays = [\"{RELAY}/32\"]\nexempt = [\"{EXEMPT}/32\", {}]",
        exempt.join(", ")
    )
}
