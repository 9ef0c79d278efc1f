/*
 * kvm.so: the mdb module of the Rust illumos-kvm driver (issue 9), installed
 * as /usr/lib/mdb/kvm/amd64/kvm.so.
 *
 * The C driver's dmod read struct kvm and friends through the driver's C
 * headers. The Rust driver's own structures have no stable layout, so it
 * keeps #[repr(C)] debug records beside them (kstat/src/debug.rs,
 * kstat/src/ringbuf.rs) and this module reads only those, through the
 * offsets in kvm_mdb_offsets.h, which `mdb-offsets` generates from the Rust
 * types. No structure of the driver is declared here: every record is read
 * as bytes and every field fetched at its generated offset.
 *
 *   kvm_vm_list ─head─▶ VM ─next─▶ VM ─next─▶ 0
 *                       VM.memslots ─▶ MEMSLOTS { nmemslots, slots[] }
 *                       VM.vcpus ─▶ VCPU *[MAX_VCPUS]; VCPU = RINGBUF + ...
 *                       VM.gsi[NR_IRQCHIPS][IOAPIC_NUM_PINS]
 *
 * Walkers: kvm (global), kvm_memory_slot and kvm_vcpu (from a VM),
 * kvm_ringbuf_entry (from a ring buffer, which is also a VCPU record's
 * address). Dcmds: ::kvm_gpa2qva, ::kvm_gsiroutes, ::kvm_ringbuf_entry.
 */

#ifdef	KVM_MDB_GATE_HEADERS
#include <mdb/mdb_modapi.h>	/* illumos-gate tree: usr/src/cmd/mdb/common */
#else
#include <sys/mdb_modapi.h>	/* installed headers */
#endif

#include "kvm_mdb_offsets.h"

/*
 * The widths this file reads each field with; a change of a Rust field's
 * type breaks the build here instead of misreading a dump.
 */
#define	KVM_MDB_CHECK(name, cond)	\
	typedef char kvm_mdb_check_##name[(cond) ? 1 : -1]

KVM_MDB_CHECK(list_head, KVM_MDB_FSIZE_VMLIST_HEAD == 8);
KVM_MDB_CHECK(list_magic, KVM_MDB_FSIZE_VMLIST_MAGIC == 4);
KVM_MDB_CHECK(list_version, KVM_MDB_FSIZE_VMLIST_VERSION == 4);
KVM_MDB_CHECK(list_vm_size, KVM_MDB_FSIZE_VMLIST_VM_SIZE == 4);
KVM_MDB_CHECK(vm_next, KVM_MDB_FSIZE_VM_NEXT == 8);
KVM_MDB_CHECK(vm_magic, KVM_MDB_FSIZE_VM_MAGIC == 4);
KVM_MDB_CHECK(vm_nvcpus, KVM_MDB_FSIZE_VM_NVCPUS == 4);
KVM_MDB_CHECK(vm_memslots, KVM_MDB_FSIZE_VM_MEMSLOTS == 8);
KVM_MDB_CHECK(vm_vcpus, KVM_MDB_FSIZE_VM_VCPUS == 8);
KVM_MDB_CHECK(vm_gsi, KVM_MDB_FSIZE_VM_GSI ==
    4 * KVM_MDB_NR_IRQCHIPS * KVM_MDB_IOAPIC_NUM_PINS);
KVM_MDB_CHECK(slots_n, KVM_MDB_FSIZE_MEMSLOTS_NMEMSLOTS == 4);
KVM_MDB_CHECK(slots_slots, KVM_MDB_FSIZE_MEMSLOTS_SLOTS ==
    KVM_MDB_MEMSLOTS_TOTAL * KVM_MDB_SIZEOF_MEMSLOT);
KVM_MDB_CHECK(slot_base, KVM_MDB_FSIZE_MEMSLOT_BASE_GFN == 8);
KVM_MDB_CHECK(slot_npages, KVM_MDB_FSIZE_MEMSLOT_NPAGES == 8);
KVM_MDB_CHECK(slot_uaddr, KVM_MDB_FSIZE_MEMSLOT_USERSPACE_ADDR == 8);
KVM_MDB_CHECK(vcpu_magic, KVM_MDB_FSIZE_VCPU_MAGIC == 4);
KVM_MDB_CHECK(vcpu_ring, KVM_MDB_OFF_VCPU_RINGBUF == 0);
KVM_MDB_CHECK(ring_buf, KVM_MDB_FSIZE_RINGBUF_BUF ==
    KVM_MDB_RINGBUF_NENTRIES * KVM_MDB_SIZEOF_RINGBUF_ENTRY);
KVM_MDB_CHECK(ring_pow2,
    (KVM_MDB_RINGBUF_NENTRIES & (KVM_MDB_RINGBUF_NENTRIES - 1)) == 0);
KVM_MDB_CHECK(ring_ent, KVM_MDB_FSIZE_RINGBUF_ENT == 4);
KVM_MDB_CHECK(ent_tag, KVM_MDB_FSIZE_RINGBUF_ENTRY_TAG == 4);
KVM_MDB_CHECK(ent_cpuid, KVM_MDB_FSIZE_RINGBUF_ENTRY_CPUID == 4);
KVM_MDB_CHECK(ent_thread, KVM_MDB_FSIZE_RINGBUF_ENTRY_THREAD == 8);
KVM_MDB_CHECK(ent_tsc, KVM_MDB_FSIZE_RINGBUF_ENTRY_TSC == 8);
KVM_MDB_CHECK(ent_payload, KVM_MDB_FSIZE_RINGBUF_ENTRY_PAYLOAD == 8);
/* A new tag needs a name in kvm_mdb_tag_name(). */
KVM_MDB_CHECK(tag_max, KVM_MDB_TAG_MAX == 12);

/* A list longer than this is taken for a cycle in a corrupt dump. */
#define	KVM_MDB_MAX_VMS		65536

#define	KVM_MDB_PAGEOFFSET	((1ULL << KVM_MDB_PAGESHIFT) - 1)

static uint64_t
rd64(const void *rec, size_t off)
{
	uint64_t v;

	(void) memcpy(&v, (const char *)rec + off, sizeof (v));
	return (v);
}

static uint32_t
rd32(const void *rec, size_t off)
{
	uint32_t v;

	(void) memcpy(&v, (const char *)rec + off, sizeof (v));
	return (v);
}

/*
 * Read the VM record at addr into buf (KVM_MDB_SIZEOF_VM bytes) and check
 * its magic.
 */
static int
kvm_mdb_read_vm(uintptr_t addr, void *buf)
{
	uint32_t magic;

	if (mdb_vread(buf, KVM_MDB_SIZEOF_VM, addr) == -1) {
		mdb_warn("couldn't read kvm at %p\n", addr);
		return (-1);
	}

	magic = rd32(buf, KVM_MDB_OFF_VM_MAGIC);
	if (magic != KVM_MDB_MAGIC_VM) {
		mdb_warn("%p is not a kvm VM record (magic 0x%x)\n", addr,
		    magic);
		return (-1);
	}

	return (0);
}

/*
 * walk kvm: every VM on the driver's kvm_vm_list, in creation order.
 */
static int
kvm_mdb_kvm_walk_init(mdb_walk_state_t *wsp)
{
	GElf_Sym sym;
	char list[KVM_MDB_SIZEOF_VMLIST];
	uint32_t magic, version, vm_size;

	if (wsp->walk_addr != (uintptr_t)NULL) {
		mdb_warn("kvm does not support local walks\n");
		return (WALK_ERR);
	}

	if (mdb_lookup_by_name(KVM_MDB_SYM_VM_LIST, &sym) != 0) {
		mdb_warn("unable to locate %s\n", KVM_MDB_SYM_VM_LIST);
		return (WALK_ERR);
	}

	if (mdb_vread(list, sizeof (list), (uintptr_t)sym.st_value) == -1) {
		mdb_warn("failed to read %s\n", KVM_MDB_SYM_VM_LIST);
		return (WALK_ERR);
	}

	magic = rd32(list, KVM_MDB_OFF_VMLIST_MAGIC);
	version = rd32(list, KVM_MDB_OFF_VMLIST_VERSION);
	vm_size = rd32(list, KVM_MDB_OFF_VMLIST_VM_SIZE);
	if (magic != KVM_MDB_MAGIC_VM_LIST) {
		mdb_warn("%s has bad magic 0x%x\n", KVM_MDB_SYM_VM_LIST, magic);
		return (WALK_ERR);
	}
	if (version != KVM_MDB_LAYOUT_VERSION || vm_size != KVM_MDB_SIZEOF_VM) {
		mdb_warn("the driver's debug records are layout %u (VM record "
		    "%u bytes); this module reads layout %u (%u bytes)\n",
		    version, vm_size, KVM_MDB_LAYOUT_VERSION,
		    KVM_MDB_SIZEOF_VM);
		return (WALK_ERR);
	}

	wsp->walk_addr = (uintptr_t)rd64(list, KVM_MDB_OFF_VMLIST_HEAD);
	wsp->walk_data = mdb_alloc(KVM_MDB_SIZEOF_VM, UM_SLEEP | UM_GC);
	wsp->walk_arg = 0;

	return (WALK_NEXT);
}

static int
kvm_mdb_kvm_walk_step(mdb_walk_state_t *wsp)
{
	uintptr_t addr = wsp->walk_addr;
	uintptr_t n = (uintptr_t)wsp->walk_arg;

	if (addr == (uintptr_t)NULL)
		return (WALK_DONE);

	if (n >= KVM_MDB_MAX_VMS) {
		mdb_warn("%s: more than %d VMs; is the list corrupt?\n",
		    KVM_MDB_SYM_VM_LIST, KVM_MDB_MAX_VMS);
		return (WALK_ERR);
	}

	if (kvm_mdb_read_vm(addr, wsp->walk_data) != 0)
		return (WALK_ERR);

	wsp->walk_arg = (void *)(n + 1);
	wsp->walk_addr = (uintptr_t)rd64(wsp->walk_data, KVM_MDB_OFF_VM_NEXT);

	return (wsp->walk_callback(addr, wsp->walk_data, wsp->walk_cbdata));
}

/*
 * A local walk over a table: the records read, their count and the next
 * index.
 */
typedef struct kvm_mdb_table {
	char *kt_buf;		/* the table's records, read */
	size_t kt_first;	/* offset of record 0 in kt_buf */
	size_t kt_size;		/* record size */
	uint32_t kt_n;		/* records to visit */
	uint32_t kt_ndx;	/* next record */
} kvm_mdb_table_t;

/*
 * walk kvm_memory_slot: the memslots in use of the VM at the walk address.
 */
static int
kvm_mdb_memory_slot_init(mdb_walk_state_t *wsp)
{
	char vm[KVM_MDB_SIZEOF_VM];
	kvm_mdb_table_t *t;
	uintptr_t addr;
	uint32_t n;

	if (wsp->walk_addr == (uintptr_t)NULL) {
		mdb_warn("kvm_memory_slot does not support global walks\n");
		return (WALK_ERR);
	}

	if (kvm_mdb_read_vm(wsp->walk_addr, vm) != 0)
		return (WALK_ERR);

	addr = (uintptr_t)rd64(vm, KVM_MDB_OFF_VM_MEMSLOTS);
	if (addr == (uintptr_t)NULL) {
		mdb_warn("kvm %p has no memslot table\n", wsp->walk_addr);
		return (WALK_ERR);
	}

	t = mdb_alloc(sizeof (*t), UM_SLEEP | UM_GC);
	t->kt_buf = mdb_alloc(KVM_MDB_SIZEOF_MEMSLOTS, UM_SLEEP | UM_GC);
	if (mdb_vread(t->kt_buf, KVM_MDB_SIZEOF_MEMSLOTS, addr) == -1) {
		mdb_warn("couldn't read memslots at %p\n", addr);
		return (WALK_ERR);
	}

	n = rd32(t->kt_buf, KVM_MDB_OFF_MEMSLOTS_NMEMSLOTS);
	t->kt_first = KVM_MDB_OFF_MEMSLOTS_SLOTS;
	t->kt_size = KVM_MDB_SIZEOF_MEMSLOT;
	t->kt_n = MIN(n, KVM_MDB_MEMSLOTS_TOTAL);
	t->kt_ndx = 0;

	wsp->walk_addr = addr + KVM_MDB_OFF_MEMSLOTS_SLOTS;
	wsp->walk_data = t;

	return (WALK_NEXT);
}

static int
kvm_mdb_table_step(mdb_walk_state_t *wsp)
{
	kvm_mdb_table_t *t = wsp->walk_data;
	uint32_t ndx = t->kt_ndx;

	if (ndx >= t->kt_n)
		return (WALK_DONE);

	t->kt_ndx = ndx + 1;

	return (wsp->walk_callback(wsp->walk_addr + ndx * t->kt_size,
	    t->kt_buf + t->kt_first + ndx * t->kt_size, wsp->walk_cbdata));
}

/*
 * walk kvm_vcpu: the VCPU records of the VM at the walk address. A VCPU
 * record starts with its ring buffer, so its address is also the one
 * kvm_ringbuf_entry walks.
 */
typedef struct kvm_mdb_vcpus {
	uintptr_t kv_ptrs[KVM_MDB_MAX_VCPUS];
	uint32_t kv_n;
	uint32_t kv_ndx;
	char *kv_rec;
} kvm_mdb_vcpus_t;

static int
kvm_mdb_vcpu_init(mdb_walk_state_t *wsp)
{
	char vm[KVM_MDB_SIZEOF_VM];
	kvm_mdb_vcpus_t *v;
	uintptr_t addr;

	if (wsp->walk_addr == (uintptr_t)NULL) {
		mdb_warn("kvm_vcpu does not support global walks\n");
		return (WALK_ERR);
	}

	if (kvm_mdb_read_vm(wsp->walk_addr, vm) != 0)
		return (WALK_ERR);

	v = mdb_zalloc(sizeof (*v), UM_SLEEP | UM_GC);
	v->kv_rec = mdb_alloc(KVM_MDB_SIZEOF_VCPU, UM_SLEEP | UM_GC);
	v->kv_n = MIN(rd32(vm, KVM_MDB_OFF_VM_NVCPUS), KVM_MDB_MAX_VCPUS);

	addr = (uintptr_t)rd64(vm, KVM_MDB_OFF_VM_VCPUS);
	if (v->kv_n != 0 && addr == (uintptr_t)NULL) {
		mdb_warn("kvm %p has no VCPU table\n", wsp->walk_addr);
		return (WALK_ERR);
	}

	if (v->kv_n != 0 && mdb_vread(v->kv_ptrs,
	    v->kv_n * sizeof (uintptr_t), addr) == -1) {
		mdb_warn("couldn't read VCPU table at %p\n", addr);
		return (WALK_ERR);
	}

	wsp->walk_data = v;

	return (WALK_NEXT);
}

static int
kvm_mdb_vcpu_step(mdb_walk_state_t *wsp)
{
	kvm_mdb_vcpus_t *v = wsp->walk_data;
	uintptr_t addr;
	uint32_t magic;

	do {
		if (v->kv_ndx >= v->kv_n)
			return (WALK_DONE);
		addr = v->kv_ptrs[v->kv_ndx++];
	} while (addr == (uintptr_t)NULL);

	if (mdb_vread(v->kv_rec, KVM_MDB_SIZEOF_VCPU, addr) == -1) {
		mdb_warn("couldn't read VCPU at %p\n", addr);
		return (WALK_ERR);
	}

	magic = rd32(v->kv_rec, KVM_MDB_OFF_VCPU_MAGIC);
	if (magic != KVM_MDB_MAGIC_VCPU) {
		mdb_warn("%p is not a kvm VCPU record (magic 0x%x)\n", addr,
		    magic);
		return (WALK_ERR);
	}

	return (wsp->walk_callback(addr, v->kv_rec, wsp->walk_cbdata));
}

/*
 * walk kvm_ringbuf_entry: the entries still in the ring at the walk
 * address, oldest first (the last KVM_MDB_RINGBUF_NENTRIES at most).
 */
static int
kvm_mdb_ringbuf_entry_init(mdb_walk_state_t *wsp)
{
	kvm_mdb_table_t *t;
	uint32_t ent;

	if (wsp->walk_addr == (uintptr_t)NULL) {
		mdb_warn("kvm_ringbuf_entry does not support global walks\n");
		return (WALK_ERR);
	}

	t = mdb_alloc(sizeof (*t), UM_SLEEP | UM_GC);
	t->kt_buf = mdb_alloc(KVM_MDB_SIZEOF_RINGBUF, UM_SLEEP | UM_GC);
	if (mdb_vread(t->kt_buf, KVM_MDB_SIZEOF_RINGBUF, wsp->walk_addr) ==
	    -1) {
		mdb_warn("couldn't read ring buffer at %p\n", wsp->walk_addr);
		return (WALK_ERR);
	}

	/*
	 * kt_ndx and kt_n count events (the ring's entry counter), not slots:
	 * the walk visits events ent - min(ent, NENTRIES) .. ent - 1.
	 */
	ent = rd32(t->kt_buf, KVM_MDB_OFF_RINGBUF_ENT);
	t->kt_first = KVM_MDB_OFF_RINGBUF_BUF;
	t->kt_size = KVM_MDB_SIZEOF_RINGBUF_ENTRY;
	t->kt_n = ent;
	t->kt_ndx = ent > KVM_MDB_RINGBUF_NENTRIES ?
	    ent - KVM_MDB_RINGBUF_NENTRIES : 0;

	wsp->walk_addr += KVM_MDB_OFF_RINGBUF_BUF;
	wsp->walk_data = t;

	return (WALK_NEXT);
}

static int
kvm_mdb_ringbuf_entry_step(mdb_walk_state_t *wsp)
{
	kvm_mdb_table_t *t = wsp->walk_data;
	uint32_t slot;

	if (t->kt_ndx == t->kt_n)
		return (WALK_DONE);

	slot = t->kt_ndx++ & (KVM_MDB_RINGBUF_NENTRIES - 1);

	return (wsp->walk_callback(wsp->walk_addr + slot * t->kt_size,
	    t->kt_buf + t->kt_first + slot * t->kt_size, wsp->walk_cbdata));
}

/*
 * gpa::kvm_gpa2qva <kvm addr>: the QEMU virtual address of a guest
 * physical address.
 */
typedef struct kvm_mdb_gpa2qva {
	uint64_t kg_gpa;
	int kg_found;
} kvm_mdb_gpa2qva_t;

static int
kvm_mdb_gpa2qva_walk_slot(uintptr_t addr, const void *slot, void *arg)
{
	kvm_mdb_gpa2qva_t *kg = arg;
	uint64_t gfn = kg->kg_gpa >> KVM_MDB_PAGESHIFT;
	uint64_t base = rd64(slot, KVM_MDB_OFF_MEMSLOT_BASE_GFN);
	uint64_t npages = rd64(slot, KVM_MDB_OFF_MEMSLOT_NPAGES);
	uint64_t uaddr = rd64(slot, KVM_MDB_OFF_MEMSLOT_USERSPACE_ADDR);

	if (gfn < base || gfn - base >= npages)
		return (WALK_NEXT);

	mdb_printf("%p\n", (uintptr_t)(uaddr +
	    ((gfn - base) << KVM_MDB_PAGESHIFT) +
	    (kg->kg_gpa & KVM_MDB_PAGEOFFSET)));
	kg->kg_found = 1;

	return (WALK_DONE);
}

static int
kvm_mdb_gpa2qva(uintptr_t addr, uint_t flags, int argc, const mdb_arg_t *argv)
{
	char vm[KVM_MDB_SIZEOF_VM];
	kvm_mdb_gpa2qva_t kg;
	uintptr_t kaddr;

	if (!(flags & DCMD_ADDRSPEC) || argc != 1)
		return (DCMD_USAGE);

	switch (argv[0].a_type) {
	case MDB_TYPE_STRING:
		kaddr = (uintptr_t)mdb_strtoull(argv[0].a_un.a_str);
		break;
	case MDB_TYPE_IMMEDIATE:
		kaddr = (uintptr_t)argv[0].a_un.a_val;
		break;
	default:
		return (DCMD_USAGE);
	}

	if (kvm_mdb_read_vm(kaddr, vm) != 0)
		return (DCMD_ERR);

	kg.kg_gpa = addr;
	kg.kg_found = 0;
	if (mdb_pwalk("kvm_memory_slot", kvm_mdb_gpa2qva_walk_slot, &kg,
	    kaddr) == -1) {
		mdb_warn("failed to walk 'kvm_memory_slot' for %p\n", kaddr);
		return (DCMD_ERR);
	}

	if (!kg.kg_found) {
		mdb_warn("0x%p is unknown for kvm 0x%p\n", addr, kaddr);
		return (DCMD_ERR);
	}

	return (DCMD_OK);
}

/*
 * kvmaddr::kvm_gsiroutes: the GSI each irqchip pin routes to.
 */
static int
kvm_mdb_gsiroutes(uintptr_t addr, uint_t flags, int argc, const mdb_arg_t *argv)
{
	char vm[KVM_MDB_SIZEOF_VM];
	int chip, pin;

	if (!(flags & DCMD_ADDRSPEC) || argc != 0)
		return (DCMD_USAGE);

	if (kvm_mdb_read_vm(addr, vm) != 0)
		return (DCMD_ERR);

	if (DCMD_HDRSPEC(flags))
		mdb_printf("%s %7s %5s\n", "CHIP", "PORT", "GSI");

	for (chip = 0; chip < KVM_MDB_NR_IRQCHIPS; chip++) {
		for (pin = 0; pin < KVM_MDB_IOAPIC_NUM_PINS; pin++) {
			mdb_printf("%3d %7d    0x%x\n", chip, pin,
			    rd32(vm, KVM_MDB_OFF_VM_GSI + 4 *
			    (chip * KVM_MDB_IOAPIC_NUM_PINS + pin)));
		}
	}

	return (DCMD_OK);
}

/*
 * entryaddr::kvm_ringbuf_entry: one ring buffer entry.
 */
static const char *
kvm_mdb_tag_name(uint32_t tag)
{
	switch (tag) {
	case KVM_MDB_TAG_CTXSAVE:
		return ("save");
	case KVM_MDB_TAG_CTXRESTORE:
		return ("restore");
	case KVM_MDB_TAG_VMPTRLD:
		return ("vmptrld");
	case KVM_MDB_TAG_VCPUMIGRATE:
		return ("migrate");
	case KVM_MDB_TAG_VCPUCLEAR:
		return ("clear");
	case KVM_MDB_TAG_VCPULOAD:
		return ("load");
	case KVM_MDB_TAG_VCPUPUT:
		return ("put");
	case KVM_MDB_TAG_RELOAD:
		return ("reload");
	case KVM_MDB_TAG_EMUFAIL0:
		return ("efail-0");
	case KVM_MDB_TAG_EMUFAIL1:
		return ("efail-1");
	case KVM_MDB_TAG_EMUFAIL2:
		return ("efail-2");
	case KVM_MDB_TAG_EMUXADD:
		return ("xadd");
	default:
		return ("????");
	}
}

static int
kvm_mdb_ringbuf_entry(uintptr_t addr, uint_t flags, int argc,
    const mdb_arg_t *argv)
{
	char ent[KVM_MDB_SIZEOF_RINGBUF_ENTRY];

	if (!(flags & DCMD_ADDRSPEC) || argc != 0)
		return (DCMD_USAGE);

	if (DCMD_HDRSPEC(flags)) {
		mdb_printf("%16s %17s %3s %16s %-7s %16s\n", "ADDR",
		    "TIMESTAMP", "CPU", "THREAD", "TAG", "PAYLOAD");
	}

	if (mdb_vread(ent, sizeof (ent), addr) == -1) {
		mdb_warn("couldn't read entry at %p\n", addr);
		return (DCMD_ERR);
	}

	mdb_printf("%16p %17lld %3d %16p %-7s %16p\n", addr,
	    (long long)rd64(ent, KVM_MDB_OFF_RINGBUF_ENTRY_TSC),
	    (int)rd32(ent, KVM_MDB_OFF_RINGBUF_ENTRY_CPUID),
	    (uintptr_t)rd64(ent, KVM_MDB_OFF_RINGBUF_ENTRY_THREAD),
	    kvm_mdb_tag_name(rd32(ent, KVM_MDB_OFF_RINGBUF_ENTRY_TAG)),
	    (uintptr_t)rd64(ent, KVM_MDB_OFF_RINGBUF_ENTRY_PAYLOAD));

	return (DCMD_OK);
}

static const mdb_dcmd_t dcmds[] = {
	{ "kvm_gpa2qva", ":[address of kvm]", "translate a guest physical "
	    "to a QEMU virtual address", kvm_mdb_gpa2qva },
	{ "kvm_gsiroutes", ":", "print out the global system "
	    "interrupt (GSI) routing table", kvm_mdb_gsiroutes },
	{ "kvm_ringbuf_entry", ":", "print out a kvm ring buffer entry",
	    kvm_mdb_ringbuf_entry },
	{ NULL }
};

static const mdb_walker_t walkers[] = {
	{ "kvm", "walk all the kvm VMs (kvm_vm_list)",
	    kvm_mdb_kvm_walk_init, kvm_mdb_kvm_walk_step },
	{ "kvm_memory_slot", "walk the memory slots of a given kvm",
	    kvm_mdb_memory_slot_init, kvm_mdb_table_step },
	{ "kvm_vcpu", "walk the VCPU records (= ring buffers) of a given kvm",
	    kvm_mdb_vcpu_init, kvm_mdb_vcpu_step },
	{ "kvm_ringbuf_entry", "given a kvm ring buffer, walk its entries",
	    kvm_mdb_ringbuf_entry_init, kvm_mdb_ringbuf_entry_step },
	{ NULL }
};

static const mdb_modinfo_t modinfo = { MDB_API_VERSION, dcmds, walkers };

const mdb_modinfo_t *
_mdb_init(void)
{
	return (&modinfo);
}
