//! The `inbound` program's rows (SPEC "Performance, additions"): a non-SMTP packet, SMTP to an
//! unprotected host, SMTP to the primary MX from a spam checker and from anyone else, and SYNs
//! over their token bucket, each rotated over 4,096 sources and timed above the empty program;
//! the throttled SYN beside the smallest-element LRU floor on the same frames.

use std::{net::Ipv4Addr, os::fd::AsFd, path::Path};

use anyhow::{Context as _, Result, anyhow};
use aya::{
    Ebpf, EbpfLoader,
    maps::{Array, HashMap, LpmTrie, lpm_trie::Key},
    programs::Xdp,
};
use egress_common::{
    PortSet, SubscriberKey, host_table,
    inbound::{
        DEFAULT_MAX_SOURCES, InboundConfig, ThrottleBucket, empty,
        host_class::{PROTECTED, THROTTLED},
        names,
    },
};

use super::{
    Scale,
    cases::{XDP_DROP, XDP_PASS},
    floor::{Floor, Geometry},
    frames::{self, L4},
    measure::{Measured, NoHooks, Stats, measure, warm_up},
    report::{Row, Target},
};

const PRIMARY_MX: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 30);
const SPAM_CHECKER: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 40);
const UNPROTECTED: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 60);
/// Where the spam checkers' (a filtering service's) 4,096 sources live.
const SENDERS: (Ipv4Addr, u8) = (Ipv4Addr::new(100, 64, 0, 0), 20);
const SOURCES: usize = 4_096;

fn map<'a>(ebpf: &'a mut Ebpf, name: &str) -> Result<&'a mut aya::maps::Map> {
    ebpf.map_mut(name)
        .ok_or_else(|| anyhow!("the eBPF object has no map {name}"))
}

/// The object with the inbound program verified and the lists, the config and (for the
/// throttled row) every source's empty bucket in place.
fn load(object_path: &Path) -> Result<Ebpf> {
    let object = std::fs::read(object_path)
        .with_context(|| format!("reading the eBPF object {}", object_path.display()))?;
    let mut ebpf = EbpfLoader::new()
        .override_global(names::PORTS, &PortSet::DEFAULT, true)
        .map_max_entries(names::BUCKETS, DEFAULT_MAX_SOURCES)
        .load(&object)
        .with_context(|| format!("loading {}", object_path.display()))?;
    let program: &mut Xdp = ebpf
        .program_mut(names::PROGRAM)
        .ok_or_else(|| anyhow!("no program {}", names::PROGRAM))?
        .try_into()?;
    program.load().context("verifying the inbound program")?;
    for (name, address, len) in [
        (names::PROTECTED_V4, PRIMARY_MX, 32),
        (names::SENDERS_V4, SENDERS.0, SENDERS.1),
        (names::THROTTLED_V4, SPAM_CHECKER, 32),
    ] {
        let mut trie: LpmTrie<_, [u8; 4], u32> = LpmTrie::try_from(map(&mut ebpf, name)?)?;
        trie.insert(&Key::new(u32::from(len), address.octets()), 1, 0)
            .with_context(|| format!("inserting {address}/{len} into {name}"))?;
    }
    // The host table, as the agent writes it when every IPv4 entry is a host.
    let table = host_table::build(&[
        (host_table::host_of(PRIMARY_MX.octets()), PROTECTED),
        (host_table::host_of(SPAM_CHECKER.octets()), THROTTLED),
    ])
    .ok_or_else(|| anyhow!("no host table for two hosts"))?;
    // An object from before the host table (`--object`) has no such map.
    if let Some(hosts) = ebpf.map_mut(names::HOSTS_V4) {
        let mut hosts: Array<_, u64> = Array::try_from(hosts)?;
        for (index, slot) in (1u32..).zip(&table.slots) {
            hosts.set(index, slot, 0)?;
        }
        hosts.set(host_table::HEADER, table.header(0), 0)?;
    }
    let (interval_ns, tolerance_ns) = InboundConfig::throttle(10, 40);
    let mut config: Array<_, InboundConfig> = Array::try_from(map(&mut ebpf, names::CONFIG)?)?;
    config.set(
        0,
        InboundConfig {
            mode: 0,
            flags: empty::PROTECTED_V6 | empty::SENDERS_V6 | empty::THROTTLED_V6,
            interval_ns,
            tolerance_ns,
            clock_ns: 0,
        },
        0,
    )?;
    // Buckets scheduled a year ahead: every SYN of the run is over its bucket.
    let mut buckets: HashMap<_, SubscriberKey, ThrottleBucket> =
        HashMap::try_from(map(&mut ebpf, names::BUCKETS)?)?;
    let year_ahead = ThrottleBucket {
        next_ns: u64::MAX / 2,
        throttled: 0,
    };
    for n in 0..SOURCES {
        let key = SubscriberKey::ipv4(others(n).octets());
        buckets.insert(key, year_ahead, 0)?;
    }
    Ok(ebpf)
}

fn others(n: usize) -> Ipv4Addr {
    frames::subscriber_v4(n as u32)
}

fn checkers(n: usize) -> Ipv4Addr {
    Ipv4Addr::from(u32::from(SENDERS.0) + n as u32)
}

struct Case {
    name: &'static str,
    source: fn(usize) -> Ipv4Addr,
    destination: Ipv4Addr,
    port: u16,
    verdict: u32,
    target: Target,
}

const CASES: [Case; 5] = [
    Case {
        name: "inbound: non-SMTP (TCP/80 to the primary MX)",
        source: others,
        destination: PRIMARY_MX,
        port: 80,
        verdict: XDP_PASS,
        target: Target::AtMost(5.0),
    },
    Case {
        name: "inbound: SMTP SYN to an unprotected host",
        source: others,
        destination: UNPROTECTED,
        port: 25,
        verdict: XDP_PASS,
        target: Target::AtMost(25.0),
    },
    Case {
        name: "inbound: SMTP SYN to the primary MX from a spam checker",
        source: checkers,
        destination: PRIMARY_MX,
        port: 25,
        verdict: XDP_PASS,
        target: Target::AtMost(40.0),
    },
    Case {
        name: "inbound: SMTP SYN to the primary MX from anyone else",
        source: others,
        destination: PRIMARY_MX,
        port: 25,
        verdict: XDP_DROP,
        target: Target::AtMost(40.0),
    },
    Case {
        name: "inbound: throttled SYN to the spam checker",
        source: others,
        destination: SPAM_CHECKER,
        port: 25,
        verdict: XDP_DROP,
        target: Target::Info,
    },
];

pub fn rows(object: &Path, scale: &Scale) -> Result<Vec<Row>> {
    println!("inbound program: {SOURCES} sources per case...");
    let ebpf = load(object)?;
    let program: &Xdp = ebpf
        .program(names::PROGRAM)
        .ok_or_else(|| anyhow!("no program {}", names::PROGRAM))?
        .try_into()?;
    let program = program.fd()?.as_fd().try_clone_to_owned()?;
    let empty = super::bpf_sys::load_empty_xdp()?;
    let mut rows = Vec::new();
    let mut medians = Vec::new();
    for case in &CASES {
        let frames: Vec<Vec<u8>> = (0..SOURCES)
            .map(|n| {
                frames::ipv4(
                    (case.source)(n),
                    case.destination,
                    L4::TcpSyn {
                        dst_port: case.port,
                    },
                )
            })
            .collect();
        warm_up(
            case.name,
            program.as_fd(),
            empty.as_fd(),
            &frames,
            case.verdict,
        )?;
        let measured = measure(
            case.name,
            program.as_fd(),
            empty.as_fd(),
            &frames,
            scale.steady,
            case.verdict,
            &mut NoHooks,
        )?;
        rows.push(
            Row::measured(
                format!("{} [{SOURCES} sources]", case.name),
                measured.headline(),
                "ns",
                case.target,
            )
            .with_context(&measured),
        );
        medians.push(measured.headline().median);
        if case.destination != SPAM_CHECKER {
            continue;
        }
        // The floor: one lookup in an LRU hash of the throttle's capacity holding the same
        // sources with 4-byte keys and 8-byte values, plus an add, on the same frames; beside
        // it the same with the buckets' key and value sizes, to show what the element costs.
        let floor_measured = floor(Geometry::MINIMAL, &frames, empty.as_fd(), scale)?;
        rows.push(
            Row::measured(
                format!("inbound: floor, 4-byte key, {SOURCES} sources"),
                floor_measured.headline(),
                "ns",
                Target::Info,
            )
            .with_context(&floor_measured),
        );
        let buckets = Geometry {
            key_size: size_of::<SubscriberKey>() as u32,
            value_size: size_of::<ThrottleBucket>() as u32,
        };
        let bucket_floor = floor(buckets, &frames, empty.as_fd(), scale)?;
        rows.push(
            Row::measured(
                format!(
                    "inbound: floor, the buckets' {}-byte key and {}-byte value",
                    buckets.key_size, buckets.value_size
                ),
                bucket_floor.headline(),
                "ns",
                Target::Info,
            )
            .with_context(&bucket_floor),
        );
        let ratio = measured.headline().median / floor_measured.headline().median;
        rows.push(
            Row::measured(
                "inbound: throttled SYN / floor".to_string(),
                &Stats::of(vec![ratio]),
                "x",
                Target::AtMost(1.5),
            )
            .with_note("rotated medians of the two rows above; 262,144-entry LRU maps both"),
        );
    }
    rows.push(sender_lookup_row(&medians));
    Ok(rows)
}

/// One lookup and an add in an LRU hash of the throttle's capacity whose elements have
/// `geometry`, holding the frames' sources.
fn floor(
    geometry: Geometry,
    frames: &[Vec<u8>],
    empty: std::os::fd::BorrowedFd<'_>,
    scale: &Scale,
) -> Result<Measured> {
    let floor = Floor::new(DEFAULT_MAX_SOURCES, geometry)?;
    floor.track((0..SOURCES).map(others))?;
    measure(
        "inbound floor",
        floor.fd(),
        empty,
        frames,
        scale.steady,
        XDP_DROP,
        &mut NoHooks,
    )
}

/// What allowing a spam checker costs beside refusing anyone else: the same path (the
/// protected-MX lookup, then one LPM lookup in the sender list), a hit instead of a miss.
fn sender_lookup_row(medians: &[f64]) -> Row {
    // `medians` is in CASES order: the checker's row is third, anyone else's fourth.
    let (checker, others) = (medians[2], medians[3]);
    Row::measured(
        "inbound: spam checker's SYN - anyone else's (primary MX)".to_string(),
        &Stats::of(vec![checker - others]),
        "ns",
        Target::Info,
    )
    .with_note(format!(
        "{checker:.1} - {others:.1} ns: both paths read the host table; the checker's adds one sender-list LPM lookup"
    ))
}
