//! The `kvm_rs_*` functions the DDI glue calls (`src/glue/kvm_rs.h`).
//!
//! Each one converts C-simple arguments into Rust types, calls into the
//! driver and converts the result back to 0 or an errno. Nothing here may
//! panic: a panic is a host crash.

use core::ffi::{c_int, c_uint, c_void};

use crate::ddi::{Minor, Offset, errno};
use crate::illumos::{cpu::HostCpu, log};

/// `_init`: nothing to set up before `mod_install` yet.
#[unsafe(no_mangle)]
pub extern "C" fn kvm_rs_init() -> c_int {
    0
}

/// `_fini` after a successful `mod_remove`.
#[unsafe(no_mangle)]
pub extern "C" fn kvm_rs_fini() {}

/// attach(9E): refuse, with one logged line, on a CPU without VMX, without
/// EPT or with VMX locked off by the firmware (`kvm_vmx::check_support`).
#[unsafe(no_mangle)]
pub extern "C" fn kvm_rs_attach() -> c_int {
    match kvm_vmx::check_support(&HostCpu) {
        Ok(_) => 0,
        Err(refusal) => {
            log::warn_str(refusal.message());
            errno::ENOTSUP
        }
    }
}

/// detach(9E).
#[unsafe(no_mangle)]
pub extern "C" fn kvm_rs_detach() -> c_int {
    0
}

/// open(9E) of the clone minor. The handle model arrives with the ioctl
/// layer (issue 3); until then every open is refused.
#[unsafe(no_mangle)]
pub extern "C" fn kvm_rs_open(
    _minor: Minor,
    _flag: c_int,
    _otyp: c_int,
    _newminor: *mut Minor,
) -> c_int {
    errno::ENXIO
}

/// close(9E).
#[unsafe(no_mangle)]
pub extern "C" fn kvm_rs_close(_minor: Minor, _flag: c_int, _otyp: c_int) -> c_int {
    0
}

/// ioctl(9E).
#[unsafe(no_mangle)]
pub extern "C" fn kvm_rs_ioctl(
    _minor: Minor,
    cmd: c_int,
    _arg: isize,
    _mode: c_int,
    _ilp32: c_int,
    _rvalp: *mut c_int,
) -> c_int {
    kvm_kstat::sdt::bad_ioctl(cmd as usize);
    errno::EINVAL
}

/// segmap(9E) checks.
#[unsafe(no_mangle)]
pub extern "C" fn kvm_rs_segmap(_minor: Minor, _off: Offset, _len: usize, _prot: c_uint) -> c_int {
    errno::ENXIO
}

/// devmap(9E): which umem cookie backs the requested range.
#[unsafe(no_mangle)]
pub extern "C" fn kvm_rs_devmap(
    _minor: Minor,
    _off: Offset,
    _len: usize,
    _ilp32: c_int,
    _cookiep: *mut *mut c_void,
    _maplenp: *mut usize,
) -> c_int {
    errno::ENXIO
}
