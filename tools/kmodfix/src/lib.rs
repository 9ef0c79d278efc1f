//! `kmodfix`: the post-link step that turns `build/kvm.o` (`ld -r` of the Rust
//! staticlib and the C glue) into `build/kvm`, an object krtld can load.
//!
//! Why it exists (docs/rust-in-the-illumos-kernel.md §0 and §5.4):
//! - rustc + fat LTO still emits `call *sym@GOTPCREL(%rip)` for compiler
//!   libcalls (the `RtLibUseGOT` module flag, §0.1). krtld has no GOT and
//!   computes `S + A` for GOTPCREL without subtracting P, so the module loads
//!   and then jumps into garbage. [`relax`] rewrites those sites in place.
//! - `.eh_frame` is SHF_ALLOC with PC32 relocations and `.llvmbc`/`.llvmcmd`
//!   are dead weight (§5.4.6); [`strip`] removes them.
//! - Everything else krtld would silently mis-handle is checked by [`audit`]:
//!   relocation types, undefined symbols, SSE/x87 code, TLS, static
//!   constructors, the `_init/_fini/_info` entry points and SDT probe sites.
//!
//! The pipeline is [`run`]: relax -> strip -> audit -> atomic write. The output
//! is written only if the audit finds no violation.

pub mod allowlist;
pub mod audit;
pub mod elf;
pub mod relax;
pub mod report;
pub mod strip;

use std::ffi::OsString;
use std::fmt;
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

pub use allowlist::Allowlist;
pub use audit::{Audit, AuditOptions, ProbeSite, Violation, ViolationKind, audit};
pub use relax::{RelaxStats, relax_gotpcrel};

/// An error that stops processing (I/O failure, malformed ELF, objcopy failed).
/// Audit findings are not errors: they are [`Violation`]s.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Error(String);

impl Error {
    pub fn new(msg: impl Into<String>) -> Self {
        Error(msg.into())
    }

    /// Prefixes the message with what was being done.
    pub fn context(self, what: impl fmt::Display) -> Self {
        Error(format!("{what}: {}", self.0))
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Error {}

/// Reads a file, naming it in the error.
pub fn read_file(path: &Path) -> Result<Vec<u8>, Error> {
    fs::read(path).map_err(|e| Error::new(format!("{}: {e}", path.display())))
}

/// Options of the full pipeline (`kmodfix IN OUT`).
#[derive(Debug, Clone)]
pub struct Options {
    pub input: PathBuf,
    pub output: PathBuf,
    pub audit: AuditOptions,
    /// The objcopy binary used by [`strip`] (`$OBJCOPY`, default `objcopy`).
    pub objcopy: OsString,
}

/// Result of a full run.
#[derive(Debug)]
pub struct RunResult {
    pub relaxed: RelaxStats,
    pub audit: Audit,
    /// Whether OUT was written (only when the audit passed).
    pub written: bool,
}

impl RunResult {
    pub fn passed(&self) -> bool {
        self.audit.passed()
    }

    /// The one-line summary (see [`report::summary_line`]).
    pub fn summary(&self, name: &str) -> String {
        report::summary_line(name, &self.audit, Some(&self.relaxed))
    }
}

/// A temporary file next to `target` (same directory, so `rename` is atomic),
/// removed on drop unless it was renamed away.
struct TempPath(PathBuf);

impl TempPath {
    fn next_to(target: &Path, tag: &str) -> Self {
        let name = target
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| "out".to_string());
        let file = format!(".{name}.kmodfix-{tag}-{}.tmp", std::process::id());
        TempPath(target.with_file_name(file))
    }
}

impl Drop for TempPath {
    fn drop(&mut self) {
        let _ = fs::remove_file(&self.0);
    }
}

/// Writes `bytes` to `path` atomically: temp file in the same directory,
/// fsync, rename. A reader (or `make`) never sees a half-written module.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), Error> {
    let tmp = TempPath::next_to(path, "out");
    let io = |e: std::io::Error| Error::new(format!("{}: {e}", tmp.0.display()));
    let mut f = fs::File::create(&tmp.0).map_err(io)?;
    f.write_all(bytes).map_err(io)?;
    f.sync_all().map_err(io)?;
    drop(f);
    fs::rename(&tmp.0, path).map_err(|e| {
        Error::new(format!(
            "rename {} -> {}: {e}",
            tmp.0.display(),
            path.display()
        ))
    })
}

/// The whole pipeline: relax GOTPCREL -> strip (objcopy) -> audit -> write OUT
/// atomically if and only if the audit passed.
///
/// Relaxation runs first, on the input bytes, so that the strip pass can also
/// drop `_GLOBAL_OFFSET_TABLE_`: gas (not LLVM) adds it as an undefined symbol
/// to any object using GOTPCREL, no relocation refers to it, and unix/genunix
/// does not export it, so krtld would refuse the module for it.
pub fn run(opts: &Options) -> Result<RunResult, Error> {
    let mut bytes = read_file(&opts.input)?;
    let relaxed = relax_gotpcrel(&mut bytes).map_err(|e| e.context(opts.input.display()))?;
    // Undefined symbols nothing refers to: gas's `_GLOBAL_OFFSET_TABLE_`
    // (see above), and probe symbols whose only call sites `ld -r
    // --gc-sections` dropped with an unused function (the probe wrappers
    // of kstat/src/sdt.rs are exported, so every one reaches the link). A
    // probe is a relocation, not a symbol: without a site there is no
    // probe, and krtld would try to resolve the bare symbol.
    let unreferenced = relax::unreferenced_undefined(&bytes, |n| {
        n == relax::GOT_SYMBOL || n.starts_with(audit::PROBE_PREFIX)
    })
    .map_err(|e| e.context(opts.input.display()))?;

    let relaxed_file = TempPath::next_to(&opts.output, "relaxed");
    fs::write(&relaxed_file.0, &bytes)
        .map_err(|e| Error::new(format!("{}: {e}", relaxed_file.0.display())))?;
    let stripped = TempPath::next_to(&opts.output, "strip");
    let strip_symbols: Vec<&str> = unreferenced.iter().map(String::as_str).collect();
    strip::strip_sections(&opts.objcopy, &relaxed_file.0, &stripped.0, &strip_symbols)
        .map_err(|e| e.context(opts.input.display()))?;
    let bytes = read_file(&stripped.0)?;
    drop((relaxed_file, stripped));

    let audit = audit(&bytes, &opts.audit).map_err(|e| e.context(opts.input.display()))?;
    let written = audit.passed();
    if written {
        write_atomic(&opts.output, &bytes)?;
    }
    Ok(RunResult {
        relaxed,
        audit,
        written,
    })
}

/// `__dtrace_probe_kvm__vm__entry` -> `kvm-vm-entry`: the name the sdt provider
/// gives the probe (`__` becomes `-`, §1.7).
pub fn probe_name(symbol: &str) -> Option<String> {
    symbol
        .strip_prefix(audit::PROBE_PREFIX)
        .filter(|rest| !rest.is_empty())
        .map(|rest| rest.replace("__", "-"))
}

/// Sorted distinct probe names of an object (`kmodfix --list-probes`).
pub fn list_probes(bytes: &[u8]) -> Result<Vec<String>, Error> {
    let elf = elf::Elf::parse(bytes)?;
    let mut names: Vec<String> = elf
        .symbols()?
        .iter()
        .filter_map(|s| probe_name(&s.name))
        .collect();
    names.sort();
    names.dedup();
    Ok(names)
}

/// Every SDT probe site of an object as `(function, probe name)`, sorted and
/// distinct (`kmodfix --list-probe-sites`): the function is the one the sdt
/// provider names (the sized function symbol around the call, `-` outside
/// any), so this is the FUNCTION and NAME columns `dtrace -l -m kvm` will
/// show.
pub fn list_probe_sites(bytes: &[u8]) -> Result<Vec<(String, String)>, Error> {
    let a = audit(bytes, &AuditOptions::default())?;
    let mut sites: Vec<(String, String)> = a
        .probe_sites
        .iter()
        .filter_map(|s| {
            let probe = probe_name(&s.symbol)?;
            Some((s.function.clone().unwrap_or_else(|| "-".to_string()), probe))
        })
        .collect();
    sites.sort();
    sites.dedup();
    Ok(sites)
}
