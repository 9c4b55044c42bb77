/*
 * A small file-backed SBT 2.0 library for the simulator's tests (not ORCA's product library).
 *
 * Environment (read with getenv, so it must arrive through the channel's ENV=(...)):
 *   SBT_TESTLIB_DIR    directory holding the backup files (required; sbtinit2 fails without it)
 *   SBT_TESTLIB_TRACE  file to which every call is appended as one line "<pid> <call> <args>"
 *   SBT_TESTLIB_FAIL   comma-separated entry points that fail with 7501 (e.g. "sbtbackup")
 *
 * Backup files are <dir>/<name with '/' as '%'>; a file being written is "<file>.part" and only
 * becomes visible at sbtclose2 without SBTCLOSE2_ABORT.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

typedef struct { unsigned long tag; void *value; } pair_t;
typedef struct { int bsercoer; int bsercerrno; } bserc;

#define SBTINIT_INEND 1
#define SBTINIT_TRACE_NAME 2
#define SBTINIT_OUTEND 1
#define SBTINIT_MMS_APIVSN 4
#define SBTINIT_MMS_DESC 5
#define SBTINIT_MMS_FPTR 6
#define SBTINIT_CTXSIZE 7
#define SBTINIT_MMSVSN 8
#define SBTINIT2_TRACE_LEVEL 1
#define SBTINIT2_CLIENT_APIVSN 2
#define SBTINIT2_END 9999
#define SBTOBJECT_DBNAME 2
#define SBTOBJECT_DBID 3
#define SBTOBJECT_FILETYPE 5
#define SBTOBJECT_END 32
#define SBTBFINFO_NAME 1
#define SBTBFINFO_METHOD 2
#define SBTBFINFO_CRETIME 3
#define SBTBFINFO_LABEL 5
#define SBTBFINFO_SHARE 6
#define SBTBFINFO_ORDER 7
#define SBTBFINFO_NOTFOUND 8
#define SBTBFINFO_COMMENT 9
#define SBTBFINFO_END 9999
#define SBTCLOSE2_ABORT 1
#define SBT_ERROR_MM 7501
#define SBT_ERROR_NOTFOUND 7502
#define SBT_ERROR_EXISTS 7503
#define SBT_ERROR_EOF 7504
#define MAX_INFO 64

enum mode { IDLE = 0, WRITING, READING };

struct ctx {
    int initialised;
    enum mode mode;
    FILE *f;
    size_t block_size;
    unsigned long writes;
    unsigned long reads;
    char path[1024];
    char part[1040];
    unsigned long err_code;
    char err_text[1024];
    pair_t info[MAX_INFO * 8 + 1];
    char info_names[MAX_INFO][512];
    time_t info_times[MAX_INFO];
};

static unsigned long one = 1;
static unsigned long apivsn = 0x0200;
static unsigned long mmsvsn = (1UL << 24) | (2UL << 16) | (3UL << 8) | 4UL;
static unsigned long ctxsize = sizeof(struct ctx);
static char desc[] = "ORCA test SBT library";
static char label[] = "TESTVOL1";
static char comment[] = "sbt_testlib";

static void trace(const char *fmt, ...) {
    const char *t = getenv("SBT_TESTLIB_TRACE");
    if (!t || !*t) return;
    FILE *f = fopen(t, "a");
    if (!f) return;
    char line[2048];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    fprintf(f, "%ld %s\n", (long)getpid(), line);
    fclose(f);
}

static int should_fail(const char *fn) {
    const char *s = getenv("SBT_TESTLIB_FAIL");
    if (!s) return 0;
    size_t n = strlen(fn);
    for (const char *p = s; (p = strstr(p, fn)) != NULL; p += n) {
        int start_ok = (p == s) || p[-1] == ',';
        int end_ok = p[n] == '\0' || p[n] == ',';
        if (start_ok && end_ok) return 1;
    }
    return 0;
}

static int fail(struct ctx *c, unsigned long code, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(c->err_text, sizeof c->err_text, fmt, ap);
    va_end(ap);
    c->err_code = code;
    return -1;
}

static int file_path(struct ctx *c, const char *name, char *out, size_t outlen) {
    const char *dir = getenv("SBT_TESTLIB_DIR");
    if (!dir || !*dir) return fail(c, SBT_ERROR_MM, "sbt_testlib: SBT_TESTLIB_DIR is not set");
    size_t used = (size_t)snprintf(out, outlen, "%s/", dir);
    for (const char *p = name; *p && used + 1 < outlen; p++) out[used++] = (*p == '/') ? '%' : *p;
    out[used] = '\0';
    return 0;
}

static int entry(struct ctx *c, const char *fn) {
    c->err_code = 0;
    c->err_text[0] = '\0';
    if (should_fail(fn)) return fail(c, SBT_ERROR_MM, "sbt_testlib: simulated failure in %s", fn);
    return 0;
}

static int sbtbackup_(void *vc, unsigned long flags, char *name, pair_t *objs, size_t bs,
                      size_t max_size, unsigned int copy, unsigned int pool) {
    struct ctx *c = vc;
    const char *dbname = "";
    unsigned long dbid = 0, ftype = 0;
    for (pair_t *o = objs; o && o->tag != SBTOBJECT_END; o++) {
        if (o->tag == SBTOBJECT_DBNAME && o->value) dbname = o->value;
        if (o->tag == SBTOBJECT_DBID && o->value) dbid = *(unsigned long *)o->value;
        if (o->tag == SBTOBJECT_FILETYPE && o->value) ftype = *(unsigned long *)o->value;
    }
    trace("sbtbackup name=%s dbname=%s dbid=%lu filetype=%lu block_size=%zu max_size=%zu copy=%u "
          "pool=%u flags=%lu", name, dbname, dbid, ftype, bs, max_size, copy, pool, flags);
    if (entry(c, "sbtbackup")) return -1;
    if (c->mode != IDLE) return fail(c, SBT_ERROR_MM, "sbt_testlib: a file is already open");
    if (file_path(c, name, c->path, sizeof c->path)) return -1;
    struct stat st;
    if (stat(c->path, &st) == 0) return fail(c, SBT_ERROR_EXISTS, "sbt_testlib: %s already exists", name);
    snprintf(c->part, sizeof c->part, "%s.part", c->path);
    c->f = fopen(c->part, "wb");
    if (!c->f) return fail(c, SBT_ERROR_MM, "sbt_testlib: cannot create %s: %s", c->part, strerror(errno));
    c->mode = WRITING;
    c->block_size = bs;
    c->writes = 0;
    return 0;
}

static int sbtwrite2_(void *vc, unsigned long flags, void *buf) {
    struct ctx *c = vc;
    c->writes++;
    trace("sbtwrite2 n=%lu", c->writes);
    if (entry(c, "sbtwrite2")) return -1;
    if (c->mode != WRITING) return fail(c, SBT_ERROR_MM, "sbt_testlib: sbtwrite2 without sbtbackup");
    if (fwrite(buf, 1, c->block_size, c->f) != c->block_size)
        return fail(c, SBT_ERROR_MM, "sbt_testlib: write failed: %s", strerror(errno));
    (void)flags;
    return 0;
}

static int sbtclose2_(void *vc, unsigned long flags) {
    struct ctx *c = vc;
    if (c->mode == WRITING) trace("sbtclose2 flags=%lu writes=%lu", flags, c->writes);
    else trace("sbtclose2 flags=%lu reads=%lu", flags, c->reads);
    if (entry(c, "sbtclose2")) return -1;
    enum mode m = c->mode;
    c->mode = IDLE;
    if (!c->f) return fail(c, SBT_ERROR_MM, "sbt_testlib: no file open");
    int bad = fclose(c->f) != 0;
    c->f = NULL;
    if (m == WRITING) {
        if (bad || (flags & SBTCLOSE2_ABORT)) { unlink(c->part); return bad ? fail(c, SBT_ERROR_MM, "sbt_testlib: close failed") : 0; }
        if (rename(c->part, c->path) != 0) return fail(c, SBT_ERROR_MM, "sbt_testlib: commit failed: %s", strerror(errno));
    }
    return 0;
}

static int sbtinfo2_(void *vc, unsigned long flags, char **names, pair_t **out) {
    struct ctx *c = vc;
    char list[4096] = "";
    for (char **n = names; n && *n; n++) {
        if (list[0]) strncat(list, ",", sizeof list - strlen(list) - 1);
        strncat(list, *n, sizeof list - strlen(list) - 1);
    }
    trace("sbtinfo2 names=%s flags=%lu", list, flags);
    if (entry(c, "sbtinfo2")) return -1;
    int k = 0, i = 0;
    for (char **n = names; n && *n && i < MAX_INFO; n++, i++) {
        snprintf(c->info_names[i], sizeof c->info_names[i], "%s", *n);
        c->info[k++] = (pair_t){SBTBFINFO_NAME, c->info_names[i]};
        char p[1024];
        struct stat st;
        if (file_path(c, *n, p, sizeof p) || stat(p, &st) != 0) {
            c->info[k++] = (pair_t){SBTBFINFO_NOTFOUND, NULL};
            continue;
        }
        c->info_times[i] = st.st_mtime;
        c->info[k++] = (pair_t){SBTBFINFO_METHOD, &one};
        c->info[k++] = (pair_t){SBTBFINFO_CRETIME, &c->info_times[i]};
        c->info[k++] = (pair_t){SBTBFINFO_LABEL, label};
        c->info[k++] = (pair_t){SBTBFINFO_SHARE, &one};
        c->info[k++] = (pair_t){SBTBFINFO_ORDER, &one};
        c->info[k++] = (pair_t){SBTBFINFO_COMMENT, comment};
    }
    c->info[k] = (pair_t){SBTBFINFO_END, NULL};
    c->err_code = 0;
    *out = c->info;
    return 0;
}

static int sbtrestore_(void *vc, unsigned long flags, char *name, size_t bs) {
    struct ctx *c = vc;
    trace("sbtrestore name=%s block_size=%zu flags=%lu", name, bs, flags);
    if (entry(c, "sbtrestore")) return -1;
    if (c->mode != IDLE) return fail(c, SBT_ERROR_MM, "sbt_testlib: a file is already open");
    if (file_path(c, name, c->path, sizeof c->path)) return -1;
    c->f = fopen(c->path, "rb");
    if (!c->f) return fail(c, SBT_ERROR_NOTFOUND, "sbt_testlib: %s not found", name);
    c->mode = READING;
    c->block_size = bs;
    c->reads = 0;
    return 0;
}

static int sbtread2_(void *vc, unsigned long flags, void *buf) {
    struct ctx *c = vc;
    (void)flags;
    c->reads++;
    trace("sbtread2 n=%lu", c->reads);
    if (entry(c, "sbtread2")) return -1;
    if (c->mode != READING) return fail(c, SBT_ERROR_MM, "sbt_testlib: sbtread2 without sbtrestore");
    size_t n = fread(buf, 1, c->block_size, c->f);
    if (n == 0) return fail(c, SBT_ERROR_EOF, "end of file");
    if (n < c->block_size) memset((char *)buf + n, 0, c->block_size - n);
    return 0;
}

static int sbtremove2_(void *vc, unsigned long flags, char **names) {
    struct ctx *c = vc;
    char list[4096] = "";
    for (char **n = names; n && *n; n++) {
        if (list[0]) strncat(list, ",", sizeof list - strlen(list) - 1);
        strncat(list, *n, sizeof list - strlen(list) - 1);
    }
    trace("sbtremove2 names=%s flags=%lu", list, flags);
    if (entry(c, "sbtremove2")) return -1;
    for (char **n = names; n && *n; n++) {
        char p[1024];
        if (file_path(c, *n, p, sizeof p)) return -1;
        if (unlink(p) != 0) return fail(c, SBT_ERROR_NOTFOUND, "sbt_testlib: %s not found", *n);
    }
    return 0;
}

static int sbtcommand_(void *vc, unsigned long flags, char *cmd) {
    struct ctx *c = vc;
    trace("sbtcommand cmd=%s flags=%lu", cmd, flags);
    return entry(c, "sbtcommand");
}

static int sbtend_(void *vc, unsigned long flags) {
    struct ctx *c = vc;
    trace("sbtend flags=%lu", flags);
    if (c->f) {
        fclose(c->f);
        c->f = NULL;
        if (c->mode == WRITING) unlink(c->part);
    }
    c->mode = IDLE;
    return entry(c, "sbtend");
}

static int sbterror_(void *vc, unsigned long flags, unsigned long *code, char **native, char **utf8) {
    struct ctx *c = vc;
    (void)flags;
    trace("sbterror code=%lu", c->err_code);
    if (c->err_code == 0) return -1;
    *code = c->err_code;
    *native = c->err_text;
    if (utf8) *utf8 = NULL;
    return 0;
}

static int sbtinit2_(void *vc, unsigned long flags, pair_t *in, pair_t **out) {
    struct ctx *c = vc;
    int zero = 1;
    for (size_t i = 0; i < sizeof *c; i++)
        if (((unsigned char *)vc)[i]) { zero = 0; break; }
    unsigned long level = 0, client = 0;
    for (pair_t *p = in; p && p->tag != SBTINIT2_END; p++) {
        if (p->tag == SBTINIT2_TRACE_LEVEL && p->value) level = *(unsigned long *)p->value;
        if (p->tag == SBTINIT2_CLIENT_APIVSN && p->value) client = *(unsigned long *)p->value;
    }
    const char *dir = getenv("SBT_TESTLIB_DIR");
    trace("sbtinit2 ctxsize=%lu ctxzero=%d level=%lu client=0x%lx dir=%s flags=%lu", ctxsize, zero,
          level, client, dir ? dir : "", flags);
    memset(c, 0, sizeof *c);
    c->initialised = 1;
    if (out) *out = NULL;
    if (entry(c, "sbtinit2")) return -1;
    if (!dir || !*dir) return fail(c, SBT_ERROR_MM, "sbt_testlib: SBT_TESTLIB_DIR is not set; give it in ENV=(...)");
    return 0;
}

static int stub_fail(void) { return -1; }

struct fptr {
    void *fns[21];
};
static struct fptr table;

static pair_t init_out[] = {
    {SBTINIT_MMS_APIVSN, &apivsn}, {SBTINIT_MMS_DESC, desc}, {SBTINIT_MMS_FPTR, &table},
    {SBTINIT_CTXSIZE, &ctxsize},   {SBTINIT_MMSVSN, &mmsvsn}, {SBTINIT_OUTEND, NULL},
};

int sbtinit(bserc *se, pair_t *in, pair_t **out) {
    const char *tname = "";
    for (pair_t *p = in; p && p->tag != SBTINIT_INEND; p++)
        if (p->tag == SBTINIT_TRACE_NAME && p->value) tname = p->value;
    trace("sbtinit trace_name=%s", tname);
    if (should_fail("sbtinit")) { se->bsercoer = 7110; se->bsercerrno = 0; return -1; }
    void *fns[21] = {
        (void *)sbtbackup_, (void *)sbtclose2_, (void *)sbtcommand_, (void *)sbtend_,
        (void *)sbterror_,  (void *)sbtinfo2_,  (void *)sbtinit2_,   (void *)sbtread2_,
        (void *)sbtremove2_, (void *)sbtrestore_, (void *)sbtwrite2_,
    };
    for (int i = 11; i < 21; i++) fns[i] = (void *)stub_fail;
    memcpy(table.fns, fns, sizeof fns);
    se->bsercoer = 0;
    *out = init_out;
    return 0;
}

/* SBT 1.1 entry points: exported because RMAN may look for them; unused by 2.0 clients. */
int sbtopen(bserc *se, char *n, unsigned long m, size_t b, pair_t *o) { (void)n; (void)m; (void)b; (void)o; se->bsercoer = 7011; return -1; }
int sbtread(bserc *se, int th, char *buf) { (void)th; (void)buf; se->bsercoer = 7064; return -1; }
int sbtwrite(bserc *se, int th, char *buf) { (void)th; (void)buf; se->bsercoer = 7043; return -1; }
int sbtclose(bserc *se, int th, unsigned long f) { (void)th; (void)f; se->bsercoer = 7023; return -1; }
char **sbtinfo(bserc *se, char *n, pair_t *o) { (void)n; (void)o; se->bsercoer = 7094; return NULL; }
int sbtremove(bserc *se, char *n, pair_t *o) { (void)n; (void)o; se->bsercoer = 7085; return -1; }
