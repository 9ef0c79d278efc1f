//! `sdt-probes`: the DTrace names of every SDT probe the driver can emit
//! (`kvm-vexit`, ...), sorted, one per line. `make` compares the probes
//! actually in build/kvm (`kmodfix --list-probes`) with this list, so an
//! object can only carry probes with the C driver's names.
//!
//! `sdt-probes --sites`: `FUNCTION PROBE` for every probe, sorted, the
//! function being its site's stable name (`kvm_kstat::sdt::PROBE_SITES`);
//! `make` compares it with `kmodfix --list-probe-sites build/kvm`, so every
//! probe sits in its own wrapper and nowhere else.

use std::io::Write;

fn dtrace_name(symbol: &str) -> String {
    let mut buf = [0u8; 64];
    let n = kvm_kstat::sdt::probe_name(symbol, &mut buf);
    String::from_utf8_lossy(buf.get(..n).unwrap_or(&[])).into_owned()
}

fn main() {
    let sites = match std::env::args().nth(1).as_deref() {
        None => false,
        Some("--sites") => true,
        Some(other) => {
            eprintln!("sdt-probes: unknown argument {other}\nusage: sdt-probes [--sites]");
            std::process::exit(2);
        }
    };
    let mut lines: Vec<String> = if sites {
        kvm_kstat::sdt::PROBE_SITES
            .iter()
            .map(|(sym, func)| format!("{func} {}", dtrace_name(sym)))
            .collect()
    } else {
        kvm_kstat::sdt::PROBE_SYMBOLS
            .iter()
            .map(|s| dtrace_name(s))
            .collect()
    };
    // Byte order, as `LC_ALL=C sort` and `comm` in the Makefile.
    lines.sort();
    let mut out = std::io::stdout().lock();
    for l in lines {
        // A closed pipe is not worth a panic.
        if writeln!(out, "{l}").is_err() {
            return;
        }
    }
}
