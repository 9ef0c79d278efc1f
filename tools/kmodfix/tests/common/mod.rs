//! Helpers for the integration tests: build small ELF objects with GNU as /
//! ld (binutils is always installed where the kernel module is linked) and
//! inspect results with binutils, independently of kmodfix's own ELF reader.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};

use kmodfix::{Allowlist, AuditOptions, Options, RunResult};

/// A temporary directory removed on drop.
pub struct TempDir(PathBuf);

impl TempDir {
    pub fn new(tag: &str) -> Self {
        static N: AtomicUsize = AtomicUsize::new(0);
        let dir = std::env::temp_dir().join(format!(
            "kmodfix-test-{}-{}-{tag}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("create temp dir");
        TempDir(dir)
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn run_tool(cmd: &mut Command) -> String {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Assembles `src` with `as --64` into `dir/name.o`.
pub fn assemble(dir: &TempDir, name: &str, src: &str) -> PathBuf {
    let s = dir.path(&format!("{name}.s"));
    let o = dir.path(&format!("{name}.o"));
    std::fs::write(&s, src).expect("write .s");
    run_tool(Command::new("as").arg("--64").arg("-o").arg(&o).arg(&s));
    o
}

/// `ld -r -o out inputs...`, like the Makefile's final link.
pub fn ld_r(dir: &TempDir, name: &str, inputs: &[&Path]) -> PathBuf {
    let o = dir.path(name);
    run_tool(Command::new("ld").arg("-r").arg("-o").arg(&o).args(inputs));
    o
}

/// The module entry points and a modlinkage, with the given code appended to
/// `.text` (inside `_init`'s section, after the three entry points).
///
/// Relocations of the skeleton: 6 PLT32 (mod_install, mod_remove, mod_info
/// and 3 probe calls), 2 PC32 (two `leaq modlinkage(%rip)`), 1 32S
/// (`movq $modlinkage`), 2 R_X86_64_64 (the two pointers in .data).
/// Undefined: mod_install, mod_remove, mod_info, mod_driverops and the probes
/// __dtrace_probe_kvm__init and __dtrace_probe_kvm__fini.
pub const SKELETON: &str = r#"
	.text
	.globl	_init
	.type	_init, @function
_init:
	.cfi_startproc
	pushq	%rbp
	movq	%rsp, %rbp
	leaq	modlinkage(%rip), %rdi
	call	mod_install
	movq	%rax, %rdi
	call	__dtrace_probe_kvm__init
	nop
	popq	%rbp
	ret
	.cfi_endproc
	.size	_init, .-_init

	.globl	_fini
	.type	_fini, @function
_fini:
	leaq	modlinkage(%rip), %rdi
	call	mod_remove
	testl	%eax, %eax
	jne	1f
	call	__dtrace_probe_kvm__fini
	nop
1:	ret
	.size	_fini, .-_fini

	.globl	_info
	.type	_info, @function
_info:
	movq	%rdi, %rsi
	movq	$modlinkage, %rdi
	call	mod_info
	call	__dtrace_probe_kvm__init
	nop
	ret
	.size	_info, .-_info

	.data
	.align	8
modlinkage:
	.quad	1
	.quad	modldrv
	.quad	0
modldrv:
	.quad	mod_driverops
	.quad	0
"#;

/// SKELETON plus `extra` (assembled after it).
pub fn module(extra: &str) -> String {
    format!("{SKELETON}\n{extra}\n")
}

/// The allow-list the tests use: the skeleton's imports plus a few.
pub fn test_allowlist() -> Allowlist {
    [
        "mod_install",
        "mod_remove",
        "mod_info",
        "mod_driverops",
        "memcpy",
        "kas",
        "panic",
        "cmn_err",
    ]
    .into_iter()
    .collect()
}

/// Runs the library pipeline IN -> OUT (OUT = dir/kvm).
pub fn fix(dir: &TempDir, input: &Path, max_panic_calls: Option<usize>) -> (RunResult, PathBuf) {
    fix_with_frame(dir, input, max_panic_calls, None)
}

/// `fix` with a `--max-frame` budget.
pub fn fix_with_frame(
    dir: &TempDir,
    input: &Path,
    max_panic_calls: Option<usize>,
    max_frame: Option<u64>,
) -> (RunResult, PathBuf) {
    let output = dir.path("kvm");
    let opts = Options {
        input: input.to_path_buf(),
        output: output.clone(),
        audit: AuditOptions {
            allowlist: test_allowlist(),
            max_panic_calls,
            max_frame,
        },
        objcopy: "objcopy".into(),
    };
    let r = kmodfix::run(&opts).expect("kmodfix::run");
    (r, output)
}

/// Assembles `src`, runs the pipeline, returns the result and OUT's path.
pub fn fix_src(
    name: &str,
    src: &str,
    max_panic_calls: Option<usize>,
) -> (TempDir, RunResult, PathBuf) {
    let dir = TempDir::new(name);
    let o = assemble(&dir, name, src);
    let (r, out) = fix(&dir, &o, max_panic_calls);
    (dir, r, out)
}

/// A relocation as `readelf -rW` prints it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReadelfReloc {
    pub section: String,
    pub offset: u64,
    pub r_type: String,
    pub symbol: String,
    pub addend: i64,
}

/// All relocations of an object, parsed from `readelf -rW`.
pub fn readelf_relocs(path: &Path) -> Vec<ReadelfReloc> {
    let text = run_tool(Command::new("readelf").arg("-rW").arg(path));
    let mut section = String::new();
    let mut out = Vec::new();
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("Relocation section '") {
            section = rest.split('\'').next().unwrap_or("").to_string();
            continue;
        }
        let f: Vec<&str> = line.split_whitespace().collect();
        if f.len() < 7 || !f[2].starts_with("R_X86_64_") {
            continue;
        }
        let Ok(offset) = u64::from_str_radix(f[0], 16) else {
            continue;
        };
        let mag = i64::from_str_radix(f[6], 16).expect("addend");
        out.push(ReadelfReloc {
            section: section.clone(),
            offset,
            r_type: f[2].to_string(),
            symbol: f[4].to_string(),
            addend: if f[5] == "-" { -mag } else { mag },
        });
    }
    out
}

/// Section names of an object (`readelf -SW`).
pub fn section_names(path: &Path) -> Vec<String> {
    let text = run_tool(Command::new("readelf").arg("-SW").arg(path));
    text.lines()
        .filter_map(|l| {
            let l = l.trim_start();
            let rest = l.strip_prefix('[')?;
            let (_, rest) = rest.split_once(']')?;
            rest.split_whitespace().next().map(str::to_string)
        })
        .filter(|n| n.starts_with('.'))
        .collect()
}

/// The raw bytes of one section (`objcopy -O binary -j SECTION`).
pub fn section_bytes(dir: &TempDir, path: &Path, section: &str) -> Vec<u8> {
    let bin = dir.path("section.bin");
    run_tool(
        Command::new("objcopy")
            .arg("-O")
            .arg("binary")
            .arg("-j")
            .arg(section)
            .arg(path)
            .arg(&bin),
    );
    std::fs::read(&bin).expect("read section")
}

/// Sum of the sizes of the SHF_EXECINSTR sections (`readelf -SW`).
pub fn exec_bytes(path: &Path) -> u64 {
    let text = run_tool(Command::new("readelf").arg("-SW").arg(path));
    let mut total = 0;
    for l in text.lines() {
        let Some((_, rest)) = l.split_once(']') else {
            continue;
        };
        let f: Vec<&str> = rest.split_whitespace().collect();
        // Name Type Address Off Size ES Flg ...
        if f.len() >= 7 && f[6].contains('X') {
            total += u64::from_str_radix(f[4], 16).expect("size");
        }
    }
    total
}

/// The messages of the violations of one kind.
pub fn messages(r: &RunResult, kind: kmodfix::ViolationKind) -> Vec<String> {
    r.audit
        .violations
        .iter()
        .filter(|v| v.kind == kind)
        .map(|v| v.message.clone())
        .collect()
}

/// Asserts the run failed, with at least one violation of `kind`, that
/// every violation is of `kind`, and that OUT was not written.
pub fn assert_fails_only_with(r: &RunResult, out: &Path, kind: kmodfix::ViolationKind) {
    assert!(!r.passed(), "expected a {kind:?} violation, audit passed");
    assert!(
        !r.written && !out.exists(),
        "OUT written despite violations"
    );
    for v in &r.audit.violations {
        assert_eq!(v.kind, kind, "unexpected violation: {}", v.message);
    }
}
