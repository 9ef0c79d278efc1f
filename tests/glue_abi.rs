//! The C boundary agrees with the illumos headers: every constant and type
//! the Rust side uses for the glue (`kvm::ddi`) has the value gcc computes
//! from `../shared/illumos-sdk`, and the types of `src/glue/kvm_rs.h` have
//! the sizes the Rust `kvm_rs_*` signatures assume; `kstat_named_t` is laid
//! out as `kvm-kstat` lays out its virtual kstats.

mod support;

use std::collections::BTreeMap;
use std::ffi::{c_int, c_uint};
use std::mem::size_of;

use kvm::ddi;
use kvm_ioctl::Errno;
use kvm_ioctl::platform as p;
use kvm_kstat::{DataType, KstatNamed};

const PROBE: &str = r#"
#include <sys/types.h>
#include <sys/errno.h>
#include <sys/file.h>
#include <sys/open.h>
#include <sys/kmem.h>
#include <sys/cmn_err.h>
#include <sys/mman.h>
#include <sys/model.h>
#include <sys/mkdev.h>
#include <sys/ddi.h>
#include <sys/sunddi.h>
#include <sys/mutex.h>
#include <sys/kstat.h>
#include <sys/zone.h>
#include "kvm_rs.h"
#define V(n, e) const unsigned long long probe_##n = (unsigned long long)(e);
V(KM_SLEEP, KM_SLEEP)
V(KM_NOSLEEP, KM_NOSLEEP)
V(CE_NOTE, CE_NOTE)
V(CE_WARN, CE_WARN)
V(FREAD, FREAD)
V(FWRITE, FWRITE)
V(FNDELAY, FNDELAY)
V(FEXCL, FEXCL)
V(OTYP_CHR, OTYP_CHR)
V(DATAMODEL_MASK, DATAMODEL_MASK)
V(DATAMODEL_ILP32, DATAMODEL_ILP32)
V(DATAMODEL_LP64, DATAMODEL_LP64)
V(PROT_READ, PROT_READ)
V(PROT_WRITE, PROT_WRITE)
V(PROT_EXEC, PROT_EXEC)
V(PROT_USER, PROT_USER)
V(NBITSMINOR64, NBITSMINOR64)
V(EPERM, EPERM)
V(ENOENT, ENOENT)
V(ESRCH, ESRCH)
V(EINTR, EINTR)
V(EIO, EIO)
V(ENXIO, ENXIO)
V(E2BIG, E2BIG)
V(EAGAIN, EAGAIN)
V(ENOMEM, ENOMEM)
V(EFAULT, EFAULT)
V(EBUSY, EBUSY)
V(EEXIST, EEXIST)
V(ENODEV, ENODEV)
V(EINVAL, EINVAL)
V(ENOTSUP, ENOTSUP)
V(ENOBUFS, ENOBUFS)
V(sizeof_dev_t, sizeof (dev_t))
V(sizeof_offset_t, sizeof (offset_t))
V(sizeof_int, sizeof (int))
V(sizeof_uint_t, sizeof (uint_t))
V(sizeof_size_t, sizeof (size_t))
V(sizeof_intptr_t, sizeof (intptr_t))
V(sizeof_ddi_umem_cookie_t, sizeof (ddi_umem_cookie_t))
V(MUTEX_DRIVER, MUTEX_DRIVER)
V(sizeof_kmutex_t, sizeof (kmutex_t))
V(sizeof_kstat_named_t, sizeof (kstat_named_t))
V(offsetof_kstat_named_data_type, __builtin_offsetof(kstat_named_t, data_type))
V(offsetof_kstat_named_value, __builtin_offsetof(kstat_named_t, value))
V(offsetof_kstat_named_str_len, __builtin_offsetof(kstat_named_t, value.str.len))
V(KSTAT_STRLEN, KSTAT_STRLEN)
V(KSTAT_DATA_UINT64, KSTAT_DATA_UINT64)
V(KSTAT_DATA_STRING, KSTAT_DATA_STRING)
V(ZONENAME_MAX, ZONENAME_MAX)
"#;

#[test]
fn glue_constants_and_types_match_the_illumos_headers() {
    let Some(sdk) = support::illumos_sdk() else {
        println!("skipped: ../shared/illumos-sdk absent (set ILLUMOS_SDK)");
        return;
    };
    let c: BTreeMap<String, u64> = support::kernel_c_values(&sdk, PROBE).into_iter().collect();
    let rust: &[(&str, u64)] = &[
        ("KM_SLEEP", ddi::KM_SLEEP as u64),
        ("KM_NOSLEEP", ddi::KM_NOSLEEP as u64),
        ("CE_NOTE", ddi::CE_NOTE as u64),
        ("CE_WARN", ddi::CE_WARN as u64),
        ("FREAD", p::FREAD as u64),
        ("FWRITE", p::FWRITE as u64),
        ("FNDELAY", p::FNDELAY as u64),
        ("FEXCL", p::FEXCL as u64),
        ("OTYP_CHR", p::OTYP_CHR as u64),
        ("DATAMODEL_MASK", p::DATAMODEL_MASK as u64),
        ("DATAMODEL_ILP32", p::DATAMODEL_ILP32 as u64),
        ("DATAMODEL_LP64", p::DATAMODEL_LP64 as u64),
        ("PROT_READ", p::PROT_READ as u64),
        ("PROT_WRITE", p::PROT_WRITE as u64),
        ("PROT_EXEC", p::PROT_EXEC as u64),
        ("PROT_USER", p::PROT_USER as u64),
        ("NBITSMINOR64", p::NBITSMINOR64 as u64),
        ("EPERM", Errno::EPERM.code() as u64),
        ("ENOENT", Errno::ENOENT.code() as u64),
        ("ESRCH", Errno::ESRCH.code() as u64),
        ("EINTR", Errno::EINTR.code() as u64),
        ("EIO", Errno::EIO.code() as u64),
        ("ENXIO", Errno::ENXIO.code() as u64),
        ("E2BIG", Errno::E2BIG.code() as u64),
        ("EAGAIN", Errno::EAGAIN.code() as u64),
        ("ENOMEM", Errno::ENOMEM.code() as u64),
        ("EFAULT", Errno::EFAULT.code() as u64),
        ("EBUSY", Errno::EBUSY.code() as u64),
        ("EEXIST", Errno::EEXIST.code() as u64),
        ("ENODEV", Errno::ENODEV.code() as u64),
        ("EINVAL", Errno::EINVAL.code() as u64),
        ("ENOTSUP", Errno::ENOTSUP.code() as u64),
        ("ENOBUFS", Errno::ENOBUFS.code() as u64),
        // kvm_rs.h parameter types, as the Rust entry points declare them.
        ("sizeof_dev_t", size_of::<ddi::DevT>() as u64),
        ("sizeof_offset_t", size_of::<ddi::Offset>() as u64),
        ("sizeof_int", size_of::<c_int>() as u64),
        ("sizeof_uint_t", size_of::<c_uint>() as u64),
        ("sizeof_size_t", size_of::<usize>() as u64),
        ("sizeof_intptr_t", size_of::<isize>() as u64),
        (
            "sizeof_ddi_umem_cookie_t",
            size_of::<*mut std::ffi::c_void>() as u64,
        ),
        ("MUTEX_DRIVER", ddi::MUTEX_DRIVER as u64),
        ("sizeof_kmutex_t", ddi::KMUTEX_SIZE as u64),
        // kstat_named_t as kvm-kstat lays out its virtual kstats.
        ("sizeof_kstat_named_t", size_of::<KstatNamed>() as u64),
        (
            "offsetof_kstat_named_data_type",
            KstatNamed::OFFSET_DATA_TYPE as u64,
        ),
        (
            "offsetof_kstat_named_value",
            KstatNamed::OFFSET_VALUE as u64,
        ),
        (
            "offsetof_kstat_named_str_len",
            KstatNamed::OFFSET_STR_LEN as u64,
        ),
        ("KSTAT_STRLEN", kvm_kstat::named::KSTAT_STRLEN as u64),
        ("KSTAT_DATA_UINT64", DataType::Uint64 as u64),
        ("KSTAT_DATA_STRING", DataType::String as u64),
        ("ZONENAME_MAX", kvm_kstat::stats::ZONENAME_MAX as u64),
    ];
    assert_eq!(c.len(), rust.len(), "every probe value was found: {c:?}");
    for (name, value) in rust {
        assert_eq!(c.get(*name), Some(value), "{name}: header vs Rust");
    }
}

#[test]
fn probe_parser_reads_labels_and_quads() {
    let asm = "\t.globl\tprobe_A\nprobe_A:\n\t.quad\t4\nprobe_B:\n\t.quad\t-1\n\
               probe_Z:\n\t.zero\t8\nother:\n\t.quad 9\n";
    assert_eq!(
        support::parse_probe_asm(asm),
        vec![
            ("A".to_string(), 4),
            ("B".to_string(), u64::MAX),
            ("Z".to_string(), 0)
        ]
    );
}
