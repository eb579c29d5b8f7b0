//! Helpers shared by the integration tests (each test file includes this with `mod common;`
//! and uses what it needs).
#![allow(dead_code)]

pub mod flows;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// The repository's `testdata/`.
pub fn testdata() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../testdata")
}

/// Run `rstscope merge -o out DIRS...`.
pub fn merge(out: &Path, dirs: &[PathBuf]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_rstscope"))
        .arg("merge")
        .arg("-o")
        .arg(out)
        .args(dirs)
        .output()
        .expect("run rstscope merge")
}

/// Run the rstscope binary with `args` and `-o out`.
pub fn rstscope(args: &[&str], out: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_rstscope"))
        .args(args)
        .arg("-o")
        .arg(out)
        .output()
        .expect("run rstscope")
}
