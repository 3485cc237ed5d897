/*
 * A minimal stand-in for liblustreapi, used only by lustre/tests/mock_library.rs to drive the
 * FFI wrappers through a real C library loaded at run time. It follows the return conventions
 * of lustre-abi.md §3 and records every call in a text trace the test reads back.
 * Test hooks: mock_trace, mock_push_changelog, mock_push_hal, mock_emit_log.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

struct lu_fid { uint64_t f_seq; uint32_t f_oid; uint32_t f_ver; } __attribute__((packed));
struct hsm_extent { uint64_t offset; uint64_t length; } __attribute__((packed));
struct hsm_action_item {
	uint32_t hai_len; uint32_t hai_action; struct lu_fid hai_fid; struct lu_fid hai_dfid;
	struct hsm_extent hai_extent; uint64_t hai_cookie; uint64_t hai_gid; char hai_data[];
} __attribute__((packed));
struct hsm_request {
	uint32_t hr_action; uint32_t hr_archive_id; uint64_t hr_flags;
	uint32_t hr_itemcount; uint32_t hr_data_len;
};
struct hsm_user_item { struct lu_fid hui_fid; struct hsm_extent hui_extent; } __attribute__((packed));
struct hsm_user_request {
	struct hsm_request hur_request; struct hsm_user_item hur_user_item[];
} __attribute__((packed));
struct hsm_user_state {
	uint32_t hus_states; uint32_t hus_archive_id; uint32_t hus_in_progress_state;
	uint32_t hus_in_progress_action; struct hsm_extent hus_in_progress_location;
};
struct hsm_current_action { uint32_t hca_state; uint32_t hca_action; struct hsm_extent hca_location; };

#define CR_MAXSIZE 952
#define MAX_QUEUE 16

static char trace[1 << 16];
static size_t trace_len;

static void note(const char *fmt, ...)
{
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(trace + trace_len, sizeof(trace) - trace_len, fmt, ap);
	va_end(ap);
	if (n > 0 && trace_len + n + 1 < sizeof(trace)) {
		trace_len += n;
		trace[trace_len++] = '\n';
		trace[trace_len] = 0;
	}
}

const char *mock_trace(void) { return trace; }

struct blob { unsigned char *bytes; size_t len; };
static struct blob changelog_q[MAX_QUEUE], hal_q[MAX_QUEUE];
static int changelog_n, changelog_pos, hal_n, hal_pos;

static void push(struct blob *q, int *n, const void *b, size_t len)
{
	if (*n >= MAX_QUEUE)
		return;
	q[*n].bytes = malloc(len ? len : 1);
	memcpy(q[*n].bytes, b, len);
	q[*n].len = len;
	(*n)++;
}

/* A record of length 0 makes llapi_changelog_recv return 0 with a NULL record. */
void mock_push_changelog(const void *rec, size_t len) { push(changelog_q, &changelog_n, rec, len); }
void mock_push_hal(const void *hal, size_t len) { push(hal_q, &hal_n, hal, len); }

typedef void (*llapi_log_callback_t)(unsigned int level, int err, const char *fmt, va_list ap);
static llapi_log_callback_t log_cb;

static void emit(unsigned int level, int err, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	if (log_cb)
		log_cb(level, err, fmt, ap);
	va_end(ap);
}

void mock_emit_log(void) { emit(2 | 0x10, 5, "%s has %d links (%llx)", "file", 3, 0xabcULL); }

llapi_log_callback_t llapi_error_callback_set(llapi_log_callback_t cb)
{
	llapi_log_callback_t old = log_cb;

	log_cb = cb;
	note("error_callback_set %s", cb ? "set" : "null");
	return old;
}

void llapi_msg_set_level(int level) { note("msg_set_level %d", level); }

/* ---- mount helpers ---- */
int llapi_search_mounts(const char *path, int index, char *mntdir, char *fsname)
{
	strcpy(mntdir, path);
	if (fsname)
		strcpy(fsname, "mockfs");
	note("search_mounts %s %d", path, index);
	return 0;
}

int llapi_search_fsname(const char *path, char *fsname)
{
	strcpy(fsname, "mockfs");
	note("search_fsname %s", path);
	return 0;
}

int llapi_getname(const char *path, char *name, size_t namelen)
{
	int n = snprintf(name, namelen, "mockfs-ffff8881");

	return n < 0 || (size_t)n >= namelen ? -ENAMETOOLONG : 0;
}

int llapi_fid2path(const char *device, const char *fidstr, char *path, int pathlen,
		   long long *recno, int *linkno)
{
	static char longname[5001];
	const char *links[3] = { "dir/a", "dir/b", longname };
	int n = *linkno;

	note("fid2path %s %s pathlen=%d recno=%lld linkno=%d", device, fidstr, pathlen,
	     recno ? *recno : 0, n);
	if (strcmp(fidstr, "[0x200000007:0x1:0x0]") == 0) {
		strcpy(path, "/");
		return 0;
	}
	if (strcmp(fidstr, "[0x200000401:0x1:0x0]") != 0)
		return -ENOENT;
	memset(longname, 'L', 5000);
	if (n < 0 || n > 2)
		return -EINVAL;
	if ((int)strlen(links[n]) >= pathlen)
		return -ERANGE;
	strcpy(path, links[n]);
	if (n < 2)
		*linkno = n + 1;
	return 0;
}

int llapi_path2fid(const char *path, struct lu_fid *fid)
{
	size_t l = strlen(path);

	note("path2fid %s", path);
	if (l < 5 || strcmp(path + l - 5, "/file") != 0)
		return -ENOTTY;
	fid->f_seq = 0x200000401ULL; fid->f_oid = 7; fid->f_ver = 0;
	return 0;
}

int llapi_fd2fid(int fd, struct lu_fid *fid)
{
	fid->f_seq = 0x200000401ULL; fid->f_oid = 8; fid->f_ver = (uint32_t)fd;
	return 0;
}

int llapi_open_by_fid(const char *dir, const struct lu_fid *fid, int flags)
{
	int fd;

	note("open_by_fid %s oid=%u flags=%d", dir, fid->f_oid, flags);
	fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
	return fd < 0 ? -errno : fd;
}

int llapi_get_mdt_index_by_fid(int fd, const struct lu_fid *fid, int *mdt_index)
{
	*mdt_index = 3;
	return 3;
}

int llapi_get_data_version(int fd, uint64_t *dv, uint64_t flags)
{
	*dv = 0x1234;
	note("get_data_version flags=%llu", (unsigned long long)flags);
	return 0;
}

/* ---- HSM state, requests, import ---- */
int llapi_hsm_state_get(const char *path, struct hsm_user_state *hus)
{
	memset(hus, 0x5a, sizeof(*hus));
	hus->hus_states = 0x9; /* EXISTS|ARCHIVED */
	hus->hus_archive_id = 2;
	return 0;
}

int llapi_hsm_state_set(const char *path, uint64_t setmask, uint64_t clearmask, uint32_t archive_id)
{
	note("state_set %s set=%llu clear=%llu archive=%u", path, (unsigned long long)setmask,
	     (unsigned long long)clearmask, archive_id);
	return 0;
}

int llapi_hsm_current_action(const char *path, struct hsm_current_action *hca)
{
	hca->hca_state = 2; /* RUNNING */
	hca->hca_action = 11; /* HUA_RESTORE */
	hca->hca_location.offset = 0;
	hca->hca_location.length = 4096;
	return 0;
}

int llapi_hsm_request(const char *path, const struct hsm_user_request *hur)
{
	struct hsm_request hdr;
	const struct hsm_request *hr = &hdr;
	size_t len;
	const char *data;
	struct lu_fid first;

	memcpy(&hdr, hur, sizeof(hdr));
	len = 24 + 32 * (size_t)hr->hr_itemcount + hr->hr_data_len;
	data = (const char *)hur + 24 + 32 * (size_t)hr->hr_itemcount;
	if (hr->hr_itemcount)
		memcpy(&first, (const char *)hur + 24, sizeof(first));

	if (len >= 1706)
		return -E2BIG;
	note("hsm_request %s action=%u archive=%u items=%u first_oid=%u data=%.*s", path,
	     hr->hr_action, hr->hr_archive_id, hr->hr_itemcount,
	     hr->hr_itemcount ? first.f_oid : 0,
	     (int)hr->hr_data_len, data);
	return 0;
}

int llapi_hsm_import(const char *dst, int archive, const struct stat *st,
		     unsigned long long stripe_size, int stripe_offset, int stripe_count,
		     int stripe_pattern, char *pool_name, struct lu_fid *newfid)
{
	note("import %s archive=%d size=%lld mode=%o uid=%u gid=%u mtime=%lld.%ld stripe=%llu,%d,%d,%d pool=%s",
	     dst, archive, (long long)st->st_size, st->st_mode, st->st_uid, st->st_gid,
	     (long long)st->st_mtim.tv_sec, st->st_mtim.tv_nsec, stripe_size, stripe_offset,
	     stripe_count, stripe_pattern, pool_name ? pool_name : "(null)");
	newfid->f_seq = 0x200000401ULL; newfid->f_oid = 0x99; newfid->f_ver = 0;
	return 0;
}

/* ---- changelog ---- */
struct chlg { int magic; };

int llapi_changelog_start(void **priv, unsigned int flags, const char *mdt, long long start)
{
	note("changelog_start %s flags=%#x start=%lld", mdt, flags, start);
	if (strcmp(mdt, "mockfs-MDT0000") != 0)
		return -ENOENT;
	*priv = calloc(1, sizeof(struct chlg));
	changelog_pos = 0;
	return 0;
}

int llapi_changelog_set_xflags(void *priv, unsigned int xflags)
{
	note("changelog_set_xflags %#x", xflags);
	return 0;
}

int llapi_changelog_recv(void *priv, void **rech)
{
	struct blob *b;

	*rech = NULL;
	if (changelog_pos >= changelog_n)
		return 1;
	b = &changelog_q[changelog_pos++];
	if (b->len == 0)
		return 0; /* allocation failure */
	*rech = calloc(1, CR_MAXSIZE);
	memcpy(*rech, b->bytes, b->len);
	return 0;
}

int llapi_changelog_free(void **rech)
{
	note("changelog_free %s", *rech ? "record" : "null");
	free(*rech);
	*rech = NULL;
	return 0;
}

int llapi_changelog_fini(void **priv)
{
	note("changelog_fini");
	free(*priv);
	*priv = NULL;
	return 0;
}

int llapi_changelog_get_fd(void *priv) { return 42; }
int llapi_changelog_in_buf(void *priv) { return changelog_pos < changelog_n; }

int llapi_changelog_clear(const char *mdt, const char *id, long long endrec)
{
	note("changelog_clear %s %s %lld", mdt, id, endrec);
	return strcmp(id, "cl1") == 0 ? 0 : -ENOENT;
}

/* ---- copytool ---- */
struct ct { int magic; uint64_t buf[1024]; };
struct hcp { uint64_t cookie; uint32_t action; };

int llapi_hsm_copytool_register(struct ct **priv, const char *mnt, int count, int *archives,
				int rfd_flags)
{
	char ids[128] = "";
	int i;

	for (i = 0; i < count; i++)
		snprintf(ids + strlen(ids), sizeof(ids) - strlen(ids), "%s%d", i ? "," : "",
			 archives[i]);
	note("ct_register %s count=%d ids=%s nonblock=%d", mnt, count, ids,
	     (rfd_flags & O_NONBLOCK) != 0);
	*priv = calloc(1, sizeof(struct ct));
	(*priv)->magic = 0xC0;
	hal_pos = 0;
	return 0;
}

int llapi_hsm_copytool_unregister(struct ct **priv)
{
	if (!*priv || (*priv)->magic != 0xC0)
		return -EINVAL;
	note("ct_unregister");
	free(*priv);
	*priv = NULL;
	return 0;
}

int llapi_hsm_copytool_get_fd(struct ct *ct) { return ct && ct->magic == 0xC0 ? 43 : -EINVAL; }

int llapi_hsm_copytool_recv(struct ct *ct, void **hal, int *msgsize)
{
	struct blob *b;

	*hal = NULL;
	*msgsize = 0;
	if (hal_pos >= hal_n)
		return -ESHUTDOWN;
	b = &hal_q[hal_pos++];
	memset(ct->buf, 0xEE, sizeof(ct->buf)); /* stale bytes past msgsize */
	memcpy(ct->buf, b->bytes, b->len);
	*hal = ct->buf;
	*msgsize = (int)b->len;
	return 0;
}

int llapi_hsm_action_begin(struct hcp **phcp, const struct ct *ct,
			   const struct hsm_action_item *hai, int mdt_index, int open_flags,
			   bool is_error)
{
	const unsigned char *data = (const unsigned char *)hai->hai_data;
	unsigned int sum = 0, i;

	for (i = 0; i < hai->hai_len - 72; i++)
		sum += data[i];
	note("action_begin cookie=%llu action=%u len=%u datasum=%u mdt=%d flags=%d error=%d",
	     (unsigned long long)hai->hai_cookie, hai->hai_action, hai->hai_len, sum, mdt_index,
	     open_flags, is_error);
	if (hai->hai_cookie == 666 && !is_error)
		return -ECANCELED;
	*phcp = calloc(1, sizeof(struct hcp));
	(*phcp)->cookie = hai->hai_cookie;
	(*phcp)->action = hai->hai_action;
	return 0;
}

int llapi_hsm_action_progress(struct hcp *hcp, const struct hsm_extent *he, uint64_t total,
			      int hp_flags)
{
	note("action_progress cookie=%llu off=%llu len=%llu total=%llu",
	     (unsigned long long)hcp->cookie, (unsigned long long)he->offset,
	     (unsigned long long)he->length, (unsigned long long)total);
	return hcp->cookie == 777 ? -ECANCELED : 0;
}

int llapi_hsm_action_end(struct hcp **phcp, const struct hsm_extent *he, int hp_flags, int errval)
{
	int rc = (*phcp)->cookie == 888 ? -EBUSY : 0;

	note("action_end cookie=%llu off=%llu len=%llu flags=%d errval=%d",
	     (unsigned long long)(*phcp)->cookie, (unsigned long long)he->offset,
	     (unsigned long long)he->length, hp_flags, errval);
	free(*phcp);
	*phcp = NULL;
	return rc;
}

int llapi_hsm_action_get_fd(const struct hcp *hcp)
{
	int fd = open("/dev/null", O_RDONLY | O_CLOEXEC);

	return fd < 0 ? -errno : fd;
}

int llapi_hsm_action_get_dfid(const struct hcp *hcp, struct lu_fid *fid)
{
	fid->f_seq = 0x200000401ULL; fid->f_oid = 0xd; fid->f_ver = 0;
	return 0;
}
