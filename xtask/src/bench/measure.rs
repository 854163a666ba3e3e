//! Timing programs with `BPF_PROG_TEST_RUN`: every run interleaves the program under test with
//! the empty baseline frame by frame, so both see the same frames, caches and machine noise,
//! and the figure is the program's cost above the harness.

use std::os::fd::BorrowedFd;

use anyhow::{Result, anyhow, bail};

use super::{bpf_sys::test_run, rotate::Rotated};

/// How much work one measured case does.
///
/// Each run has three parts:
/// - the headline: `hot_repeat` executions in one test run, each on a different frame of the
///   case (the rotator, see `rotate.rs`): the spec's repeat >= 10^6 method with varied sources;
/// - `passes` over all frames with `repeat = 1`, checking every frame's verdict: the cold
///   figure, each execution after a syscall has disturbed the caches (the kernel swaps the XDP
///   dispatcher around every test run with `repeat > 1`, so this part cannot repeat);
/// - one frame with `hot_repeat` executions: the spec's method as written, which flatters.
#[derive(Clone, Copy, Debug)]
pub struct Plan {
    pub runs: usize,
    pub passes: usize,
    /// 0 skips the hot part (new-subscriber cases: only the first execution would be new).
    pub hot_repeat: u32,
}

/// Median and spread (max - min) over runs, in ns per packet.
#[derive(Clone, Debug)]
pub struct Stats {
    pub median: f64,
    pub spread: f64,
    pub runs: Vec<f64>,
}

impl Stats {
    pub fn of(mut runs: Vec<f64>) -> Stats {
        runs.sort_by(f64::total_cmp);
        let median = match runs.len() {
            0 => f64::NAN,
            n if n % 2 == 1 => runs[n / 2],
            n => (runs[n / 2 - 1] + runs[n / 2]) / 2.0,
        };
        let spread = match (runs.first(), runs.last()) {
            (Some(low), Some(high)) => high - low,
            _ => f64::NAN,
        };
        Stats {
            median,
            spread,
            runs,
        }
    }
}

#[derive(Clone, Debug)]
pub struct Measured {
    /// Program minus empty baseline per run, `hot_repeat` executions over varied frames.
    pub rotated: Option<Stats>,
    /// Program minus empty baseline per run, every frame once per pass with `repeat = 1`.
    pub above_empty: Stats,
    pub empty: Stats,
    /// Program minus empty baseline per run, one frame repeated `hot_repeat` times.
    pub hot_above_empty: Option<Stats>,
}

/// Hooks around the frames of a run: `each_frame(index)` runs after each frame, `after_run`
/// after each run (the new-subscriber case uses them to drain events and forget subscribers).
pub trait RunHooks {
    fn each_frame(&mut self, _index: usize) -> Result<()> {
        Ok(())
    }
    fn after_run(&mut self) -> Result<()> {
        Ok(())
    }
}

pub struct NoHooks;
impl RunHooks for NoHooks {}

/// Times `program` against `empty` over `frames`, checking every return value is `expected`
/// so a bench never reports the cost of the wrong path.
pub fn measure(
    case: &str,
    program: BorrowedFd<'_>,
    empty: BorrowedFd<'_>,
    frames: &[Vec<u8>],
    plan: Plan,
    expected: u32,
    hooks: &mut dyn RunHooks,
) -> Result<Measured> {
    if frames.is_empty() {
        bail!("{case}: no frames to measure");
    }
    let check = |index: usize, retval: u32| {
        if retval == expected {
            Ok(())
        } else {
            Err(anyhow!(
                "{case}: frame {index} returned {retval} instead of {expected}: the case does not take the path it claims to measure"
            ))
        }
    };
    let rotated = match plan.hot_repeat {
        0 => None,
        repeat => Some(Rotated::new(program, frames)?.measure(case, plan.runs, repeat, expected)?),
    };
    let (mut above, mut baseline, mut hot) = (Vec::new(), Vec::new(), Vec::new());
    for _ in 0..plan.runs {
        let (mut program_ns, mut empty_ns, mut executed) = (0u64, 0u64, 0u64);
        for _ in 0..plan.passes {
            for (index, frame) in frames.iter().enumerate() {
                let result = test_run(program, frame, 1)?;
                check(index, result.retval)?;
                let reference = test_run(empty, frame, 1)?;
                program_ns += u64::from(result.ns_per_run);
                empty_ns += u64::from(reference.ns_per_run);
                executed += 1;
                hooks.each_frame(index)?;
            }
        }
        hooks.after_run()?;
        above.push((program_ns as f64 - empty_ns as f64) / executed.max(1) as f64);
        baseline.push(empty_ns as f64 / executed.max(1) as f64);
        if plan.hot_repeat > 0 {
            let result = test_run(program, &frames[0], plan.hot_repeat)?;
            check(0, result.retval)?;
            let reference = test_run(empty, &frames[0], plan.hot_repeat)?;
            hot.push(f64::from(result.ns_per_run) - f64::from(reference.ns_per_run));
        }
    }
    Ok(Measured {
        above_empty: Stats::of(above),
        empty: Stats::of(baseline),
        hot_above_empty: (!hot.is_empty()).then(|| Stats::of(hot)),
        rotated,
    })
}

impl Measured {
    /// The figure a row reports and judges: the rotated one when there is one.
    pub fn headline(&self) -> &Stats {
        self.rotated.as_ref().unwrap_or(&self.above_empty)
    }
}

/// One untimed pass over `frames`, so the subscribers they come from are tracked before a
/// steady case is timed (and every verdict is checked once).
pub fn warm_up(
    case: &str,
    program: BorrowedFd<'_>,
    empty: BorrowedFd<'_>,
    frames: &[Vec<u8>],
    expected: u32,
) -> Result<()> {
    let once = Plan {
        runs: 1,
        passes: 1,
        hot_repeat: 0,
    };
    measure(case, program, empty, frames, once, expected, &mut NoHooks).map(|_| ())
}
