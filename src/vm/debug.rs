//! The debugger's view of the VMs (`mdb`'s `::walk kvm`, `::kvm_gpa2qva`,
//! `::kvm_gsiroutes`, `::walk kvm_vcpu`): `#[repr(C)]` records from
//! `kvm_kstat::debug`, kept current by the backend, on a list whose head is
//! the exported symbol `kvm_vm_list` that the dmod looks up by name.

use alloc::boxed::Box;

use kvm_devices::irq_routing::{IrqChip, RoutingTable};
use kvm_kstat::debug::{DebugVm, GSI_NONE, KvmVmList};

/// The head of every VM's record, in creation order (`vm_list` of the C
/// driver). Read by mdb through its symbol.
#[allow(non_upper_case_globals)]
#[unsafe(no_mangle)]
pub static kvm_vm_list: KvmVmList = KvmVmList::new();

/// Serialises link/unlink (`kvm_lock` around `vm_list` in the C driver).
static LIST_LOCK: spin::Mutex<()> = spin::Mutex::new(());

/// Whether `rec` is on `kvm_vm_list` (walked under the list lock, so no
/// record is unlinked and freed meanwhile).
pub fn is_linked(rec: *const kvm_kstat::debug::KvmDebugVm) -> bool {
    let _g = LIST_LOCK.lock();
    let mut cur = kvm_vm_list.head();
    while !cur.is_null() {
        if cur == rec {
            return true;
        }
        // SAFETY: with the lock held every linked record is alive.
        cur = unsafe { (*cur).next() };
    }
    false
}

/// One VM's records, linked on `kvm_vm_list` while this value lives.
pub struct Linked {
    vm: Box<DebugVm>,
}

// SAFETY: the records hold raw pointers for the debugger only; Rust code
// reaches them through `&mut self`.
unsafe impl Send for Linked {}

impl Linked {
    /// Records of VM `id` created by `pid`, linked at the list's tail.
    pub fn new(id: u32, pid: u64) -> Self {
        let mut vm = DebugVm::new_boxed(id, i32::try_from(pid).unwrap_or(-1));
        let _g = LIST_LOCK.lock();
        // SAFETY: the record is boxed (it stays put until `drop` unlinks
        // it) and the list lock is held.
        unsafe { kvm_vm_list.link(&mut *vm) };
        Self { vm }
    }

    /// The records.
    pub fn get(&self) -> &DebugVm {
        &self.vm
    }

    /// The records, to update.
    pub fn get_mut(&mut self) -> &mut DebugVm {
        &mut self.vm
    }

    /// Record GSI routing `table` (`irq_routing->chip[][]`).
    pub fn set_routes(&mut self, table: &RoutingTable) {
        self.vm.clear_gsi_routes();
        let chips = [
            (0, IrqChip::PicMaster, 8u8),
            (1, IrqChip::PicSlave, 8),
            (2, IrqChip::Ioapic, 24),
        ];
        for (index, chip, pins) in chips {
            for pin in 0..pins {
                let gsi = table.gsi_for_pin(chip, pin).unwrap_or(GSI_NONE);
                let _ = self.vm.set_gsi(index, usize::from(pin), gsi);
            }
        }
    }
}

impl Drop for Linked {
    fn drop(&mut self) {
        let _g = LIST_LOCK.lock();
        // SAFETY: linked by `new` under the same lock.
        unsafe { kvm_vm_list.unlink(&mut *self.vm) };
    }
}
