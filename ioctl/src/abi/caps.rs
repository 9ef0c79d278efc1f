//! Port of the `KVM_CAP_*` extension numbers of the C driver's `sys/kvm.h`
//! (the argument of KVM_CHECK_EXTENSION). The numbers guarded by
//! `__KVM_HAVE_DEVICE_ASSIGNMENT`, `__KVM_HAVE_MSI`, `__KVM_HAVE_GUEST_DEBUG`
//! and `__KVM_HAVE_MSIX` (17, 20, 23, 27, 28) are not defined in the illumos
//! build and are therefore absent here.

macro_rules! capabilities {
    ($( $variant:ident = $name:literal => $value:literal ,)+) => {
        /// A `KVM_CAP_*` extension number.
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
        #[repr(u32)]
        pub enum Capability {
            $(
                #[doc = concat!("`", $name, "` (", stringify!($value), ").")]
                $variant = $value,
            )+
        }

        impl Capability {
            /// Every capability the header defines.
            pub const ALL: &'static [Capability] = &[$(Capability::$variant,)+];

            /// The C name (`KVM_CAP_...`).
            pub const fn name(self) -> &'static str {
                match self {
                    $(Capability::$variant => $name,)+
                }
            }

            /// The capability with number `n`, if the header defines one.
            pub const fn from_number(n: u64) -> Option<Capability> {
                $(
                    if n == $value {
                        return Some(Capability::$variant);
                    }
                )+
                None
            }
        }

        /// Every capability with its C name and number.
        pub const ALL_CAPABILITIES: &[(&str, u32)] = &[$(($name, $value),)+];
    };
}

capabilities! {
    Irqchip = "KVM_CAP_IRQCHIP" => 0,
    Hlt = "KVM_CAP_HLT" => 1,
    MmuShadowCacheControl = "KVM_CAP_MMU_SHADOW_CACHE_CONTROL" => 2,
    UserMemory = "KVM_CAP_USER_MEMORY" => 3,
    SetTssAddr = "KVM_CAP_SET_TSS_ADDR" => 4,
    Vapic = "KVM_CAP_VAPIC" => 6,
    ExtCpuid = "KVM_CAP_EXT_CPUID" => 7,
    Clocksource = "KVM_CAP_CLOCKSOURCE" => 8,
    NrVcpus = "KVM_CAP_NR_VCPUS" => 9,
    NrMemslots = "KVM_CAP_NR_MEMSLOTS" => 10,
    Pit = "KVM_CAP_PIT" => 11,
    NopIoDelay = "KVM_CAP_NOP_IO_DELAY" => 12,
    PvMmu = "KVM_CAP_PV_MMU" => 13,
    MpState = "KVM_CAP_MP_STATE" => 14,
    CoalescedMmio = "KVM_CAP_COALESCED_MMIO" => 15,
    SyncMmu = "KVM_CAP_SYNC_MMU" => 16,
    Iommu = "KVM_CAP_IOMMU" => 18,
    DestroyMemoryRegionWorks = "KVM_CAP_DESTROY_MEMORY_REGION_WORKS" => 21,
    UserNmi = "KVM_CAP_USER_NMI" => 22,
    ReinjectControl = "KVM_CAP_REINJECT_CONTROL" => 24,
    IrqRouting = "KVM_CAP_IRQ_ROUTING" => 25,
    IrqInjectStatus = "KVM_CAP_IRQ_INJECT_STATUS" => 26,
    AssignDevIrq = "KVM_CAP_ASSIGN_DEV_IRQ" => 29,
    JoinMemoryRegionsWorks = "KVM_CAP_JOIN_MEMORY_REGIONS_WORKS" => 30,
    Mce = "KVM_CAP_MCE" => 31,
    Pit2 = "KVM_CAP_PIT2" => 33,
    SetBootCpuId = "KVM_CAP_SET_BOOT_CPU_ID" => 34,
    PitState2 = "KVM_CAP_PIT_STATE2" => 35,
    Ioeventfd = "KVM_CAP_IOEVENTFD" => 36,
    SetIdentityMapAddr = "KVM_CAP_SET_IDENTITY_MAP_ADDR" => 37,
    XenHvm = "KVM_CAP_XEN_HVM" => 38,
    AdjustClock = "KVM_CAP_ADJUST_CLOCK" => 39,
    InternalErrorData = "KVM_CAP_INTERNAL_ERROR_DATA" => 40,
    VcpuEvents = "KVM_CAP_VCPU_EVENTS" => 41,
    S390Psw = "KVM_CAP_S390_PSW" => 42,
    PpcSegstate = "KVM_CAP_PPC_SEGSTATE" => 43,
    Hyperv = "KVM_CAP_HYPERV" => 44,
    HypervVapic = "KVM_CAP_HYPERV_VAPIC" => 45,
    HypervSpin = "KVM_CAP_HYPERV_SPIN" => 46,
    PciSegment = "KVM_CAP_PCI_SEGMENT" => 47,
    X86RobustSinglestep = "KVM_CAP_X86_ROBUST_SINGLESTEP" => 51,
}
