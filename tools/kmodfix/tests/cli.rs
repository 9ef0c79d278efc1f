//! The command line as the Makefile uses it: exit codes, what goes to
//! stdout/stderr, and that OUT is written only when the audit passes.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use common::*;

fn kmodfix(args: &[&std::ffi::OsStr]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_kmodfix"))
        .args(args)
        .output()
        .expect("run kmodfix")
}

fn allowlist_file() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("allowlist.txt")
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// Files in the directory of `p` (to check no temp file is left behind).
fn dir_listing(dir: &TempDir) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir.path(""))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

#[test]
fn ok_run_prints_one_summary_line_and_writes_out() {
    let dir = TempDir::new("cli-ok");
    let input = assemble(&dir, "kvm", &module(""));
    let out = dir.path("kvm.out");
    let o = kmodfix(&[
        "--allowlist".as_ref(),
        allowlist_file().as_os_str(),
        "--max-panic-calls".as_ref(),
        "0".as_ref(),
        input.as_os_str(),
        out.as_os_str(),
    ]);
    assert!(o.status.success(), "{}", text(&o.stderr));
    let stdout = text(&o.stdout);
    assert_eq!(stdout.lines().count(), 1, "{stdout}");
    assert!(
        stdout.starts_with(&format!("kmodfix: {} OK: text=", out.display())),
        "{stdout}"
    );
    assert!(stdout.contains(
        ", relaxed-gotpcrel=0, undefined=6, sdt-probes=2 (sites=3, all calls), panic-call-sites=0"
    ));
    assert_eq!(text(&o.stderr), "");
    assert!(out.exists());
    assert_eq!(dir_listing(&dir), ["kvm.o", "kvm.out", "kvm.s"]);

    // The output audits clean as it is; the input does not (.eh_frame).
    let o = kmodfix(&[
        "--check".as_ref(),
        "--allowlist".as_ref(),
        allowlist_file().as_os_str(),
        out.as_os_str(),
    ]);
    assert!(o.status.success(), "{}", text(&o.stderr));
    assert!(text(&o.stdout).contains("relaxed-gotpcrel=-"));
    let o = kmodfix(&[
        "--check".as_ref(),
        format!("--allowlist={}", allowlist_file().display()).as_ref(),
        input.as_os_str(),
    ]);
    assert_eq!(o.status.code(), Some(1));
    assert!(text(&o.stderr).contains(".eh_frame is still present"));
}

#[test]
fn failing_audit_exits_1_lists_violations_and_writes_nothing() {
    let dir = TempDir::new("cli-fail");
    let input = assemble(
        &dir,
        "kvm",
        &module("\t.text\nx:\tcall\tnot_a_kernel_symbol\n\tmovaps %xmm0, %xmm1\n"),
    );
    let out = dir.path("kvm.out");
    // A stale OUT from an earlier build is not replaced.
    std::fs::write(&out, b"stale").unwrap();
    let o = kmodfix(&[
        "--allowlist".as_ref(),
        allowlist_file().as_os_str(),
        input.as_os_str(),
        out.as_os_str(),
    ]);
    assert_eq!(o.status.code(), Some(1));
    assert_eq!(text(&o.stdout), "");
    let stderr = text(&o.stderr);
    let lines: Vec<&str> = stderr.lines().collect();
    assert_eq!(lines.len(), 3, "{stderr}");
    assert!(lines[0].starts_with("kmodfix: error: ") && lines[0].contains("`not_a_kernel_symbol`"));
    assert!(lines[1].starts_with("kmodfix: error: ") && lines[1].contains("movaps"));
    assert!(lines[2].starts_with(&format!("kmodfix: {} FAIL: violations=2, ", out.display())));
    assert_eq!(std::fs::read(&out).unwrap(), b"stale");
    assert_eq!(dir_listing(&dir), ["kvm.o", "kvm.out", "kvm.s"]);
}

#[test]
fn max_panic_calls_ratchet_from_the_command_line() {
    let dir = TempDir::new("cli-panic");
    let input = assemble(
        &dir,
        "kvm",
        &module("\t.text\np:\tcall\tpanic\n\tcall\tpanic\n"),
    );
    let out = dir.path("kvm.out");
    let run = |n: &str| {
        kmodfix(&[
            "--allowlist".as_ref(),
            allowlist_file().as_os_str(),
            "--max-panic-calls".as_ref(),
            n.as_ref(),
            input.as_os_str(),
            out.as_os_str(),
        ])
    };
    let o = run("2");
    assert!(o.status.success(), "{}", text(&o.stderr));
    assert!(
        text(&o.stdout).contains(", panic-call-sites=2, max-frame="),
        "{}",
        text(&o.stdout)
    );
    std::fs::remove_file(&out).unwrap();
    let o = run("1");
    assert_eq!(o.status.code(), Some(1));
    assert!(text(&o.stderr).contains("more than --max-panic-calls 1"));
    assert!(!out.exists());
}

#[test]
fn list_probes_prints_sorted_distinct_names() {
    let dir = TempDir::new("cli-probes");
    let input = assemble(
        &dir,
        "kvm",
        &module(
            "\t.text\nq:\tcall\t__dtrace_probe_kvm__vm__entry\n\tcall\t__dtrace_probe_kvm__apic__read\n\tcall\t__dtrace_probe_kvm__vm__entry\n",
        ),
    );
    let o = kmodfix(&["--list-probes".as_ref(), input.as_os_str()]);
    assert!(o.status.success(), "{}", text(&o.stderr));
    assert_eq!(
        text(&o.stdout),
        "kvm-apic-read\nkvm-fini\nkvm-init\nkvm-vm-entry\n"
    );
}

#[test]
fn list_probe_sites_prints_function_and_probe() {
    let dir = TempDir::new("cli-sites");
    let input = assemble(
        &dir,
        "kvm",
        &module(
            "\t.text\n\t.globl\thandle_cr_kvm_cr_read\n\t.type\thandle_cr_kvm_cr_read, @function\nhandle_cr_kvm_cr_read:\n\tcall\t__dtrace_probe_kvm__cr__read\n\tnop\n\tret\n\t.size\thandle_cr_kvm_cr_read, .-handle_cr_kvm_cr_read\nq:\tcall\t__dtrace_probe_kvm__vm__entry\n\tnop\n",
        ),
    );
    let o = kmodfix(&["--list-probe-sites".as_ref(), input.as_os_str()]);
    assert!(o.status.success(), "{}", text(&o.stderr));
    // `q` is a label, not a sized function: `-`, as no function covers it.
    assert_eq!(
        text(&o.stdout),
        "- kvm-vm-entry\n_fini kvm-fini\n_info kvm-init\n_init kvm-init\nhandle_cr_kvm_cr_read kvm-cr-read\n"
    );
}

#[test]
fn usage_errors_exit_2() {
    for args in [
        &[][..],
        &["only-one"][..],
        &["a", "b", "c"][..],
        &["--max-panic-calls", "many", "a", "b"][..],
        &["--frobnicate", "a", "b"][..],
        &["--check", "--list-probes", "a"][..],
        &["--list-probe-sites", "--list-probes", "a"][..],
        &["--list-probe-sites", "a", "b"][..],
        &["--allowlist"][..],
    ] {
        let args: Vec<&std::ffi::OsStr> = args.iter().map(|a| a.as_ref()).collect();
        let o = kmodfix(&args);
        assert_eq!(o.status.code(), Some(2), "{args:?}");
        assert!(text(&o.stderr).contains("usage:"), "{args:?}");
    }
    let o = kmodfix(&["--help".as_ref()]);
    assert!(o.status.success());
}

#[test]
fn bad_input_is_an_error_not_a_panic() {
    let dir = TempDir::new("cli-bad");
    let junk = dir.path("junk.o");
    std::fs::write(&junk, b"this is not an object file").unwrap();
    let out = dir.path("out");
    for args in [
        vec![junk.as_os_str(), out.as_os_str()],
        vec!["--list-probes".as_ref(), junk.as_os_str()],
        vec!["--check".as_ref(), junk.as_os_str()],
        vec![
            dir.path("missing.o").into_os_string().leak() as &std::ffi::OsStr,
            out.as_os_str(),
        ],
    ] {
        let o = kmodfix(&args);
        assert_eq!(o.status.code(), Some(1), "{args:?}");
        let e = text(&o.stderr);
        assert!(e.starts_with("kmodfix: error: "), "{e}");
        assert!(!e.contains("panicked"), "{e}");
    }
    assert!(!out.exists());
    // An ELF that is not a relocatable object (an executable).
    let o = assemble(&dir, "e", "\t.globl _start\n_start:\tret\n");
    let exe = dir.path("exe");
    assert!(
        Command::new("ld")
            .arg("-o")
            .arg(&exe)
            .arg(&o)
            .status()
            .unwrap()
            .success()
    );
    let r = kmodfix(&["--check".as_ref(), exe.as_os_str()]);
    assert_eq!(r.status.code(), Some(1));
    assert!(text(&r.stderr).contains("not a relocatable object"));
}
