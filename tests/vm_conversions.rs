//! The conversions between the `kvm-ioctl` ABI structs and the devices'
//! save/restore structs are byte-exact both ways, for any bytes.

use kvm::vm::irqchip::{
    ioapic_from_abi, ioapic_to_abi, pic_from_abi, pic_to_abi, routing_entry_from_abi,
};
use kvm::vm::pit::{pit_from_abi, pit_to_abi};
use kvm_devices::i8259::PicState;
use kvm_ioctl::abi::{Pod, kvm_ioapic_state, kvm_irq_routing_entry, kvm_pic_state, kvm_pit_state2};
use proptest::prelude::*;

/// The bytes of a `#[repr(C)]` devices struct without padding.
fn raw<T>(v: &T) -> &[u8] {
    // SAFETY: only used on the devices' `*State` structs, which are
    // `#[repr(C)]` integers and arrays with no padding (their sizes are
    // asserted equal to the ABI structs' in kvm-devices).
    unsafe { std::slice::from_raw_parts((v as *const T).cast::<u8>(), std::mem::size_of::<T>()) }
}

proptest! {
    #[test]
    fn pic_state_round_trips(b in proptest::collection::vec(any::<u8>(), 16)) {
        let abi = kvm_pic_state::from_bytes(&b).unwrap();
        let dev = pic_from_abi(&abi);
        prop_assert_eq!(raw(&dev), &b[..]);
        let back = pic_to_abi(&dev);
        prop_assert_eq!(back.as_bytes(), &b[..]);
    }

    #[test]
    fn pic_model_state_round_trips(b in proptest::array::uniform16(any::<u8>())) {
        let dev = PicState {
            last_irr: b[0], irr: b[1], imr: b[2], isr: b[3], priority_add: b[4],
            irq_base: b[5], read_reg_select: b[6], poll: b[7], special_mask: b[8],
            init_state: b[9], auto_eoi: b[10], rotate_on_auto_eoi: b[11],
            special_fully_nested_mode: b[12], init4: b[13], elcr: b[14], elcr_mask: b[15],
        };
        prop_assert_eq!(pic_from_abi(&pic_to_abi(&dev)), dev);
    }

    #[test]
    fn ioapic_state_round_trips(b in proptest::collection::vec(any::<u8>(), 216)) {
        let abi = kvm_ioapic_state::from_bytes(&b).unwrap();
        let dev = ioapic_from_abi(&abi);
        prop_assert_eq!(raw(&dev), &b[..]);
        let back = ioapic_to_abi(&dev);
        prop_assert_eq!(back.as_bytes(), &b[..]);
        prop_assert_eq!(ioapic_from_abi(&ioapic_to_abi(&dev)), dev);
    }

    #[test]
    fn pit_state_round_trips(b in proptest::collection::vec(any::<u8>(), 112)) {
        let abi = kvm_pit_state2::from_bytes(&b).unwrap();
        let dev = pit_from_abi(&abi);
        prop_assert_eq!(raw(&dev), &b[..]);
        let back = pit_to_abi(&dev);
        prop_assert_eq!(back.as_bytes(), &b[..]);
        prop_assert_eq!(pit_from_abi(&pit_to_abi(&dev)), dev);
    }

    #[test]
    fn routing_entries_convert_to_the_devices_mirror(
        b in proptest::collection::vec(any::<u8>(), 48)
    ) {
        let abi = kvm_irq_routing_entry::from_bytes(&b).unwrap();
        let dev = routing_entry_from_abi(&abi);
        prop_assert_eq!(raw(&dev), &b[..]);
    }
}
