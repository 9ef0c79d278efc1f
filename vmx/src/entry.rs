//! VM entry and exit: the VMLAUNCH/VMRESUME trampoline.
//!
//! Port of the inline assembly of `vmx_vcpu_run` (kvm_vmx.c) as two naked
//! functions (Rust in the illumos kernel, §3.4): `hw::vmx_enter` saves
//! the host's callee-saved registers, points HOST_RSP at its frame, loads
//! guest CR2 (only when it differs: writing CR2 is slow) and the guest
//! GPRs from a [`GuestRegs`], and executes VMLAUNCH or VMRESUME. A VM exit
//! lands in `hw::vmx_exit` (the HOST_RIP the VMCS must hold), which
//! stores the guest GPRs and CR2 back and returns 0 from `vmx_enter`'s
//! frame. If the instruction fails instead (VMfailInvalid: CF=1,
//! VMfailValid: ZF=1, SDM vol. 3 §31.2) `vmx_enter` returns 1 or 2 with the
//! guest registers untouched in memory.
//!
//! No SSE/x87 register is touched: the guest FPU is switched by HMA
//! (`hma_fpu_start_guest`), not here. The code is compiled only for the
//! kernel build (`--features kernel` on x86_64); tests drive the run loop
//! through [`GuestEntry`] with a fake.
//!
//! Host state a VM exit does not restore and the driver must
//! (`__vmx_load_host_state`): the LDTR (loaded with 0), the TR limit
//! (set to 0x67), KERNEL_GS_BASE and the shared syscall MSRs the guest may
//! have written.

use crate::vcpu::GuestRegs;

// The trampoline addresses GuestRegs by these offsets: GPRs in encoding
// order, then CR2.
static_assertions::const_assert_eq!(core::mem::offset_of!(GuestRegs, rax), 0);
static_assertions::const_assert_eq!(core::mem::offset_of!(GuestRegs, rdi), 7 * 8);
static_assertions::const_assert_eq!(core::mem::offset_of!(GuestRegs, r15), 15 * 8);
static_assertions::const_assert_eq!(core::mem::offset_of!(GuestRegs, cr2), 16 * 8);

/// How an entry attempt ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EntryResult {
    /// The guest ran and exited; the exit information is in the VMCS.
    Exited,
    /// VMLAUNCH/VMRESUME failed with no current VMCS.
    VmFailInvalid,
    /// VMLAUNCH/VMRESUME failed; the VM-instruction error field says why.
    VmFailValid,
}

impl EntryResult {
    /// From `vmx_enter`'s return value.
    pub const fn from_raw(raw: u64) -> EntryResult {
        match raw {
            0 => EntryResult::Exited,
            1 => EntryResult::VmFailInvalid,
            _ => EntryResult::VmFailValid,
        }
    }
}

/// Running the guest until its next exit. The kernel implementation calls
/// `hw::vmx_enter` with interrupts disabled and the VMCS current; tests
/// script exits.
pub trait GuestEntry {
    /// VMLAUNCH (`launched == false`) or VMRESUME with `regs`.
    fn enter(&mut self, regs: &mut GuestRegs, launched: bool) -> EntryResult;
}

/// The kernel trampoline.
#[cfg(all(feature = "kernel", target_arch = "x86_64"))]
pub mod hw {
    use core::arch::naked_asm;
    use core::mem::offset_of;

    use super::{EntryResult, GuestEntry, GuestRegs};

    /// HOST_RSP field encoding (SDM appendix B.4.4).
    const HOST_RSP: u32 = x86::vmx::vmcs::host::RSP;

    /// Enter the guest.
    ///
    /// `regs` (RDI): the guest GPRs and CR2; `launched` (RSI): nonzero for
    /// VMRESUME. Returns 0 after a VM exit (registers saved back), 1 on
    /// VMfailInvalid, 2 on VMfailValid.
    ///
    /// # Safety
    /// VMX root operation on this CPU, the VCPU's VMCS current, HOST_RIP =
    /// [`exit_address`], the other host fields valid for this CPU,
    /// interrupts disabled, and `regs` valid for reads and writes.
    #[unsafe(naked)]
    pub unsafe extern "C" fn vmx_enter(regs: *mut GuestRegs, launched: u64) -> u64 {
        naked_asm!(
            // Host callee-saved registers, then the GuestRegs pointer: the
            // exit path finds it at [rsp].
            "push rbp",
            "push rbx",
            "push r12",
            "push r13",
            "push r14",
            "push r15",
            "push rdi",
            // HOST_RSP = this frame (it changes with the caller's stack).
            "mov edx, {host_rsp}",
            "vmwrite rdx, rsp",
            "jbe 5f",
            // Guest CR2, written only when it differs.
            "mov rax, [rdi + {cr2}]",
            "mov rdx, cr2",
            "cmp rax, rdx",
            "je 2f",
            "mov cr2, rax",
            "2:",
            // ZF from `launched`; the loads below keep the flags.
            "test rsi, rsi",
            "mov rax, [rdi + {rax}]",
            "mov rcx, [rdi + {rcx}]",
            "mov rdx, [rdi + {rdx}]",
            "mov rbx, [rdi + {rbx}]",
            "mov rbp, [rdi + {rbp}]",
            "mov rsi, [rdi + {rsi}]",
            "mov r8, [rdi + {r8}]",
            "mov r9, [rdi + {r9}]",
            "mov r10, [rdi + {r10}]",
            "mov r11, [rdi + {r11}]",
            "mov r12, [rdi + {r12}]",
            "mov r13, [rdi + {r13}]",
            "mov r14, [rdi + {r14}]",
            "mov r15, [rdi + {r15}]",
            "mov rdi, [rdi + {rdi}]",
            "jnz 3f",
            "vmlaunch",
            "jmp 4f",
            "3:",
            "vmresume",
            // Only reached when the instruction failed. The guest values
            // are in the registers; the memory copy is intact.
            "4:",
            "mov eax, 1",
            "jc 6f",
            "mov eax, 2",
            "jmp 6f",
            // VMWRITE of HOST_RSP failed: same encoding.
            "5:",
            "mov eax, 1",
            "jc 6f",
            "mov eax, 2",
            "6:",
            "pop rdi",
            "pop r15",
            "pop r14",
            "pop r13",
            "pop r12",
            "pop rbx",
            "pop rbp",
            "ret",
            host_rsp = const HOST_RSP,
            cr2 = const offset_of!(GuestRegs, cr2),
            rax = const offset_of!(GuestRegs, rax),
            rcx = const offset_of!(GuestRegs, rcx),
            rdx = const offset_of!(GuestRegs, rdx),
            rbx = const offset_of!(GuestRegs, rbx),
            rbp = const offset_of!(GuestRegs, rbp),
            rsi = const offset_of!(GuestRegs, rsi),
            rdi = const offset_of!(GuestRegs, rdi),
            r8 = const offset_of!(GuestRegs, r8),
            r9 = const offset_of!(GuestRegs, r9),
            r10 = const offset_of!(GuestRegs, r10),
            r11 = const offset_of!(GuestRegs, r11),
            r12 = const offset_of!(GuestRegs, r12),
            r13 = const offset_of!(GuestRegs, r13),
            r14 = const offset_of!(GuestRegs, r14),
            r15 = const offset_of!(GuestRegs, r15),
        )
    }

    /// HOST_RIP: where a VM exit lands, with RSP = HOST_RSP (the frame of
    /// `vmx_enter`, GuestRegs pointer on top) and the guest's GPRs live.
    ///
    /// # Safety
    /// Never called; only the CPU jumps here on a VM exit.
    #[unsafe(naked)]
    pub unsafe extern "C" fn vmx_exit() {
        naked_asm!(
            "push rdi",
            "mov rdi, [rsp + 8]",
            "mov [rdi + {rax}], rax",
            "mov [rdi + {rcx}], rcx",
            "mov [rdi + {rdx}], rdx",
            "mov [rdi + {rbx}], rbx",
            "mov [rdi + {rbp}], rbp",
            "mov [rdi + {rsi}], rsi",
            "mov [rdi + {r8}], r8",
            "mov [rdi + {r9}], r9",
            "mov [rdi + {r10}], r10",
            "mov [rdi + {r11}], r11",
            "mov [rdi + {r12}], r12",
            "mov [rdi + {r13}], r13",
            "mov [rdi + {r14}], r14",
            "mov [rdi + {r15}], r15",
            "pop rax",
            "mov [rdi + {rdi}], rax",
            "mov rax, cr2",
            "mov [rdi + {cr2}], rax",
            "pop rdi",
            "pop r15",
            "pop r14",
            "pop r13",
            "pop r12",
            "pop rbx",
            "pop rbp",
            "xor eax, eax",
            "ret",
            cr2 = const offset_of!(GuestRegs, cr2),
            rax = const offset_of!(GuestRegs, rax),
            rcx = const offset_of!(GuestRegs, rcx),
            rdx = const offset_of!(GuestRegs, rdx),
            rbx = const offset_of!(GuestRegs, rbx),
            rbp = const offset_of!(GuestRegs, rbp),
            rsi = const offset_of!(GuestRegs, rsi),
            rdi = const offset_of!(GuestRegs, rdi),
            r8 = const offset_of!(GuestRegs, r8),
            r9 = const offset_of!(GuestRegs, r9),
            r10 = const offset_of!(GuestRegs, r10),
            r11 = const offset_of!(GuestRegs, r11),
            r12 = const offset_of!(GuestRegs, r12),
            r13 = const offset_of!(GuestRegs, r13),
            r14 = const offset_of!(GuestRegs, r14),
            r15 = const offset_of!(GuestRegs, r15),
        )
    }

    /// The HOST_RIP value for [`crate::setup::HostState::rip`].
    pub fn exit_address() -> u64 {
        vmx_exit as unsafe extern "C" fn() as usize as u64
    }

    /// [`GuestEntry`] on this CPU.
    pub struct HardwareEntry;

    impl GuestEntry for HardwareEntry {
        fn enter(&mut self, regs: &mut GuestRegs, launched: bool) -> EntryResult {
            // SAFETY: the run loop calls this with the VMCS current,
            // interrupts off and the host fields written (`setup`); `regs`
            // is a live exclusive reference.
            let raw = unsafe { vmx_enter(regs, u64::from(launched)) };
            EntryResult::from_raw(raw)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use core::mem::offset_of;

    #[test]
    fn guest_regs_layout_is_what_the_trampoline_assumes() {
        // GPRs in encoding order, 8 bytes each, CR2 after R15.
        assert_eq!(offset_of!(GuestRegs, rax), 0);
        assert_eq!(offset_of!(GuestRegs, rcx), 8);
        assert_eq!(offset_of!(GuestRegs, rdi), 7 * 8);
        assert_eq!(offset_of!(GuestRegs, r15), 15 * 8);
        assert_eq!(offset_of!(GuestRegs, cr2), 16 * 8);
        assert_eq!(core::mem::size_of::<GuestRegs>(), 17 * 8);
    }

    #[test]
    fn return_codes() {
        assert_eq!(EntryResult::from_raw(0), EntryResult::Exited);
        assert_eq!(EntryResult::from_raw(1), EntryResult::VmFailInvalid);
        assert_eq!(EntryResult::from_raw(2), EntryResult::VmFailValid);
    }
}
