//! The demo's voice: chapters, plain-words explanations and excerpts of real output. Quiet
//! (the scenario test) prints nothing but errors.

use crate::cmd::Runner;

#[derive(Clone, Copy, Debug)]
pub struct Narrator {
    quiet: bool,
    verbose: bool,
}

impl Narrator {
    pub const fn new(quiet: bool, verbose: bool) -> Narrator {
        Narrator {
            quiet,
            verbose: verbose && !quiet,
        }
    }

    /// Plumbing (ip, chown, sysctl) is echoed only when asked for: the story is the point.
    pub const fn plumbing(self) -> Runner {
        if self.verbose {
            Runner::echoing()
        } else {
            Runner::quiet()
        }
    }

    /// Commands are echoed along with the story, or not at all.
    pub const fn runner(self) -> Runner {
        if self.quiet {
            Runner::quiet()
        } else {
            Runner::echoing()
        }
    }

    pub fn chapter(self, title: &str) {
        if !self.quiet {
            println!("\n━━ {title}");
        }
    }

    pub fn say(self, text: &str) {
        if !self.quiet {
            println!("{text}");
        }
    }

    /// A step of the story that happened as told.
    pub fn ok(self, text: &str) {
        if !self.quiet {
            println!("  ✔ {text}");
        }
    }

    /// An excerpt of real output, indented.
    pub fn show(self, text: &str) {
        if !self.quiet {
            for line in text.lines() {
                println!("    │ {line}");
            }
        }
    }
}

/// The last `n` non-empty lines of a transcript.
pub fn tail(text: &str, n: usize) -> String {
    let lines: Vec<&str> = text
        .lines()
        .filter(|line| !line.trim().is_empty())
        .collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

/// What a swaks run came to: the server's answer to the message, or why it failed.
pub fn swaks_outcome(transcript: &str) -> String {
    let errors: Vec<&str> = transcript
        .lines()
        .filter(|line| line.starts_with("***"))
        .collect();
    if !errors.is_empty() {
        return errors.join("\n");
    }
    transcript
        .lines()
        .rfind(|line| line.starts_with("<-  250"))
        .map_or_else(|| tail(transcript, 3), str::to_owned)
}

/// `egress-agent status` down to its attachments (the counters come later, from /metrics).
pub fn status_excerpt(status: &str) -> String {
    status
        .lines()
        .take_while(|line| !line.starts_with("COUNTER"))
        .collect::<Vec<_>>()
        .join("\n")
        .trim_end()
        .to_owned()
}
