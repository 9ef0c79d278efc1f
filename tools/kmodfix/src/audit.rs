//! The audit of the final module object: everything krtld would mis-handle
//! silently, or that would only fail at `modload` time on illumos where we
//! cannot test (§5.4, §5.5). All violations are collected, not just the
//! first, so one build shows every problem.

use std::collections::{BTreeMap, BTreeSet};

use iced_x86::{
    Decoder, DecoderOptions, Formatter, Instruction, IntelFormatter, Mnemonic, OpKind, Register,
};

use crate::Error;
use crate::allowlist::Allowlist;
use crate::elf::{
    self, Elf, R_X86_64_32, R_X86_64_32S, R_X86_64_64, R_X86_64_PC32, R_X86_64_PLT32, SHF_TLS,
    SHT_FINI_ARRAY, SHT_INIT_ARRAY, SHT_NOBITS, SHT_PREINIT_ARRAY, SHT_REL, SHT_RELA,
    SHT_X86_64_UNWIND, STB_GLOBAL, STB_LOCAL, STB_WEAK, STT_FUNC, STT_SECTION, STT_TLS, Section,
    Symbol,
};
use crate::relax;

/// SDT probe stubs: krtld turns calls to undefined `__dtrace_probe_*` into
/// NOPs and records the site (`kobj_reloc.c` `sdt_reloc_resolve`, §1.7).
pub const PROBE_PREFIX: &str = "__dtrace_probe_";

/// Relocation types krtld computes correctly for a kernel-model module
/// (§5.4.1): 64, PC32, PLT32 (= PC32, there is no PLT) and 32S. R_X86_64_32
/// zero-extends and fails its overflow check for kernel addresses.
pub const ALLOWED_RELOCS: &[u32] = &[R_X86_64_64, R_X86_64_PC32, R_X86_64_PLT32, R_X86_64_32S];

/// Module entry points krtld/modctl look up by name (§1.3).
pub const ENTRY_POINTS: &[&str] = &["_init", "_fini", "_info"];

/// How many SIMD/FPU instructions are listed one by one.
pub const MAX_SIMD_REPORTED: usize = 10;

/// The sections that [`crate::strip`] must have removed.
pub const UNSTRIPPED: &[&str] = &[
    ".eh_frame",
    ".rela.eh_frame",
    ".llvmbc",
    ".llvmcmd",
    ".comment",
];

/// Section-name prefixes of TLS data and static constructors/destructors.
const TLS_PREFIXES: &[&str] = &[".tdata", ".tbss"];
const CTOR_PREFIXES: &[&str] = &[
    ".init_array",
    ".fini_array",
    ".preinit_array",
    ".ctors",
    ".dtors",
];

/// What kind of rule a violation breaks (so tests and tools can match on it).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum ViolationKind {
    /// An SHT_REL section, or a RELA section krtld would reject.
    RelocSection,
    /// A relocation type outside [`ALLOWED_RELOCS`] in an SHF_ALLOC section.
    RelocType,
    /// A GOTPCREL* relocation that could not be relaxed.
    Gotpcrel,
    /// An undefined symbol that is not allow-listed.
    UndefinedSymbol,
    /// SSE/AVX/MMX/x87 code.
    Simd,
    /// TLS sections or symbols.
    Tls,
    /// `.init_array`/`.ctors` and friends.
    Constructors,
    /// `_init`, `_fini` or `_info` is missing.
    MissingEntryPoint,
    /// A `__dtrace_probe_*` relocation that is not a direct call.
    ProbeSite,
    /// A probe site inside a function with a mangled Rust name (`_R…`,
    /// `_ZN…`): DTrace would show that per-build name as the probe's
    /// function.
    ProbeFunction,
    /// A section that must have been stripped is still there.
    Unstripped,
    /// More panic call sites than `--max-panic-calls`.
    PanicRatchet,
    /// A function whose prologue reserves more stack than `--max-frame`.
    FrameTooLarge,
    /// A relocation that points outside its section, and similar damage.
    Malformed,
}

/// One audit finding.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Violation {
    pub kind: ViolationKind,
    pub message: String,
}

/// Audit settings.
#[derive(Debug, Clone, Default)]
pub struct AuditOptions {
    pub allowlist: Allowlist,
    /// `--max-panic-calls N`: the ratchet (the count may only go down).
    pub max_panic_calls: Option<usize>,
    /// `--max-frame BYTES`: the largest stack frame one function may reserve
    /// (the amd64 kernel stack is 20 KiB, shared by the whole call chain).
    pub max_frame: Option<u64>,
}

/// Counts for the summary line.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Stats {
    /// Bytes of SHF_ALLOC|SHF_EXECINSTR sections.
    pub text_bytes: u64,
    /// Relocations applied to SHF_ALLOC sections, by type.
    pub relocs: BTreeMap<u32, usize>,
    /// Distinct undefined global/weak symbols (probes included, like `nm -u`).
    pub undefined: usize,
    /// Distinct `__dtrace_probe_*` symbols referenced.
    pub probes: usize,
    /// Relocations against `__dtrace_probe_*` symbols.
    pub probe_sites: usize,
    /// Of those, sites that are not a direct `call`.
    pub bad_probe_sites: usize,
    /// See [`is_panic_call`]: direct calls to functions whose name contains "panic".
    pub panic_call_sites: usize,
    /// The largest stack frame a function prologue reserves
    /// ([`prologue_frame`]), and that function's name.
    pub max_frame: u64,
    pub max_frame_fn: String,
}

impl Stats {
    pub fn reloc_total(&self) -> usize {
        self.relocs.values().sum()
    }

    pub fn reloc_count(&self, r_type: u32) -> usize {
        self.relocs.get(&r_type).copied().unwrap_or(0)
    }
}

/// One SDT probe site: the probe symbol called and the function around the
/// call, the one the sdt provider names as the probe's function (the
/// sized STT_FUNC symbol covering the site; `None` outside any).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ProbeSite {
    pub function: Option<String>,
    pub symbol: String,
}

/// The result of [`audit`].
#[derive(Debug, Clone, Default)]
pub struct Audit {
    pub stats: Stats,
    pub violations: Vec<Violation>,
    /// Every `__dtrace_probe_*` relocation in code, in relocation order.
    pub probe_sites: Vec<ProbeSite>,
}

impl Audit {
    pub fn passed(&self) -> bool {
        self.violations.is_empty()
    }

    pub fn has(&self, kind: ViolationKind) -> bool {
        self.violations.iter().any(|v| v.kind == kind)
    }

    fn push(&mut self, kind: ViolationKind, message: String) {
        self.violations.push(Violation { kind, message });
    }
}

/// Names code locations: `.text+0x14 (`foo`+0x4)`.
struct Locator<'s> {
    /// Per section: (value, size, name) of named non-section symbols, sorted.
    labels: BTreeMap<usize, Vec<(u64, u64, u8, &'s str)>>,
}

impl<'s> Locator<'s> {
    fn new(symbols: &'s [Symbol]) -> Self {
        let mut labels: BTreeMap<usize, Vec<(u64, u64, u8, &'s str)>> = BTreeMap::new();
        for s in symbols {
            if s.name.is_empty() || s.sym_type == STT_SECTION || s.sym_type == elf::STT_FILE {
                continue;
            }
            if let Some(sec) = s.in_section() {
                labels
                    .entry(sec)
                    .or_default()
                    .push((s.value, s.size, s.sym_type, &s.name));
            }
        }
        for v in labels.values_mut() {
            // Functions first at equal addresses, so they win over labels.
            v.sort_by_key(|&(value, _, ty, _)| (value, ty != STT_FUNC));
        }
        Locator { labels }
    }

    /// The closest symbol at or before `off` in section `sec`.
    fn label(&self, sec: usize, off: u64) -> Option<(&'s str, u64)> {
        let v = self.labels.get(&sec)?;
        let i = v.partition_point(|&(value, ..)| value <= off);
        let mut best: Option<(u64, &'s str)> = None;
        for &(value, size, _, name) in v[..i].iter().rev() {
            // Prefer a sized symbol that covers the offset.
            if size > 0 && off < value.saturating_add(size) {
                return Some((name, off - value));
            }
            if best.is_none() {
                best = Some((value, name));
            }
        }
        best.map(|(value, name)| (name, off - value))
    }

    /// The sized functions (STT_FUNC) whose range covers `off` in section
    /// `sec` (more than one only for aliases).
    fn functions_at(&self, sec: usize, off: u64) -> Vec<&'s str> {
        self.labels
            .get(&sec)
            .map(|v| {
                v.iter()
                    .filter(|&&(value, size, ty, _)| {
                        ty == STT_FUNC
                            && size > 0
                            && value <= off
                            && off < value.saturating_add(size)
                    })
                    .map(|&(.., name)| name)
                    .collect()
            })
            .unwrap_or_default()
    }

    /// The functions (STT_FUNC with a size) of a section, sorted by address.
    fn functions(&self, sec: usize) -> Vec<(u64, u64, &'s str)> {
        self.labels
            .get(&sec)
            .map(|v| {
                v.iter()
                    .filter(|&&(_, size, ty, _)| ty == STT_FUNC && size > 0)
                    .map(|&(value, size, _, name)| (value, size, name))
                    .collect()
            })
            .unwrap_or_default()
    }

    fn describe(&self, section: &Section, off: u64) -> String {
        match self.label(section.index, off) {
            Some((name, 0)) => format!("{}+{off:#x} (`{name}`)", section.name),
            Some((name, d)) => format!("{}+{off:#x} (`{name}`+{d:#x})", section.name),
            None => format!("{}+{off:#x}", section.name),
        }
    }
}

/// Audits an object (after strip and relax). Returns an error only for an
/// object too damaged to read; every rule violation is a [`Violation`].
pub fn audit(bytes: &[u8], opts: &AuditOptions) -> Result<Audit, Error> {
    let elf = Elf::parse(bytes)?;
    let symbols = elf.symbols()?;
    let locator = Locator::new(&symbols);
    let mut a = Audit::default();

    a.stats.text_bytes = elf
        .sections
        .iter()
        .filter(|s| s.is_alloc() && s.is_exec() && s.sh_type != SHT_NOBITS)
        .map(|s| s.size)
        .sum();

    check_sections(&elf, &mut a);
    check_relocations(&elf, &symbols, &locator, &mut a)?;
    check_symbols(&symbols, opts, &mut a);
    check_simd(&elf, &locator, &mut a)?;
    check_frames(&elf, &locator, opts, &mut a)?;

    if let Some(max) = opts.max_panic_calls
        && a.stats.panic_call_sites > max
    {
        a.push(
            ViolationKind::PanicRatchet,
            format!(
                "{} panic call sites, more than --max-panic-calls {max}: the count may only go down (remove the new panic paths or justify raising the limit)",
                a.stats.panic_call_sites
            ),
        );
    }
    Ok(a)
}

/// (d) TLS / constructors, (g) unstripped sections, SHT_REL.
fn check_sections(elf: &Elf<'_>, a: &mut Audit) {
    for s in &elf.sections {
        let name = s.name.as_str();
        if UNSTRIPPED.contains(&name) || s.sh_type == SHT_X86_64_UNWIND {
            a.push(
                ViolationKind::Unstripped,
                format!(
                    "section [{}] {name} is still present: unwind tables / bitcode / .comment must be stripped (krtld would load .eh_frame as data, §5.4.6)",
                    s.index
                ),
            );
        }
        if TLS_PREFIXES.iter().any(|p| name.starts_with(p)) || s.flags & SHF_TLS != 0 {
            a.push(
                ViolationKind::Tls,
                format!(
                    "TLS section [{}] {name}: kernel modules have no thread-local storage (krtld has no TLS relocations)",
                    s.index
                ),
            );
        }
        if CTOR_PREFIXES.iter().any(|p| name.starts_with(p))
            || matches!(
                s.sh_type,
                SHT_INIT_ARRAY | SHT_FINI_ARRAY | SHT_PREINIT_ARRAY
            )
        {
            a.push(
                ViolationKind::Constructors,
                format!(
                    "static constructor/destructor section [{}] {name}: krtld runs none, initialise from _init (§5.4.7)",
                    s.index
                ),
            );
        }
        if s.sh_type == SHT_REL {
            a.push(
                ViolationKind::RelocSection,
                format!(
                    "SHT_REL section [{}] {name}: krtld accepts SHT_RELA only (\"can't process type SHT_REL\", §5.4.1)",
                    s.index
                ),
            );
        }
    }
}

/// What a call site at `o` (the rel32 field) in `code` looks like.
fn byte_before(code: &[u8], o: u64) -> Option<u8> {
    let o = usize::try_from(o).ok()?;
    code.get(o.checked_sub(1)?).copied()
}

/// The name a relocation refers to. For a section symbol + addend (LLVM
/// and gas turn references to local functions in another section into
/// that), the function at the call target `A + 4` in that section, else the
/// section name.
fn target_name<'s>(
    elf: &'s Elf<'_>,
    locator: &Locator<'s>,
    sym: &'s Symbol,
    addend: i64,
) -> &'s str {
    if sym.sym_type != STT_SECTION {
        return &sym.name;
    }
    let Some(sec) = sym.in_section() else {
        return &sym.name;
    };
    let target = sym.value.wrapping_add(addend.wrapping_add(4) as u64);
    if let Some(v) = locator.labels.get(&sec)
        && let Some(&(_, _, _, name)) = v.iter().find(|&&(value, ..)| value == target)
    {
        return name;
    }
    elf.sections
        .get(sec)
        .map(|s| s.name.as_str())
        .unwrap_or(&sym.name)
}

/// `panic-call-sites` counts direct `call rel32` sites (byte before the field
/// is `e8`, relocation PC32/PLT32) whose target name contains "panic": the
/// mangled `core::panicking::*` functions (`panic`, `panic_fmt`,
/// `panic_bounds_check`, `panic_nounwind`, ...), `rust_begin_unwind`-style
/// handlers named so, the crate's `#[panic_handler]` if its name says so, and
/// the kernel's `panic()`. Calls to a local function through a section
/// symbol are resolved to the function at the target. It is a proxy for the
/// number of places the module can panic (each bounds check, unwrap or
/// overflow check that survived optimisation); `--max-panic-calls` turns it
/// into a ratchet.
pub fn is_panic_call(name: &str) -> bool {
    name.contains("panic")
}

/// A Rust-mangled symbol: v0 (`_R…`) or legacy (`_ZN…`, with its per-build
/// hash). A probe site in such a function gets that name as its DTrace
/// function, which changes from build to build.
pub fn is_mangled(name: &str) -> bool {
    name.starts_with("_R") || name.starts_with("_ZN")
}

/// (a) relocation types, (f) probe sites, panic call sites, SHT_RELA shape.
fn check_relocations<'s>(
    elf: &'s Elf<'_>,
    symbols: &'s [Symbol],
    locator: &Locator<'s>,
    a: &mut Audit,
) -> Result<(), Error> {
    let symtab = elf.symtab_index();
    let mut probes = BTreeSet::new();
    for rs in elf.sections.iter().filter(|s| s.sh_type == SHT_RELA) {
        let Some(target) = elf.sections.get(rs.info as usize) else {
            a.push(
                ViolationKind::RelocSection,
                format!(
                    "relocation section [{}] {} targets section {} which does not exist",
                    rs.index, rs.name, rs.info
                ),
            );
            continue;
        };
        if !target.is_alloc() {
            // krtld skips relocations of non-SHF_ALLOC sections (.debug_*).
            continue;
        }
        if Some(rs.link as usize) != symtab {
            a.push(
                ViolationKind::RelocSection,
                format!(
                    "relocation section [{}] {} has sh_link {}, not the symbol table (krtld requires it)",
                    rs.index, rs.name, rs.link
                ),
            );
            continue;
        }
        let code = elf.section_data(target)?;
        for r in elf.relocs(rs)? {
            *a.stats.relocs.entry(r.r_type).or_insert(0) += 1;
            let Some(sym) = symbols.get(r.sym as usize) else {
                a.push(
                    ViolationKind::Malformed,
                    format!(
                        "{}: relocation uses symbol index {} beyond the symbol table",
                        locator.describe(target, r.offset),
                        r.sym
                    ),
                );
                continue;
            };
            let name = target_name(elf, locator, sym, r.addend);
            let at = locator.describe(target, r.offset);
            let in_bounds = r
                .offset
                .checked_add(4)
                .is_some_and(|end| end <= target.size);
            if !in_bounds && target.sh_type != SHT_NOBITS {
                a.push(
                    ViolationKind::Malformed,
                    format!("{at}: relocation against `{name}` is outside the section"),
                );
            }

            if relax::is_gotpcrel(r.r_type) {
                let why = relax::classify(code, r.offset, r.addend)
                    .map(|k| format!("relaxable as {} but was not", k.describe()))
                    .unwrap_or_else(|e| e);
                a.push(
                    ViolationKind::Gotpcrel,
                    format!(
                        "{at}: {} against `{name}` cannot be relaxed: {why}. krtld has no GOT and would compute S+A here (§0.1); make the compiler emit a direct reference",
                        elf::reloc_type_name(r.r_type)
                    ),
                );
            } else if !ALLOWED_RELOCS.contains(&r.r_type) {
                let why = if r.r_type == R_X86_64_32 {
                    " (zero-extended: overflows for kernel addresses; use code-model=kernel so it becomes 32S)"
                } else {
                    ""
                };
                a.push(
                    ViolationKind::RelocType,
                    format!(
                        "{at}: relocation {} against `{name}` is not one of 64/PC32/PLT32/32S{why}",
                        elf::reloc_type_name(r.r_type)
                    ),
                );
            }

            let is_call_reloc = matches!(r.r_type, R_X86_64_PC32 | R_X86_64_PLT32);
            let before = if target.is_exec() {
                byte_before(code, r.offset)
            } else {
                None
            };
            if name.starts_with(PROBE_PREFIX) {
                probes.insert(name);
                a.stats.probe_sites += 1;
                let problem = match (is_call_reloc, before) {
                    (true, Some(0xe8)) => None,
                    (true, Some(0xe9)) => Some(
                        "is a tail call (jmp, e9): older krtld patches it as if it were a call; keep the probe call non-tail (asm!/compiler_fence after it, §0.2)"
                            .to_string(),
                    ),
                    (true, Some(b)) => Some(format!(
                        "is not a direct call (byte before the field is {b:02x}, not e8)"
                    )),
                    (true, None) => Some("is not in code".to_string()),
                    (false, _) => Some(format!(
                        "uses {}, not a PC32/PLT32 call",
                        elf::reloc_type_name(r.r_type)
                    )),
                };
                if target.is_exec() {
                    let funcs = locator.functions_at(target.index, r.offset);
                    if let Some(m) = funcs.iter().find(|f| is_mangled(f)) {
                        a.push(
                            ViolationKind::ProbeFunction,
                            format!(
                                "{at}: SDT probe site for `{name}` is in `{m}`, a mangled Rust function: DTrace would show that per-build name as the probe's function; make the call from an #[inline(never)] #[unsafe(no_mangle)] wrapper with a stable name (kstat/src/sdt.rs)"
                            ),
                        );
                    }
                    a.probe_sites.push(ProbeSite {
                        function: funcs.first().map(|f| f.to_string()),
                        symbol: name.to_string(),
                    });
                }
                if let Some(p) = problem {
                    a.stats.bad_probe_sites += 1;
                    // Name the instruction (opcode byte), not the field.
                    let site = if before.is_some() {
                        locator.describe(target, r.offset - 1)
                    } else {
                        at
                    };
                    a.push(
                        ViolationKind::ProbeSite,
                        format!(
                            "{site}: SDT probe site for `{name}` {p}; krtld only turns `call rel32` (e8) sites into probes (§5.4.8)"
                        ),
                    );
                }
            } else if is_call_reloc && before == Some(0xe8) && is_panic_call(name) {
                a.stats.panic_call_sites += 1;
            }
        }
    }
    a.stats.probes = probes.len();
    Ok(())
}

/// (b) undefined symbols, (d) TLS symbols, (e) entry points.
fn check_symbols(symbols: &[Symbol], opts: &AuditOptions, a: &mut Audit) {
    let mut undefined = BTreeSet::new();
    for s in symbols {
        if s.sym_type == STT_TLS {
            a.push(
                ViolationKind::Tls,
                format!(
                    "TLS symbol `{}`: kernel modules have no thread-local storage",
                    s.name
                ),
            );
        }
        if s.is_undefined() && !s.name.is_empty() && matches!(s.bind, STB_GLOBAL | STB_WEAK) {
            undefined.insert(s.name.as_str());
        }
    }
    for name in &undefined {
        if !name.starts_with(PROBE_PREFIX) && !opts.allowlist.contains(name) {
            a.push(
                ViolationKind::UndefinedSymbol,
                format!(
                    "undefined symbol `{name}` is not in the allow-list: krtld would refuse the module at modload (§5.4.2); add it to tools/kmodfix/allowlist.txt only if unix/genunix exports it"
                ),
            );
        }
    }
    a.stats.undefined = undefined.len();

    for entry in ENTRY_POINTS {
        let defined = symbols
            .iter()
            .any(|s| s.name == *entry && s.bind == STB_GLOBAL && s.in_section().is_some());
        if !defined {
            let local = symbols
                .iter()
                .any(|s| s.name == *entry && s.bind == STB_LOCAL);
            a.push(
                ViolationKind::MissingEntryPoint,
                format!(
                    "module entry point `{entry}` is not defined as a global symbol{}: modload looks it up by name",
                    if local { " (it is local)" } else { "" }
                ),
            );
        }
    }
}

/// Whether a CPUID feature means FPU/vector state. Matched on iced's
/// variant names by prefix so new AVX*/AMX* variants are caught too.
pub fn is_fp_simd_feature(name: &str) -> bool {
    const PREFIXES: &[&str] = &[
        "FPU",
        "CYRIX_FPU",
        "MMX",
        "SSE",
        "SSSE3",
        "AVX",
        "FMA",
        "F16C",
        "XOP",
        "D3NOW",
        "CYRIX_D3NOW",
        "AES",
        "VAES",
        "PCLMULQDQ",
        "VPCLMULQDQ",
        "GFNI",
        "SHA",
        "SM3",
        "SM4",
        "AMX",
        "KNC",
        "KL",
        "WIDE_KL",
    ];
    PREFIXES.iter().any(|p| name.starts_with(p))
}

/// Instructions of the SSE/SSE2 feature sets that touch neither XMM nor
/// x87/MMX state (fences, prefetch hints, non-temporal integer store, crc32
/// on GPRs): the kernel itself uses them, so the feature test skips them
/// (the register test still applies).
const STATE_FREE: &[Mnemonic] = &[
    Mnemonic::Lfence,
    Mnemonic::Mfence,
    Mnemonic::Sfence,
    Mnemonic::Prefetchnta,
    Mnemonic::Prefetcht0,
    Mnemonic::Prefetcht1,
    Mnemonic::Prefetcht2,
    Mnemonic::Movnti,
    Mnemonic::Crc32,
    Mnemonic::Clflush,
    Mnemonic::Pause,
];

/// Instructions that save/restore or switch FPU state, always flagged.
const FPU_STATE: &[Mnemonic] = &[
    Mnemonic::Fxsave,
    Mnemonic::Fxsave64,
    Mnemonic::Fxrstor,
    Mnemonic::Fxrstor64,
    Mnemonic::Xsave,
    Mnemonic::Xsave64,
    Mnemonic::Xsavec,
    Mnemonic::Xsavec64,
    Mnemonic::Xsaveopt,
    Mnemonic::Xsaveopt64,
    Mnemonic::Xsaves,
    Mnemonic::Xsaves64,
    Mnemonic::Xrstor,
    Mnemonic::Xrstor64,
    Mnemonic::Xrstors,
    Mnemonic::Xrstors64,
    Mnemonic::Ldmxcsr,
    Mnemonic::Stmxcsr,
    Mnemonic::Vldmxcsr,
    Mnemonic::Vstmxcsr,
    Mnemonic::Emms,
    Mnemonic::Femms,
];

fn is_fp_simd_register(r: Register) -> bool {
    r.is_xmm() || r.is_ymm() || r.is_zmm() || r.is_mm() || r.is_st() || r.is_k() || r.is_tmm()
}

/// Why an instruction uses FPU/vector state, or None.
pub fn fp_simd_reason(instr: &Instruction) -> Option<String> {
    let m = instr.mnemonic();
    if FPU_STATE.contains(&m) {
        return Some("saves/restores FPU state".to_string());
    }
    for i in 0..instr.op_count() {
        let reg = match instr.op_kind(i) {
            OpKind::Register => instr.op_register(i),
            OpKind::Memory => {
                if is_fp_simd_register(instr.memory_index()) {
                    instr.memory_index()
                } else {
                    continue;
                }
            }
            _ => continue,
        };
        if is_fp_simd_register(reg) {
            return Some(format!("uses register {reg:?}"));
        }
    }
    if !STATE_FREE.contains(&m) {
        let features: Vec<String> = instr
            .cpuid_features()
            .iter()
            .map(|f| format!("{f:?}"))
            .filter(|f| is_fp_simd_feature(f))
            .collect();
        if !features.is_empty() {
            return Some(format!("CPUID feature {}", features.join("+")));
        }
    }
    None
}

/// Stack bytes a function's prologue reserves, from its first
/// instructions up to the first call or return: 8 per `push`, the
/// immediates of `sub rsp, imm`, and an LLVM inline stack-probe loop
/// (`mov r11, rsp; sub r11, N; L: sub rsp, 0x1000; mov [rsp], 0;
/// cmp rsp, r11; jne L`) counted as its `N`, not per page. Frames over
/// 4 KiB are what the probes exist for, and a 20 KiB kernel stack cannot
/// afford many (docs/rust-in-the-illumos-kernel.md §0.3, §5.4.5).
pub fn prologue_frame(code: &[u8], ip: u64) -> u64 {
    const MAX_PROLOGUE: usize = 64;
    let mut decoder = Decoder::with_ip(64, code, ip, DecoderOptions::NONE);
    let mut instr = Instruction::default();
    let mut frame = 0u64;
    let mut r11_is_rsp = false;
    let mut in_probe_loop = false;
    for _ in 0..MAX_PROLOGUE {
        if !decoder.can_decode() {
            break;
        }
        decoder.decode_out(&mut instr);
        if instr.is_invalid() {
            break;
        }
        let reg0 = if instr.op_count() > 0 && instr.op0_kind() == OpKind::Register {
            instr.op0_register()
        } else {
            Register::None
        };
        let imm =
            (instr.op_count() > 1 && is_immediate(instr.op1_kind())).then(|| instr.immediate(1));
        match instr.mnemonic() {
            Mnemonic::Call | Mnemonic::Ret => break,
            Mnemonic::Push => frame = frame.saturating_add(8),
            Mnemonic::Mov if reg0 == Register::R11 => {
                r11_is_rsp = instr.op_count() > 1
                    && instr.op1_kind() == OpKind::Register
                    && instr.op1_register() == Register::RSP;
            }
            Mnemonic::Sub if reg0 == Register::R11 && r11_is_rsp => {
                if let Some(n) = imm {
                    frame = frame.saturating_add(n);
                    in_probe_loop = true;
                }
            }
            Mnemonic::Cmp if reg0 == Register::RSP && in_probe_loop => in_probe_loop = false,
            Mnemonic::Sub if reg0 == Register::RSP && !in_probe_loop => {
                if let Some(n) = imm {
                    frame = frame.saturating_add(n);
                }
            }
            _ => {}
        }
    }
    frame
}

fn is_immediate(k: OpKind) -> bool {
    matches!(
        k,
        OpKind::Immediate8
            | OpKind::Immediate16
            | OpKind::Immediate32
            | OpKind::Immediate64
            | OpKind::Immediate8to16
            | OpKind::Immediate8to32
            | OpKind::Immediate8to64
            | OpKind::Immediate32to64
    )
}

/// The stack frame of every function: the largest goes into the summary,
/// and any above `--max-frame` is a violation.
fn check_frames(
    elf: &Elf<'_>,
    locator: &Locator<'_>,
    opts: &AuditOptions,
    a: &mut Audit,
) -> Result<(), Error> {
    for s in elf
        .sections
        .iter()
        .filter(|s| s.is_exec() && s.sh_type != SHT_NOBITS)
    {
        let code = elf.section_data(s)?;
        for (value, size, name) in locator.functions(s.index) {
            let start = value.min(code.len() as u64) as usize;
            let end = value.saturating_add(size).min(code.len() as u64) as usize;
            let Some(body) = code.get(start..end) else {
                continue;
            };
            let frame = prologue_frame(body, value);
            if frame > a.stats.max_frame {
                a.stats.max_frame = frame;
                a.stats.max_frame_fn = name.to_string();
            }
            if let Some(max) = opts.max_frame.filter(|&max| frame > max) {
                a.push(
                    ViolationKind::FrameTooLarge,
                    format!(
                        "`{name}` reserves {frame} bytes of stack, more than --max-frame {max}: move large values to kmem (Box), the kernel stack is 20 KiB (§0.3)"
                    ),
                );
            }
        }
    }
    Ok(())
}

/// (c) linear sweep of every SHF_EXECINSTR section: function by function
/// where STT_FUNC symbols cover it, and the gaps between them (hand-written
/// asm without `.size`) as well. The illumos kernel does not save FPU state
/// for kernel code (§5.4.3), so any such instruction corrupts user state.
fn check_simd(elf: &Elf<'_>, locator: &Locator<'_>, a: &mut Audit) -> Result<(), Error> {
    let mut found = 0usize;
    let mut formatter = IntelFormatter::new();
    for s in elf
        .sections
        .iter()
        .filter(|s| s.is_exec() && s.sh_type != SHT_NOBITS)
    {
        let code = elf.section_data(s)?;
        let len = code.len() as u64;
        let mut ranges = Vec::new();
        let mut cursor = 0u64;
        for (value, size, _) in locator.functions(s.index) {
            let start = value.min(len);
            let end = value.saturating_add(size).min(len);
            if start < cursor {
                continue; // alias or overlap: already covered
            }
            if start > cursor {
                ranges.push((cursor, start));
            }
            ranges.push((start, end));
            cursor = end;
        }
        if cursor < len {
            ranges.push((cursor, len));
        }
        for (start, end) in ranges {
            // start <= end <= len, which fits in usize.
            let bytes = &code[start as usize..end as usize];
            let mut decoder = Decoder::with_ip(64, bytes, start, DecoderOptions::NONE);
            let mut instr = Instruction::default();
            while decoder.can_decode() {
                decoder.decode_out(&mut instr);
                if instr.is_invalid() {
                    continue;
                }
                if let Some(why) = fp_simd_reason(&instr) {
                    found += 1;
                    if found <= MAX_SIMD_REPORTED {
                        let mut text = String::new();
                        formatter.format(&instr, &mut text);
                        a.push(
                            ViolationKind::Simd,
                            format!(
                                "{}: `{text}` {why}: no SSE/AVX/MMX/x87 in kernel code, the kernel does not save FPU state for it (§5.4.3)",
                                locator.describe(s, instr.ip())
                            ),
                        );
                    }
                }
            }
        }
    }
    if found > MAX_SIMD_REPORTED {
        a.push(
            ViolationKind::Simd,
            format!(
                "... and {} more SIMD/FPU instructions not shown ({found} in total)",
                found - MAX_SIMD_REPORTED
            ),
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decode(bytes: &[u8]) -> Instruction {
        let mut d = Decoder::new(64, bytes, DecoderOptions::NONE);
        d.decode()
    }

    #[test]
    fn flags_vector_and_x87_instructions() {
        for bytes in [
            &[0x0f, 0x28, 0xc8][..],         // movaps xmm1, xmm0
            &[0x66, 0x0f, 0xef, 0xc0],       // pxor xmm0, xmm0
            &[0xd9, 0xe8],                   // fld1
            &[0x0f, 0x77],                   // emms
            &[0x0f, 0xae, 0x00],             // fxsave [rax]
            &[0x0f, 0xae, 0x10],             // ldmxcsr [rax]
            &[0xc5, 0xfc, 0x28, 0xc1],       // vmovaps ymm0, ymm1
            &[0x0f, 0x6f, 0xc1],             // movq mm0, mm1
            &[0x66, 0x48, 0x0f, 0x6e, 0xc0], // movq xmm0, rax
        ] {
            let i = decode(bytes);
            assert!(!i.is_invalid(), "{bytes:02x?}");
            assert!(fp_simd_reason(&i).is_some(), "{bytes:02x?} not flagged");
        }
    }

    #[test]
    fn does_not_flag_integer_and_state_free_instructions() {
        for bytes in [
            &[0x48, 0x89, 0xc3][..],   // mov rbx, rax
            &[0x0f, 0xae, 0xe8],       // lfence
            &[0x0f, 0xae, 0xf0],       // mfence
            &[0x0f, 0xae, 0xf8],       // sfence
            &[0x0f, 0x18, 0x00],       // prefetchnta [rax]
            &[0xf3, 0x90],             // pause
            &[0x0f, 0x01, 0xd1],       // xsetbv
            &[0x0f, 0x01, 0xc4],       // vmxoff
            &[0x0f, 0x31],             // rdtsc
            &[0xf3, 0x0f, 0xb8, 0xc0], // popcnt eax, eax
        ] {
            let i = decode(bytes);
            assert!(!i.is_invalid(), "{bytes:02x?}");
            assert_eq!(fp_simd_reason(&i), None, "{bytes:02x?} flagged");
        }
    }

    #[test]
    fn feature_names_match_iced() {
        // If iced renamed its variants, the prefix table would silently stop
        // matching: pin a few names.
        let fld1 = decode(&[0xd9, 0xe8]);
        assert!(
            fld1.cpuid_features()
                .iter()
                .any(|f| format!("{f:?}") == "FPU")
        );
        let pxor = decode(&[0x66, 0x0f, 0xef, 0xc0]);
        assert!(
            pxor.cpuid_features()
                .iter()
                .any(|f| format!("{f:?}") == "SSE2")
        );
        assert!(!is_fp_simd_feature("SERIALIZE"));
        assert!(!is_fp_simd_feature("VMX"));
        assert!(!is_fp_simd_feature("XSAVE"));
        assert!(is_fp_simd_feature("AVX512F"));
    }
}
