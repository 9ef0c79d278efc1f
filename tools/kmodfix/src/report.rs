//! The summary line, one per run, for the build log.
//!
//! Format (OK):
//! `kmodfix: OUT OK: text=N bytes, relocs=N (64=N pc32=N plt32=N 32s=N), relaxed-gotpcrel=N, undefined=N, sdt-probes=N (sites=N, all calls), panic-call-sites=N, max-frame=N (FUNCTION)`
//!
//! On failure `OK` becomes `FAIL: violations=N,`, `relocs` gains ` other=N`
//! when types outside the four allowed ones are present, and the probe
//! parenthesis says how many sites are not direct calls.
//!
//! - `text`: bytes of SHF_ALLOC|SHF_EXECINSTR sections.
//! - `relocs`: relocations applied to SHF_ALLOC sections (after relaxation),
//!   by type; those of `.debug_*` are not counted (krtld skips them).
//! - `relaxed-gotpcrel`: sites rewritten by [`crate::relax`] (`-` for `--check`).
//! - `undefined`: distinct undefined global/weak symbols, probes included.
//! - `sdt-probes`: distinct `__dtrace_probe_*` symbols; `sites`: their relocations.
//! - `panic-call-sites`: see [`crate::audit::is_panic_call`].
//! - `max-frame`: the largest stack frame a function prologue reserves
//!   ([`crate::audit::prologue_frame`]) and the function.

use crate::audit::Audit;
use crate::elf::{R_X86_64_32S, R_X86_64_64, R_X86_64_PC32, R_X86_64_PLT32};
use crate::relax::RelaxStats;

/// The summary line for `name` (usually OUT). `relaxed` is None when no
/// relaxation ran (`--check`).
pub fn summary_line(name: &str, audit: &Audit, relaxed: Option<&RelaxStats>) -> String {
    let s = &audit.stats;
    let status = if audit.passed() {
        "OK:".to_string()
    } else {
        format!("FAIL: violations={},", audit.violations.len())
    };
    let known = [R_X86_64_64, R_X86_64_PC32, R_X86_64_PLT32, R_X86_64_32S]
        .iter()
        .map(|&t| s.reloc_count(t))
        .sum::<usize>();
    let other = s.reloc_total() - known;
    let other = if other > 0 {
        format!(" other={other}")
    } else {
        String::new()
    };
    let relaxed = relaxed.map_or_else(|| "-".to_string(), |r| r.total().to_string());
    let probes = if s.bad_probe_sites == 0 {
        "all calls".to_string()
    } else {
        format!("{} not direct calls", s.bad_probe_sites)
    };
    format!(
        "kmodfix: {name} {status} text={} bytes, relocs={} (64={} pc32={} plt32={} 32s={}{other}), relaxed-gotpcrel={relaxed}, undefined={}, sdt-probes={} (sites={}, {probes}), panic-call-sites={}, max-frame={} ({})",
        s.text_bytes,
        s.reloc_total(),
        s.reloc_count(R_X86_64_64),
        s.reloc_count(R_X86_64_PC32),
        s.reloc_count(R_X86_64_PLT32),
        s.reloc_count(R_X86_64_32S),
        s.undefined,
        s.probes,
        s.probe_sites,
        s.panic_call_sites,
        s.max_frame,
        if s.max_frame_fn.is_empty() {
            "-"
        } else {
            s.max_frame_fn.as_str()
        },
    )
}
