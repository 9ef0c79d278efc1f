//! The i8254 of a VM: port of KVM_CREATE_PIT/KVM_CREATE_PIT2
//! (`kvm_create_pit`) and `kvm_vm_ioctl_get_pit2`/`kvm_vm_ioctl_set_pit2`.
//!
//! Differences from the C driver: the model's `save` counts counter-0
//! expirations due by now before the snapshot and `restore` keeps the
//! counters' phase (see `kvm_devices::i8254`); `reserved` of GET_PIT2 is
//! zero (the C left the caller's bytes).

use alloc::sync::Arc;

use kvm_devices::i8254::{Pit, PitChannelState, PitState2};
use kvm_devices::iobus::IoBusError;
use kvm_ioctl::Errno;
use kvm_ioctl::abi::{KVM_PIT_SPEAKER_DUMMY, kvm_pit_channel_state, kvm_pit_state2};

use super::irqchip::{PIT_NOTIFIER_TOKEN, PioDev, PitDev};
use super::services::{Services, TimerOwner};
use super::vm::VmShared;

/// KVM_CREATE_PIT(2) (the dispatcher checked none exists): an IRQ source
/// id, the ack notifier on GSI 0 and mask notifier on IRQ 0, the PIT on
/// ports 0x40–0x43 and, with `KVM_PIT_SPEAKER_DUMMY`, the speaker port
/// 0x61. Any failure undoes the earlier steps (ENOMEM, as the C's NULL
/// return became).
// Out of line: its locals (ABI state structs) must not join the
// dispatcher's frame (kernel stack budget, `make` --max-frame).
#[inline(never)]
pub(crate) fn create<S: Services>(
    services: &Arc<S>,
    vm: &VmShared<S>,
    flags: u32,
) -> Result<i32, Errno> {
    let mut d = vm.devices().lock();
    if d.pit.is_some() {
        return Err(Errno::EEXIST);
    }
    let mut pio = d.pio.clone();
    let bus = |_: IoBusError| Errno::ENOMEM;
    pio.register(0x40, 4, PioDev::Pit).map_err(bus)?;
    if flags & KVM_PIT_SPEAKER_DUMMY != 0 {
        pio.register(0x61, 1, PioDev::Speaker).map_err(bus)?;
    }
    // The router is changed in place and rolled back on failure (cloning
    // its notifier tables would put a kilobyte on the kernel stack).
    let source_id = d.router.request_source_id().ok_or(Errno::ENOMEM)?;
    if d.router
        .register_ack_notifier(0, PIT_NOTIFIER_TOKEN)
        .is_err()
    {
        d.router.free_source_id(source_id);
        return Err(Errno::ENOMEM);
    }
    if d.router
        .register_mask_notifier(0, PIT_NOTIFIER_TOKEN)
        .is_err()
    {
        d.router.unregister_ack_notifier(PIT_NOTIFIER_TOKEN);
        d.router.free_source_id(source_id);
        return Err(Errno::ENOMEM);
    }
    let mut pit = Pit::new(
        services.clock(),
        services.timer(TimerOwner::Pit { vm: vm.id() }),
    );
    pit.set_reinject(true);
    d.pio = pio;
    d.pit = Some(PitDev {
        pit,
        flags,
        source_id,
    });
    Ok(0)
}

/// `kvm_pit_channel_state` from the model's.
pub fn channel_to_abi(c: &PitChannelState) -> kvm_pit_channel_state {
    kvm_pit_channel_state {
        count: c.count,
        latched_count: c.latched_count,
        count_latched: c.count_latched,
        status_latched: c.status_latched,
        status: c.status,
        read_state: c.read_state,
        write_state: c.write_state,
        write_latch: c.write_latch,
        rw_mode: c.rw_mode,
        mode: c.mode,
        bcd: c.bcd,
        gate: c.gate,
        count_load_time: c.count_load_time,
    }
}

/// The model's channel state from `kvm_pit_channel_state`.
pub fn channel_from_abi(c: &kvm_pit_channel_state) -> PitChannelState {
    PitChannelState {
        count: c.count,
        latched_count: c.latched_count,
        count_latched: c.count_latched,
        status_latched: c.status_latched,
        status: c.status,
        read_state: c.read_state,
        write_state: c.write_state,
        write_latch: c.write_latch,
        rw_mode: c.rw_mode,
        mode: c.mode,
        bcd: c.bcd,
        gate: c.gate,
        count_load_time: c.count_load_time,
    }
}

/// `kvm_pit_state2` from the model's.
pub fn pit_to_abi(s: &PitState2) -> kvm_pit_state2 {
    kvm_pit_state2 {
        channels: s.channels.each_ref().map(channel_to_abi),
        flags: s.flags,
        reserved: s.reserved,
    }
}

/// The model's state from `kvm_pit_state2`.
pub fn pit_from_abi(s: &kvm_pit_state2) -> PitState2 {
    PitState2 {
        channels: s.channels.each_ref().map(channel_from_abi),
        flags: s.flags,
        reserved: s.reserved,
    }
}

/// KVM_GET_PIT2.
// Out of line: its locals (ABI state structs) must not join the
// dispatcher's frame (kernel stack budget, `make` --max-frame).
#[inline(never)]
pub(crate) fn get<S: Services>(vm: &VmShared<S>, out: &mut kvm_pit_state2) -> Result<i32, Errno> {
    let mut d = vm.devices().lock();
    let p = d.pit.as_mut().ok_or(Errno::ENXIO)?;
    *out = pit_to_abi(&p.pit.save());
    Ok(0)
}

/// KVM_SET_PIT2 (flags validated by the dispatcher).
// Out of line: its locals (ABI state structs) must not join the
// dispatcher's frame (kernel stack budget, `make` --max-frame).
#[inline(never)]
pub(crate) fn set<S: Services>(vm: &VmShared<S>, st: &kvm_pit_state2) -> Result<i32, Errno> {
    let mut d = vm.devices().lock();
    let p = d.pit.as_mut().ok_or(Errno::ENXIO)?;
    p.pit.restore(&pit_from_abi(st));
    Ok(0)
}
