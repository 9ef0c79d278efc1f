//! GSI routing: the KVM_SET_GSI_ROUTING table, per-source line state, MSI
//! decoding, and ack / mask notifier registries.
//!
//! Port of `kvm_irq_comm.c`. Rules:
//! * A GSI maps to at most one pin per irqchip (PIC master, PIC slave,
//!   IOAPIC) or to exactly one MSI; GSIs are below [`KVM_MAX_IRQ_ROUTES`];
//!   entry flags must be zero.
//! * The default table routes GSI 0–15 to the IOAPIC pin and the PIC line of
//!   the same number, GSI 16–23 to the IOAPIC only.
//! * A line is the logical OR of the levels driven by each source id
//!   (`kvm_irq_line_state`; source 0 is userspace, others are requested).
//! * MSI (SDM vol. 3 §11.11): address bits 19:12 destination ID, bit 2
//!   destination mode; data bits 7:0 vector, 10:8 delivery mode, 14 level,
//!   15 trigger mode. Only an asserting write sends a message.
//! * The result combines the chips as `kvm_set_irq` does: delivered if any
//!   chip delivered, coalesced if any coalesced, dropped otherwise.
//!
//! Differences from the C driver: PIC routing pins must be 0–7 on each chip
//! (the C accepted master pins 8–15); the table is kept sorted by GSI so a
//! lookup is a binary search instead of a 1025-list array. The table is the
//! one place this crate allocates (user-sized, built in ioctl context with
//! fallible allocation, never in interrupt or timer paths).

use alloc::vec::Vec;

use crate::apic_bus::{
    ApicMessage, ApicSink, DeliveryMode, DeliveryOutcome, DestMode, IrqStatus, Shorthand,
    TriggerMode,
};
use crate::i8259::PicPair;
use crate::ioapic::{IOAPIC_NUM_PINS, Ioapic};

/// Largest GSI + 1 (`KVM_MAX_IRQ_ROUTES`).
pub const KVM_MAX_IRQ_ROUTES: u32 = 1024;
/// `KVM_IRQ_ROUTING_IRQCHIP`.
pub const KVM_IRQ_ROUTING_IRQCHIP: u32 = 1;
/// `KVM_IRQ_ROUTING_MSI`.
pub const KVM_IRQ_ROUTING_MSI: u32 = 2;
/// Source id of userspace (KVM_IRQ_LINE).
pub const KVM_USERSPACE_IRQ_SOURCE_ID: u8 = 0;
/// Capacity of each notifier registry.
pub const MAX_NOTIFIERS: usize = 32;

/// `struct kvm_irq_routing_entry` (48 bytes). Local mirror until `kvm-ioctl`
/// owns the ABI struct; `u` holds the union (`irqchip`: irqchip, pin;
/// `msi`: address_lo, address_hi, data).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct IrqRoutingEntryAbi {
    pub gsi: u32,
    pub kind: u32,
    pub flags: u32,
    pub pad: u32,
    pub u: [u32; 8],
}
static_assertions::const_assert_eq!(core::mem::size_of::<IrqRoutingEntryAbi>(), 48);

/// The three irqchips (`KVM_IRQCHIP_*`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum IrqChip {
    PicMaster,
    PicSlave,
    Ioapic,
}

impl IrqChip {
    /// Decode `KVM_IRQCHIP_PIC_MASTER` (0), `_PIC_SLAVE` (1), `_IOAPIC` (2).
    pub const fn from_u32(v: u32) -> Option<Self> {
        match v {
            0 => Some(Self::PicMaster),
            1 => Some(Self::PicSlave),
            2 => Some(Self::Ioapic),
            _ => None,
        }
    }
    const fn pins(self) -> u32 {
        match self {
            Self::PicMaster | Self::PicSlave => 8,
            Self::Ioapic => IOAPIC_NUM_PINS as u32,
        }
    }
}

/// An MSI address/data pair.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct MsiMessage {
    pub address_lo: u32,
    pub address_hi: u32,
    pub data: u32,
}

impl MsiMessage {
    /// Decode into an APIC message (port of `kvm_set_msi`; the redirection
    /// hint is ignored as in the C).
    pub const fn to_apic_message(&self) -> ApicMessage {
        ApicMessage {
            vector: (self.data & 0xff) as u8,
            delivery_mode: DeliveryMode::from_bits(self.data >> 8),
            dest_mode: if self.address_lo & (1 << 2) != 0 {
                DestMode::Logical
            } else {
                DestMode::Physical
            },
            trigger: if self.data & (1 << 15) != 0 {
                TriggerMode::Level
            } else {
                TriggerMode::Edge
            },
            level: true,
            shorthand: Shorthand::None,
            dest_id: (self.address_lo >> 12) & 0xff,
        }
    }
}

/// Where a GSI goes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Route {
    /// A pin of an irqchip; PIC pins are 0–7 of the named chip.
    Irqchip { chip: IrqChip, pin: u8 },
    /// An MSI.
    Msi(MsiMessage),
}

/// One routing entry.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct RoutingEntry {
    pub gsi: u32,
    pub route: Route,
}

/// Why a routing table was rejected (all EINVAL in the C, ENOMEM aside).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RoutingError {
    GsiTooLarge,
    NonZeroFlags,
    UnknownType,
    UnknownChip,
    PinOutOfRange,
    /// A second pin on the same chip, or anything besides a single MSI.
    Duplicate,
    TooManyEntries,
    NoMemory,
}

impl RoutingEntry {
    /// Validate and convert one ABI entry (part of `setup_routing_entry`).
    pub fn from_abi(ue: &IrqRoutingEntryAbi) -> Result<Self, RoutingError> {
        if ue.gsi >= KVM_MAX_IRQ_ROUTES {
            return Err(RoutingError::GsiTooLarge);
        }
        if ue.flags != 0 {
            return Err(RoutingError::NonZeroFlags);
        }
        let [a, b, c, ..] = ue.u;
        let route = match ue.kind {
            KVM_IRQ_ROUTING_IRQCHIP => {
                let chip = IrqChip::from_u32(a).ok_or(RoutingError::UnknownChip)?;
                if b >= chip.pins() {
                    return Err(RoutingError::PinOutOfRange);
                }
                Route::Irqchip { chip, pin: b as u8 }
            }
            KVM_IRQ_ROUTING_MSI => Route::Msi(MsiMessage {
                address_lo: a,
                address_hi: b,
                data: c,
            }),
            _ => return Err(RoutingError::UnknownType),
        };
        Ok(Self { gsi: ue.gsi, route })
    }
}

/// The routing table (port of `struct kvm_irq_routing_table`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RoutingTable {
    /// Sorted by GSI.
    entries: Vec<RoutingEntry>,
}

impl RoutingTable {
    /// Build from validated entries (port of `kvm_set_irq_routing`).
    pub fn new(entries: &[RoutingEntry]) -> Result<Self, RoutingError> {
        if entries.len() > KVM_MAX_IRQ_ROUTES as usize {
            return Err(RoutingError::TooManyEntries);
        }
        let mut v: Vec<RoutingEntry> = Vec::new();
        v.try_reserve_exact(entries.len())
            .map_err(|_| RoutingError::NoMemory)?;
        for e in entries {
            if e.gsi >= KVM_MAX_IRQ_ROUTES {
                return Err(RoutingError::GsiTooLarge);
            }
            if let Route::Irqchip { chip, pin } = e.route
                && u32::from(pin) >= chip.pins()
            {
                return Err(RoutingError::PinOutOfRange);
            }
            let clash = v
                .iter()
                .filter(|o| o.gsi == e.gsi)
                .any(|o| match (o.route, e.route) {
                    (Route::Irqchip { chip: c1, .. }, Route::Irqchip { chip: c2, .. }) => c1 == c2,
                    _ => true,
                });
            if clash {
                return Err(RoutingError::Duplicate);
            }
            v.push(*e);
        }
        // Stable by GSI without `sort_by_key`, whose merge sort keeps a 4 KiB
        // scratch buffer on the (20 KiB) kernel stack: the insertion index
        // breaks ties, so the unstable sort keeps the caller's order.
        let mut keyed: Vec<(u32, usize, RoutingEntry)> = Vec::new();
        keyed
            .try_reserve_exact(v.len())
            .map_err(|_| RoutingError::TooManyEntries)?;
        keyed.extend(v.iter().enumerate().map(|(i, e)| (e.gsi, i, *e)));
        keyed.sort_unstable_by_key(|&(gsi, i, _)| (gsi, i));
        v.clear();
        v.extend(keyed.into_iter().map(|(_, _, e)| e));
        Ok(Self { entries: v })
    }

    /// Build from the KVM_SET_GSI_ROUTING payload.
    pub fn from_abi(ue: &[IrqRoutingEntryAbi]) -> Result<Self, RoutingError> {
        if ue.len() > KVM_MAX_IRQ_ROUTES as usize {
            return Err(RoutingError::TooManyEntries);
        }
        let mut v: Vec<RoutingEntry> = Vec::new();
        v.try_reserve_exact(ue.len())
            .map_err(|_| RoutingError::NoMemory)?;
        for e in ue {
            v.push(RoutingEntry::from_abi(e)?);
        }
        Self::new(&v)
    }

    /// The default table (port of `default_routing[]`).
    pub fn default_table() -> Result<Self, RoutingError> {
        let mut v: Vec<RoutingEntry> = Vec::new();
        v.try_reserve_exact(40)
            .map_err(|_| RoutingError::NoMemory)?;
        for gsi in 0..IOAPIC_NUM_PINS as u32 {
            v.push(RoutingEntry {
                gsi,
                route: Route::Irqchip {
                    chip: IrqChip::Ioapic,
                    pin: gsi as u8,
                },
            });
            if gsi < 16 {
                let chip = if gsi < 8 {
                    IrqChip::PicMaster
                } else {
                    IrqChip::PicSlave
                };
                v.push(RoutingEntry {
                    gsi,
                    route: Route::Irqchip {
                        chip,
                        pin: (gsi % 8) as u8,
                    },
                });
            }
        }
        Self::new(&v)
    }

    /// The entries of `gsi`.
    pub fn routes(&self, gsi: u32) -> &[RoutingEntry] {
        let start = self.entries.partition_point(|e| e.gsi < gsi);
        let end = self.entries.partition_point(|e| e.gsi <= gsi);
        self.entries.get(start..end).unwrap_or(&[])
    }

    /// The GSI routed to a chip pin (the C `chip[][]` map), for ack
    /// notifiers. `pin` is 0–7 for the PICs.
    pub fn gsi_for_pin(&self, chip: IrqChip, pin: u8) -> Option<u32> {
        self.entries
            .iter()
            .find(|e| e.route == Route::Irqchip { chip, pin })
            .map(|e| e.gsi)
    }

    /// All entries, sorted by GSI.
    pub fn entries(&self) -> &[RoutingEntry] {
        &self.entries
    }
}

/// The irqchips a GSI can reach.
pub trait IrqChipSet {
    /// Drive PIC line 0–15.
    fn set_pic_irq(&mut self, line: usize, level: bool) -> IrqStatus;
    /// Drive IOAPIC pin 0–23.
    fn set_ioapic_irq(&mut self, pin: usize, level: bool) -> IrqStatus;
    /// Send an MSI to the LAPICs.
    fn deliver_msi(&mut self, msg: &ApicMessage) -> DeliveryOutcome;
    /// An MSI route fires with `level` set, before it is decoded and
    /// delivered (where kvm_irq_comm.c:kvm_set_msi fires its
    /// `kvm-msi-set-irq(address_lo, data)` probe). A hook for the driver's
    /// probe; the devices have no other use for it. Default: nothing.
    fn msi_fired(&mut self, _msi: &MsiMessage) {}
}

/// The in-kernel irqchips of a VM bundled for routing.
pub struct IrqChips<'a, S: ApicSink> {
    pub pic: &'a mut PicPair,
    pub ioapic: &'a mut Ioapic,
    pub apics: &'a mut S,
}

impl<S: ApicSink> IrqChipSet for IrqChips<'_, S> {
    fn set_pic_irq(&mut self, line: usize, level: bool) -> IrqStatus {
        self.pic.set_irq(line, level)
    }
    fn set_ioapic_irq(&mut self, pin: usize, level: bool) -> IrqStatus {
        self.ioapic.set_irq(pin, level, self.apics)
    }
    fn deliver_msi(&mut self, msg: &ApicMessage) -> DeliveryOutcome {
        self.apics.deliver(msg)
    }
}

/// Notifier registry full.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NotifierFull;

/// Routing state of a VM: table, per-source line state, source ids,
/// notifiers (port of the routing half of `struct kvm` / `kvm_arch`).
#[derive(Clone, Debug)]
pub struct IrqRouter {
    table: RoutingTable,
    pic_states: [u64; 16],
    ioapic_states: [u64; IOAPIC_NUM_PINS],
    /// Allocated source ids; bit 0 (userspace) always set.
    sources: u64,
    ack_notifiers: [Option<(u32, u32)>; MAX_NOTIFIERS],
    mask_notifiers: [Option<(u32, u32)>; MAX_NOTIFIERS],
}

fn combine(acc: Option<IrqStatus>, r: IrqStatus) -> Option<IrqStatus> {
    Some(match (acc, r) {
        (_, IrqStatus::Delivered) | (Some(IrqStatus::Delivered), _) => IrqStatus::Delivered,
        (_, IrqStatus::Coalesced) | (Some(IrqStatus::Coalesced), _) => IrqStatus::Coalesced,
        _ => IrqStatus::Dropped,
    })
}

fn source_bit(source: u8) -> u64 {
    1u64.checked_shl(u32::from(source)).unwrap_or(0)
}

impl IrqRouter {
    /// A router with `table` (usually [`RoutingTable::default_table`]).
    pub fn new(table: RoutingTable) -> Self {
        Self {
            table,
            pic_states: [0; 16],
            ioapic_states: [0; IOAPIC_NUM_PINS],
            sources: source_bit(KVM_USERSPACE_IRQ_SOURCE_ID),
            ack_notifiers: [None; MAX_NOTIFIERS],
            mask_notifiers: [None; MAX_NOTIFIERS],
        }
    }

    /// The current table.
    pub fn table(&self) -> &RoutingTable {
        &self.table
    }

    /// Swap in a new table (KVM_SET_GSI_ROUTING); returns the old one so the
    /// caller can free it outside any lock.
    pub fn set_table(&mut self, table: RoutingTable) -> RoutingTable {
        core::mem::replace(&mut self.table, table)
    }

    /// Port of `kvm_request_irq_source_id`.
    pub fn request_source_id(&mut self) -> Option<u8> {
        let id = (!self.sources).trailing_zeros();
        if id >= 64 {
            return None;
        }
        self.sources |= 1u64 << id;
        u8::try_from(id).ok()
    }

    /// Port of `kvm_free_irq_source_id`: forget the id and its line levels.
    pub fn free_source_id(&mut self, id: u8) {
        if id == KVM_USERSPACE_IRQ_SOURCE_ID || id >= 64 {
            return;
        }
        let b = source_bit(id);
        self.sources &= !b;
        for s in self
            .pic_states
            .iter_mut()
            .chain(self.ioapic_states.iter_mut())
        {
            *s &= !b;
        }
    }

    /// Port of `kvm_set_irq`: drive `gsi` from `source` to `level` on every
    /// route of the GSI.
    pub fn set_irq(
        &mut self,
        source: u8,
        gsi: u32,
        level: bool,
        chips: &mut dyn IrqChipSet,
    ) -> IrqStatus {
        let bit = source_bit(source);
        let mut acc = None;
        let n = self.table.routes(gsi).len();
        for i in 0..n {
            let Some(e) = self.table.routes(gsi).get(i).copied() else {
                break;
            };
            let r = match e.route {
                Route::Irqchip { chip, pin } => {
                    let (states, line): (&mut [u64], usize) = match chip {
                        IrqChip::PicMaster => (&mut self.pic_states, usize::from(pin)),
                        IrqChip::PicSlave => (&mut self.pic_states, usize::from(pin) + 8),
                        IrqChip::Ioapic => (&mut self.ioapic_states, usize::from(pin)),
                    };
                    let Some(st) = states.get_mut(line) else {
                        continue;
                    };
                    if level {
                        *st |= bit;
                    } else {
                        *st &= !bit;
                    }
                    let wire = *st != 0;
                    match chip {
                        IrqChip::Ioapic => chips.set_ioapic_irq(line, wire),
                        _ => chips.set_pic_irq(line, wire),
                    }
                }
                Route::Msi(m) => {
                    if !level {
                        continue;
                    }
                    chips.msi_fired(&m);
                    match chips.deliver_msi(&m.to_apic_message()) {
                        DeliveryOutcome::Accepted(_) => IrqStatus::Delivered,
                        DeliveryOutcome::Coalesced => IrqStatus::Coalesced,
                        DeliveryOutcome::NoDestination => IrqStatus::Dropped,
                    }
                }
            };
            acc = combine(acc, r);
        }
        acc.unwrap_or(IrqStatus::Dropped)
    }

    fn register(list: &mut [Option<(u32, u32)>], key: u32, token: u32) -> Result<(), NotifierFull> {
        let slot = list.iter_mut().find(|s| s.is_none()).ok_or(NotifierFull)?;
        *slot = Some((key, token));
        Ok(())
    }

    fn unregister(list: &mut [Option<(u32, u32)>], token: u32) {
        for s in list.iter_mut() {
            if s.is_some_and(|(_, t)| t == token) {
                *s = None;
            }
        }
    }

    /// Port of `kvm_register_irq_ack_notifier`: `token` is reported when
    /// the guest acknowledges `gsi`.
    pub fn register_ack_notifier(&mut self, gsi: u32, token: u32) -> Result<(), NotifierFull> {
        Self::register(&mut self.ack_notifiers, gsi, token)
    }

    /// Port of `kvm_unregister_irq_ack_notifier`.
    pub fn unregister_ack_notifier(&mut self, token: u32) {
        Self::unregister(&mut self.ack_notifiers, token);
    }

    /// Port of `kvm_notify_acked_irq`: call `f` with the token of every
    /// notifier on the GSI routed to `chip`/`pin`. Does not allocate.
    pub fn notify_acked(&self, chip: IrqChip, pin: u8, f: &mut dyn FnMut(u32)) {
        let Some(gsi) = self.table.gsi_for_pin(chip, pin) else {
            return;
        };
        for (g, token) in self.ack_notifiers.iter().flatten() {
            if *g == gsi {
                f(*token);
            }
        }
    }

    /// Port of `kvm_register_irq_mask_notifier` (`irq` is the IOAPIC pin).
    pub fn register_mask_notifier(&mut self, irq: u32, token: u32) -> Result<(), NotifierFull> {
        Self::register(&mut self.mask_notifiers, irq, token)
    }

    /// Port of `kvm_unregister_irq_mask_notifier`.
    pub fn unregister_mask_notifier(&mut self, token: u32) {
        Self::unregister(&mut self.mask_notifiers, token);
    }

    /// Port of `kvm_fire_mask_notifiers`: `f(token, masked)`.
    pub fn fire_mask_notifiers(&self, irq: u32, masked: bool, f: &mut dyn FnMut(u32, bool)) {
        for (i, token) in self.mask_notifiers.iter().flatten() {
            if *i == irq {
                f(*token, masked);
            }
        }
    }
}

#[cfg(test)]
mod tests;
