//! The cascaded 8259A programmable interrupt controller pair of the PC.
//!
//! Port of `kvm_i8259.c`. Datasheet rules (Intel 8259A):
//! * A write to the command port with D4 = 1 is ICW1 and starts the
//!   initialization sequence ICW2 (vector base, T7–T3), ICW3 (cascade),
//!   ICW4 (if ICW1.IC4: µPM, AEOI, SFNM). Initialization clears the mask
//!   register and the edge sense latches, assigns IR7 the lowest priority,
//!   clears special mask mode and selects IRR for status reads.
//! * With D4 = 0: D3 = 1 is OCW3 (ESMM/SMM, poll, RR/RIS), D3 = 0 is OCW2
//!   (R/SL/EOI: non-specific, specific, rotating EOIs, set priority, rotate in
//!   AEOI mode). A data-port write outside initialization is OCW1 (the IMR).
//! * Priority: IRQ n has priority (n − lowest-priority − 1) mod 8; a request
//!   interrupts only if its priority is higher than every level in service
//!   (in special mask mode, masked in-service levels do not block; in special
//!   fully nested mode the master does not count IR2 in service).
//! * INTA: the highest request is moved from IRR to ISR (level-triggered
//!   requests stay in IRR), in AEOI mode the ISR bit is cleared at once; the
//!   master IR2 cascades to the slave; with no request the vector of IR7 is
//!   returned (spurious).
//! * Poll: after OCW3 with P = 1 the next read returns 0x80 | level if a
//!   request is pending (acknowledging it like INTA), else 0.
//! * ELCR (0x4d0/0x4d1, PIIX): per-pin level/edge, IRQ 0, 1, 2, 8, 13 fixed
//!   edge (masks 0xf8 / 0xde).
//!
//! Differences from the C driver: the slave output drives master IR2 as a
//! wire (the C pulsed IR2, which left a stale request behind when the slave
//! request went away); poll acknowledges like INTA and sets bit 7
//! (the C code returned the bare level and cleared ISR at once); special mask
//! mode is honoured in the priority computation (the C code ignored it).
//! ICW1 single mode and level-triggered mode are still not supported (the
//! C warns), and ICW3 is always expected, as in the C.

use crate::apic_bus::IrqStatus;

/// Master command/status port.
pub const PIC_MASTER_CMD: u16 = 0x20;
/// Master data (IMR) port.
pub const PIC_MASTER_DATA: u16 = 0x21;
/// Slave command/status port.
pub const PIC_SLAVE_CMD: u16 = 0xa0;
/// Slave data (IMR) port.
pub const PIC_SLAVE_DATA: u16 = 0xa1;
/// Master ELCR port.
pub const PIC_ELCR_MASTER: u16 = 0x4d0;
/// Slave ELCR port.
pub const PIC_ELCR_SLAVE: u16 = 0x4d1;
/// Number of IRQ lines of the pair.
pub const PIC_NUM_PINS: usize = 16;

/// Which chip of the pair.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PicChip {
    Master,
    Slave,
}

impl PicChip {
    const fn index(self) -> usize {
        match self {
            Self::Master => 0,
            Self::Slave => 1,
        }
    }
}

/// The I/O ports of the pair (`picdev_in_range`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PicPort {
    /// A0 = 0: ICW1, OCW2, OCW3 on write; IRR/ISR/poll on read.
    Command(PicChip),
    /// A0 = 1: ICW2–4 or OCW1 (IMR).
    Data(PicChip),
    /// Edge/level control register.
    Elcr(PicChip),
}

impl PicPort {
    /// Decode a port number.
    pub const fn from_port(port: u16) -> Option<Self> {
        match port {
            PIC_MASTER_CMD => Some(Self::Command(PicChip::Master)),
            PIC_MASTER_DATA => Some(Self::Data(PicChip::Master)),
            PIC_SLAVE_CMD => Some(Self::Command(PicChip::Slave)),
            PIC_SLAVE_DATA => Some(Self::Data(PicChip::Slave)),
            PIC_ELCR_MASTER => Some(Self::Elcr(PicChip::Master)),
            PIC_ELCR_SLAVE => Some(Self::Elcr(PicChip::Slave)),
            _ => None,
        }
    }
}

/// Where the chip is in its initialization sequence.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum InitState {
    /// Normal operation: data port writes are OCW1.
    #[default]
    Ready,
    /// Waiting for ICW2.
    Icw2,
    /// Waiting for ICW3.
    Icw3,
    /// Waiting for ICW4.
    Icw4,
}

impl InitState {
    const fn to_u8(self) -> u8 {
        match self {
            Self::Ready => 0,
            Self::Icw2 => 1,
            Self::Icw3 => 2,
            Self::Icw4 => 3,
        }
    }
    const fn from_u8(v: u8) -> Self {
        match v {
            1 => Self::Icw2,
            2 => Self::Icw3,
            3 => Self::Icw4,
            _ => Self::Ready,
        }
    }
}

/// OCW2 commands (bits 7:5 = R, SL, EOI).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Ocw2 {
    /// 000: clear rotate-in-AEOI.
    ClearRotateAeoi,
    /// 001: non-specific EOI.
    NonSpecificEoi,
    /// 010: no operation.
    Nop,
    /// 011: specific EOI of level L2–L0.
    SpecificEoi(u8),
    /// 100: set rotate-in-AEOI.
    SetRotateAeoi,
    /// 101: rotate on non-specific EOI.
    RotateNonSpecificEoi,
    /// 110: set priority (L becomes lowest).
    SetPriority(u8),
    /// 111: rotate on specific EOI.
    RotateSpecificEoi(u8),
}

impl Ocw2 {
    /// Decode an OCW2 byte.
    pub const fn decode(val: u8) -> Self {
        let l = val & 7;
        match val >> 5 {
            0 => Self::ClearRotateAeoi,
            1 => Self::NonSpecificEoi,
            2 => Self::Nop,
            3 => Self::SpecificEoi(l),
            4 => Self::SetRotateAeoi,
            5 => Self::RotateNonSpecificEoi,
            6 => Self::SetPriority(l),
            _ => Self::RotateSpecificEoi(l),
        }
    }
}

/// Saved state of one chip in the layout of `struct kvm_pic_state` (16 bytes).
/// Local mirror until `kvm-ioctl` owns the ABI struct.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PicState {
    pub last_irr: u8,
    pub irr: u8,
    pub imr: u8,
    pub isr: u8,
    pub priority_add: u8,
    pub irq_base: u8,
    pub read_reg_select: u8,
    pub poll: u8,
    pub special_mask: u8,
    pub init_state: u8,
    pub auto_eoi: u8,
    pub rotate_on_auto_eoi: u8,
    pub special_fully_nested_mode: u8,
    pub init4: u8,
    pub elcr: u8,
    pub elcr_mask: u8,
}
static_assertions::const_assert_eq!(core::mem::size_of::<PicState>(), 16);

fn bit(n: u8) -> u8 {
    1u8.checked_shl(u32::from(n)).unwrap_or(0)
}

/// One 8259A (port of `struct kvm_kpic_state`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
struct Chip {
    last_irr: u8,
    irr: u8,
    imr: u8,
    isr: u8,
    priority_add: u8,
    irq_base: u8,
    read_isr: bool,
    poll: bool,
    special_mask: bool,
    init_state: InitState,
    auto_eoi: bool,
    rotate_on_auto_eoi: bool,
    special_fully_nested_mode: bool,
    init4: bool,
    elcr: u8,
    elcr_mask: u8,
}

impl Chip {
    fn new(elcr_mask: u8) -> Self {
        Self {
            elcr_mask,
            ..Self::default()
        }
    }

    /// Port of `pic_set_irq1`: edge/level latch of one input.
    fn set_irq1(&mut self, irq: u8, level: bool) -> IrqStatus {
        let mask = bit(irq);
        let mut fresh = true;
        if self.elcr & mask != 0 {
            if level {
                fresh = self.irr & mask == 0;
                self.irr |= mask;
                self.last_irr |= mask;
            } else {
                self.irr &= !mask;
                self.last_irr &= !mask;
            }
        } else if level {
            if self.last_irr & mask == 0 {
                fresh = self.irr & mask == 0;
                self.irr |= mask;
            }
            self.last_irr |= mask;
        } else {
            self.last_irr &= !mask;
        }
        if self.imr & mask != 0 {
            IrqStatus::Dropped
        } else if fresh {
            IrqStatus::Delivered
        } else {
            IrqStatus::Coalesced
        }
    }

    /// Port of `get_priority`: priority (0 = highest) of the best bit in
    /// `mask`, 8 if none.
    fn priority(&self, mask: u8) -> u8 {
        (0..8u8)
            .find(|p| mask & bit(p.wrapping_add(self.priority_add) & 7) != 0)
            .unwrap_or(8)
    }

    /// Port of `pic_get_irq`: the level this chip wants to raise, if any.
    fn get_irq(&self, is_master: bool) -> Option<u8> {
        let priority = self.priority(self.irr & !self.imr);
        if priority == 8 {
            return None;
        }
        let mut in_service = self.isr;
        if self.special_fully_nested_mode && is_master {
            in_service &= !bit(2);
        }
        if self.special_mask {
            in_service &= !self.imr;
        }
        (priority < self.priority(in_service))
            .then_some(priority.wrapping_add(self.priority_add) & 7)
    }

    /// Port of `pic_intack`. Returns the level if its ISR bit was cleared by
    /// automatic EOI (for the ack notifiers).
    fn intack(&mut self, irq: u8) -> Option<u8> {
        self.isr |= bit(irq);
        if self.elcr & bit(irq) == 0 {
            self.irr &= !bit(irq);
        }
        if self.auto_eoi {
            if self.rotate_on_auto_eoi {
                self.priority_add = irq.wrapping_add(1) & 7;
            }
            self.isr &= !bit(irq);
            return Some(irq);
        }
        None
    }

    /// Port of `kvm_pic_reset` (ICW1 initialization).
    fn init_reset(&mut self) {
        let elcr = self.elcr;
        let elcr_mask = self.elcr_mask;
        *self = Self {
            elcr,
            elcr_mask,
            ..Self::default()
        };
    }

    fn save(&self) -> PicState {
        PicState {
            last_irr: self.last_irr,
            irr: self.irr,
            imr: self.imr,
            isr: self.isr,
            priority_add: self.priority_add,
            irq_base: self.irq_base,
            read_reg_select: u8::from(self.read_isr),
            poll: u8::from(self.poll),
            special_mask: u8::from(self.special_mask),
            init_state: self.init_state.to_u8(),
            auto_eoi: u8::from(self.auto_eoi),
            rotate_on_auto_eoi: u8::from(self.rotate_on_auto_eoi),
            special_fully_nested_mode: u8::from(self.special_fully_nested_mode),
            init4: u8::from(self.init4),
            elcr: self.elcr,
            elcr_mask: self.elcr_mask,
        }
    }

    fn restore(&mut self, s: &PicState) {
        *self = Self {
            last_irr: s.last_irr,
            irr: s.irr,
            imr: s.imr,
            isr: s.isr,
            priority_add: s.priority_add & 7,
            irq_base: s.irq_base,
            read_isr: s.read_reg_select != 0,
            poll: s.poll != 0,
            special_mask: s.special_mask != 0,
            init_state: InitState::from_u8(s.init_state),
            auto_eoi: s.auto_eoi != 0,
            rotate_on_auto_eoi: s.rotate_on_auto_eoi != 0,
            special_fully_nested_mode: s.special_fully_nested_mode != 0,
            init4: s.init4 != 0,
            elcr: s.elcr & s.elcr_mask,
            elcr_mask: s.elcr_mask,
        };
    }
}

/// The master/slave pair (port of `struct kvm_pic`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PicPair {
    chips: [Chip; 2],
    /// The INT line to the CPU (master output).
    output: bool,
    /// IRQs (0–15) whose ISR bit was cleared since the last
    /// [`PicPair::take_acked`]: the ack notifiers to run.
    acked: u16,
}

impl Default for PicPair {
    fn default() -> Self {
        Self::new()
    }
}

impl PicPair {
    /// A fresh pair (port of `kvm_create_pic`): ELCR masks 0xf8 / 0xde.
    pub fn new() -> Self {
        Self {
            chips: [Chip::new(0xf8), Chip::new(0xde)],
            output: false,
            acked: 0,
        }
    }

    fn chip(&self, c: PicChip) -> Chip {
        self.chips.get(c.index()).copied().unwrap_or_default()
    }

    fn chip_mut(&mut self, c: PicChip) -> Option<&mut Chip> {
        self.chips.get_mut(c.index())
    }

    /// The INT output to the CPU: an interrupt is waiting for INTA.
    pub fn output(&self) -> bool {
        self.output
    }

    /// Drain the acknowledged-IRQ bitmap (ack notifiers, e.g. PIT reinjection).
    pub fn take_acked(&mut self) -> u16 {
        core::mem::take(&mut self.acked)
    }

    /// Port of `pic_clear_isr`: EOI of one level, recorded for ack notifiers.
    fn clear_isr(&mut self, c: PicChip, irq: u8) {
        if let Some(ch) = self.chip_mut(c) {
            ch.isr &= !bit(irq);
        }
        self.note_ack(c, irq);
    }

    fn note_ack(&mut self, c: PicChip, irq: u8) {
        let line = u32::from(irq & 7) + if c == PicChip::Slave { 8 } else { 0 };
        self.acked |= 1u16.checked_shl(line).unwrap_or(0);
    }

    /// Port of `pic_update_irq`: cascade the slave into master IR2 and
    /// recompute the CPU line.
    fn update(&mut self) {
        let slave_out = self.chip(PicChip::Slave).get_irq(false).is_some();
        if let Some(m) = self.chip_mut(PicChip::Master) {
            // The slave INT output is wired to master IR2: the request is
            // latched while it is high and withdrawn when it drops (a request
            // must stay high until INTA, 8259A "Interrupt Sequence").
            if slave_out {
                m.irr |= bit(2);
            } else {
                m.irr &= !bit(2);
            }
            m.last_irr &= !bit(2);
        }
        self.output = self.chip(PicChip::Master).get_irq(true).is_some();
    }

    /// Drive IRQ line `irq` (0–15) to `level` (port of `kvm_pic_set_irq`).
    pub fn set_irq(&mut self, irq: usize, level: bool) -> IrqStatus {
        let (c, pin) = match irq {
            0..=7 => (PicChip::Master, irq as u8),
            8..=15 => (PicChip::Slave, (irq - 8) as u8),
            _ => return IrqStatus::Dropped,
        };
        let ret = self
            .chip_mut(c)
            .map_or(IrqStatus::Dropped, |ch| ch.set_irq1(pin, level));
        self.update();
        ret
    }

    /// INTA cycle: the vector to inject (port of `kvm_pic_read_irq`).
    pub fn read_irq(&mut self) -> u8 {
        let master = self.chip(PicChip::Master);
        let slave_base = self.chip(PicChip::Slave).irq_base;
        let vector = match master.get_irq(true) {
            Some(irq) => {
                self.ack(PicChip::Master, irq);
                if irq == 2 {
                    let sirq = match self.chip(PicChip::Slave).get_irq(false) {
                        Some(s) => {
                            self.ack(PicChip::Slave, s);
                            s
                        }
                        None => 7,
                    };
                    slave_base.wrapping_add(sirq)
                } else {
                    master.irq_base.wrapping_add(irq)
                }
            }
            None => master.irq_base.wrapping_add(7),
        };
        self.update();
        vector
    }

    fn ack(&mut self, c: PicChip, irq: u8) {
        if let Some(done) = self.chip_mut(c).and_then(|ch| ch.intack(irq)) {
            self.note_ack(c, done);
        }
    }

    /// Port I/O write of one byte (port of `picdev_write`); other ports are
    /// ignored.
    pub fn write(&mut self, port: u16, val: u8) {
        match PicPort::from_port(port) {
            Some(PicPort::Command(c)) => self.write_command(c, val),
            Some(PicPort::Data(c)) => self.write_data(c, val),
            Some(PicPort::Elcr(c)) => {
                if let Some(ch) = self.chip_mut(c) {
                    ch.elcr = val & ch.elcr_mask;
                }
            }
            None => {}
        }
    }

    /// Port of the A0 = 0 half of `pic_ioport_write`.
    fn write_command(&mut self, c: PicChip, val: u8) {
        if val & 0x10 != 0 {
            // ICW1. Requests and in-service levels dropped by the
            // initialization are reported as acknowledged so ack notifiers
            // (PIT reinjection) do not wait forever (port of the ack loop of
            // `kvm_pic_reset`).
            let old = self.chip(c);
            for irq in 0..8u8 {
                if (old.irr | old.isr) & bit(irq) != 0 {
                    self.note_ack(c, irq);
                }
            }
            if let Some(ch) = self.chip_mut(c) {
                ch.init_reset();
                ch.init_state = InitState::Icw2;
                ch.init4 = val & 1 != 0;
            }
            self.update();
        } else if val & 0x08 != 0 {
            // OCW3.
            if let Some(ch) = self.chip_mut(c) {
                if val & 0x04 != 0 {
                    ch.poll = true;
                }
                if val & 0x02 != 0 {
                    ch.read_isr = val & 1 != 0;
                }
                if val & 0x40 != 0 {
                    ch.special_mask = val & 0x20 != 0;
                }
            }
            self.update();
        } else {
            self.write_ocw2(c, Ocw2::decode(val));
        }
    }

    /// OCW2 (EOI, rotation, priority).
    fn write_ocw2(&mut self, c: PicChip, cmd: Ocw2) {
        let ch = self.chip(c);
        match cmd {
            Ocw2::ClearRotateAeoi | Ocw2::SetRotateAeoi => {
                if let Some(ch) = self.chip_mut(c) {
                    ch.rotate_on_auto_eoi = cmd == Ocw2::SetRotateAeoi;
                }
            }
            Ocw2::NonSpecificEoi | Ocw2::RotateNonSpecificEoi => {
                let p = ch.priority(ch.isr);
                if p != 8 {
                    let irq = p.wrapping_add(ch.priority_add) & 7;
                    if cmd == Ocw2::RotateNonSpecificEoi
                        && let Some(m) = self.chip_mut(c)
                    {
                        m.priority_add = irq.wrapping_add(1) & 7;
                    }
                    self.clear_isr(c, irq);
                }
            }
            Ocw2::SpecificEoi(irq) => self.clear_isr(c, irq),
            Ocw2::SetPriority(irq) => {
                if let Some(m) = self.chip_mut(c) {
                    m.priority_add = irq.wrapping_add(1) & 7;
                }
            }
            Ocw2::RotateSpecificEoi(irq) => {
                if let Some(m) = self.chip_mut(c) {
                    m.priority_add = irq.wrapping_add(1) & 7;
                }
                self.clear_isr(c, irq);
            }
            Ocw2::Nop => {}
        }
        self.update();
    }

    /// The A0 = 1 half of `pic_ioport_write`: ICW2–4 or OCW1.
    fn write_data(&mut self, c: PicChip, val: u8) {
        if let Some(ch) = self.chip_mut(c) {
            match ch.init_state {
                InitState::Ready => ch.imr = val,
                InitState::Icw2 => {
                    ch.irq_base = val & 0xf8;
                    ch.init_state = InitState::Icw3;
                }
                InitState::Icw3 => {
                    ch.init_state = if ch.init4 {
                        InitState::Icw4
                    } else {
                        InitState::Ready
                    };
                }
                InitState::Icw4 => {
                    ch.special_fully_nested_mode = val & 0x10 != 0;
                    ch.auto_eoi = val & 0x02 != 0;
                    ch.init_state = InitState::Ready;
                }
            }
        }
        self.update();
    }

    /// Port I/O read of one byte (port of `picdev_read`); unknown ports read 0.
    pub fn read(&mut self, port: u16) -> u8 {
        match PicPort::from_port(port) {
            Some(PicPort::Command(c)) | Some(PicPort::Data(c)) if self.chip(c).poll => {
                if let Some(ch) = self.chip_mut(c) {
                    ch.poll = false;
                }
                self.poll_read(c)
            }
            Some(PicPort::Command(c)) => {
                let ch = self.chip(c);
                if ch.read_isr { ch.isr } else { ch.irr }
            }
            Some(PicPort::Data(c)) => self.chip(c).imr,
            Some(PicPort::Elcr(c)) => self.chip(c).elcr,
            None => 0,
        }
    }

    /// Poll command read (8259A "Poll Command"): acknowledges like INTA.
    fn poll_read(&mut self, c: PicChip) -> u8 {
        let got = self.chip(c).get_irq(c == PicChip::Master);
        let ret = match got {
            Some(irq) => {
                self.ack(c, irq);
                0x80 | irq
            }
            None => 0,
        };
        self.update();
        ret
    }

    /// KVM_GET_IRQCHIP for one chip.
    pub fn save(&self, c: PicChip) -> PicState {
        self.chip(c).save()
    }

    /// KVM_SET_IRQCHIP for one chip; the CPU line is recomputed.
    pub fn restore(&mut self, c: PicChip, st: &PicState) {
        if let Some(ch) = self.chip_mut(c) {
            ch.restore(st);
        }
        self.update();
    }
}

#[cfg(test)]
mod tests;
