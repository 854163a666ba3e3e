//! The lab's authoritative DNS server (egress-lab's knot) for the tests: started inside a test
//! namespace from a temp directory, panicking with knotd's log when it cannot serve.

use std::path::Path;

pub use egress_lab::knot::Knot;
use egress_lab::{Echo, Netns};

use super::{DNS, lab};

/// Serves `zones` (origin, zone file text) on the mail set-up's DNS address inside `ns`.
pub fn start(ns: &Netns, dir: &Path, zones: &[(String, String)]) -> Knot {
    serve(ns, dir, DNS, zones)
}

/// Serves `zones` on `address`:53 inside `ns`; `dir` holds its files.
pub fn serve(ns: &Netns, dir: &Path, address: &str, zones: &[(String, String)]) -> Knot {
    lab(Knot::start(ns, dir, address, zones, Echo::Quiet))
}
