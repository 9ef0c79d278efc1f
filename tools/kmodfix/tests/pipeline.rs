//! End-to-end tests of the kmodfix pipeline on objects assembled with GNU as.
//! Each planted defect has its own test; the clean skeleton must pass with
//! exactly the counts its source implies.

mod common;

use std::process::Command;

use common::*;
use kmodfix::ViolationKind;

#[test]
fn clean_object_passes_with_exact_counts() {
    let (dir, r, out) = fix_src("clean", &module(""), None);
    assert!(r.passed(), "{:#?}", r.audit.violations);
    assert!(r.written && out.exists());
    let input = dir.path("clean.o");
    let s = &r.audit.stats;
    assert_eq!(s.text_bytes, exec_bytes(&input));
    assert!(s.text_bytes > 0);
    assert_eq!(
        r.summary("build/kvm"),
        format!(
            "kmodfix: build/kvm OK: text={} bytes, relocs=11 (64=2 pc32=2 plt32=6 32s=1), relaxed-gotpcrel=0, undefined=6, sdt-probes=2 (sites=3, all calls), panic-call-sites=0, max-frame={} (_init)",
            s.text_bytes, s.max_frame
        )
    );
    // OUT is the stripped object: no .eh_frame (from .cfi_startproc) left,
    // and the code is byte for byte the input's.
    assert!(section_names(&input).contains(&".eh_frame".to_string()));
    let names = section_names(&out);
    assert!(!names.iter().any(|n| n.contains("eh_frame")), "{names:?}");
    assert_eq!(
        section_bytes(&dir, &input, ".text"),
        section_bytes(&dir, &out, ".text")
    );
    let bytes = std::fs::read(&out).unwrap();
    assert_eq!(
        kmodfix::list_probes(&bytes).unwrap(),
        ["kvm-fini", "kvm-init"]
    );
}

#[test]
fn unwind_bitcode_and_comment_sections_are_stripped() {
    let src = module(
        r#"
	.section .llvmbc,"e"
	.byte 0x42, 0x43
	.section .llvmcmd,"e"
	.asciz "-O2"
	.ident "rustc version 1.95.0"
"#,
    );
    let dir = TempDir::new("strip");
    let input = assemble(&dir, "strip", &src);
    let before = section_names(&input);
    for s in [
        ".eh_frame",
        ".rela.eh_frame",
        ".llvmbc",
        ".llvmcmd",
        ".comment",
    ] {
        assert!(before.contains(&s.to_string()), "{s} missing from input");
    }
    // The audit alone (no strip) catches every one of them.
    let bytes = std::fs::read(&input).unwrap();
    let opts = kmodfix::AuditOptions {
        allowlist: test_allowlist(),
        max_panic_calls: None,
        max_frame: None,
    };
    let a = kmodfix::audit(&bytes, &opts).unwrap();
    let unstripped: Vec<_> = a
        .violations
        .iter()
        .filter(|v| v.kind == ViolationKind::Unstripped)
        .map(|v| v.message.clone())
        .collect();
    assert_eq!(unstripped.len(), 5, "{unstripped:#?}");
    // The pipeline strips them and passes.
    let (r, out) = fix(&dir, &input, None);
    assert!(r.passed(), "{:#?}", r.audit.violations);
    let after = section_names(&out);
    for s in [
        ".eh_frame",
        ".rela.eh_frame",
        ".llvmbc",
        ".llvmcmd",
        ".comment",
    ] {
        assert!(!after.contains(&s.to_string()), "{s} still in output");
    }
    assert!(after.contains(&".text".to_string()));
}

/// Finds the single relocation against `sym` in .rela.text.
fn reloc_against(path: &std::path::Path, sym: &str) -> ReadelfReloc {
    let all: Vec<_> = readelf_relocs(path)
        .into_iter()
        .filter(|r| r.section == ".rela.text" && r.symbol == sym)
        .collect();
    assert_eq!(all.len(), 1, "{all:#?}");
    all[0].clone()
}

#[test]
fn gotpcrel_call_is_relaxed_to_addr32_call() {
    let src = module(
        r#"
	.text
	.globl	f
	.type	f, @function
f:
	call	*memcpy@GOTPCREL(%rip)
	ret
	.size	f, .-f
"#,
    );
    let (dir, r, out) = fix_src("gotcall", &src, None);
    assert!(r.passed(), "{:#?}", r.audit.violations);
    assert_eq!(r.relaxed.calls, 1);
    let input = dir.path("gotcall.o");
    let before = reloc_against(&input, "memcpy");
    assert_eq!(before.r_type, "R_X86_64_GOTPCRELX");
    let after = reloc_against(&out, "memcpy");
    assert_eq!(after.r_type, "R_X86_64_PC32");
    assert_eq!(after.offset, before.offset);
    assert_eq!(after.addend, -4);
    let o = after.offset as usize;
    assert_eq!(section_bytes(&dir, &input, ".text")[o - 2..o], [0xff, 0x15]);
    let text = section_bytes(&dir, &out, ".text");
    assert_eq!(text[o - 2..o + 4], [0x67, 0xe8, 0, 0, 0, 0]);
    // gas declared _GLOBAL_OFFSET_TABLE_; nothing uses it any more, and the
    // kernel does not export it, so it is gone.
    assert!(r.summary("k").contains("relaxed-gotpcrel=1,"));
    assert!(
        r.summary("k").contains("undefined=7,"),
        "{}",
        r.summary("k")
    );
    let nm = Command::new("nm").arg(&out).output().unwrap();
    assert!(!String::from_utf8_lossy(&nm.stdout).contains("_GLOBAL_OFFSET_TABLE_"));
}

#[test]
fn gotpcrel_jmp_is_relaxed_to_jmp_rel32_nop_with_offset_moved() {
    let src = module(
        r#"
	.text
	.globl	g
	.type	g, @function
g:
	jmp	*memcpy@GOTPCREL(%rip)
	int3
	.size	g, .-g
"#,
    );
    let (dir, r, out) = fix_src("gotjmp", &src, None);
    assert!(r.passed(), "{:#?}", r.audit.violations);
    assert_eq!(r.relaxed.jmps, 1);
    let before = reloc_against(&dir.path("gotjmp.o"), "memcpy");
    let after = reloc_against(&out, "memcpy");
    assert_eq!(after.r_type, "R_X86_64_PC32");
    assert_eq!(after.offset, before.offset - 1);
    assert_eq!(after.addend, before.addend);
    let o = before.offset as usize;
    let text = section_bytes(&dir, &out, ".text");
    assert_eq!(text[o - 2..o + 5], [0xe9, 0, 0, 0, 0, 0x90, 0xcc]);
}

#[test]
fn gotpcrel_rex_w_mov_is_relaxed_to_lea() {
    let src = module(
        r#"
	.text
	.globl	h
	.type	h, @function
h:
	movq	kas@GOTPCREL(%rip), %rax
	movq	memcpy@GOTPCREL(%rip), %r9
	ret
	.size	h, .-h
"#,
    );
    let (dir, r, out) = fix_src("gotmov", &src, None);
    assert!(r.passed(), "{:#?}", r.audit.violations);
    assert_eq!(r.relaxed.movs, 2);
    let text = section_bytes(&dir, &out, ".text");
    let kas = reloc_against(&out, "kas");
    assert_eq!(kas.r_type, "R_X86_64_PC32");
    let o = kas.offset as usize;
    assert_eq!(text[o - 3..o], [0x48, 0x8d, 0x05]);
    let mc = reloc_against(&out, "memcpy");
    assert_eq!(mc.r_type, "R_X86_64_PC32");
    let o = mc.offset as usize;
    assert_eq!(text[o - 3..o], [0x4c, 0x8d, 0x0d]);
    assert_eq!(
        reloc_against(&dir.path("gotmov.o"), "kas").r_type,
        "R_X86_64_REX_GOTPCRELX"
    );
}

#[test]
fn plain_r_x86_64_gotpcrel_is_relaxed_too() {
    // Old-style R_X86_64_GOTPCREL (9), as LLVM emits without relax-relocations.
    let src = module(
        r#"
	.text
	.globl	k
	.type	k, @function
k:
	.byte	0xff, 0x15
	.reloc	., R_X86_64_GOTPCREL, memcpy-4
	.long	0
	ret
	.size	k, .-k
"#,
    );
    let (dir, r, out) = fix_src("got9", &src, None);
    assert!(r.passed(), "{:#?}", r.audit.violations);
    assert_eq!(
        reloc_against(&dir.path("got9.o"), "memcpy").r_type,
        "R_X86_64_GOTPCREL"
    );
    let after = reloc_against(&out, "memcpy");
    assert_eq!(after.r_type, "R_X86_64_PC32");
    let o = after.offset as usize;
    assert_eq!(section_bytes(&dir, &out, ".text")[o - 2..o], [0x67, 0xe8]);
}

#[test]
fn relaxed_sites_link_to_the_right_targets() {
    // Link the relaxed object into an executable with definitions of the
    // imports and check, with objdump, where each rewritten site points.
    let src = module(
        r#"
	.text
	.globl	f
	.type	f, @function
f:
	call	*memcpy@GOTPCREL(%rip)
	movq	kas@GOTPCREL(%rip), %rax
	jmp	*memcpy@GOTPCREL(%rip)
	.size	f, .-f
"#,
    );
    let (dir, r, out) = fix_src("link", &src, None);
    assert!(r.passed(), "{:#?}", r.audit.violations);
    let defs = assemble(
        &dir,
        "defs",
        r#"
	.text
	.globl memcpy, mod_install, mod_remove, mod_info
	.globl __dtrace_probe_kvm__init, __dtrace_probe_kvm__fini
memcpy:	ret
mod_install: ret
mod_remove: ret
mod_info: ret
__dtrace_probe_kvm__init: ret
__dtrace_probe_kvm__fini: ret
	.data
	.globl kas, mod_driverops
kas:	.quad 0
mod_driverops: .quad 0
"#,
    );
    let exe = dir.path("exe");
    let st = Command::new("ld")
        .args(["-e", "_init", "-o"])
        .arg(&exe)
        .arg(&out)
        .arg(&defs)
        .status()
        .unwrap();
    assert!(st.success());
    let dis = Command::new("objdump")
        .args(["-d", "--no-show-raw-insn"])
        .arg(&exe)
        .output()
        .unwrap();
    let dis = String::from_utf8_lossy(&dis.stdout);
    let f: Vec<&str> = dis
        .lines()
        .skip_while(|l| !l.ends_with("<f>:"))
        .skip(1)
        .take(4)
        .collect();
    assert!(
        f[0].contains("addr32 call") && f[0].ends_with("<memcpy>"),
        "{f:#?}"
    );
    assert!(f[1].contains("lea") && f[1].ends_with("<kas>"), "{f:#?}");
    assert!(f[2].contains("jmp") && f[2].ends_with("<memcpy>"), "{f:#?}");
    assert!(f[3].contains("nop"), "{f:#?}");
}

#[test]
fn unrelaxable_gotpcrel_uses_fail() {
    let src = module(
        r#"
	.text
	.globl	bad
	.type	bad, @function
bad:
	addq	kas@GOTPCREL(%rip), %rax
	movl	kas@GOTPCREL(%rip), %eax
	ret
	.size	bad, .-bad
"#,
    );
    let (_dir, r, out) = fix_src("gotbad", &src, None);
    assert_fails_only_with(&r, &out, ViolationKind::Gotpcrel);
    let m = messages(&r, ViolationKind::Gotpcrel);
    assert_eq!(m.len(), 2, "{m:#?}");
    assert!(m[0].contains(".text+0x") && m[0].contains("`bad`") && m[0].contains("`kas`"));
    assert!(
        m[0].contains("R_X86_64_REX_GOTPCRELX") && m[0].contains("48 03 05"),
        "{}",
        m[0]
    );
    assert!(
        m[1].contains("R_X86_64_GOTPCRELX") && m[1].contains("without REX.W"),
        "{}",
        m[1]
    );
    assert!(
        r.summary("k")
            .starts_with("kmodfix: k FAIL: violations=2, ")
    );
}

#[test]
fn sse_instructions_fail() {
    let src = module(
        r#"
	.text
	.globl	vec
	.type	vec, @function
vec:
	movaps	%xmm0, %xmm1
	pxor	%xmm2, %xmm2
	ret
	.size	vec, .-vec
"#,
    );
    let (_dir, r, out) = fix_src("sse", &src, None);
    assert_fails_only_with(&r, &out, ViolationKind::Simd);
    let m = messages(&r, ViolationKind::Simd);
    assert_eq!(m.len(), 2, "{m:#?}");
    assert!(
        m[0].contains("(`vec`)") && m[0].contains("movaps xmm1,xmm0"),
        "{}",
        m[0]
    );
    assert!(
        m[1].contains("(`vec`+0x3)") && m[1].contains("pxor xmm2,xmm2"),
        "{}",
        m[1]
    );
}

#[test]
fn x87_instruction_fails() {
    let src = module(
        r#"
	.section .text.fp,"ax",@progbits
	.globl	fp
	.type	fp, @function
fp:
	fld1
	ret
	.size	fp, .-fp
"#,
    );
    let (_dir, r, out) = fix_src("x87", &src, None);
    assert_fails_only_with(&r, &out, ViolationKind::Simd);
    let m = messages(&r, ViolationKind::Simd);
    assert_eq!(m.len(), 1);
    assert!(
        m[0].starts_with(".text.fp+0x0 (`fp`)") && m[0].contains("fld1"),
        "{}",
        m[0]
    );
    assert!(m[0].contains("FPU"), "{}", m[0]);
}

#[test]
fn simd_outside_sized_functions_is_found_too() {
    // Hand-written asm without .type/.size: the gap sweep covers it.
    let src = module(
        r#"
	.text
stub:
	nop
	fxsave	(%rdi)
	ret
"#,
    );
    let (_dir, r, out) = fix_src("gap", &src, None);
    assert_fails_only_with(&r, &out, ViolationKind::Simd);
    let m = messages(&r, ViolationKind::Simd);
    assert_eq!(m.len(), 1);
    assert!(
        m[0].contains("(`stub`+0x1)") && m[0].contains("fxsave"),
        "{}",
        m[0]
    );
}

#[test]
fn many_simd_instructions_are_capped_but_counted() {
    let body = "\tpxor %xmm0, %xmm0\n".repeat(25);
    let src = module(&format!(
        "\t.text\n\t.globl v\n\t.type v, @function\nv:\n{body}\tret\n\t.size v, .-v\n"
    ));
    let (_dir, r, out) = fix_src("many", &src, None);
    assert_fails_only_with(&r, &out, ViolationKind::Simd);
    let m = messages(&r, ViolationKind::Simd);
    assert_eq!(m.len(), kmodfix::audit::MAX_SIMD_REPORTED + 1);
    assert!(m.last().unwrap().contains("15 more") && m.last().unwrap().contains("25 in total"));
}

#[test]
fn unknown_undefined_symbol_fails() {
    let src = module(
        r#"
	.text
	.globl	u
	.type	u, @function
u:
	call	__udivti3
	call	cmn_err
	ret
	.size	u, .-u
"#,
    );
    let (_dir, r, out) = fix_src("undef", &src, None);
    assert_fails_only_with(&r, &out, ViolationKind::UndefinedSymbol);
    let m = messages(&r, ViolationKind::UndefinedSymbol);
    assert_eq!(m.len(), 1, "{m:#?}");
    assert!(m[0].contains("`__udivti3`"));
    assert_eq!(r.audit.stats.undefined, 8);
}

#[test]
fn tls_section_fails() {
    let src = module(
        r#"
	.section .tbss,"awT",@nobits
	.globl	tls_var
	.type	tls_var, @object
tls_var:
	.zero	8
	.size	tls_var, 8
"#,
    );
    let (_dir, r, out) = fix_src("tls", &src, None);
    assert_fails_only_with(&r, &out, ViolationKind::Tls);
    let m = messages(&r, ViolationKind::Tls);
    // the section and the STT_TLS symbol
    assert_eq!(m.len(), 2, "{m:#?}");
    assert!(m.iter().any(|m| m.contains(".tbss")));
    assert!(m.iter().any(|m| m.contains("`tls_var`")));
}

#[test]
fn init_array_section_fails() {
    let src = module(
        r#"
	.section .init_array,"aw",@init_array
	.align	8
	.quad	_init
"#,
    );
    let (_dir, r, out) = fix_src("ctor", &src, None);
    assert_fails_only_with(&r, &out, ViolationKind::Constructors);
    let m = messages(&r, ViolationKind::Constructors);
    assert_eq!(m.len(), 1, "{m:#?}");
    assert!(m[0].contains(".init_array"));
}

#[test]
fn tail_called_probe_fails() {
    let src = module(
        r#"
	.text
	.globl	vrun
	.type	vrun, @function
vrun:
	jmp	__dtrace_probe_kvm__foo
	.size	vrun, .-vrun
"#,
    );
    let (_dir, r, out) = fix_src("tail", &src, None);
    assert_fails_only_with(&r, &out, ViolationKind::ProbeSite);
    let m = messages(&r, ViolationKind::ProbeSite);
    assert_eq!(m.len(), 1, "{m:#?}");
    assert!(
        m[0].contains("tail call") && m[0].contains("(`vrun`)"),
        "{}",
        m[0]
    );
    assert!(m[0].contains("__dtrace_probe_kvm__foo"));
    assert!(
        r.summary("k")
            .contains("sdt-probes=3 (sites=4, 1 not direct calls)"),
        "{}",
        r.summary("k")
    );
}

/// A probe call left in a Rust function (inlined wrapper, or a call not
/// routed through kstat/src/sdt.rs): DTrace would name the probe's function
/// after the mangled symbol, with its per-build hash. Both manglings.
#[test]
fn probe_site_in_a_mangled_function_fails() {
    for (tag, func) in [
        ("v0", "_RNvMs_NtCs4fqI2P2rA04_3kvm2vmNtB4_7RunCtx5probe"),
        ("legacy", "_ZN3kvm2vm3vmx3env5probe17h0123456789abcdefE"),
    ] {
        let src = module(&format!(
            r#"
	.text
	.type	{func}, @function
{func}:
	pushq	%rbp
	movq	%rsp, %rbp
	call	__dtrace_probe_kvm__vexit
	nop
	popq	%rbp
	ret
	.size	{func}, .-{func}
"#
        ));
        let (_dir, r, out) = fix_src(&format!("mangled-{tag}"), &src, None);
        assert_fails_only_with(&r, &out, ViolationKind::ProbeFunction);
        let m = messages(&r, ViolationKind::ProbeFunction);
        assert_eq!(m.len(), 1, "{m:#?}");
        assert!(
            m[0].contains(func) && m[0].contains("__dtrace_probe_kvm__vexit"),
            "{}",
            m[0]
        );
        // The site itself is a proper call: only the function is wrong.
        assert!(!r.audit.has(ViolationKind::ProbeSite));
    }
}

/// The same call in a wrapper with a stable C name passes, and the site is
/// attributed to it (the function DTrace will show); sites outside any
/// sized function (the skeleton's are in `_init`/`_fini`/`_info`) are
/// attributed to those.
#[test]
fn probe_site_in_a_named_wrapper_passes_and_is_attributed() {
    let src = module(
        r#"
	.text
	.globl	vmx_handle_exit
	.type	vmx_handle_exit, @function
vmx_handle_exit:
	pushq	%rbp
	movq	%rsp, %rbp
	call	__dtrace_probe_kvm__vexit
	nop
	popq	%rbp
	ret
	.size	vmx_handle_exit, .-vmx_handle_exit
	.type	_RNvCs0_3kvm6helper, @function
_RNvCs0_3kvm6helper:
	call	vmx_handle_exit
	ret
	.size	_RNvCs0_3kvm6helper, .-_RNvCs0_3kvm6helper
"#,
    );
    let (_dir, r, out) = fix_src("wrapper", &src, None);
    assert!(r.audit.passed(), "{:#?}", r.audit.violations);
    assert!(out.exists());
    let mut sites: Vec<(Option<&str>, &str)> = r
        .audit
        .probe_sites
        .iter()
        .map(|s| (s.function.as_deref(), s.symbol.as_str()))
        .collect();
    sites.sort();
    assert_eq!(
        sites,
        [
            (Some("_fini"), "__dtrace_probe_kvm__fini"),
            (Some("_info"), "__dtrace_probe_kvm__init"),
            (Some("_init"), "__dtrace_probe_kvm__init"),
            (Some("vmx_handle_exit"), "__dtrace_probe_kvm__vexit"),
        ]
    );
}

/// An exported probe wrapper nothing calls (kvm_sync_page: the shadow MMU
/// probe the port never fires) is dropped by `ld -r --gc-sections`, but ld
/// keeps its undefined probe symbol. No relocation, so no probe: the
/// pipeline strips the symbol, and neither `--list-probes` nor the
/// `undefined` count sees it. Placed probes keep theirs.
#[test]
fn probe_symbols_of_collected_functions_are_stripped() {
    let dir = TempDir::new("gcprobe");
    let o = assemble(
        &dir,
        "gcprobe",
        &module(
            r#"
	.section .text.kvm_sync_page,"ax",@progbits
	.globl	kvm_sync_page
	.type	kvm_sync_page, @function
kvm_sync_page:
	call	__dtrace_probe_kvm__mmu__sync__page
	nop
	ret
	.size	kvm_sync_page, .-kvm_sync_page
"#,
        ),
    );
    let linked = dir.path("linked.o");
    let st = Command::new("ld")
        .args([
            "-r",
            "--gc-sections",
            "-u",
            "_init",
            "-u",
            "_fini",
            "-u",
            "_info",
            "-o",
        ])
        .arg(&linked)
        .arg(&o)
        .status()
        .unwrap();
    assert!(st.success());
    let nm = |p: &std::path::Path| {
        String::from_utf8(Command::new("nm").arg(p).output().unwrap().stdout).unwrap()
    };
    // The premise: ld dropped the function and kept the bare symbol.
    let before = nm(&linked);
    assert!(!before.contains("kvm_sync_page\n"), "{before}");
    assert!(
        before.contains("U __dtrace_probe_kvm__mmu__sync__page"),
        "{before}"
    );
    let (r, out) = fix(&dir, &linked, None);
    assert!(r.audit.passed(), "{:#?}", r.audit.violations);
    let after = nm(&out);
    assert!(
        !after.contains("__dtrace_probe_kvm__mmu__sync__page"),
        "{after}"
    );
    assert!(after.contains("U __dtrace_probe_kvm__init"), "{after}");
    let bytes = std::fs::read(&out).unwrap();
    assert_eq!(
        kmodfix::list_probes(&bytes).unwrap(),
        ["kvm-fini", "kvm-init"]
    );
    // mod_install, mod_remove, mod_info, mod_driverops and the two probes.
    assert!(
        r.summary("k").contains("undefined=6,")
            && r.summary("k").contains("sdt-probes=2 (sites=3,"),
        "{}",
        r.summary("k")
    );
}

#[test]
fn probe_referenced_as_data_fails() {
    let src = module(
        r#"
	.data
	.quad	__dtrace_probe_kvm__ptr
"#,
    );
    let (_dir, r, out) = fix_src("probedata", &src, None);
    assert_fails_only_with(&r, &out, ViolationKind::ProbeSite);
    assert!(messages(&r, ViolationKind::ProbeSite)[0].contains("R_X86_64_64"));
}

#[test]
fn missing_info_fails() {
    let src = SKELETON.replace("\t.globl\t_info\n", "");
    let (_dir, r, out) = fix_src("noinfo", &src, None);
    assert_fails_only_with(&r, &out, ViolationKind::MissingEntryPoint);
    let m = messages(&r, ViolationKind::MissingEntryPoint);
    assert_eq!(m.len(), 1, "{m:#?}");
    assert!(
        m[0].contains("`_info`") && m[0].contains("local"),
        "{}",
        m[0]
    );

    let src = SKELETON
        .replace("\t_info", "\tinfo2")
        .replace(".-_info", ".-info2")
        .replace("\n_info:", "\ninfo2:");
    assert!(src.contains("call\tmod_info") && !src.contains("\t_info"));
    let (_dir, r, out) = fix_src("noinfo2", &src, None);
    assert_fails_only_with(&r, &out, ViolationKind::MissingEntryPoint);
}

#[test]
fn r_x86_64_32_in_text_fails() {
    let src = module(
        r#"
	.text
	.globl	abs32
	.type	abs32, @function
abs32:
	movl	$kas, %eax
	ret
	.size	abs32, .-abs32
"#,
    );
    let (_dir, r, out) = fix_src("r32", &src, None);
    assert_fails_only_with(&r, &out, ViolationKind::RelocType);
    let m = messages(&r, ViolationKind::RelocType);
    assert_eq!(m.len(), 1, "{m:#?}");
    assert!(m[0].contains("R_X86_64_32 ") && m[0].contains("`kas`") && m[0].contains("`abs32`"));
    assert!(r.summary("k").contains("other=1)"), "{}", r.summary("k"));
}

#[test]
fn relocations_in_debug_sections_are_ignored() {
    let src = module(
        r#"
	.section .debug_info,"",@progbits
	.long	kas
	.quad	_init
"#,
    );
    let (_dir, r, _out) = fix_src("debug", &src, None);
    assert!(r.passed(), "{:#?}", r.audit.violations);
    // Not counted either: the skeleton's 11 only.
    assert_eq!(r.audit.stats.reloc_total(), 11);
}

#[test]
fn sht_rel_section_fails() {
    // gas cannot emit SHT_REL for x86-64: retype an empty section by hand.
    let dir = TempDir::new("rel");
    let o = assemble(
        &dir,
        "rel",
        &module("\t.section .rel.fake,\"\",@progbits\n"),
    );
    let mut bytes = std::fs::read(&o).unwrap();
    let elf = kmodfix::elf::Elf::parse(&bytes).unwrap();
    let idx = elf
        .sections
        .iter()
        .position(|s| s.name == ".rel.fake")
        .unwrap();
    let shoff = u64::from_le_bytes(bytes[40..48].try_into().unwrap()) as usize;
    let at = shoff + idx * 64 + 4;
    bytes[at..at + 4].copy_from_slice(&kmodfix::elf::SHT_REL.to_le_bytes());
    let opts = kmodfix::AuditOptions {
        allowlist: test_allowlist(),
        max_panic_calls: None,
        max_frame: None,
    };
    let a = kmodfix::audit(&bytes, &opts).unwrap();
    let kinds: Vec<_> = a.violations.iter().map(|v| v.kind).collect();
    assert!(
        kinds.contains(&ViolationKind::RelocSection),
        "{:#?}",
        a.violations
    );
}

const PANICKY: &str = r#"
	.text
	.globl	p
	.type	p, @function
p:
	call	panic
	call	panic
	call	_ZN4core9panicking9panic_fmt17h0123456789abcdefE
	call	cmn_err
	ret
	.size	p, .-p

	.section .text._ZN4core9panicking9panic_fmt17h0123456789abcdefE,"ax",@progbits
	.type	_ZN4core9panicking9panic_fmt17h0123456789abcdefE, @function
_ZN4core9panicking9panic_fmt17h0123456789abcdefE:
	ud2
	.size	_ZN4core9panicking9panic_fmt17h0123456789abcdefE, .-_ZN4core9panicking9panic_fmt17h0123456789abcdefE
"#;

#[test]
fn panic_call_sites_are_counted_and_ratcheted() {
    let src = module(PANICKY);
    let dir = TempDir::new("panic");
    let o = assemble(&dir, "panic", &src);
    // The local panic_fmt is reached through the section symbol + addend.
    assert!(
        readelf_relocs(&o)
            .iter()
            .any(|r| r.symbol.starts_with(".text._ZN4core9panicking"))
    );
    let (r, out) = fix(&dir, &o, None);
    assert!(r.passed(), "{:#?}", r.audit.violations);
    assert_eq!(r.audit.stats.panic_call_sites, 3);
    assert!(r.summary("k").contains(", panic-call-sites=3, max-frame="));
    std::fs::remove_file(&out).unwrap();

    let (r, _) = fix(&dir, &o, Some(3));
    assert!(r.passed(), "{:#?}", r.audit.violations);
    std::fs::remove_file(&out).unwrap();

    let (r, out) = fix(&dir, &o, Some(2));
    assert_fails_only_with(&r, &out, ViolationKind::PanicRatchet);
    assert!(messages(&r, ViolationKind::PanicRatchet)[0].contains("3 panic call sites"));
}

#[test]
fn all_violations_are_collected_in_one_run() {
    let src = SKELETON.replace("\t.globl\t_fini\n", "")
        + r#"
	.text
	.globl	many
	.type	many, @function
many:
	addq	kas@GOTPCREL(%rip), %rax
	movl	$kas, %eax
	pxor	%xmm0, %xmm0
	call	rust_eh_personality
	jmp	__dtrace_probe_kvm__x
	.size	many, .-many
	.section .ctors,"aw",@progbits
	.quad	many
	.section .tdata,"awT",@progbits
	.quad	1
"#;
    let (_dir, r, out) = fix_src("many_defects", &src, None);
    assert!(!r.passed() && !out.exists());
    let mut kinds: Vec<_> = r.audit.violations.iter().map(|v| v.kind).collect();
    kinds.sort();
    kinds.dedup();
    assert_eq!(
        kinds,
        [
            ViolationKind::RelocType,
            ViolationKind::Gotpcrel,
            ViolationKind::UndefinedSymbol,
            ViolationKind::Simd,
            ViolationKind::Tls,
            ViolationKind::Constructors,
            ViolationKind::MissingEntryPoint,
            ViolationKind::ProbeSite,
        ]
    );
}

#[test]
fn ld_r_output_of_several_objects_passes() {
    // The Makefile's shape: several objects combined with `ld -r`.
    let dir = TempDir::new("ldr");
    let a = assemble(&dir, "a", &module(""));
    let b = assemble(
        &dir,
        "b",
        r#"
	.section .text.helper,"ax",@progbits
	.globl	helper
	.type	helper, @function
helper:
	.cfi_startproc
	call	*memcpy@GOTPCREL(%rip)
	call	__dtrace_probe_kvm__helper
	nop
	ret
	.cfi_endproc
	.size	helper, .-helper
"#,
    );
    let kvm_o = ld_r(&dir, "kvm.o", &[&a, &b]);
    let (r, out) = fix(&dir, &kvm_o, None);
    assert!(r.passed(), "{:#?}", r.audit.violations);
    assert_eq!(r.relaxed.total(), 1);
    assert_eq!(r.audit.stats.probes, 3);
    let bytes = std::fs::read(&out).unwrap();
    assert_eq!(
        kmodfix::list_probes(&bytes).unwrap(),
        ["kvm-fini", "kvm-helper", "kvm-init"]
    );
}

#[test]
fn seeded_allowlist_is_well_formed() {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("allowlist.txt");
    let text = std::fs::read_to_string(&path).unwrap();
    assert!(text.starts_with("# "), "header comment missing");
    let symbols: Vec<&str> = text
        .lines()
        .filter_map(|l| l.split('#').next().unwrap().split_whitespace().next())
        .collect();
    let mut sorted = symbols.clone();
    sorted.sort_unstable();
    let dups: Vec<_> = sorted.windows(2).filter(|w| w[0] == w[1]).collect();
    assert!(dups.is_empty(), "duplicates: {dups:?}");
    let a = kmodfix::Allowlist::load(&path).unwrap();
    assert_eq!(a.len(), symbols.len());
    for s in [
        "memcpy",
        "memmove",
        "memset",
        "memcmp",
        "bcmp",
        "kmem_alloc",
        "kmem_zalloc",
        "kmem_free",
        "cmn_err",
        "panic",
        "mod_install",
        "mod_remove",
        "mod_info",
        "mod_driverops",
        "ddi_create_minor_node",
        "ddi_remove_minor_node",
        "ddi_soft_state_init",
        "ddi_soft_state_fini",
        "ddi_soft_state_zalloc",
        "ddi_soft_state_free",
        "ddi_get_soft_state",
        "ddi_prop_op",
        "nodev",
        "nulldev",
        "nochpoll",
        "ddi_devmap_segmap",
        "devmap_umem_setup",
        "id_space_create",
        "id_space_destroy",
        "id_alloc",
        "id_free",
        "getminor",
        "getmajor",
        "makedevice",
        "ddi_model_convert_from",
        "ddi_copyin",
        "ddi_copyout",
        "copyin",
        "copyout",
        "hma_register",
        "hma_unregister",
        "hma_vmx_vpid_alloc",
        "hma_vmx_vpid_free",
        "hma_fpu_alloc",
        "hma_fpu_free",
        "hma_fpu_init",
        "hma_fpu_start_guest",
        "hma_fpu_stop_guest",
        "hma_fpu_get_fxsave_state",
        "hma_fpu_set_fxsave_state",
        "ctxop_allocate",
        "ctxop_attach",
        "ctxop_detach",
        "ctxop_free",
        "smt_acquire",
        "smt_release",
        "smt_mark_as_vcpu",
        "kpreempt_disable",
        "kpreempt_enable",
        "gethrtime",
        "mutex_init",
        "mutex_enter",
        "mutex_exit",
        "mutex_destroy",
        "cv_init",
        "cv_destroy",
        "cv_wait",
        "cv_signal",
        "cv_broadcast",
        "ddi_umem_alloc",
        "ddi_umem_free",
        "kstat_create_zone",
        "kstat_install",
        "kstat_delete",
        "kstat_named_init",
        "kstat_named_setstr",
    ] {
        assert!(a.contains(s), "{s} missing from allowlist.txt");
    }
    for s in a.iter() {
        assert!(
            !s.starts_with("__dtrace_probe_"),
            "{s}: probes are allowed by prefix"
        );
        assert!(
            !s.starts_with("__x86_indirect_thunk_"),
            "{s}: retpoline thunk"
        );
        assert!(
            s.bytes().all(|c| c.is_ascii_alphanumeric() || c == b'_'),
            "{s}: not a C symbol"
        );
    }
    // 140 kernel symbols of the C driver + the port's additions.
    assert!(a.len() >= 140, "{}", a.len());
}

#[test]
fn probe_names_follow_the_sdt_provider() {
    assert_eq!(
        kmodfix::probe_name("__dtrace_probe_kvm__vm__entry").as_deref(),
        Some("kvm-vm-entry")
    );
    assert_eq!(
        kmodfix::probe_name("__dtrace_probe_kvm__xxx").as_deref(),
        Some("kvm-xxx")
    );
    assert_eq!(kmodfix::probe_name("__dtrace_probe_"), None);
    assert_eq!(kmodfix::probe_name("kvm__vrun"), None);
}

/// Functions with large stack frames: a plain `sub rsp, imm`, and LLVM's
/// inline stack-probe loop, which moves RSP a page at a time. The budget
/// counts the whole frame either way.
const FRAMES: &str = r#"
	.text
	.globl	small_frame
	.type	small_frame, @function
small_frame:
	pushq	%rbp
	movq	%rsp, %rbp
	subq	$0x100, %rsp
	call	memcpy
	leave
	ret
	.size	small_frame, .-small_frame

	.globl	big_frame
	.type	big_frame, @function
big_frame:
	pushq	%rbp
	movq	%rsp, %rbp
	subq	$0x1000, %rsp
	movq	$0, (%rsp)
	subq	$0xc8, %rsp
	call	memcpy
	leave
	ret
	.size	big_frame, .-big_frame

	.globl	probe_loop_frame
	.type	probe_loop_frame, @function
probe_loop_frame:
	pushq	%rbp
	movq	%rsp, %rbp
	movq	%rsp, %r11
	subq	$0x10000, %r11
1:	subq	$0x1000, %rsp
	movq	$0, (%rsp)
	cmpq	%r11, %rsp
	jne	1b
	subq	$0x80, %rsp
	call	memcpy
	leave
	ret
	.size	probe_loop_frame, .-probe_loop_frame
"#;

#[test]
fn frames_are_measured_from_the_prologue_including_probe_loops() {
    let dir = TempDir::new("frames");
    let o = assemble(&dir, "frames", &module(FRAMES));
    let (r, _) = fix_with_frame(&dir, &o, None, None);
    assert!(r.passed(), "{:#?}", r.audit.violations);
    // push rbp (8) + 0x10000 (probe loop target) + 0x80.
    assert_eq!(r.audit.stats.max_frame, 8 + 0x10000 + 0x80);
    assert_eq!(r.audit.stats.max_frame_fn, "probe_loop_frame");
}

#[test]
fn a_frame_over_the_budget_fails_and_names_the_function() {
    let dir = TempDir::new("frames-budget");
    let o = assemble(&dir, "frames", &module(FRAMES));
    // small_frame: 8 + 0x100 = 264; big_frame: 8 + 0x10c8 = 4304.
    let (r, out) = fix_with_frame(&dir, &o, None, Some(4096));
    let msgs = messages(&r, ViolationKind::FrameTooLarge);
    assert_eq!(msgs.len(), 2, "{msgs:?}");
    assert!(
        msgs.iter()
            .any(|m| m.contains("`big_frame` reserves 4304 bytes"))
    );
    assert!(msgs.iter().any(|m| m.contains("`probe_loop_frame`")));
    assert!(!r.written && !out.exists());
    let (r, _) = fix_with_frame(&dir, &o, None, Some(8 + 0x10080));
    assert!(r.passed(), "{:#?}", r.audit.violations);
}
