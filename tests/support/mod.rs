//! Helpers the integration tests share: finding ../shared and asking gcc
//! for the values illumos headers define.

use std::path::{Path, PathBuf};
use std::process::Command;

/// The illumos SDK: `$ILLUMOS_SDK`, else `../shared/illumos-sdk` beside the
/// checkout; `None` (and the caller skips, saying so) when neither exists.
pub fn illumos_sdk() -> Option<PathBuf> {
    let p = match std::env::var_os("ILLUMOS_SDK") {
        Some(v) => PathBuf::from(v),
        None => Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/illumos-sdk"),
    };
    p.join("usr/src/uts/common/sys/modctl.h")
        .exists()
        .then_some(p)
}

/// Compile `source` as illumos kernel C (the flags the Makefile uses for the
/// glue) to assembly and return every `probe_<name>` constant it defines.
/// The probe defines `const unsigned long long probe_<name> = <expr>;`, so
/// gcc, reading the real headers, is what computes each value.
pub fn kernel_c_values(sdk: &Path, source: &str) -> Vec<(String, u64)> {
    let dir = std::env::temp_dir().join(format!("kvm-cprobe-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let c = dir.join("probe.c");
    let s = dir.join("probe.s");
    std::fs::write(&c, source).unwrap();
    let glue = Path::new(env!("CARGO_MANIFEST_DIR")).join("src/glue");
    let out = Command::new("gcc")
        .args([
            "-D__sun",
            "-D_KERNEL",
            "-D_MACHDEP",
            "-Dx86",
            "-D_SYSCALL32",
            "-D_DDI_STRICT",
            "-Di86pc",
            "-nostdinc",
            "-m64",
            "-mno-red-zone",
            "-ffreestanding",
            "-fno-builtin",
            "-fno-pie",
            "-std=gnu99",
            "-O0",
            "-Wno-format",
            "-S",
        ])
        .arg(format!("-I{}", sdk.join("usr/src/uts/common").display()))
        .arg(format!("-I{}", sdk.join("usr/src/uts/intel").display()))
        .arg(format!("-I{}", sdk.join("usr/src/uts/i86pc").display()))
        .arg(format!("-I{}", glue.display()))
        .arg(&c)
        .arg("-o")
        .arg(&s)
        .output()
        .expect("gcc runs");
    assert!(
        out.status.success(),
        "gcc failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let asm = std::fs::read_to_string(&s).unwrap();
    let _ = std::fs::remove_dir_all(&dir);
    parse_probe_asm(&asm)
}

/// `probe_x:` followed by `.quad N` (or `.zero 8` for 0) in gcc's assembly.
pub fn parse_probe_asm(asm: &str) -> Vec<(String, u64)> {
    let mut out = Vec::new();
    let mut label: Option<String> = None;
    for line in asm.lines() {
        let t = line.trim();
        if let Some(name) = t.strip_suffix(':').and_then(|l| l.strip_prefix("probe_")) {
            label = Some(name.to_string());
        } else if let Some(name) = label.as_ref() {
            // A zero value lands in .bss as `.zero 8`.
            let v: Option<i128> = if let Some(v) = t.strip_prefix(".quad") {
                Some(v.trim().parse().expect("numeric .quad"))
            } else if t.split_whitespace().eq([".zero", "8"]) {
                Some(0)
            } else {
                None
            };
            if let Some(v) = v {
                out.push((name.clone(), v as u64));
                label = None;
            }
        }
    }
    out
}
