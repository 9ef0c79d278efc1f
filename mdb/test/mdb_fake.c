/*
 * A fake of the mdb module API, to run kvm_mdb.c's walkers and dcmds on
 * Linux (kstat/tests/mdb_dmod.rs). Not part of the module.
 *
 * It is compiled against the same illumos <mdb/mdb_modapi.h> as the dmod,
 * so the types, flags and return codes it hands the dmod are the real ones,
 * and linked with the dmod object `make mdb` builds into a Linux
 * executable. Only a few libc functions are declared by hand below (glibc
 * provides them; no Linux header is included, so nothing clashes with the
 * illumos ones).
 *
 * The target is a memory image file the test writes:
 *
 *	"KVMMDBIM" u32 nsyms u32 nsegs
 *	nsyms x { u64 value u64 size u32 namelen char name[namelen] }
 *	nsegs x { u64 addr u64 len u8 bytes[len] }
 *
 * (native byte order). mdb_vread reads inside one segment, or fails.
 *
 * Usage (exit status: the dcmd's return, or 1 if a walk failed):
 *
 *	mdb_fake IMAGE walk WALKER [ADDR]	  ADDR::walk WALKER
 *	mdb_fake IMAGE dcmd DCMD ADDR|- [ARG..]  ADDR::DCMD ARG..
 *	mdb_fake IMAGE pipe WALKER ADDR|- DCMD [ARG..]
 *						  ADDR::walk WALKER | ::DCMD ARG..
 *
 * An ARG "$N" is passed as an immediate (MDB_TYPE_IMMEDIATE, N in hex), any
 * other as a string. mdb_printf implements the conversions of mdb's
 * iob_doprnt the dmod may use (%d %i %u %x %X %o %p %s %c %%, flags - 0 #,
 * width, l/ll/h) and exits with status 99 on any other one, so the dmod
 * cannot silently rely on a format this fake renders differently.
 */

#include <mdb/mdb_modapi.h>

/* glibc, declared by hand (see above). */
extern void *calloc(size_t, size_t);
extern void *realloc(void *, size_t);
extern void free(void *);
extern void exit(int) __attribute__((noreturn));
extern int open(const char *, int, ...);
extern ssize_t read(int, void *, size_t);
extern ssize_t write(int, const void *, size_t);
extern int close(int);
extern int snprintf(char *, size_t, const char *, ...);

extern const mdb_modinfo_t *_mdb_init(void);

typedef struct fake_sym {
	char *fs_name;
	uint64_t fs_value;
	uint64_t fs_size;
} fake_sym_t;

typedef struct fake_seg {
	uint64_t fg_addr;
	uint64_t fg_len;
	char *fg_bytes;
} fake_seg_t;

static fake_sym_t *syms;
static uint32_t nsyms;
static fake_seg_t *segs;
static uint32_t nsegs;
static const mdb_modinfo_t *modinfo;

static void
die(const char *msg)
{
	(void) write(2, "mdb_fake: ", 10);
	(void) write(2, msg, strlen(msg));
	(void) write(2, "\n", 1);
	exit(98);
}

static void *
xalloc(size_t n)
{
	void *p = calloc(1, n == 0 ? 1 : n);

	if (p == NULL)
		die("out of memory");
	return (p);
}

/* ---- the image ---- */

static char *img;
static size_t imglen, imgpos;

static void
take(void *dst, size_t n)
{
	if (imglen - imgpos < n)
		die("truncated image");
	(void) memcpy(dst, img + imgpos, n);
	imgpos += n;
}

static void
load_image(const char *path)
{
	int fd = open(path, 0);
	size_t cap = 1 << 20;
	ssize_t r;
	char magic[8];
	uint32_t i, namelen;

	if (fd < 0)
		die("cannot open image");
	img = xalloc(cap);
	while ((r = read(fd, img + imglen, cap - imglen)) > 0) {
		imglen += (size_t)r;
		if (imglen == cap) {
			cap *= 2;
			if ((img = realloc(img, cap)) == NULL)
				die("out of memory");
		}
	}
	(void) close(fd);
	if (r < 0)
		die("cannot read image");

	take(magic, sizeof (magic));
	if (memcmp(magic, "KVMMDBIM", 8) != 0)
		die("bad image magic");
	take(&nsyms, 4);
	take(&nsegs, 4);
	syms = xalloc(nsyms * sizeof (fake_sym_t));
	segs = xalloc(nsegs * sizeof (fake_seg_t));
	for (i = 0; i < nsyms; i++) {
		take(&syms[i].fs_value, 8);
		take(&syms[i].fs_size, 8);
		take(&namelen, 4);
		syms[i].fs_name = xalloc(namelen + 1);
		take(syms[i].fs_name, namelen);
	}
	for (i = 0; i < nsegs; i++) {
		take(&segs[i].fg_addr, 8);
		take(&segs[i].fg_len, 8);
		if (imglen - imgpos < segs[i].fg_len)
			die("truncated segment");
		segs[i].fg_bytes = img + imgpos;
		imgpos += segs[i].fg_len;
	}
}

/* ---- output: stdout for mdb_printf, stderr for mdb_warn ---- */

static void
out(int fd, const char *s, size_t n)
{
	while (n != 0) {
		ssize_t w = write(fd, s, n);
		if (w <= 0)
			exit(97);
		s += w;
		n -= (size_t)w;
	}
}

static void
doprnt(int fd, const char *fmt, __builtin_va_list *ap)
{
	char buf[128], spec[16];
	const char *p;

	for (p = fmt; *p != '\0'; p++) {
		int left = 0, zero = 0, alt = 0, lng = 0, shrt = 0;
		size_t width = 0;

		if (*p != '%') {
			out(fd, p, 1);
			continue;
		}
		for (p++; ; p++) {
			if (*p == '-')
				left = 1;
			else if (*p == '0' && width == 0)
				zero = 1;
			else if (*p == '#')
				alt = 1;
			else if (*p == '?')
				width = sizeof (uintptr_t) * 2;
			else if (*p >= '0' && *p <= '9')
				width = width * 10 + (size_t)(*p - '0');
			else if (*p == 'l')
				lng++;
			else if (*p == 'h')
				shrt = 1;
			else
				break;
		}
		if (width > 64)
			die("field width too large");
		switch (*p) {
		case 'd':
		case 'i': {
			long long v = lng ? __builtin_va_arg(*ap, long long) :
			    (long long)__builtin_va_arg(*ap, int);
			if (lng == 1)
				v = (long)v;
			else if (lng == 0)
				v = shrt ? (short)v : (int)v;
			(void) snprintf(buf, sizeof (buf), "%lld", v);
			break;
		}
		case 'u':
		case 'x':
		case 'X':
		case 'o': {
			unsigned long long v = lng ?
			    __builtin_va_arg(*ap, unsigned long long) :
			    (unsigned long long)__builtin_va_arg(*ap, unsigned);
			if (lng == 0)
				v = shrt ? (unsigned short)v : (unsigned)v;
			(void) snprintf(spec, sizeof (spec), "%s%%ll%c",
			    alt ? "#" : "", *p);
			(void) snprintf(buf, sizeof (buf), spec, v);
			break;
		}
		case 'p':
			(void) snprintf(buf, sizeof (buf), "%llx",
			    (unsigned long long)(uintptr_t)
			    __builtin_va_arg(*ap, void *));
			break;
		case 's': {
			const char *s = __builtin_va_arg(*ap, const char *);
			size_t n = strlen(s == NULL ? "<NULL>" : s);
			size_t fill = width > n ? width - n : 0;
			size_t i;

			for (i = 0; !left && i < fill; i++)
				out(fd, " ", 1);
			out(fd, s == NULL ? "<NULL>" : s, n);
			for (i = 0; left && i < fill; i++)
				out(fd, " ", 1);
			continue;
		}
		case 'c':
			buf[0] = (char)__builtin_va_arg(*ap, int);
			buf[1] = '\0';
			break;
		case '%':
			(void) strcpy(buf, "%");
			break;
		default:
			(void) snprintf(buf, sizeof (buf),
			    "mdb_fake: unsupported mdb_printf conversion "
			    "'%c' in \"%s\"\n", *p, fmt);
			out(2, buf, strlen(buf));
			exit(99);
		}
		{
			/* Pad the converted text as iob_doprnt does. */
			char field[sizeof (buf) + 64];

			if (zero && !left) {
				size_t n = strlen(buf), i = 0;
				size_t fill = width > n ? width - n : 0;

				for (i = 0; i < fill; i++)
					field[i] = '0';
				(void) strcpy(field + fill, buf);
			} else {
				(void) snprintf(field, sizeof (field),
				    left ? "%-*s" : "%*s", (int)width, buf);
			}
			out(fd, field, strlen(field));
		}
	}
}

void
mdb_printf(const char *fmt, ...)
{
	__builtin_va_list ap;

	__builtin_va_start(ap, fmt);
	doprnt(1, fmt, &ap);
	__builtin_va_end(ap);
}

void
mdb_warn(const char *fmt, ...)
{
	__builtin_va_list ap;
	size_t n = strlen(fmt);

	out(2, "mdb: ", 5);
	__builtin_va_start(ap, fmt);
	doprnt(2, fmt, &ap);
	__builtin_va_end(ap);
	/* mdb appends ": <errno text>" to a warning without a newline. */
	if (n == 0 || fmt[n - 1] != '\n')
		out(2, ": (fake errno)\n", 15);
}

/* ---- memory and symbols ---- */

ssize_t
mdb_vread(void *buf, size_t n, uintptr_t addr)
{
	uint32_t i;

	for (i = 0; i < nsegs; i++) {
		uint64_t a = segs[i].fg_addr, len = segs[i].fg_len;

		if (addr >= a && addr - a <= len && n <= len - (addr - a)) {
			(void) memcpy(buf, segs[i].fg_bytes + (addr - a), n);
			return ((ssize_t)n);
		}
	}
	return (-1);
}

int
mdb_lookup_by_name(const char *name, GElf_Sym *sym)
{
	uint32_t i;

	for (i = 0; i < nsyms; i++) {
		if (strcmp(syms[i].fs_name, name) == 0) {
			(void) memset(sym, 0, sizeof (*sym));
			sym->st_value = syms[i].fs_value;
			sym->st_size = syms[i].fs_size;
			return (0);
		}
	}
	return (-1);
}

ssize_t
mdb_readvar(void *buf, const char *name)
{
	GElf_Sym sym;

	if (mdb_lookup_by_name(name, &sym) != 0)
		return (-1);
	return (mdb_vread(buf, sym.st_size, (uintptr_t)sym.st_value));
}

void *
mdb_alloc(size_t n, uint_t flags)
{
	(void) flags;
	return (xalloc(n));	/* UM_GC memory lives until exit */
}

void *
mdb_zalloc(size_t n, uint_t flags)
{
	return (mdb_alloc(n, flags));
}

void
mdb_free(void *p, size_t n)
{
	(void) n;
	free(p);
}

/* mdb's default radix is 16; 0x, 0t (decimal), 0o and 0i prefixes. */
u_longlong_t
mdb_strtoull(const char *s)
{
	u_longlong_t v = 0;
	unsigned base = 16;

	if (s[0] == '0' && s[1] != '\0') {
		switch (s[1]) {
		case 'x': case 'X': base = 16; s += 2; break;
		case 't': case 'T': base = 10; s += 2; break;
		case 'o': case 'O': base = 8; s += 2; break;
		case 'i': case 'I': base = 2; s += 2; break;
		default: break;
		}
	}
	for (; *s != '\0'; s++) {
		unsigned d;

		if (*s >= '0' && *s <= '9')
			d = (unsigned)(*s - '0');
		else if (*s >= 'a' && *s <= 'f')
			d = (unsigned)(*s - 'a' + 10);
		else if (*s >= 'A' && *s <= 'F')
			d = (unsigned)(*s - 'A' + 10);
		else
			die("bad number");
		if (d >= base)
			die("bad digit for radix");
		v = v * base + d;
	}
	return (v);
}

/* ---- walkers and dcmds from the module's modinfo ---- */

static const mdb_walker_t *
find_walker(const char *name)
{
	const mdb_walker_t *w;

	for (w = modinfo->mi_walkers; w->walk_name != NULL; w++) {
		if (strcmp(w->walk_name, name) == 0)
			return (w);
	}
	return (NULL);
}

static const mdb_dcmd_t *
find_dcmd(const char *name)
{
	const mdb_dcmd_t *d;

	for (d = modinfo->mi_dcmds; d->dc_name != NULL; d++) {
		if (strcmp(d->dc_name, name) == 0)
			return (d);
	}
	return (NULL);
}

int
mdb_pwalk(const char *name, mdb_walk_cb_t cb, void *data, uintptr_t addr)
{
	const mdb_walker_t *w = find_walker(name);
	mdb_walk_state_t ws;
	int rv;

	if (w == NULL)
		return (-1);
	(void) memset(&ws, 0, sizeof (ws));
	ws.walk_callback = cb;
	ws.walk_cbdata = data;
	ws.walk_addr = addr;
	ws.walk_arg = w->walk_init_arg;

	rv = w->walk_init(&ws);
	while (rv == WALK_NEXT)
		rv = w->walk_step(&ws);
	if (w->walk_fini != NULL)
		w->walk_fini(&ws);
	return (rv == WALK_ERR ? -1 : 0);
}

int
mdb_walk(const char *name, mdb_walk_cb_t cb, void *data)
{
	return (mdb_pwalk(name, cb, data, (uintptr_t)NULL));
}

static int
print_addr(uintptr_t addr, const void *data, void *arg)
{
	(void) data;
	(void) arg;
	mdb_printf("%lx\n", addr);
	return (WALK_NEXT);
}

typedef struct addrs {
	uintptr_t *a_v;
	size_t a_n, a_cap;
} addrs_t;

static int
collect_addr(uintptr_t addr, const void *data, void *arg)
{
	addrs_t *a = arg;

	(void) data;
	if (a->a_n == a->a_cap) {
		a->a_cap = a->a_cap == 0 ? 64 : a->a_cap * 2;
		a->a_v = realloc(a->a_v, a->a_cap * sizeof (uintptr_t));
		if (a->a_v == NULL)
			die("out of memory");
	}
	a->a_v[a->a_n++] = addr;
	return (WALK_NEXT);
}

static mdb_arg_t *
make_args(int argc, char **argv)
{
	mdb_arg_t *args = xalloc((size_t)(argc + 1) * sizeof (mdb_arg_t));
	int i;

	for (i = 0; i < argc; i++) {
		if (argv[i][0] == '$') {
			args[i].a_type = MDB_TYPE_IMMEDIATE;
			args[i].a_un.a_val = mdb_strtoull(argv[i] + 1);
		} else {
			args[i].a_type = MDB_TYPE_STRING;
			args[i].a_un.a_str = argv[i];
		}
	}
	return (args);
}

static void
usage(void)
{
	die("usage: mdb_fake IMAGE walk WALKER [ADDR] | "
	    "dcmd DCMD ADDR|- [ARG..] | pipe WALKER ADDR|- DCMD [ARG..]");
}

int
main(int argc, char **argv)
{
	const mdb_dcmd_t *d;
	uintptr_t addr = 0;
	uint_t flags = 0;

	if (argc < 4)
		usage();
	load_image(argv[1]);
	modinfo = _mdb_init();
	if (modinfo == NULL || modinfo->mi_dvers != MDB_API_VERSION)
		die("_mdb_init: bad modinfo");

	if (strcmp(argv[2], "walk") == 0) {
		if (argc > 5)
			usage();
		if (find_walker(argv[3]) == NULL)
			die("no such walker");
		if (argc == 5)
			addr = (uintptr_t)mdb_strtoull(argv[4]);
		return (mdb_pwalk(argv[3], print_addr, NULL, addr) == 0 ? 0 : 1);
	}

	if (strcmp(argv[2], "dcmd") == 0) {
		if (argc < 5)
			usage();
		if ((d = find_dcmd(argv[3])) == NULL)
			die("no such dcmd");
		if (strcmp(argv[4], "-") != 0) {
			addr = (uintptr_t)mdb_strtoull(argv[4]);
			flags |= DCMD_ADDRSPEC;
		}
		return (d->dc_funcp(addr, flags, argc - 5,
		    make_args(argc - 5, argv + 5)));
	}

	if (strcmp(argv[2], "pipe") == 0) {
		addrs_t a = { NULL, 0, 0 };
		mdb_arg_t *args;
		size_t i;
		int rv;

		if (argc < 6)
			usage();
		if (find_walker(argv[3]) == NULL)
			die("no such walker");
		if ((d = find_dcmd(argv[5])) == NULL)
			die("no such dcmd");
		if (strcmp(argv[4], "-") != 0)
			addr = (uintptr_t)mdb_strtoull(argv[4]);
		if (mdb_pwalk(argv[3], collect_addr, &a, addr) != 0)
			return (1);
		args = make_args(argc - 6, argv + 6);
		/* As mdb runs a dcmd over a pipe: a loop, first flagged. */
		for (i = 0; i < a.a_n; i++) {
			flags = DCMD_ADDRSPEC | DCMD_LOOP | DCMD_PIPE |
			    (i == 0 ? DCMD_LOOPFIRST : 0);
			rv = d->dc_funcp(a.a_v[i], flags, argc - 6, args);
			if (rv != DCMD_OK)
				return (rv);
		}
		return (0);
	}

	usage();
	return (2);
}
