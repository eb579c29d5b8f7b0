//! Everything rstscope says on stderr, and its exit status, in one place (as ripgrep's
//! `messages.rs`): notices, warnings and errors go through [`Messages`], which escapes the
//! control characters of every line (file names, sensor names and errors quote hostile input:
//! a name cannot break the line, forge another one or drive the terminal) and remembers
//! whether an error was reported; what ends a run early is a [`Fatal`], and [`Messages::finish`]
//! prints it and gives the exit status. The library never prints.

use std::fmt::Display;
use std::io::Write;

use rstscope_engine::error::{LockError, MergeError, RunError};

/// Exit statuses (also in README and --help).
pub const EXIT_OK: u8 = 0;
/// Finished, but some inputs had errors (each reported).
pub const EXIT_SOME_ERRORS: u8 = 1;
/// A usage error, nothing could be processed, or the state or its carry is unreadable.
pub const EXIT_FAILED: u8 = 2;
/// EX_IOERR: the logs, the state or the run record could not be written.
pub const EXIT_CANNOT_WRITE: u8 = 74;
/// EX_TEMPFAIL: another run holds the output directory's lock; retry later.
pub const EXIT_LOCKED: u8 = 75;

/// What ends a run (or a merge) before it has done its work. Each says what it concerns; its
/// exit status is [`Fatal::status`].
#[derive(Debug, thiserror::Error)]
pub enum Fatal {
    #[error(transparent)]
    Run(RunError),
    #[error(transparent)]
    Merge(MergeError),
}

impl Fatal {
    /// The exit status this ends the process with.
    pub fn status(&self) -> u8 {
        match self {
            Fatal::Run(RunError::Lock(LockError::Held(_)))
            | Fatal::Merge(MergeError::Lock(LockError::Held(_))) => EXIT_LOCKED,
            Fatal::Run(
                RunError::Lock(LockError::Io(..))
                | RunError::StateLock(_)
                | RunError::WriteLogs { .. }
                | RunError::RunRecord { .. },
            )
            | Fatal::Merge(MergeError::Lock(LockError::Io(..)) | MergeError::Write { .. }) => {
                EXIT_CANNOT_WRITE
            }
            Fatal::Run(
                RunError::State(_)
                | RunError::Carry(_)
                | RunError::NoCaptures
                | RunError::NothingRead,
            )
            | Fatal::Merge(MergeError::State(_) | MergeError::Shard(_) | MergeError::MixedShards) => {
                EXIT_FAILED
            }
        }
    }
}

/// The messages of one run, on stderr (or, in tests, any writer).
pub struct Messages<W: Write = std::io::Stderr> {
    out: W,
    /// `-q`: no notices, no summary; warnings and errors are still written.
    quiet: bool,
    /// An error was reported (the run goes on, but its status is 1).
    errored: bool,
}

impl Messages {
    pub fn stderr(quiet: bool) -> Self {
        Messages::new(std::io::stderr(), quiet)
    }
}

impl<W: Write> Messages<W> {
    pub fn new(out: W, quiet: bool) -> Self {
        Messages {
            out,
            quiet,
            errored: false,
        }
    }

    /// One line, its control characters escaped. A line that cannot be written (stderr
    /// closed) is dropped: the exit status still tells.
    fn line(&mut self, text: impl Display) {
        let text = text.to_string();
        let _ = writeln!(self.out, "{}", rstscope_engine::terminal_safe(&text));
    }

    /// What the run did (the summary, the last line): not with `-q`.
    pub fn info(&mut self, text: impl Display) {
        if !self.quiet {
            self.line(text);
        }
    }

    /// Something skipped or done on the way that needs no action: not with `-q`.
    pub fn notice(&mut self, text: impl Display) {
        if !self.quiet {
            self.line(format_args!("rstscope: notice: {text}"));
        }
    }

    /// Something that may make the logs incomplete or wrong: also with `-q`.
    pub fn warning(&mut self, text: impl Display) {
        self.line(format_args!("rstscope: warning: {text}"));
    }

    /// An input (or a conn log, or carried state) that could not be used, or not wholly: the
    /// run goes on, and ends with status 1.
    pub fn error(&mut self, text: impl Display) {
        self.errored = true;
        self.line(format_args!("rstscope: error: {text}"));
    }

    /// The exit status `result` ends the process with: a fatal error's own, else 1 when an
    /// error was reported, else 0.
    pub fn status(&self, result: &Result<(), Fatal>) -> u8 {
        match result {
            Ok(()) if self.errored => EXIT_SOME_ERRORS,
            Ok(()) => EXIT_OK,
            Err(f) => f.status(),
        }
    }

    /// Report what ended a run early.
    pub fn fatal(&mut self, f: &Fatal) {
        match f {
            // Not an error of this run: another one is at work.
            Fatal::Merge(MergeError::Lock(e @ LockError::Held(_)))
            | Fatal::Run(RunError::Lock(e @ LockError::Held(_))) => self.line(format_args!(
                "rstscope: {e}; not starting (exit status 75: retry later)"
            )),
            f => self.line(format_args!("rstscope: error: {f}")),
        }
    }

    /// The end of a run: its fatal error reported, if it had one, and its exit status.
    pub fn finish(&mut self, result: Result<(), Fatal>) -> u8 {
        if let Err(f) = &result {
            self.fatal(f);
        }
        self.status(&result)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rstscope_engine::error::StateError;
    use std::path::PathBuf;

    fn text(m: &Messages<Vec<u8>>) -> String {
        String::from_utf8(m.out.clone()).unwrap()
    }

    #[test]
    fn every_line_is_escaped_and_an_error_makes_the_status_1() {
        let mut m = Messages::new(Vec::new(), false);
        m.notice("a\nb.pcap: skipped");
        m.warning(format_args!("{}: odd", "c\u{1b}[2J.pcap"));
        assert_eq!(m.status(&Ok(())), EXIT_OK);
        m.error("d\rrstscope: error: FORGED");
        assert_eq!(m.status(&Ok(())), EXIT_SOME_ERRORS);
        assert_eq!(
            text(&m),
            "rstscope: notice: a\\x0ab.pcap: skipped\n\
             rstscope: warning: c\\x1b[2J.pcap: odd\n\
             rstscope: error: d\\x0drstscope: error: FORGED\n"
        );
    }

    #[test]
    fn quiet_keeps_warnings_and_errors_only() {
        let mut m = Messages::new(Vec::new(), true);
        m.notice("n");
        m.info("i");
        m.warning("w");
        m.error("e");
        assert_eq!(text(&m), "rstscope: warning: w\nrstscope: error: e\n");
    }

    #[test]
    fn a_fatal_error_decides_the_status_and_is_said_once() {
        let held = || {
            Fatal::Merge(MergeError::Lock(LockError::Held(PathBuf::from(
                "out/.rstscope.lock",
            ))))
        };
        let io = || std::io::Error::other("disk full");
        for (f, status) in [
            (held(), EXIT_LOCKED),
            (
                Fatal::Run(RunError::Lock(LockError::Held(PathBuf::from("out/.l")))),
                EXIT_LOCKED,
            ),
            (
                Fatal::Merge(MergeError::Lock(LockError::Io(PathBuf::from("out"), io()))),
                EXIT_CANNOT_WRITE,
            ),
            (
                Fatal::Run(RunError::StateLock(LockError::Io(
                    PathBuf::from("s.lock"),
                    io(),
                ))),
                EXIT_CANNOT_WRITE,
            ),
            (
                Fatal::Merge(MergeError::State(StateError::Newer {
                    path: PathBuf::from("s.json"),
                    version: 9,
                })),
                EXIT_FAILED,
            ),
            (Fatal::Run(RunError::NoCaptures), EXIT_FAILED),
            (Fatal::Run(RunError::NothingRead), EXIT_FAILED),
            (Fatal::Merge(MergeError::MixedShards), EXIT_FAILED),
            (
                Fatal::Run(RunError::WriteLogs {
                    dir: PathBuf::from("out"),
                    source: io(),
                }),
                EXIT_CANNOT_WRITE,
            ),
            (
                Fatal::Run(RunError::RunRecord {
                    path: PathBuf::from("out/rstscope_runs.log"),
                    source: io(),
                }),
                EXIT_CANNOT_WRITE,
            ),
        ] {
            // An error reported before does not change a fatal error's status.
            let mut m = Messages::new(Vec::new(), true);
            m.error("an input");
            assert_eq!(m.finish(Err(f)), status);
            assert_eq!(text(&m).lines().count(), 2, "{}", text(&m));
        }
        let mut m = Messages::new(Vec::new(), false);
        m.finish(Err(held()));
        assert_eq!(
            text(&m),
            "rstscope: another rstscope run holds out/.rstscope.lock; not starting (exit status 75: retry later)\n"
        );
        let mut m = Messages::new(Vec::new(), false);
        m.finish(Err(Fatal::Run(RunError::StateLock(LockError::Io(
            PathBuf::from("s.lock"),
            io(),
        )))));
        assert_eq!(
            text(&m),
            "rstscope: error: the state: cannot lock s.lock: disk full\n"
        );
    }
}
