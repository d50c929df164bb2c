//! Failure levels of a sealing step, as damocles names them. The level decides what the thread
//! does: retry, pause, clean up and move on, or pause and shout.

use std::fmt;

/// How bad a failure is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Level {
    /// Worth retrying: retried `max_retries` times, `recover_interval` apart, then permanent.
    Temporary,
    /// Needs an operator: the thread pauses with `last_error`.
    Permanent,
    /// The sector is lost: report it aborted, clean up, take the next one.
    Abort,
    /// A bug or broken invariant: the thread pauses with `last_error`.
    Critical,
}

impl Level {
    fn prefix(self) -> &'static str {
        match self {
            Level::Temporary => "temporary",
            Level::Permanent => "permanent",
            Level::Abort => "abort",
            Level::Critical => "critical",
        }
    }
}

/// A step that failed, and how badly.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    /// How bad.
    pub level: Level,
    /// What went wrong, and what to do about it.
    pub message: String,
}

impl Failure {
    /// A failure of `level`.
    pub fn new(level: Level, message: impl Into<String>) -> Self {
        Failure {
            level,
            message: message.into(),
        }
    }
    /// Worth retrying.
    pub fn temp(message: impl Into<String>) -> Self {
        Self::new(Level::Temporary, message)
    }
    /// Needs an operator.
    pub fn perm(message: impl Into<String>) -> Self {
        Self::new(Level::Permanent, message)
    }
    /// The sector is lost.
    pub fn abort(message: impl Into<String>) -> Self {
        Self::new(Level::Abort, message)
    }
    /// A bug or a broken invariant.
    pub fn critical(message: impl Into<String>) -> Self {
        Self::new(Level::Critical, message)
    }
    /// The same failure one level up (a temporary failure that ran out of retries).
    pub fn escalate(self) -> Self {
        let level = match self.level {
            Level::Temporary => Level::Permanent,
            other => other,
        };
        Failure { level, ..self }
    }
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.level.prefix(), self.message)
    }
}

impl std::error::Error for Failure {}

/// What the thread does after a failed step, given how many retries the sector already used.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reaction {
    /// Wait `recover_interval` and run the same state again (retry count +1).
    Retry,
    /// Pause the thread and show this error.
    Pause(String),
    /// Report the sector aborted, clean up, go on with the next sector.
    Abort(String),
}

/// What the thread does about `failure`, after `retries_used` of `max_retries` retries.
pub fn react(failure: &Failure, retries_used: u32, max_retries: u32) -> Reaction {
    match failure.level {
        Level::Temporary if retries_used < max_retries => Reaction::Retry,
        Level::Temporary => Reaction::Pause(failure.clone().escalate().to_string()),
        Level::Permanent | Level::Critical => Reaction::Pause(failure.to_string()),
        Level::Abort => Reaction::Abort(failure.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reactions_by_level_and_retries() {
        let cases = [
            (Failure::temp("rpc down"), 0, 3, Reaction::Retry),
            (Failure::temp("rpc down"), 2, 3, Reaction::Retry),
            (
                Failure::temp("rpc down"),
                3,
                3,
                Reaction::Pause("permanent: rpc down".into()),
            ),
            (
                Failure::perm("bad file"),
                0,
                3,
                Reaction::Pause("permanent: bad file".into()),
            ),
            (
                Failure::critical("bug"),
                0,
                3,
                Reaction::Pause("critical: bug".into()),
            ),
            (
                Failure::abort("rejected"),
                0,
                3,
                Reaction::Abort("abort: rejected".into()),
            ),
        ];
        for (failure, used, max, want) in cases {
            assert_eq!(react(&failure, used, max), want, "{failure}");
        }
    }

    #[test]
    fn display_has_the_damocles_prefix() {
        assert_eq!(Failure::temp("x").to_string(), "temporary: x");
        assert_eq!(Failure::abort("y").to_string(), "abort: y");
    }
}
