//! Nanoseconds per emulated instruction for a typical MMIO mix, and per
//! decoded instruction. Run with `cargo bench -p kvm-x86-emulate`
//! (`EMU_BENCH_ITERS` sets the iterations per form, default 200,000).

use kvm_x86_emulate::{
    Context, EmulatorOps, Mode, OpError, Outcome, Registers, Seg, decode, emulate,
};
use std::hint::black_box;
use std::time::Instant;

/// Guest memory: 64 KiB at linear 0; the "MMIO" page answers from it too
/// (as after the device model completed the access).
struct Flat {
    mem: Vec<u8>,
}

impl Flat {
    fn slice(&mut self, addr: u64, n: usize) -> Result<&mut [u8], OpError> {
        let a = addr as usize;
        self.mem.get_mut(a..a + n).ok_or(OpError::Unhandleable)
    }
}

impl EmulatorOps for Flat {
    fn read(&mut self, addr: u64, buf: &mut [u8]) -> Result<(), OpError> {
        let n = buf.len();
        buf.copy_from_slice(self.slice(addr, n)?);
        Ok(())
    }
    fn write(&mut self, addr: u64, data: &[u8]) -> Result<(), OpError> {
        self.slice(addr, data.len())?.copy_from_slice(data);
        Ok(())
    }
    fn cmpxchg(&mut self, addr: u64, expected: &mut [u8], new: &[u8]) -> Result<bool, OpError> {
        let m = self.slice(addr, new.len())?;
        if m == expected {
            m.copy_from_slice(new);
            Ok(true)
        } else {
            expected.copy_from_slice(m);
            Ok(false)
        }
    }
    fn fetch(&mut self, addr: u64, buf: &mut [u8]) -> Result<usize, OpError> {
        let a = addr as usize;
        let n = buf.len().min(self.mem.len().saturating_sub(a));
        buf[..n].copy_from_slice(&self.mem[a..a + n]);
        Ok(n)
    }
    fn io_in(&mut self, _: u16, _: u8) -> Result<u32, OpError> {
        Ok(0)
    }
    fn io_out(&mut self, _: u16, _: u8, _: u32) -> Result<(), OpError> {
        Ok(())
    }
    fn cpl(&self) -> u8 {
        0
    }
    fn segment_base(&self, _: Seg) -> u64 {
        0
    }
    fn segment_selector(&self, _: Seg) -> u16 {
        0
    }
    fn read_cr(&mut self, _: u8) -> Result<u64, OpError> {
        Ok(0)
    }
    fn write_cr(&mut self, _: u8, _: u64) -> Result<(), OpError> {
        Ok(())
    }
    fn read_dr(&mut self, _: u8) -> Result<u64, OpError> {
        Ok(0)
    }
    fn write_dr(&mut self, _: u8, _: u64) -> Result<(), OpError> {
        Ok(())
    }
    fn read_msr(&mut self, _: u32) -> Result<u64, OpError> {
        Ok(0)
    }
    fn write_msr(&mut self, _: u32, _: u64) -> Result<(), OpError> {
        Ok(())
    }
}

const CODE: u64 = 0x1000;

/// The MMIO mix: (assembly, bytes).
const MIX: &[(&str, &[u8])] = &[
    ("mov eax, [rbx+0x10]", &[0x8b, 0x43, 0x10]),
    ("mov [rbx+rcx*4+0x20], edx", &[0x89, 0x54, 0x8b, 0x20]),
    ("mov rax, [rbx]", &[0x48, 0x8b, 0x03]),
    ("mov byte [rbx+1], al", &[0x88, 0x43, 0x01]),
    (
        "mov dword [rip+0x3000], 0x1234",
        &[0xc7, 0x05, 0x00, 0x30, 0, 0, 0x34, 0x12, 0, 0],
    ),
    ("movzx eax, word [rbx+2]", &[0x0f, 0xb7, 0x43, 0x02]),
    ("mov ax, [rbx+rsi]", &[0x66, 0x8b, 0x04, 0x33]),
    ("or dword [rbx+4], 0x80", &[0x81, 0x4b, 0x04, 0x80, 0, 0, 0]),
    ("and [rbx+8], eax", &[0x21, 0x43, 0x08]),
    ("rep movsb (16)", &[0xf3, 0xa4]),
    ("rep stosd (16)", &[0xf3, 0xab]),
];

fn regs() -> Registers {
    let mut r = Registers {
        rip: CODE,
        rflags: 2,
        ..Registers::default()
    };
    r.gpr[3] = 0x8000; // rbx
    r.gpr[1] = 3; // rcx (index); the string forms set 16
    r.gpr[6] = 0x100; // rsi
    r.gpr[7] = 0xa000; // rdi (string source: rsi = 0x100)
    r
}

fn main() {
    let iters: u32 = std::env::var("EMU_BENCH_ITERS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(200_000);
    // EMU_BENCH_ONLY=emulate|decode runs one half (for `perf stat` counts).
    let only = std::env::var("EMU_BENCH_ONLY").unwrap_or_default();
    let mut ops = Flat {
        mem: vec![0; 0x10000],
    };
    println!(
        "{:<34} {:>12} {:>12}",
        "instruction", "emulate ns", "decode ns"
    );
    // Tenths of a nanosecond, in integers (the workspace denies float arithmetic).
    let tenths = |t: Instant| t.elapsed().as_nanos() * 10 / u128::from(iters);
    let show = |v: u128| format!("{}.{}", v / 10, v % 10);
    let (mut total_emu, mut total_dec) = (0u128, 0u128);
    // EMU_BENCH_SKIP_REP=1 leaves out the REP string forms.
    let skip_rep = std::env::var("EMU_BENCH_SKIP_REP").is_ok();
    for (name, bytes) in MIX
        .iter()
        .filter(|(n, _)| !(skip_rep && n.starts_with("rep")))
    {
        ops.mem[CODE as usize..CODE as usize + bytes.len()].copy_from_slice(bytes);
        let string = name.starts_with("rep");
        let base = regs();
        // Emulate: fetch, decode, execute, commit.
        let t = Instant::now();
        for _ in 0..if only == "decode" { 0 } else { iters } {
            let mut r = base;
            if string {
                r.gpr[1] = 16;
            }
            let mut ctx = Context::new(Mode::Prot64, r);
            let out = emulate(black_box(&mut ctx), &mut ops);
            assert_eq!(out, Ok(Outcome::Done));
        }
        let emu = tenths(t);
        // Decode only.
        let t = Instant::now();
        for _ in 0..if only == "emulate" { 0 } else { iters } {
            black_box(decode(black_box(bytes), Mode::Prot64).expect("decodes"));
        }
        let dec = tenths(t);
        println!("{name:<34} {:>12} {:>12}", show(emu), show(dec));
        total_emu += emu;
        total_dec += dec;
    }
    let n = MIX.len() as u128;
    println!(
        "{:<34} {:>12} {:>12}",
        "mix average",
        show(total_emu / n),
        show(total_dec / n)
    );
}
