//! Print the C header the `kvm` mdb module (`mdb/kvm_mdb.c`) is compiled
//! with: the `kvm_vm_list` symbol name, record sizes, field offsets and
//! sizes, ring and table constants, all taken from the `#[repr(C)]` Rust
//! records (`kvm_kstat::debug`, `kvm_kstat::ringbuf`). `make mdb` writes it
//! to `build/kvm_mdb_offsets.h`.

use std::io::Write;
use std::process::ExitCode;

fn main() -> ExitCode {
    let mut header = String::new();
    if kvm_kstat::debug::write_c_header(&mut header).is_err() {
        eprintln!("mdb-offsets: formatting the header failed");
        return ExitCode::FAILURE;
    }
    let mut out = std::io::stdout().lock();
    match out.write_all(header.as_bytes()).and_then(|()| out.flush()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("mdb-offsets: {e}");
            ExitCode::FAILURE
        }
    }
}
