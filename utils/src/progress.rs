//! Phase progress: one spinner (or bar) per phase with elapsed time, plus recorded timings.

use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

/// Reports a sequence of phases. Silent when `quiet` (e.g. `--json`) or stderr is not a terminal,
/// but timings are recorded either way.
pub struct Phases {
    quiet: bool,
    timings: Vec<(String, Duration)>,
}

/// One running phase. Finish it with [`Phases::done`].
pub struct Phase {
    name: String,
    start: Instant,
    bar: ProgressBar,
}

impl Phase {
    /// Update the phase's status message (e.g. the last line an external tool printed).
    pub fn message(&self, msg: impl Into<String>) {
        self.bar.set_message(msg.into());
    }

    /// Turn the spinner into a bar of `len` units (files, bytes, ...).
    pub fn set_length(&self, len: u64) {
        self.bar.set_style(
            ProgressStyle::with_template("{spinner} {prefix:12} [{elapsed_precise}] {wide_bar} {pos}/{len} {msg}")
                .expect("valid template"),
        );
        self.bar.set_length(len);
    }

    /// A callback that advances this phase's bar by one; for callbacks that outlive a borrow.
    pub fn counter(&self) -> impl Fn() + Send + Sync + 'static {
        let bar = self.bar.clone();
        move || bar.inc(1)
    }

    /// Advance a bar started with [`Phase::set_length`].
    pub fn inc(&self, n: u64) {
        self.bar.inc(n);
    }
}

impl Phases {
    pub fn new(quiet: bool) -> Self {
        Self { quiet, timings: Vec::new() }
    }

    /// Start a phase named `name`.
    pub fn start(&self, name: &str) -> Phase {
        let bar = if self.quiet {
            ProgressBar::hidden()
        } else {
            let b = ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr());
            b.set_style(
                ProgressStyle::with_template("{spinner} {prefix:12} [{elapsed_precise}] {wide_msg}")
                    .expect("valid template"),
            );
            b.enable_steady_tick(Duration::from_millis(120));
            b
        };
        bar.set_prefix(name.to_string());
        tracing::info!(phase = name, "starting");
        Phase { name: name.to_string(), start: Instant::now(), bar }
    }

    /// Finish `phase`, leaving a one-line summary with its duration on the terminal.
    pub fn done(&mut self, phase: Phase) -> Duration {
        let took = phase.start.elapsed();
        phase.bar.finish_with_message(format!("done in {:.1}s", took.as_secs_f64()));
        tracing::info!(phase = %phase.name, seconds = took.as_secs_f64(), "finished");
        self.timings.push((phase.name, took));
        took
    }

    /// Every finished phase with its duration, in order.
    pub fn timings(&self) -> &[(String, Duration)] {
        &self.timings
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_timings_in_order() {
        let mut p = Phases::new(true);
        let a = p.start("one");
        p.done(a);
        let b = p.start("two");
        std::thread::sleep(Duration::from_millis(5));
        p.done(b);
        let names: Vec<_> = p.timings().iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(names, ["one", "two"]);
        assert!(p.timings()[1].1 >= Duration::from_millis(5));
    }
}
