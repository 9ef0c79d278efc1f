//! Removing the sections krtld must not see (§5.4.6).
//!
//! `.eh_frame` is SHF_ALLOC (type SHT_X86_64_UNWIND) with PC32 relocations,
//! so krtld would load and relocate it as data although the module is
//! `panic=abort` and nothing unwinds; `-C force-unwind-tables=no` still left
//! one [measured]. `.llvmbc`/`.llvmcmd` are LTO bitcode, `.comment` is
//! compiler identification. objcopy (always installed next to `ld`) does the
//! removal because it also drops the matching relocation sections and the
//! section symbols, and renumbers everything consistently.

use std::ffi::OsStr;
use std::path::Path;
use std::process::Command;

use crate::Error;

/// The sections removed from the module (the audit re-checks they are gone).
pub const STRIP_SECTIONS: &[&str] = &[
    ".eh_frame",
    ".rela.eh_frame",
    ".llvmbc",
    ".llvmcmd",
    ".comment",
];

/// `objcopy --remove-section=... [--strip-symbol=...] input output`.
/// Removing a section that is not there is not an error for objcopy; a
/// symbol in `symbols` must not be named by any relocation.
pub fn strip_sections(
    objcopy: &OsStr,
    input: &Path,
    output: &Path,
    symbols: &[&str],
) -> Result<(), Error> {
    let mut cmd = Command::new(objcopy);
    for s in STRIP_SECTIONS {
        cmd.arg(format!("--remove-section={s}"));
    }
    for s in symbols {
        cmd.arg(format!("--strip-symbol={s}"));
    }
    cmd.arg(input).arg(output);
    let out = cmd.output().map_err(|e| {
        Error::new(format!(
            "cannot run {} (set $OBJCOPY): {e}",
            objcopy.to_string_lossy()
        ))
    })?;
    if !out.status.success() {
        return Err(Error::new(format!(
            "{} failed on {} ({}): {}",
            objcopy.to_string_lossy(),
            input.display(),
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        )));
    }
    Ok(())
}
