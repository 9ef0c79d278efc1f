//! The in-kernel interrupt controllers of a VM and their ioctls: port of
//! KVM_CREATE_IRQCHIP (kvm.c:2173: `kvm_create_pic`, `kvm_ioapic_init`,
//! `kvm_setup_default_irq_routing`), KVM_IRQ_LINE(_STATUS) (`kvm_set_irq`),
//! `kvm_vm_ioctl_get_irqchip`/`kvm_vm_ioctl_set_irqchip` and
//! `kvm_set_irq_routing`.
//!
//! The ABI structs of `kvm-ioctl` and the devices' `*State` structs have
//! the same layout; the conversions here copy field by field (and are
//! tested byte for byte both ways).
//!
//! Differences from the C driver:
//! * GET_IRQCHIP zeroes the rest of the 512-byte `chip` union (the C left
//!   stack bytes there).
//! * The LAPIC version register does not follow the guest CPUID's x2APIC
//!   bit (`kvm_apic_set_version`): the LAPIC model fixes "directed EOI" at
//!   creation, off.

use alloc::vec::Vec;

use kvm_devices::apic_bus::{ApicMessage, DeliveryOutcome, IrqStatus, TriggerMode};
use kvm_devices::i8254::Pit;
use kvm_devices::i8259::{PicChip, PicPair, PicState};
use kvm_devices::ioapic::{IOAPIC_NUM_PINS, Ioapic, IoapicState};
use kvm_devices::iobus::{IoBus, IoBusError};
use kvm_devices::irq_routing::{
    IrqChip, IrqChipSet, IrqRouter, IrqRoutingEntryAbi, KVM_USERSPACE_IRQ_SOURCE_ID, MsiMessage,
    RoutingError, RoutingTable,
};
use kvm_devices::lapic::{Lapic, LapicAction};
use kvm_devices::lapic_bus::{self, LapicSet};
use kvm_ioctl::Errno;
use kvm_ioctl::abi::{
    IrqchipId, Pod, kvm_ioapic_redirtbl, kvm_ioapic_state, kvm_irq_routing_entry, kvm_irqchip,
    kvm_pic_state,
};

use super::services::Services;
use super::vm::VmShared;

/// Devices on the PIO bus (`KVM_PIO_BUS`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PioDev {
    /// The master 8259A (0x20–0x21).
    PicMaster,
    /// The slave 8259A (0xa0–0xa1).
    PicSlave,
    /// The ELCR pair (0x4d0–0x4d1).
    Elcr,
    /// The i8254 (0x40–0x43).
    Pit,
    /// The speaker port / counter 2 gate (0x61, with KVM_PIT_SPEAKER_DUMMY).
    Speaker,
}

/// Devices on the MMIO bus (`KVM_MMIO_BUS`); the LAPICs are found through
/// the VCPU and the coalesced zones through [`VmShared::coalesced`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MmioDev {
    /// The IOAPIC (0xfec00000, 0x100 bytes).
    Ioapic,
}

/// The PIC pair and IOAPIC (`kvm->arch.vpic`, `kvm->arch.vioapic`).
pub struct Irqchip {
    /// The 8259A pair.
    pub pic: PicPair,
    /// The IOAPIC.
    pub ioapic: Ioapic,
}

/// The PIT of a VM (`kvm->arch.vpit`).
pub struct PitDev<S: Services> {
    /// The i8254 model.
    pub pit: Pit<S::Clock, S::Timer>,
    /// KVM_CREATE_PIT2's flags.
    pub flags: u32,
    /// Its IRQ source id (`irq_source_id`).
    pub source_id: u8,
}

/// Notifier token of the PIT (ack notifier on GSI 0, mask notifier on IRQ 0).
pub const PIT_NOTIFIER_TOKEN: u32 = 1;

/// The devices and routing of a VM.
pub struct Devices<S: Services> {
    /// PIC + IOAPIC once KVM_CREATE_IRQCHIP succeeded.
    pub irqchip: Option<Irqchip>,
    /// GSI routing, line states, source ids and notifiers (exists from VM
    /// creation, as `irq_sources_bitmap` does; the table is empty until
    /// KVM_CREATE_IRQCHIP or KVM_SET_GSI_ROUTING).
    pub router: IrqRouter,
    /// The LAPICs, in VCPU creation order of the VCPUs that have one.
    pub lapics: Vec<Lapic<S::Clock, S::Timer>>,
    /// VCPU index → index in `lapics` (`vcpu->arch.apic`; `None` for a VCPU
    /// created before the irqchip).
    pub lapic_of: Vec<Option<usize>>,
    /// The PIT.
    pub pit: Option<PitDev<S>>,
    /// The PIO bus.
    pub pio: IoBus<PioDev>,
    /// The MMIO bus.
    pub mmio: IoBus<MmioDev>,
    /// Something was delivered to the LAPICs (an IPI, an IOAPIC or PIC
    /// interrupt, an MSI) since the VCPU thread last looked: the other
    /// VCPUs must be kicked (`kvm_vcpu_kick` in `__apic_accept_irq`).
    kicks: bool,
}

impl<S: Services> Default for Devices<S> {
    fn default() -> Self {
        Self::new()
    }
}

impl<S: Services> Devices<S> {
    /// No devices, an empty routing table.
    pub fn new() -> Self {
        Devices {
            irqchip: None,
            router: IrqRouter::new(RoutingTable::default()),
            lapics: Vec::new(),
            lapic_of: Vec::new(),
            pit: None,
            pio: IoBus::new(),
            mmio: IoBus::new(),
            kicks: false,
        }
    }

    /// Whether anything reached the LAPICs since the last call (see
    /// `kicks`); clears it.
    pub fn take_kicks(&mut self) -> bool {
        core::mem::take(&mut self.kicks)
    }

    /// `irqchip_in_kernel`.
    pub fn has_irqchip(&self) -> bool {
        self.irqchip.is_some()
    }

    /// The LAPIC of VCPU `index`.
    pub fn lapic(&mut self, index: u32) -> Option<&mut Lapic<S::Clock, S::Timer>> {
        let i = (*self.lapic_of.get(index as usize)?)?;
        self.lapics.get_mut(i)
    }

    /// Port of `kvm_set_irq` from `source`: drive `gsi` to `level` on every
    /// route; the C status (see [`CStatus`]).
    pub fn set_irq(&mut self, source: u8, gsi: u32, level: bool) -> i32 {
        let Devices {
            irqchip,
            router,
            lapics,
            ..
        } = self;
        let Some(chip) = irqchip.as_mut() else {
            return -1;
        };
        let mut sink = LapicSet(lapics.as_mut_slice());
        let mut chips = CStatus {
            pic: &mut chip.pic,
            ioapic: &mut chip.ioapic,
            apics: &mut sink,
            ret: -1,
        };
        router.set_irq(source, gsi, level, &mut chips);
        if chips.ret > 0 {
            self.kicks = true;
        }
        chips.ret
    }

    // ----- for the run loop and the timer callbacks (VMX work) ----------

    /// Bring the PIT and VCPU `index`'s LAPIC up to date with the clock
    /// (`kvm_timer_fire` ran in the cyclic in the C driver; here the cyclic
    /// only wakes the VCPU and its thread runs the models).
    pub fn poll_timers(&mut self, index: u32) {
        if let Some(p) = self.pit.as_mut() {
            p.pit.poll_timer();
        }
        if let Some(l) = self.lapic(index) {
            l.poll_timer();
        }
    }

    /// Port of `kvm_inject_pit_timer_irqs` / `__inject_pit_timer_intr`:
    /// if the PIT has a backlog and its last pulse was acknowledged, pulse
    /// GSI 0 from the PIT's source id and deliver the NMI-watchdog tick to
    /// every LAPIC whose LINT0 is in NMI mode. Returns whether it pulsed.
    pub fn inject_pit_timer_irqs(&mut self) -> bool {
        let Some(p) = self.pit.as_mut() else {
            return false;
        };
        if !p.pit.take_irq0() {
            return false;
        }
        let source = p.source_id;
        self.set_irq(source, 0, true);
        self.set_irq(source, 0, false);
        for l in self.lapics.iter_mut().filter(|l| l.lint0_nmi_mode()) {
            l.nmi_wd_deliver();
        }
        true
    }

    /// Runs the ack notifiers of `chip`/`pin` (port of
    /// kvm_irq_comm.c:kvm_notify_acked_irq): the PIT's is `kvm_pit_ack_irq`.
    /// Fires `kvm-ack-irq(irqchip, pin)` first, as the C did, with the C's
    /// arguments: the chip number (0 PIC master, 1 PIC slave, 2 IOAPIC)
    /// and, for the PICs, the line 0–15 (`pic_clear_isr` passed `irq + 8`
    /// for the slave), for the IOAPIC the pin.
    fn notify_acked(&mut self, chip: IrqChip, pin: u8) {
        let (irqchip, c_pin) = ack_probe_args(chip, pin);
        kvm_kstat::sdt::ack_irq(irqchip, c_pin);
        let Devices { router, pit, .. } = self;
        router.notify_acked(chip, pin, &mut |token| {
            if token == PIT_NOTIFIER_TOKEN
                && let Some(p) = pit.as_mut()
            {
                p.pit.ack_irq0();
            }
        });
    }

    /// After an INTA or EOI at the PIC: the ack notifiers of every line
    /// whose ISR bit was cleared (`pic_clear_isr`).
    pub fn process_pic_acks(&mut self) {
        let acked = match self.irqchip.as_mut() {
            Some(c) => c.pic.take_acked(),
            None => return,
        };
        for line in 0..16u8 {
            if acked & (1 << line) != 0 {
                let chip = if line < 8 {
                    IrqChip::PicMaster
                } else {
                    IrqChip::PicSlave
                };
                self.notify_acked(chip, line % 8);
            }
        }
    }

    /// Port of `kvm_ioapic_update_eoi`: a LAPIC's EOI of `vector` reaches
    /// the IOAPIC; ack notifiers of the pins it names run.
    pub fn ioapic_eoi(&mut self, vector: u8, trigger: TriggerMode) {
        let acked = {
            let Devices {
                irqchip, lapics, ..
            } = self;
            let Some(c) = irqchip.as_mut() else {
                return;
            };
            c.ioapic
                .eoi(vector, trigger, &mut LapicSet(lapics.as_mut_slice()))
        };
        for pin in 0..IOAPIC_NUM_PINS as u8 {
            if acked & (1 << pin) != 0 {
                self.notify_acked(IrqChip::Ioapic, pin);
            }
        }
    }

    /// An MMIO write to the IOAPIC window (`ioapic_mmio_write`; 1- and
    /// 2-byte writes are dropped by the caller as in the C); a mask change
    /// fires the mask notifiers (`kvm_fire_mask_notifiers`: the PIT's
    /// `pit_mask_notifer`).
    pub fn ioapic_mmio_write(&mut self, offset: u64, val: u32) {
        let change = {
            let Devices {
                irqchip, lapics, ..
            } = self;
            let Some(c) = irqchip.as_mut() else {
                return;
            };
            c.ioapic
                .write(offset, val, &mut LapicSet(lapics.as_mut_slice()))
        };
        let Some(change) = change else {
            return;
        };
        let Devices { router, pit, .. } = self;
        let pin = u32::try_from(change.pin).unwrap_or(u32::MAX);
        router.fire_mask_notifiers(pin, change.masked, &mut |token, masked| {
            if token == PIT_NOTIFIER_TOKEN
                && let Some(p) = pit.as_mut()
            {
                p.pit.mask_irq0(masked);
            }
        });
    }

    /// Carries out a LAPIC register write's side effect for the LAPIC at
    /// `lapics[src]`: an IPI goes to the LAPICs (`apic_send_ipi`), a level
    /// EOI to the IOAPIC (`apic_set_eoi`).
    pub fn apply_lapic_action(&mut self, src: usize, action: LapicAction) {
        match action {
            LapicAction::None => {}
            LapicAction::SendIpi(msg) => {
                // `apic_send_ipi`'s probe: the ICR low word as written
                // (delivery status clear) and the decoded destination.
                let icr_low = self.lapics.get_mut(src).map_or(0, |l| l.read(APIC_ICR));
                kvm_kstat::sdt::apic_ipi(icr_low as usize, msg.dest_id as usize);
                lapic_bus::deliver(&mut self.lapics, Some(src), &msg);
                self.kicks = true;
            }
            LapicAction::IoapicEoi(vector) => self.ioapic_eoi(vector, TriggerMode::Level),
        }
    }

    /// RDMSR of an x2APIC register (0x800–0x8FF) of VCPU `index`'s LAPIC
    /// (`kvm_x2apic_msr_read`); `None` if it has no LAPIC, `Some(Err)` for
    /// the #GP the SDM gives (xAPIC mode, reserved register).
    pub fn x2apic_msr_read(
        &mut self,
        index: u32,
        msr: u32,
    ) -> Option<Result<u64, kvm_devices::lapic::GeneralProtection>> {
        Some(self.lapic(index)?.x2apic_msr_read(msr))
    }

    /// WRMSR of an x2APIC register, side effects (IPIs, EOI broadcast)
    /// included (`kvm_x2apic_msr_write`).
    pub fn x2apic_msr_write(
        &mut self,
        index: u32,
        msr: u32,
        data: u64,
    ) -> Option<Result<(), kvm_devices::lapic::GeneralProtection>> {
        let i = (*self.lapic_of.get(index as usize)?)?;
        let r = self.lapics.get_mut(i)?.x2apic_msr_write(msr, data);
        Some(r.map(|action| self.apply_lapic_action(i, action)))
    }

    /// Port of kvm_lapic.c:`kvm_hv_vapic_msr_write`: a Hyper-V synthetic
    /// APIC MSR write as a LAPIC register write at `reg` (ICR: the high
    /// word first), side effects included. `None` without a LAPIC.
    pub fn hv_vapic_msr_write(&mut self, index: u32, reg: u32, data: u64) -> Option<()> {
        let i = (*self.lapic_of.get(index as usize)?)?;
        let lapic = self.lapics.get_mut(i)?;
        if reg == APIC_ICR {
            let high = lapic.write(APIC_ICR2, (data >> 32) as u32);
            self.apply_lapic_action(i, high);
        }
        let action = self.lapics.get_mut(i)?.write(reg, data as u32);
        self.apply_lapic_action(i, action);
        Some(())
    }

    /// Port of kvm_lapic.c:`kvm_hv_vapic_msr_read`: the LAPIC register
    /// at `reg` (ICR: with ICR2 as the high word). `None` without a LAPIC.
    pub fn hv_vapic_msr_read(&mut self, index: u32, reg: u32) -> Option<u64> {
        let lapic = self.lapic(index)?;
        let low = u64::from(lapic.read(reg));
        let high = if reg == APIC_ICR {
            u64::from(lapic.read(APIC_ICR2))
        } else {
            0
        };
        Some((high << 32) | low)
    }

    /// A guest MMIO write to VCPU `index`'s LAPIC page
    /// (`apic_mmio_write`), side effects included. `None` if the VCPU has
    /// no LAPIC.
    pub fn lapic_mmio_write(
        &mut self,
        index: u32,
        offset: u64,
        len: usize,
        val: u32,
    ) -> Option<()> {
        let i = (*self.lapic_of.get(index as usize)?)?;
        let action = self.lapics.get_mut(i)?.mmio_write(offset, len, val);
        self.apply_lapic_action(i, action);
        Some(())
    }
}

/// `APIC_ICR`: offset of the ICR's low word in the LAPIC page.
const APIC_ICR: u32 = 0x300;
/// `APIC_ICR2`: the ICR's high word (destination).
const APIC_ICR2: u32 = 0x310;

/// The arguments of `kvm-ack-irq` for an ack of `pin` of `chip`, as
/// kvm_i8259.c:pic_clear_isr and kvm_ioapic.c:__kvm_ioapic_update_eoi
/// passed them to `kvm_notify_acked_irq`: (`KVM_IRQCHIP_*`, `irq`), where a
/// slave PIC line is 8–15.
pub fn ack_probe_args(chip: IrqChip, pin: u8) -> (usize, usize) {
    match chip {
        IrqChip::PicMaster => (0, usize::from(pin)),
        IrqChip::PicSlave => (1, usize::from(pin) + 8),
        IrqChip::Ioapic => (2, usize::from(pin)),
    }
}

/// The irqchips as `kvm_set_irq` sees them, adding up the C status:
/// each route's result (`kvm_pic_set_irq`/`kvm_ioapic_set_irq`: 1
/// delivered, 0 coalesced, -1 masked/dropped; `kvm_set_msi`: the number of
/// LAPICs that accepted, 0 coalesced, -1 none) is summed over the routes
/// that returned ≥ 0; -1 if none did (`ret = r + ((ret < 0) ? 0 : ret)`).
pub struct CStatus<'a, L: kvm_devices::apic_bus::ApicSink> {
    pic: &'a mut PicPair,
    ioapic: &'a mut Ioapic,
    apics: &'a mut L,
    /// The accumulated status.
    pub ret: i32,
}

impl<L: kvm_devices::apic_bus::ApicSink> CStatus<'_, L> {
    fn add(&mut self, r: i32) {
        if r >= 0 {
            self.ret = r.saturating_add(self.ret.max(0));
        }
    }
}

fn c_status(s: IrqStatus) -> i32 {
    match s {
        IrqStatus::Delivered => 1,
        IrqStatus::Coalesced => 0,
        IrqStatus::Dropped => -1,
    }
}

impl<L: kvm_devices::apic_bus::ApicSink> IrqChipSet for CStatus<'_, L> {
    fn set_pic_irq(&mut self, line: usize, level: bool) -> IrqStatus {
        let r = self.pic.set_irq(line, level);
        // `kvm_pic_set_irq`'s probe: chip, pin, ELCR, IMR, coalesced.
        let st = self.pic.save(if line < 8 {
            PicChip::Master
        } else {
            PicChip::Slave
        });
        kvm_kstat::sdt::pic_set_irq(
            line >> 3,
            line & 7,
            usize::from(st.elcr),
            usize::from(st.imr),
            usize::from(r == IrqStatus::Coalesced),
        );
        self.add(c_status(r));
        r
    }
    fn set_ioapic_irq(&mut self, pin: usize, level: bool) -> IrqStatus {
        let r = self.ioapic.set_irq(pin, level, self.apics);
        // `kvm_ioapic_set_irq`'s probe: redirection entry, pin, coalesced.
        let entry = self.ioapic.entry(pin).map_or(0, |e| e.0);
        kvm_kstat::sdt::ioapic_set_irq(entry as usize, pin, usize::from(r == IrqStatus::Coalesced));
        self.add(c_status(r));
        r
    }
    /// `kvm_set_msi`'s probe: `kvm-msi-set-irq(address_lo, data)`.
    fn msi_fired(&mut self, msi: &MsiMessage) {
        kvm_kstat::sdt::msi_set_irq(msi.address_lo as usize, msi.data as usize);
    }
    fn deliver_msi(&mut self, msg: &ApicMessage) -> DeliveryOutcome {
        let r = self.apics.deliver(msg);
        self.add(match r {
            DeliveryOutcome::NoDestination => -1,
            DeliveryOutcome::Coalesced => 0,
            DeliveryOutcome::Accepted(n) => i32::try_from(n).unwrap_or(i32::MAX),
        });
        r
    }
}

/// KVM_CREATE_IRQCHIP (the dispatcher checked none exists): PIC pair on
/// 0x20/0xa0/0x4d0, IOAPIC at 0xfec00000, the default routing table.
// Out of line: its locals (ABI state structs) must not join the
// dispatcher's frame (kernel stack budget, `make` --max-frame).
#[inline(never)]
pub(crate) fn create<S: Services>(vm: &VmShared<S>) -> Result<i32, Errno> {
    let table = RoutingTable::default_table().map_err(routing_errno)?;
    let mut d = vm.devices().lock();
    if d.irqchip.is_some() {
        return Err(Errno::EEXIST);
    }
    // Register on copies so a full bus changes nothing.
    let mut pio = d.pio.clone();
    let mut mmio = d.mmio.clone();
    // A full bus: ENOMEM, the errno of every failure of the C's
    // KVM_CREATE_IRQCHIP.
    let bus = |_: IoBusError| Errno::ENOMEM;
    pio.register(0x20, 2, PioDev::PicMaster).map_err(bus)?;
    pio.register(0xa0, 2, PioDev::PicSlave).map_err(bus)?;
    pio.register(0x4d0, 2, PioDev::Elcr).map_err(bus)?;
    mmio.register(
        kvm_devices::ioapic::IOAPIC_DEFAULT_BASE_ADDRESS,
        kvm_devices::ioapic::IOAPIC_MEM_LENGTH,
        MmioDev::Ioapic,
    )
    .map_err(bus)?;
    d.pio = pio;
    d.mmio = mmio;
    d.irqchip = Some(Irqchip {
        pic: PicPair::new(),
        ioapic: Ioapic::new(),
    });
    d.router.set_table(table);
    vm.debug().lock().set_routes(d.router.table());
    Ok(0)
}

/// KVM_IRQ_LINE / KVM_IRQ_LINE_STATUS: `kvm_set_irq(kvm,
/// KVM_USERSPACE_IRQ_SOURCE_ID, irq, level)`; the value is the status.
// Out of line: its locals (ABI state structs) must not join the
// dispatcher's frame (kernel stack budget, `make` --max-frame).
#[inline(never)]
pub(crate) fn irq_line<S: Services>(vm: &VmShared<S>, irq: u32, level: u32) -> Result<i32, Errno> {
    let mut d = vm.devices().lock();
    if d.irqchip.is_none() {
        return Err(Errno::ENXIO);
    }
    Ok(d.set_irq(KVM_USERSPACE_IRQ_SOURCE_ID, irq, level != 0))
}

/// `kvm_pic_state` from the model's state.
pub fn pic_to_abi(s: &PicState) -> kvm_pic_state {
    kvm_pic_state {
        last_irr: s.last_irr,
        irr: s.irr,
        imr: s.imr,
        isr: s.isr,
        priority_add: s.priority_add,
        irq_base: s.irq_base,
        read_reg_select: s.read_reg_select,
        poll: s.poll,
        special_mask: s.special_mask,
        init_state: s.init_state,
        auto_eoi: s.auto_eoi,
        rotate_on_auto_eoi: s.rotate_on_auto_eoi,
        special_fully_nested_mode: s.special_fully_nested_mode,
        init4: s.init4,
        elcr: s.elcr,
        elcr_mask: s.elcr_mask,
    }
}

/// The model's state from `kvm_pic_state`.
pub fn pic_from_abi(s: &kvm_pic_state) -> PicState {
    PicState {
        last_irr: s.last_irr,
        irr: s.irr,
        imr: s.imr,
        isr: s.isr,
        priority_add: s.priority_add,
        irq_base: s.irq_base,
        read_reg_select: s.read_reg_select,
        poll: s.poll,
        special_mask: s.special_mask,
        init_state: s.init_state,
        auto_eoi: s.auto_eoi,
        rotate_on_auto_eoi: s.rotate_on_auto_eoi,
        special_fully_nested_mode: s.special_fully_nested_mode,
        init4: s.init4,
        elcr: s.elcr,
        elcr_mask: s.elcr_mask,
    }
}

/// `kvm_ioapic_state` from the model's state.
pub fn ioapic_to_abi(s: &IoapicState) -> kvm_ioapic_state {
    let mut redirtbl = [kvm_ioapic_redirtbl { bits: 0 }; IOAPIC_NUM_PINS];
    for (d, v) in redirtbl.iter_mut().zip(s.redirtbl.iter()) {
        *d = kvm_ioapic_redirtbl { bits: *v };
    }
    kvm_ioapic_state {
        base_address: s.base_address,
        ioregsel: s.ioregsel,
        id: s.id,
        irr: s.irr,
        pad: s.pad,
        redirtbl,
    }
}

/// The model's state from `kvm_ioapic_state` (the union entries read as
/// their 64-bit `bits`).
pub fn ioapic_from_abi(s: &kvm_ioapic_state) -> IoapicState {
    let mut redirtbl = [0u64; IOAPIC_NUM_PINS];
    let bytes = s.as_bytes();
    for (i, d) in redirtbl.iter_mut().enumerate() {
        let off = 24 + 8 * i;
        let mut b = [0u8; 8];
        if let Some(src) = bytes.get(off..off + 8) {
            b.copy_from_slice(src);
        }
        *d = u64::from_ne_bytes(b);
    }
    IoapicState {
        base_address: s.base_address,
        ioregsel: s.ioregsel,
        id: s.id,
        irr: s.irr,
        pad: s.pad,
        redirtbl,
    }
}

/// Offset of `kvm_irqchip.chip`.
const CHIP_OFFSET: usize = 8;

/// Writes `v` at the start of `chip.chip`, the rest of the union zeroed.
fn put_chip<T: Pod>(chip: &mut kvm_irqchip, v: &T) {
    let src = v.as_bytes();
    let dst = chip.as_bytes_mut();
    if let Some(u) = dst.get_mut(CHIP_OFFSET..) {
        u.fill(0);
        if let Some(d) = u.get_mut(..src.len()) {
            d.copy_from_slice(src);
        }
    }
}

/// Reads a `T` from the start of `chip.chip`.
fn get_chip<T: Pod>(chip: &kvm_irqchip) -> Result<T, Errno> {
    let n = core::mem::size_of::<T>();
    chip.as_bytes()
        .get(CHIP_OFFSET..CHIP_OFFSET + n)
        .and_then(T::from_bytes)
        .ok_or(Errno::EINVAL)
}

/// KVM_GET_IRQCHIP (`kvm_vm_ioctl_get_irqchip`).
// Out of line: its locals (ABI state structs) must not join the
// dispatcher's frame (kernel stack budget, `make` --max-frame).
#[inline(never)]
pub(crate) fn get<S: Services>(
    vm: &VmShared<S>,
    id: IrqchipId,
    chip: &mut kvm_irqchip,
) -> Result<i32, Errno> {
    let d = vm.devices().lock();
    let c = d.irqchip.as_ref().ok_or(Errno::ENXIO)?;
    match id {
        IrqchipId::PicMaster => put_chip(chip, &pic_to_abi(&c.pic.save(PicChip::Master))),
        IrqchipId::PicSlave => put_chip(chip, &pic_to_abi(&c.pic.save(PicChip::Slave))),
        IrqchipId::Ioapic => put_chip(chip, &ioapic_to_abi(&c.ioapic.save())),
    }
    chip.chip_id = id as u32;
    Ok(0)
}

/// KVM_SET_IRQCHIP (`kvm_vm_ioctl_set_irqchip`; the PIC output is
/// recomputed, `kvm_pic_update_irq`).
// Out of line: its locals (ABI state structs) must not join the
// dispatcher's frame (kernel stack budget, `make` --max-frame).
#[inline(never)]
pub(crate) fn set<S: Services>(
    vm: &VmShared<S>,
    id: IrqchipId,
    chip: &kvm_irqchip,
) -> Result<i32, Errno> {
    let mut d = vm.devices().lock();
    let c = d.irqchip.as_mut().ok_or(Errno::ENXIO)?;
    match id {
        IrqchipId::PicMaster => {
            let st: kvm_pic_state = get_chip(chip)?;
            c.pic.restore(PicChip::Master, &pic_from_abi(&st));
        }
        IrqchipId::PicSlave => {
            let st: kvm_pic_state = get_chip(chip)?;
            c.pic.restore(PicChip::Slave, &pic_from_abi(&st));
        }
        IrqchipId::Ioapic => {
            let st: kvm_ioapic_state = get_chip(chip)?;
            c.ioapic.restore(&ioapic_from_abi(&st));
        }
    }
    Ok(0)
}

/// The devices' mirror of a routing entry (the union read as 8 words).
pub fn routing_entry_from_abi(e: &kvm_irq_routing_entry) -> IrqRoutingEntryAbi {
    let b = e.as_bytes();
    let word = |off: usize| -> u32 {
        let mut w = [0u8; 4];
        if let Some(s) = b.get(off..off + 4) {
            w.copy_from_slice(s);
        }
        u32::from_ne_bytes(w)
    };
    let mut u = [0u32; 8];
    for (i, d) in u.iter_mut().enumerate() {
        *d = word(16 + 4 * i);
    }
    IrqRoutingEntryAbi {
        gsi: e.gsi,
        kind: e.r#type,
        flags: e.flags,
        pad: e.pad,
        u,
    }
}

fn routing_errno(e: RoutingError) -> Errno {
    match e {
        RoutingError::NoMemory => Errno::ENOMEM,
        _ => Errno::EINVAL,
    }
}

/// KVM_SET_GSI_ROUTING (`kvm_set_irq_routing`): the table is built (and
/// checked again) before it replaces the old one.
// Out of line: its locals (ABI state structs) must not join the
// dispatcher's frame (kernel stack budget, `make` --max-frame).
#[inline(never)]
pub(crate) fn set_gsi_routing<S: Services>(
    vm: &VmShared<S>,
    entries: &[kvm_irq_routing_entry],
) -> Result<i32, Errno> {
    let mut ue: Vec<IrqRoutingEntryAbi> = Vec::new();
    ue.try_reserve_exact(entries.len())
        .map_err(|_| Errno::ENOMEM)?;
    ue.extend(entries.iter().map(routing_entry_from_abi));
    let table = RoutingTable::from_abi(&ue).map_err(routing_errno)?;
    let old = {
        let mut d = vm.devices().lock();
        let old = d.router.set_table(table);
        vm.debug().lock().set_routes(d.router.table());
        old
    };
    drop(old);
    Ok(0)
}
