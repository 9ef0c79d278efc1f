//! MSR access to the LAPIC: x2APIC registers 0x800–0x8FF (SDM vol. 3
//! §11.12), the Hyper-V synthetic EOI/ICR/TPR MSRs, IA32_APIC_BASE, the
//! vAPIC TPR page word and the LINT0 NMI watchdog (port of
//! `kvm_x2apic_msr_*`, `kvm_hv_vapic_msr_*`, `kvm_lapic_set_base`,
//! `kvm_lapic_sync_{to,from}_vapic`, `kvm_apic_nmi_wd_deliver`).

use super::*;
use crate::apic_bus::DeliveryMode;
use crate::clock::{Clock, Timer};

impl<C: Clock, T: Timer> Lapic<C, T> {
    /// RDMSR of 0x800–0x8FF (port of `kvm_x2apic_msr_read`).
    pub fn x2apic_msr_read(&mut self, msr: u32) -> Result<u64, GeneralProtection> {
        if !self.x2apic_mode() || !(X2APIC_MSR_BASE..=X2APIC_MSR_LAST).contains(&msr) {
            return Err(GeneralProtection);
        }
        let r = ApicReg::from_offset((msr - X2APIC_MSR_BASE) << 4).ok_or(GeneralProtection)?;
        match r {
            ApicReg::Eoi | ApicReg::SelfIpi | ApicReg::Dfr | ApicReg::IcrHigh | ApicReg::Apr => {
                Err(GeneralProtection)
            }
            ApicReg::IcrLow => Ok(u64::from(self.reg(ApicReg::IcrLow))
                | (u64::from(self.reg(ApicReg::IcrHigh)) << 32)),
            other => Ok(u64::from(self.read_reg(other))),
        }
    }

    /// WRMSR of 0x800–0x8FF (port of `kvm_x2apic_msr_write`); the 64-bit ICR
    /// writes the destination before the command.
    pub fn x2apic_msr_write(
        &mut self,
        msr: u32,
        data: u64,
    ) -> Result<LapicAction, GeneralProtection> {
        if !self.x2apic_mode() || !(X2APIC_MSR_BASE..=X2APIC_MSR_LAST).contains(&msr) {
            return Err(GeneralProtection);
        }
        let r = ApicReg::from_offset((msr - X2APIC_MSR_BASE) << 4).ok_or(GeneralProtection)?;
        if matches!(r, ApicReg::Apr) {
            return Err(GeneralProtection);
        }
        if r != ApicReg::IcrLow && data >> 32 != 0 {
            return Err(GeneralProtection);
        }
        // SELF IPI: only the vector (bits 7:0); the rest is reserved and
        // a write of 1 to it faults (SDM vol. 3 §11.12.11; kvm-unit-tests'
        // msr.flat checks it).
        if r == ApicReg::SelfIpi && data & !0xff != 0 {
            return Err(GeneralProtection);
        }
        if r == ApicReg::IcrLow {
            self.set_reg(ApicReg::IcrHigh, (data >> 32) as u32);
        }
        self.write_reg(r, data as u32)
    }

    // ----- Hyper-V synthetic APIC MSRs, vAPIC page, NMI watchdog -----------

    /// Port of `kvm_hv_vapic_msr_write`: HV_X64_MSR_EOI / ICR / TPR map to
    /// the APIC registers (the 64-bit ICR writes the destination first).
    pub fn hv_vapic_msr_write(
        &mut self,
        msr: u32,
        data: u64,
    ) -> Result<LapicAction, GeneralProtection> {
        let r = match msr {
            HV_X64_MSR_EOI => ApicReg::Eoi,
            HV_X64_MSR_ICR => {
                let hi = (data >> 32) as u32;
                self.write_reg(ApicReg::IcrHigh, hi)?;
                ApicReg::IcrLow
            }
            HV_X64_MSR_TPR => ApicReg::Tpr,
            _ => return Err(GeneralProtection),
        };
        self.write_reg(r, data as u32)
    }

    /// Port of `kvm_hv_vapic_msr_read` (EOI is write-only: #GP).
    pub fn hv_vapic_msr_read(&mut self, msr: u32) -> Result<u64, GeneralProtection> {
        match msr {
            HV_X64_MSR_ICR => Ok(u64::from(self.reg(ApicReg::IcrLow))
                | (u64::from(self.reg(ApicReg::IcrHigh)) << 32)),
            HV_X64_MSR_TPR => Ok(u64::from(self.reg(ApicReg::Tpr))),
            _ => Err(GeneralProtection),
        }
    }

    /// The word `kvm_lapic_sync_to_vapic` stores in the guest's vAPIC page:
    /// TPR in 7:0, highest ISR class in 15:12, highest IRR vector in 31:24.
    pub fn vapic_word(&self) -> u32 {
        let tpr = self.reg(ApicReg::Tpr) & 0xff;
        let isr = u32::from(self.highest(Bitmap::Isr).unwrap_or(0));
        let irr = u32::from(self.highest(Bitmap::Irr).unwrap_or(0));
        tpr | ((isr & 0xf0) << 8) | (irr << 24)
    }

    /// Port of `kvm_lapic_sync_from_vapic`: take TPR from the vAPIC word.
    pub fn sync_from_vapic(&mut self, word: u32) {
        self.set_tpr(word & 0xff);
    }

    /// LINT0 unmasked in NMI mode (`apic_lvt_nmi_mode`): this APIC takes
    /// the PIT's NMI-watchdog ticks.
    pub fn lint0_nmi_mode(&self) -> bool {
        self.lvt(Lvt::Lint0) & (LVT_MASKED | 0x700) == DeliveryMode::Nmi.bits() << 8
    }

    /// Port of `kvm_apic_nmi_wd_deliver`: deliver through LINT0.
    pub fn nmi_wd_deliver(&mut self) -> bool {
        self.local_deliver(Lvt::Lint0)
    }

    // ----- other MSRs ------------------------------------------------------------

    /// IA32_APIC_BASE value.
    pub fn apic_base(&self) -> u64 {
        self.apic_base
    }

    /// WRMSR IA32_APIC_BASE (port of `kvm_lapic_set_base`; SDM §11.12.5
    /// state transitions: EXTD without EN, x2APIC → xAPIC and disabled →
    /// x2APIC are #GP; reserved bits #GP).
    pub fn set_apic_base(&mut self, value: u64) -> Result<(), GeneralProtection> {
        const RESERVED: u64 =
            !(APIC_BASE_ADDR_MASK | APIC_BASE_BSP | APIC_BASE_EXTD | APIC_BASE_ENABLE);
        if value & RESERVED != 0 {
            return Err(GeneralProtection);
        }
        let en = value & APIC_BASE_ENABLE != 0;
        let extd = value & APIC_BASE_EXTD != 0;
        let was_en = self.hw_enabled();
        let was_x2 = self.x2apic_mode();
        if extd && !en {
            return Err(GeneralProtection);
        }
        if was_x2 && en && !extd {
            return Err(GeneralProtection);
        }
        if !was_en && en && extd {
            return Err(GeneralProtection);
        }
        let bsp = if self.cfg.bsp { APIC_BASE_BSP } else { 0 };
        self.apic_base = (value & !APIC_BASE_BSP) | bsp;
        if extd {
            let id = self.cfg.id;
            // SDM §11.12.10.2: cluster ID = x2APIC ID[19:4], member bit = ID[3:0].
            self.set_reg(
                ApicReg::Ldr,
                (((id >> 4) & 0xffff) << 16) | (1 << (id & 0xf)),
            );
        }
        if !en {
            // Hardware disable: the x2APIC state and the ID return to reset
            // values on re-enable (SDM §11.4.3).
            self.reset();
            self.apic_base = (value & !APIC_BASE_BSP) | bsp;
        }
        Ok(())
    }
}
