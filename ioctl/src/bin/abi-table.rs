//! `abi-table`: prints the Rust side of the /dev/kvm contract, one item per
//! line: `ioctl <NAME> 0x<number>` (8 lowercase hex digits) for every ioctl
//! and `struct <name> <size>` (decimal) for every ABI struct. `make
//! abi-table` runs it; the D scripts in `tools/` and the tests read it.

use kvm_ioctl::abi::{ALL_IOCTLS, ALL_STRUCTS};
use std::io::Write;

fn main() {
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    let mut text = String::new();
    for (name, value) in ALL_IOCTLS {
        text.push_str(&format!("ioctl {name} 0x{value:08x}\n"));
    }
    for (name, size) in ALL_STRUCTS {
        text.push_str(&format!("struct {name} {size}\n"));
    }
    // A closed pipe (e.g. `| head`) is not an error worth a panic.
    let _ = out.write_all(text.as_bytes()).and_then(|()| out.flush());
}
