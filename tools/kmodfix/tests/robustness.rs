//! Malformed input must give an error message, never a panic: truncate and
//! corrupt a real object in many ways and run every entry point on it.

mod common;

use common::*;

/// A small deterministic generator (no rand dependency).
struct Lcg(u64);

impl Lcg {
    fn next(&mut self) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        self.0 >> 33
    }
}

fn exercise(bytes: &[u8]) {
    let opts = kmodfix::AuditOptions {
        allowlist: test_allowlist(),
        max_panic_calls: Some(0),
        max_frame: Some(0),
    };
    let mut copy = bytes.to_vec();
    let _ = kmodfix::relax_gotpcrel(&mut copy);
    let _ = kmodfix::relax::got_symbol_unreferenced(&copy);
    let _ = kmodfix::audit(&copy, &opts);
    let _ = kmodfix::audit(bytes, &opts);
    let _ = kmodfix::list_probes(bytes);
}

fn sample_object() -> Vec<u8> {
    let dir = TempDir::new("fuzz");
    let src = module(
        r#"
	.text
	.globl	f
	.type	f, @function
f:
	call	*memcpy@GOTPCREL(%rip)
	jmp	*memcpy@GOTPCREL(%rip)
	movq	kas@GOTPCREL(%rip), %rax
	addq	kas@GOTPCREL(%rip), %rax
	pxor	%xmm0, %xmm0
	jmp	__dtrace_probe_kvm__t
	.size	f, .-f
"#,
    );
    std::fs::read(assemble(&dir, "fuzz", &src)).unwrap()
}

#[test]
fn truncated_objects_do_not_panic() {
    let bytes = sample_object();
    for len in 0..bytes.len() {
        exercise(&bytes[..len]);
    }
}

#[test]
fn corrupted_objects_do_not_panic() {
    let bytes = sample_object();
    let mut rng = Lcg(0x006b_6d6f_6466_6978);
    for _ in 0..3000 {
        let mut b = bytes.clone();
        for _ in 0..1 + rng.next() % 4 {
            let i = (rng.next() as usize) % b.len();
            b[i] = match rng.next() % 4 {
                0 => 0,
                1 => 0xff,
                2 => b[i] ^ (1 << (rng.next() % 8)),
                _ => rng.next() as u8,
            };
        }
        exercise(&b);
    }
}

#[test]
fn corrupted_header_fields_give_errors() {
    let bytes = sample_object();
    let opts = kmodfix::AuditOptions::default();
    // e_shoff far beyond the file
    let mut b = bytes.clone();
    b[40..48].copy_from_slice(&u64::MAX.to_le_bytes());
    assert!(kmodfix::audit(&b, &opts).is_err());
    // e_shnum huge
    let mut b = bytes.clone();
    b[60..62].copy_from_slice(&0xfff0u16.to_le_bytes());
    assert!(kmodfix::audit(&b, &opts).is_err());
    // 32-bit class
    let mut b = bytes.clone();
    b[4] = 1;
    let e = kmodfix::audit(&b, &opts).unwrap_err();
    assert!(e.to_string().contains("ELF64"), "{e}");
}
