//! `sdt-probes`: the DTrace names of every SDT probe the driver can emit
//! (`kvm-vexit`, ...), sorted, one per line. `make` compares the probes
//! actually in build/kvm (`kmodfix --list-probes`) with this list, so an
//! object can only carry probes with the C driver's names.

use std::io::Write;

fn main() {
    let mut names: Vec<String> = kvm_kstat::sdt::PROBE_SYMBOLS
        .iter()
        .map(|s| {
            let mut buf = [0u8; 64];
            let n = kvm_kstat::sdt::probe_name(s, &mut buf);
            String::from_utf8_lossy(buf.get(..n).unwrap_or(&[])).into_owned()
        })
        .collect();
    names.sort();
    let mut out = std::io::stdout().lock();
    for n in names {
        // A closed pipe is not worth a panic.
        if writeln!(out, "{n}").is_err() {
            return;
        }
    }
}
