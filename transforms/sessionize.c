/* sessionize.c — order-independent sessionization (SPEC §4): a compact per-visitor event store,
 * recomputation of a visitor's sessions when it is touched, and the difference with what was
 * last written.
 *
 * Layout. Each visitor holds its events in one array of 32-byte records: a prefix sorted by
 * (time, eventId) and an unsorted tail (events added or loaded since the last merge). Event ids
 * live in a private byte heap per visitor (a canonical lowercase UUID takes 16 bytes, and a
 * page_view_id shares the bytes of its page view's id when that is held); a visitor with many
 * events also has an eventId index (16-bit slots up to 65536). Strings shared between events
 * (user ids, paths, campaign keys, context fields) are interned with reference counts, and so
 * are, as flat records, the two parts of a context (device and geography; referrer and UTM)
 * and the "meta" record an event points to (user id, campaign key, context parts), which
 * consecutive events of a visitor nearly always share. Forgetting a visitor returns everything
 * it held. A visitor's arrays grow while a batch adds to them and are trimmed to size when the
 * batch is committed. A UUID visitorId is held in 16 bytes.
 *
 * For the state last written, a visitor keeps one record per written session (id, 64-bit
 * fingerprint of every field, the heap offset of its first event) and each written event the
 * index of its session; a written PAGE_VIEW also keeps its written time on page and scroll
 * depth. Times on page of 32767 s and more are kept in a sessionizer-wide table, keyed by the
 * visitor and the event's heap offset.
 *
 * Equality of a recomputed session with the written one is decided by id and a 64-bit
 * fingerprint of every field (strings enter by their keyed SipHash), or structurally when the
 * session holds exactly the same written events under the same configuration. */
#include "transforms/sessionize.h"

#include <math.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#define SZ_NONE UINT32_MAX
#define SZ_NCTX 16 /* string fields of tf_sess_context_t */
#define SZ_NATTR 7 /* the first SZ_NCTX fields that are attribution: referrer .. utm_content */
#define SZ_MAX_VISITOR_EVENTS (1u << 28) /* events of one visitor */
#define SZ_MAX_HEAP (1u << 30)           /* eventId bytes of one visitor */
#define SZ_MAX_POOL ((size_t)1 << 30)    /* distinct strings, distinct contexts */
#define SZ_MAX_SLOTS ((size_t)1 << 31)   /* slots of one hash table */
#define SZ_MAX_STRING ((size_t)1 << 24)  /* length of one interned string */
#define SZ_EIDX_MIN 24u                  /* visitors with more events get an eventId index */
#define SZ_EIDX_NARROW 65536u            /* eventId indexes up to this size have 16-bit slots */
#define SZ_DEFAULT_MAX_EVENTS 20000000u
#define SZ_TAG_LONG 0xFEu                /* text heap entry: tag, 4-byte length, bytes, NUL */
#define SZ_FP_NULL 0x6a09e667f3bcc908ULL /* fingerprint word of a NULL string */
#define SZ_DAY_MS 86400000LL

enum {
    EF_PENDING = 1,          /* added in the open batch, not written yet */
    EF_DROPPED = 2,          /* pending duplicate of a stored event; removed at the next merge */
    EF_RESOLVED = 4,         /* PAGE_LEAVE/SCROLL whose page_view_id was found */
    EF_CTX_FROM_SESSION = 8, /* loaded without a context: takes its stored session's */
    EF_HAS_REF = 16,         /* PAGE_LEAVE/SCROLL with a page_view_id */
    EF_NEW = 32,             /* merged by the current merge (transient) */
    EF_EID_TEXT = 64,        /* its eventId's heap entry is a text (else a UUID's 16 bytes) */
    EF_REF_TEXT = 128,       /* its page_view_id's heap entry is a text */
};
enum { VS_NEW = 0, VS_LOADING, VS_LOADED };
enum { VF_TOUCHED = 1, VF_EARLIER = 2, VF_FRESH = 4, VF_PINNED = 8, VF_UUID_ID = 16 };
enum { CS_NOROW = 1, CS_LOADCTX = 2 };

typedef struct sz_str_s {
    uint64_t hash;
    uint32_t refs;
    uint32_t len;
    char s[];
} sz_str_t;

/* A pool of interned fixed-size records of 32-bit words, stored flat (no allocation per record).
 * Word 0 of a record is its reference count; a free record (count 0) links the free list
 * through word 1. Record 0 is never used: index 0 stands for "none". */
typedef struct sz_pool_s {
    uint32_t *w;      /* cap records of `words` words */
    size_t n, cap;    /* records in use or free (record 0 included), allocated */
    uint32_t free1st; /* first free record, 0 = none */
    uint32_t *slots;  /* open addressing over record indexes, 0 = empty */
    size_t scap, scount;
    uint32_t words;   /* per record, the count included */
    uint64_t tweak;   /* varies the hash key per pool */
} sz_pool_t;

/* Record layouts (after the count word). A context is split in two interned parts: the device
 * part (nearly constant per visitor) and the attribution part (which varies with each page's
 * referrer), so that their combinations cost a meta record each, not a whole context. */
enum { DEV_S = 1, DEV_DEVICE = DEV_S + SZ_NCTX - SZ_NATTR, DEV_SW, DEV_SH, DEV_WORDS };
enum { ATTR_S = 1, ATTR_WORDS = ATTR_S + SZ_NATTR };
/* meta: what an event shares with its neighbours: user id, campaign key (string indexes) and
 * its context (dev record, attr record; dev = 0 iff the event has no context) */
enum { META_USER = 1, META_CAMP, META_DEV, META_ATTR, META_WORDS };

#define SZ_BIG INT16_MAX /* b or c of an event: the value is in the table of large values */

/* One event: 32 bytes plus its eventId in the visitor's heap. */
typedef struct sz_event_s {
    uint32_t ts_lo;
    int32_t ts_hi;
    uint32_t eid;  /* heap offset of the eventId */
    uint32_t meta; /* meta record: user, campaign, context; 0 = none of them */
    uint32_t link; /* written: index of its session in v->cs; pending: index of its cookie */
    uint32_t a; /* PAGE_VIEW: path (string index); PAGE_LEAVE/SCROLL: page_view_id heap offset
                   (shared with the page view's own eventId when it was held on arrival) */
    /* b and c hold -1 .. SZ_BIG - 1; a larger value is SZ_BIG here and exact in sz->bigs (seconds
     * on a page rarely reach 9 hours); read and write them with ev_b/ev_c/ev_set_b/ev_set_c */
    int16_t b;  /* PAGE_VIEW: largest PAGE_LEAVE seconds; PAGE_LEAVE: its seconds; -1 none */
    int16_t c;  /* PAGE_VIEW: written time on page, -1 none */
    int8_t d;   /* PAGE_VIEW: largest scroll depth; PAGE_LEAVE/SCROLL: its depth; -1 none */
    int8_t e;   /* PAGE_VIEW: written scroll depth, -1 none */
    uint8_t type;
    uint8_t flags;
} sz_event_t;

_Static_assert(sizeof(sz_event_t) == 32, "sz_event_t is 32 bytes");

/* A large b or c value of an event (see sz_event_t). */
typedef struct sz_big_s {
    const struct sz_visitor_s *v; /* NULL: empty slot */
    uint32_t key;                 /* the event's eventId heap offset * 2, + 1 for c */
    int32_t value;
} sz_big_t;

/* A written session. */
typedef struct sz_csess_s {
    uint8_t id[16];
    uint64_t fp;
    uint32_t first; /* heap offset of its first event's eventId, SZ_NONE when unknown;
                       while loading (CS_LOADCTX): a meta record of the stored session's
                       context */
    uint8_t reason;
    uint8_t flags;
} sz_csess_t;

typedef struct sz_visitor_s {
    sz_event_t *ev;
    sz_csess_t *cs;
    uint8_t *heap;
    void *eidx; /* open addressing over event positions + 1, or NULL: 16-bit slots while
                   eidx_cap <= SZ_EIDX_NARROW, else 32-bit */
    int64_t covered_since; /* events at or after this time need no load */
    int64_t min_pending;   /* earliest pending event time */
    uint32_t n, cap, n_sorted, n_pending;
    uint32_t ncs, cs_cap, heap_len, heap_cap;
    uint32_t eidx_cap, unresolved, last_meta, id_len;
    uint32_t cfg_gen;
    uint32_t slot; /* its slot in the visitor table */
    uint32_t hash; /* of the visitorId's text (the table has at most 2^31 slots) */
    uint8_t state, flags;
    uint8_t pin_reason; /* VF_PINNED: start reason of the first held session (older ones trimmed) */
    char id[]; /* VF_UUID_ID: the 16 bytes of a canonical lowercase UUID (id_len 36), else the
                  text, NUL-terminated; vis_id() gives the text */
} sz_visitor_t;

/* A slot of the visitor table. The coarse times (see coarse_ms) let eviction skip most visitors
 * without touching them; the exact ones are the visitor's (vis_times). */
typedef struct sz_vslot_s {
    sz_visitor_t *v;
    int32_t last;    /* time of the visitor's last event; INT32_MAX before its first flush */
    int32_t trim_at; /* end of its first held session when it holds several, else INT32_MAX */
} sz_vslot_t;

/* A recomputed session (scratch). */
typedef struct sz_nsess_s {
    uint32_t first, last;
    uint32_t user, entry, exit;
    uint32_t m[SZ_NCTX];
    uint32_t last_dev, cand, match;
    int32_t pvc, evc, device, sw, sh;
    int missing;
    uint8_t reason;
    bool conv, have_ctx, clean, upsert;
    uint64_t fp;
    uint8_t id[16];
    char ids[37];
} sz_nsess_t;

typedef struct sz_chunk_s {
    struct sz_chunk_s *next;
    size_t used, cap;
    char data[];
} sz_chunk_t;

/* An eventId as compared and stored: 16 bytes for a canonical lowercase UUID, else the text. */
typedef struct sz_key_s {
    const uint8_t *s;
    size_t len;
    bool uuid;
    uint8_t u[16];
} sz_key_t;

/* What goes into a session fingerprint, strings already hashed. */
typedef struct sz_fpin_s {
    uint64_t user, entry, exit, ctx[SZ_NCTX];
    int64_t started, ended;
    int64_t duration, pvc, evc, device, sw, sh;
    bool conv, bounce;
    int reason;
} sz_fpin_t;

struct tf_sessionizer_s {
    tf_session_config_t cfg;
    uint32_t cfg_gen;
    uint64_t k0, k1;
    size_t mem, n_events;

    sz_vslot_t *vslots;
    size_t vcap, vcount;

    sz_str_t **strs; /* index 0 unused: the NULL string */
    size_t strs_n, strs_cap;
    uint32_t *str_free;
    size_t str_free_n, str_free_cap;
    uint32_t *sslots;
    size_t scap, scount;

    sz_pool_t devs, attrs, metas;
    sz_big_t *bigs; /* open addressing, empty while no time on page reaches SZ_BIG seconds */
    size_t bigcap, bigcount;

    sz_visitor_t **touched;
    size_t ntouched, touched_cap;
    uint64_t *cookies;
    size_t ncookies, cookies_cap;
    tf_sess_load_request_t *reqs;
    size_t nreqs, reqs_cap;
    const char **pvids; /* page_view_ids of the requests, one slice per request */
    size_t npvids, pvids_cap;
    size_t batch_dups;
    bool flushed;
    sz_visitor_t *hint_v;
    uint32_t hint_k;

    tf_session_t *ups;
    size_t nups, ups_cap;
    char (*dels)[37];
    size_t ndels, dels_cap;
    tf_sess_assign_t *asg;
    size_t nasg, asg_cap;
    tf_page_view_update_t *pvs;
    size_t npvs, pvs_cap;
    sz_chunk_t *arena;

    sz_nsess_t *ns;
    size_t ns_cap;
    uint32_t *sess_of;
    size_t sess_of_cap;
    uint32_t *cs_map;
    size_t cs_map_cap;
    uint32_t *cs_cnt;
    size_t cs_cnt_cap;
    sz_event_t *tmp;
    size_t tmp_cap;

    long fail_after; /* failure injection: allocations left before they fail; -1 = off */
};

static const size_t ctx_field_off[SZ_NCTX] = {
    offsetof(tf_sess_context_t, referrer),
    offsetof(tf_sess_context_t, referrer_domain),
    offsetof(tf_sess_context_t, utm_source),
    offsetof(tf_sess_context_t, utm_medium),
    offsetof(tf_sess_context_t, utm_campaign),
    offsetof(tf_sess_context_t, utm_term),
    offsetof(tf_sess_context_t, utm_content),
    offsetof(tf_sess_context_t, browser),
    offsetof(tf_sess_context_t, browser_version),
    offsetof(tf_sess_context_t, os),
    offsetof(tf_sess_context_t, os_version),
    offsetof(tf_sess_context_t, user_agent),
    offsetof(tf_sess_context_t, country),
    offsetof(tf_sess_context_t, region),
    offsetof(tf_sess_context_t, city),
    offsetof(tf_sess_context_t, language),
};

static const char *ctx_field(const tf_sess_context_t *c, int f) {
    const char *const *p = (const char *const *)(const void *)((const char *)c + ctx_field_off[f]);
    return *p;
}

static void ctx_set_field(tf_sess_context_t *c, int f, const char *value) {
    const char **p = (const char **)(void *)((char *)c + ctx_field_off[f]);
    *p = value;
}

/* ------------------------------------------------------------------ small helpers */

static int64_t sat_sub(int64_t a, int64_t b) {
    if (b < 0 && a > INT64_MAX + b) return INT64_MAX;
    if (b > 0 && a < INT64_MIN + b) return INT64_MIN;
    return a - b;
}

static int64_t sat_add(int64_t a, int64_t b) {
    if (b > 0 && a > INT64_MAX - b) return INT64_MAX;
    if (b < 0 && a < INT64_MIN - b) return INT64_MIN;
    return a + b;
}

static int64_t ev_ts(const sz_event_t *e) {
    return (int64_t)(((uint64_t)(uint32_t)e->ts_hi << 32) | e->ts_lo);
}

static int32_t clamp_i32(int64_t x) {
    return x > INT32_MAX ? INT32_MAX : x < INT32_MIN ? INT32_MIN : (int32_t)x;
}

static int32_t top_seconds(bool has, double t) {
    if (!has || !(t >= 0.0)) return -1;
    if (t >= 2147483647.0) return INT32_MAX;
    return (int32_t)floor(t);
}

static int8_t scroll_clamp(int32_t d) {
    return d < 0 ? -1 : d > 100 ? 100 : (int8_t)d;
}

static uint64_t mix64(uint64_t x) {
    x += 0x9e3779b97f4a7c15ULL;
    x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
    x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
    return x ^ (x >> 31);
}

static uint64_t rotl64(uint64_t x, int b) {
    return (x << b) | (x >> (64 - b));
}

#define SIPROUND             \
    do {                     \
        v0 += v1;            \
        v1 = rotl64(v1, 13); \
        v1 ^= v0;            \
        v0 = rotl64(v0, 32); \
        v2 += v3;            \
        v3 = rotl64(v3, 16); \
        v3 ^= v2;            \
        v0 += v3;            \
        v3 = rotl64(v3, 21); \
        v3 ^= v0;            \
        v2 += v1;            \
        v1 = rotl64(v1, 17); \
        v1 ^= v2;            \
        v2 = rotl64(v2, 32); \
    } while (0)

/* SipHash-1-3 of len bytes under the key (k0, k1). */
static uint64_t siphash13(uint64_t k0, uint64_t k1, const void *data, size_t len) {
    const uint8_t *p = data;
    uint64_t v0 = 0x736f6d6570736575ULL ^ k0, v1 = 0x646f72616e646f6dULL ^ k1;
    uint64_t v2 = 0x6c7967656e657261ULL ^ k0, v3 = 0x7465646279746573ULL ^ k1;
    const uint8_t *end = p + (len & ~(size_t)7);
    for (; p != end; p += 8) {
        uint64_t m = 0;
        for (int i = 0; i < 8; i++)
            m |= (uint64_t)p[i] << (8 * i);
        v3 ^= m;
        SIPROUND;
        v0 ^= m;
    }
    uint64_t b = (uint64_t)len << 56;
    for (size_t i = 0; i < (len & 7); i++)
        b |= (uint64_t)p[i] << (8 * i);
    v3 ^= b;
    SIPROUND;
    v0 ^= b;
    v2 ^= 0xff;
    SIPROUND;
    SIPROUND;
    SIPROUND;
    return v0 ^ v1 ^ v2 ^ v3;
}

/* ------------------------------------------------------------------ SHA-256 (FIPS 180-4) */

typedef struct sz_sha_s {
    uint32_t h[8];
    uint8_t buf[64];
    size_t fill;
    uint64_t total;
} sz_sha_t;

static const uint32_t sha_k[64] = {
    0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5,
    0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174,
    0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da,
    0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967,
    0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85,
    0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070,
    0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
    0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2,
};

static uint32_t ror32(uint32_t x, int n) {
    return (x >> n) | (x << (32 - n));
}

static void sha_block(uint32_t h[8], const uint8_t *p) {
    uint32_t w[64];
    for (int i = 0; i < 16; i++)
        w[i] = (uint32_t)p[4 * i] << 24 | (uint32_t)p[4 * i + 1] << 16 |
               (uint32_t)p[4 * i + 2] << 8 | (uint32_t)p[4 * i + 3];
    for (int i = 16; i < 64; i++) {
        uint32_t s0 = ror32(w[i - 15], 7) ^ ror32(w[i - 15], 18) ^ (w[i - 15] >> 3);
        uint32_t s1 = ror32(w[i - 2], 17) ^ ror32(w[i - 2], 19) ^ (w[i - 2] >> 10);
        w[i] = w[i - 16] + s0 + w[i - 7] + s1;
    }
    uint32_t a = h[0], b = h[1], c = h[2], d = h[3], e = h[4], f = h[5], g = h[6], hh = h[7];
    for (int i = 0; i < 64; i++) {
        uint32_t t1 = hh + (ror32(e, 6) ^ ror32(e, 11) ^ ror32(e, 25)) + ((e & f) ^ (~e & g)) +
                      sha_k[i] + w[i];
        uint32_t t2 = (ror32(a, 2) ^ ror32(a, 13) ^ ror32(a, 22)) + ((a & b) ^ (a & c) ^ (b & c));
        hh = g;
        g = f;
        f = e;
        e = d + t1;
        d = c;
        c = b;
        b = a;
        a = t1 + t2;
    }
    h[0] += a;
    h[1] += b;
    h[2] += c;
    h[3] += d;
    h[4] += e;
    h[5] += f;
    h[6] += g;
    h[7] += hh;
}

static void sha_init(sz_sha_t *st) {
    static const uint32_t iv[8] = {0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a,
                                   0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19};
    memcpy(st->h, iv, sizeof iv);
    st->fill = 0;
    st->total = 0;
}

static void sha_update(sz_sha_t *st, const void *data, size_t len) {
    const uint8_t *p = data;
    st->total += len;
    while (len) {
        if (st->fill == 0 && len >= 64) {
            sha_block(st->h, p);
            p += 64;
            len -= 64;
            continue;
        }
        size_t take = 64 - st->fill;
        if (take > len) take = len;
        memcpy(st->buf + st->fill, p, take);
        st->fill += take;
        p += take;
        len -= take;
        if (st->fill == 64) {
            sha_block(st->h, st->buf);
            st->fill = 0;
        }
    }
}

static void sha_final(sz_sha_t *st, uint8_t out[32]) {
    uint64_t bits = st->total * 8;
    uint8_t pad = 0x80;
    sha_update(st, &pad, 1);
    pad = 0;
    while (st->fill != 56)
        sha_update(st, &pad, 1);
    uint8_t len[8];
    for (int i = 0; i < 8; i++)
        len[i] = (uint8_t)(bits >> (56 - 8 * i));
    sha_update(st, len, 8);
    for (int i = 0; i < 8; i++) {
        out[4 * i] = (uint8_t)(st->h[i] >> 24);
        out[4 * i + 1] = (uint8_t)(st->h[i] >> 16);
        out[4 * i + 2] = (uint8_t)(st->h[i] >> 8);
        out[4 * i + 3] = (uint8_t)st->h[i];
    }
}

/* ------------------------------------------------------------------ UUIDs and session ids */

static void uuid_fmt(const uint8_t b[16], char out[37]) {
    static const char hx[] = "0123456789abcdef";
    size_t o = 0;
    for (int i = 0; i < 16; i++) {
        if (i == 4 || i == 6 || i == 8 || i == 10) out[o++] = '-';
        out[o++] = hx[b[i] >> 4];
        out[o++] = hx[b[i] & 15];
    }
    out[36] = '\0';
}

/* hex digits: value + 1 for 0-9 and a-f, value + 17 for A-F, 0 for anything else */
static const uint8_t hex_tab[256] = {
    ['0'] = 1,  ['1'] = 2,  ['2'] = 3,  ['3'] = 4,  ['4'] = 5,  ['5'] = 6,  ['6'] = 7,  ['7'] = 8,
    ['8'] = 9,  ['9'] = 10, ['a'] = 11, ['b'] = 12, ['c'] = 13, ['d'] = 14, ['e'] = 15, ['f'] = 16,
    ['A'] = 27, ['B'] = 28, ['C'] = 29, ['D'] = 30, ['E'] = 31, ['F'] = 32,
};

static int hexval(int c, bool lower_only) {
    int v = hex_tab[c & 0xff];
    if (v == 0 || (v > 16 && lower_only)) return -1;
    return v > 16 ? v - 17 : v - 1;
}

/* Parses the 36-character 8-4-4-4-12 form. Returns 0, or -1 when s is not one. */
static int uuid_parse(const char *s, size_t len, bool lower_only, uint8_t out[16]) {
    if (len != 36) return -1;
    size_t o = 0;
    for (size_t i = 0; i < 36;) {
        if (i == 8 || i == 13 || i == 18 || i == 23) {
            if (s[i] != '-') return -1;
            i++;
            continue;
        }
        int hi = hexval((unsigned char)s[i], lower_only),
            lo = hexval((unsigned char)s[i + 1], lower_only);
        if (hi < 0 || lo < 0) return -1;
        out[o++] = (uint8_t)(hi << 4 | lo);
        i += 2;
    }
    return 0;
}

static void session_id_bin(const char *visitor, size_t vlen, const char *eid, size_t elen,
                           uint8_t out[16]) {
    sz_sha_t st;
    uint8_t md[32];
    uint8_t zero = 0;
    sha_init(&st);
    sha_update(&st, visitor, vlen);
    sha_update(&st, &zero, 1);
    sha_update(&st, eid, elen);
    sha_final(&st, md);
    memcpy(out, md, 16);
    out[6] = (uint8_t)((out[6] & 0x0f) | 0x80); /* version 8: RFC 9562 name-based, SHA-256 */
    out[8] = (uint8_t)((out[8] & 0x3f) | 0x80); /* variant 10 */
}

void tf_session_id(const char *visitor_id, const char *first_event_id, char out[37]) {
    uint8_t b[16];
    session_id_bin(visitor_id, strlen(visitor_id), first_event_id, strlen(first_event_id), b);
    uuid_fmt(b, out);
}

/* ------------------------------------------------------------------ names and configuration */

static const char *const reason_names[] = {"FIRST", "INACTIVITY", "MAX_DURATION", "CAMPAIGN",
                                           "MIDNIGHT"};

const char *tf_start_reason_name(tf_start_reason_t reason) {
    if ((unsigned)reason >= sizeof reason_names / sizeof reason_names[0]) return NULL;
    return reason_names[reason];
}

int tf_start_reason_parse(const char *name, tf_start_reason_t *out) {
    if (!name) return -1;
    for (size_t i = 0; i < sizeof reason_names / sizeof reason_names[0]; i++) {
        if (strcmp(name, reason_names[i]) == 0) {
            *out = (tf_start_reason_t)i;
            return 0;
        }
    }
    return -1;
}

void tf_session_config_default(tf_session_config_t *cfg) {
    memset(cfg, 0, sizeof *cfg);
    cfg->timeout_ms = 1800000;
    cfg->max_duration_ms = 86400000;
    cfg->split_on_campaign = false;
    cfg->split_at_midnight = false;
    cfg->day_of = NULL;
    cfg->day_of_ud = NULL;
    cfg->allowed_lateness_ms = 3600000;
    cfg->conversion_types = 1u << TF_EVENT_PURCHASE | 1u << TF_EVENT_APPOINTMENT_COMPLETE |
                            1u << TF_EVENT_LEAD | 1u << TF_EVENT_SIGN_UP |
                            1u << TF_EVENT_FORM_SUBMIT;
    cfg->hash_seed = 0;
    cfg->max_events = 0;
}

static void config_normalise(tf_session_config_t *cfg) {
    if (cfg->timeout_ms < 0) cfg->timeout_ms = 0;
    if (cfg->max_duration_ms < 0) cfg->max_duration_ms = 0;
    if (cfg->allowed_lateness_ms < 0) cfg->allowed_lateness_ms = 0;
    if (cfg->max_events == 0) cfg->max_events = SZ_DEFAULT_MAX_EVENTS;
}

static int64_t day_of(const tf_sessionizer_t *sz, int64_t ts) {
    if (sz->cfg.day_of) return sz->cfg.day_of(ts, sz->cfg.day_of_ud);
    return ts >= 0 ? ts / SZ_DAY_MS : -((-(ts + 1)) / SZ_DAY_MS) - 1;
}

/* ------------------------------------------------------------------ allocation */

static bool alloc_refused(tf_sessionizer_t *sz) {
    if (sz->fail_after < 0) return false;
    if (sz->fail_after == 0) return true;
    sz->fail_after--;
    return false;
}

static void *sz_malloc(tf_sessionizer_t *sz, size_t n) {
    return alloc_refused(sz) ? NULL : malloc(n);
}

static void *sz_calloc(tf_sessionizer_t *sz, size_t n, size_t size) {
    return alloc_refused(sz) ? NULL : calloc(n, size);
}

static void *sz_realloc(tf_sessionizer_t *sz, void *p, size_t n) {
    return alloc_refused(sz) ? NULL : realloc(p, n);
}

/* Returns arr grown to at least need elements of elsz bytes (maybe moved; *cap updated), or
 * NULL on failure (arr still valid). */
static void *sz_grow(tf_sessionizer_t *sz, void *arr, size_t *cap, size_t need, size_t elsz) {
    size_t max = (SIZE_MAX / 4) / elsz;
    if (need > max) return NULL;
    size_t ncap = *cap + *cap / 2 + 8;
    if (ncap < need) ncap = need;
    if (ncap > max) ncap = max;
    void *p = sz_realloc(sz, arr, ncap * elsz);
    if (!p) return NULL;
    sz->mem = sz->mem - *cap * elsz + ncap * elsz;
    *cap = ncap;
    return p;
}

/* Makes room for need elements in arr (capacity cap), or jumps to label. */
#define SZ_RESERVE_OR(label, sz, arr, cap, need)                                    \
    do {                                                                            \
        if ((size_t)(need) > (cap)) {                                               \
            void *p_ = sz_grow((sz), (arr), &(cap), (size_t)(need), sizeof *(arr)); \
            if (!p_) goto label;                                                    \
            (arr) = p_;                                                             \
        }                                                                           \
    } while (0)

static void sz_free_sized(tf_sessionizer_t *sz, void *p, size_t bytes) {
    if (!p) return;
    free(p);
    sz->mem -= bytes;
}

/* ------------------------------------------------------------------ interned strings and contexts
 */

static const char *str_of(const tf_sessionizer_t *sz, uint32_t idx) {
    return idx ? sz->strs[idx]->s : NULL;
}

static uint64_t str_hash_of(const tf_sessionizer_t *sz, uint32_t idx) {
    return idx ? sz->strs[idx]->hash : SZ_FP_NULL;
}

static uint64_t text_hash(const tf_sessionizer_t *sz, const char *s) {
    return s ? siphash13(sz->k0, sz->k1, s, strlen(s)) : SZ_FP_NULL;
}

static uint64_t entry_hash(const tf_sessionizer_t *sz, uint32_t idx) {
    return sz->strs[idx]->hash;
}

/* Rehashes the string table into newcap slots (a power of two). */
static int idx_table_resize(tf_sessionizer_t *sz, uint32_t **slots, size_t *cap,
                            size_t newcap) {
    uint32_t *ns = sz_calloc(sz, newcap, sizeof *ns);
    if (!ns) return -1;
    sz->mem += newcap * sizeof *ns;
    size_t mask = newcap - 1;
    for (size_t i = 0; i < *cap; i++) {
        uint32_t idx = (*slots)[i];
        if (!idx) continue;
        size_t j = (size_t)entry_hash(sz, idx) & mask;
        while (ns[j])
            j = (j + 1) & mask;
        ns[j] = idx;
    }
    sz_free_sized(sz, *slots, *cap * sizeof **slots);
    *slots = ns;
    *cap = newcap;
    return 0;
}

/* Removes idx (hash h) from an open-addressing table by backward shifting. */
static void idx_table_delete(const tf_sessionizer_t *sz, uint32_t *slots, size_t cap,
                             uint32_t idx, uint64_t h) {
    size_t mask = cap - 1, i = (size_t)h & mask;
    while (slots[i] != idx)
        i = (i + 1) & mask;
    size_t j = i;
    for (;;) {
        j = (j + 1) & mask;
        uint32_t x = slots[j];
        if (!x) break;
        size_t k = (size_t)entry_hash(sz, x) & mask;
        bool stays = (i <= j) ? (i < k && k <= j) : (i < k || k <= j);
        if (!stays) {
            slots[i] = x;
            i = j;
        }
    }
    slots[i] = 0;
}

/* Interns s (NULL gives 0) and takes a reference. Returns the index, or SZ_NONE when out of
 * memory or over a cap. */
static uint32_t str_intern(tf_sessionizer_t *sz, const char *s) {
    if (!s) return 0;
    size_t len = strlen(s);
    if (len >= SZ_MAX_STRING) return SZ_NONE;
    uint64_t h = siphash13(sz->k0, sz->k1, s, len);
    if (sz->scap) {
        size_t mask = sz->scap - 1;
        for (size_t i = (size_t)h & mask; sz->sslots[i]; i = (i + 1) & mask) {
            sz_str_t *e = sz->strs[sz->sslots[i]];
            if (e->hash == h && e->len == len && memcmp(e->s, s, len) == 0) {
                e->refs++;
                return sz->sslots[i];
            }
        }
    }
    if ((sz->scount + 1) * 4 > sz->scap * 3) {
        size_t nc = sz->scap ? sz->scap * 2 : 1024;
        if (nc > SZ_MAX_SLOTS || idx_table_resize(sz, &sz->sslots, &sz->scap, nc))
            return SZ_NONE;
    }
    if (!sz->str_free_n) {
        if (sz->strs_n >= SZ_MAX_POOL) return SZ_NONE;
        SZ_RESERVE_OR(fail, sz, sz->strs, sz->strs_cap, sz->strs_n + 1);
        SZ_RESERVE_OR(fail, sz, sz->str_free, sz->str_free_cap, sz->strs_n + 1);
    }
    sz_str_t *e = sz_malloc(sz, sizeof *e + len + 1);
    if (!e) return SZ_NONE;
    sz->mem += sizeof *e + len + 1;
    e->hash = h;
    e->refs = 1;
    e->len = (uint32_t)len;
    memcpy(e->s, s, len + 1);
    uint32_t idx = sz->str_free_n ? sz->str_free[--sz->str_free_n] : (uint32_t)sz->strs_n++;
    sz->strs[idx] = e;
    size_t mask = sz->scap - 1, i = (size_t)h & mask;
    while (sz->sslots[i])
        i = (i + 1) & mask;
    sz->sslots[i] = idx;
    sz->scount++;
    return idx;
fail:
    return SZ_NONE;
}

static void str_decref(tf_sessionizer_t *sz, uint32_t idx) {
    if (!idx) return;
    sz_str_t *e = sz->strs[idx];
    if (--e->refs) return;
    idx_table_delete(sz, sz->sslots, sz->scap, idx, e->hash);
    sz->scount--;
    sz->mem -= sizeof *e + e->len + 1;
    free(e);
    sz->strs[idx] = NULL;
    sz->str_free[sz->str_free_n++] = idx; /* capacity kept >= number of indexes */
}

/* ------------------------------------------------------------------ interned records */

static uint32_t *rec(const sz_pool_t *pl, uint32_t idx) {
    return pl->w + (size_t)idx * pl->words;
}

static uint64_t rec_hash(const tf_sessionizer_t *sz, const sz_pool_t *pl, const uint32_t *key) {
    return siphash13(sz->k0 ^ pl->tweak, sz->k1, key, (size_t)(pl->words - 1) * sizeof *key);
}

static void pool_init(sz_pool_t *pl, uint32_t words, uint64_t tweak) {
    memset(pl, 0, sizeof *pl);
    pl->n = 1;
    pl->words = words;
    pl->tweak = tweak;
}

static void pool_free(sz_pool_t *pl) {
    free(pl->w);
    free(pl->slots);
}

static int pool_resize_slots(tf_sessionizer_t *sz, sz_pool_t *pl, size_t newcap) {
    uint32_t *ns = sz_calloc(sz, newcap, sizeof *ns);
    if (!ns) return -1;
    sz->mem += newcap * sizeof *ns;
    size_t mask = newcap - 1;
    for (size_t i = 0; i < pl->scap; i++) {
        uint32_t idx = pl->slots[i];
        if (!idx) continue;
        size_t j = (size_t)rec_hash(sz, pl, rec(pl, idx) + 1) & mask;
        while (ns[j])
            j = (j + 1) & mask;
        ns[j] = idx;
    }
    sz_free_sized(sz, pl->slots, pl->scap * sizeof *pl->slots);
    pl->slots = ns;
    pl->scap = newcap;
    return 0;
}

/* Finds or adds the record with this key (pl->words - 1 words) and takes a reference on it.
 * *added: the record is new and owns the references its key words stand for (otherwise the
 * caller still holds them). Returns the index, or SZ_NONE when out of memory or over a cap. */
static uint32_t pool_intern(tf_sessionizer_t *sz, sz_pool_t *pl, const uint32_t *key,
                            bool *added) {
    size_t kb = (size_t)(pl->words - 1) * sizeof *key;
    uint64_t h = rec_hash(sz, pl, key);
    *added = false;
    if (pl->scap) {
        size_t mask = pl->scap - 1;
        for (size_t i = (size_t)h & mask; pl->slots[i]; i = (i + 1) & mask) {
            uint32_t *r = rec(pl, pl->slots[i]);
            if (memcmp(r + 1, key, kb) == 0) {
                r[0]++;
                return pl->slots[i];
            }
        }
    }
    if ((pl->scount + 1) * 4 > pl->scap * 3) {
        size_t nc = pl->scap ? pl->scap * 2 : 256;
        if (nc > SZ_MAX_SLOTS || pool_resize_slots(sz, pl, nc)) return SZ_NONE;
    }
    uint32_t idx = pl->free1st;
    if (idx) {
        pl->free1st = rec(pl, idx)[1];
    } else {
        if (pl->n >= SZ_MAX_POOL) return SZ_NONE;
        if (pl->n + 1 > pl->cap) {
            void *p = sz_grow(sz, pl->w, &pl->cap, pl->n + 1, (size_t)pl->words * sizeof *pl->w);
            if (!p) return SZ_NONE;
            pl->w = p;
        }
        idx = (uint32_t)pl->n++;
    }
    uint32_t *r = rec(pl, idx);
    r[0] = 1;
    memcpy(r + 1, key, kb);
    size_t mask = pl->scap - 1, i = (size_t)h & mask;
    while (pl->slots[i])
        i = (i + 1) & mask;
    pl->slots[i] = idx;
    pl->scount++;
    *added = true;
    return idx;
}

/* Removes a record whose count fell to 0 from its table and puts it on the free list. */
static void pool_unlink(tf_sessionizer_t *sz, sz_pool_t *pl, uint32_t idx) {
    size_t mask = pl->scap - 1, i = (size_t)rec_hash(sz, pl, rec(pl, idx) + 1) & mask;
    while (pl->slots[i] != idx)
        i = (i + 1) & mask;
    size_t j = i;
    for (;;) {
        j = (j + 1) & mask;
        uint32_t x = pl->slots[j];
        if (!x) break;
        size_t k = (size_t)rec_hash(sz, pl, rec(pl, x) + 1) & mask;
        bool stays = (i <= j) ? (i < k && k <= j) : (i < k || k <= j);
        if (!stays) {
            pl->slots[i] = x;
            i = j;
        }
    }
    pl->slots[i] = 0;
    pl->scount--;
    uint32_t *r = rec(pl, idx);
    r[0] = 0;
    r[1] = pl->free1st;
    pl->free1st = idx;
}

/* Drops a reference to a dev or attr record (their key words 0..nstr-1 are strings). */
static void part_decref(tf_sessionizer_t *sz, sz_pool_t *pl, uint32_t idx, int nstr) {
    if (!idx) return;
    uint32_t *r = rec(pl, idx);
    if (--r[0]) return;
    uint32_t strs[SZ_NCTX];
    memcpy(strs, r + 1, (size_t)nstr * sizeof *strs);
    pool_unlink(sz, pl, idx);
    for (int f = 0; f < nstr; f++)
        str_decref(sz, strs[f]);
}

static void dev_decref(tf_sessionizer_t *sz, uint32_t idx) {
    part_decref(sz, &sz->devs, idx, SZ_NCTX - SZ_NATTR);
}

static void attr_decref(tf_sessionizer_t *sz, uint32_t idx) {
    part_decref(sz, &sz->attrs, idx, SZ_NATTR);
}

/* Releases the references that the words of a meta key stand for. */
static void meta_key_release(tf_sessionizer_t *sz, const uint32_t key[META_WORDS - 1]) {
    str_decref(sz, key[META_USER - 1]);
    str_decref(sz, key[META_CAMP - 1]);
    dev_decref(sz, key[META_DEV - 1]);
    attr_decref(sz, key[META_ATTR - 1]);
}

static void meta_decref(tf_sessionizer_t *sz, uint32_t idx) {
    if (!idx) return;
    uint32_t *r = rec(&sz->metas, idx);
    if (--r[0]) return;
    uint32_t key[META_WORDS - 1];
    memcpy(key, r + 1, sizeof key);
    pool_unlink(sz, &sz->metas, idx);
    meta_key_release(sz, key);
}

/* Word w of meta record m (0 for m = 0). */
static uint32_t meta_word(const tf_sessionizer_t *sz, uint32_t m, int w) {
    return m ? rec(&sz->metas, m)[w] : 0;
}

/* True when string index si holds exactly x (0 for NULL). */
static bool str_is(const tf_sessionizer_t *sz, uint32_t si, const char *x) {
    if (!x) return si == 0;
    return si && strcmp(sz->strs[si]->s, x) == 0;
}

/* True when dev record d (non-zero) has exactly the device part of c. */
static bool dev_matches(const tf_sessionizer_t *sz, uint32_t d, const tf_sess_context_t *c) {
    const uint32_t *r = rec(&sz->devs, d);
    if ((int32_t)r[DEV_DEVICE] != c->device_type || (int32_t)r[DEV_SW] != c->screen_width ||
        (int32_t)r[DEV_SH] != c->screen_height)
        return false;
    for (int f = SZ_NATTR; f < SZ_NCTX; f++)
        if (!str_is(sz, r[DEV_S + f - SZ_NATTR], ctx_field(c, f))) return false;
    return true;
}

/* True when attr record a (0 = every attribution field NULL) has exactly c's attribution. */
static bool attr_matches(const tf_sessionizer_t *sz, uint32_t a, const tf_sess_context_t *c) {
    for (int f = 0; f < SZ_NATTR; f++)
        if (!str_is(sz, a ? rec(&sz->attrs, a)[ATTR_S + f] : 0, ctx_field(c, f))) return false;
    return true;
}

/* Interns fields f0 .. f0 + nstr - 1 of c, then the nextra words of extra, as a record of pl.
 * Returns its index with a reference taken, 0 when every word is 0 and allow_zero, or SZ_NONE
 * when out of memory. */
static uint32_t part_intern(tf_sessionizer_t *sz, sz_pool_t *pl, const tf_sess_context_t *c,
                            int f0, int nstr, const uint32_t *extra, int nextra,
                            bool allow_zero) {
    uint32_t key[SZ_NCTX + 3];
    bool any = false;
    for (int f = 0; f < nstr; f++) {
        key[f] = str_intern(sz, ctx_field(c, f0 + f));
        if (key[f] == SZ_NONE) {
            for (int g = 0; g < f; g++)
                str_decref(sz, key[g]);
            return SZ_NONE;
        }
        any |= key[f] != 0;
    }
    for (int x = 0; x < nextra; x++)
        key[nstr + x] = extra[x];
    if (!any && allow_zero) return 0;
    bool added;
    uint32_t idx = pool_intern(sz, pl, key, &added);
    if (!added)
        for (int f = 0; f < nstr; f++)
            str_decref(sz, key[f]);
    return idx;
}

/* Interns (user, campaign, context) as a meta record and takes a reference: 0 when all three
 * are absent, SZ_NONE when out of memory. hint: a meta record to try first (0 = none); its
 * parts are reused when they match. */
static uint32_t meta_intern(tf_sessionizer_t *sz, uint32_t hint, const char *user,
                            const char *camp, const tf_sess_context_t *c) {
    if (!user && !camp && !c) return 0;
    uint32_t h[META_WORDS] = {0};
    if (hint) memcpy(h, rec(&sz->metas, hint), sizeof h);
    bool dev_ok = c && h[META_DEV] && dev_matches(sz, h[META_DEV], c);
    bool attr_ok = c && h[META_DEV] && attr_matches(sz, h[META_ATTR], c);
    if (hint && str_is(sz, h[META_USER], user) && str_is(sz, h[META_CAMP], camp) &&
        (c ? dev_ok && attr_ok : !h[META_DEV])) {
        rec(&sz->metas, hint)[0]++;
        return hint;
    }
    uint32_t key[META_WORDS - 1] = {0};
    key[META_USER - 1] = str_intern(sz, user);
    if (key[META_USER - 1] == SZ_NONE) return SZ_NONE;
    key[META_CAMP - 1] = str_intern(sz, camp);
    if (key[META_CAMP - 1] == SZ_NONE) goto fail_user;
    if (c) {
        if (dev_ok) {
            key[META_DEV - 1] = h[META_DEV];
            rec(&sz->devs, h[META_DEV])[0]++;
        } else {
            uint32_t extra[3] = {(uint32_t)c->device_type, (uint32_t)c->screen_width,
                                 (uint32_t)c->screen_height};
            key[META_DEV - 1] =
                part_intern(sz, &sz->devs, c, SZ_NATTR, SZ_NCTX - SZ_NATTR, extra, 3, false);
            if (key[META_DEV - 1] == SZ_NONE) goto fail_camp;
        }
        if (attr_ok) {
            key[META_ATTR - 1] = h[META_ATTR];
            if (h[META_ATTR]) rec(&sz->attrs, h[META_ATTR])[0]++;
        } else {
            key[META_ATTR - 1] = part_intern(sz, &sz->attrs, c, 0, SZ_NATTR, NULL, 0, true);
            if (key[META_ATTR - 1] == SZ_NONE) goto fail_dev;
        }
    }
    bool added;
    uint32_t m = pool_intern(sz, &sz->metas, key, &added);
    if (!added) meta_key_release(sz, key); /* found (its own references), or failed */
    return m;
fail_dev:
    dev_decref(sz, key[META_DEV - 1]);
fail_camp:
    str_decref(sz, key[META_CAMP - 1]);
fail_user:
    str_decref(sz, key[META_USER - 1]);
    return SZ_NONE;
}

/* The meta record with m's user and campaign and the context of meta record cm (none when cm is
 * 0), with a reference taken; SZ_NONE when out of memory. */
static uint32_t meta_with_context(tf_sessionizer_t *sz, uint32_t m, uint32_t cm) {
    uint32_t key[META_WORDS - 1] = {meta_word(sz, m, META_USER), meta_word(sz, m, META_CAMP),
                                    meta_word(sz, cm, META_DEV), meta_word(sz, cm, META_ATTR)};
    if (!key[0] && !key[1] && !key[2] && !key[3]) return 0;
    if (key[META_USER - 1]) sz->strs[key[META_USER - 1]]->refs++;
    if (key[META_CAMP - 1]) sz->strs[key[META_CAMP - 1]]->refs++;
    if (key[META_DEV - 1]) rec(&sz->devs, key[META_DEV - 1])[0]++;
    if (key[META_ATTR - 1]) rec(&sz->attrs, key[META_ATTR - 1])[0]++;
    bool added;
    uint32_t r = pool_intern(sz, &sz->metas, key, &added);
    if (!added) meta_key_release(sz, key);
    return r;
}

/* ------------------------------------------------------------------ event ids */

static void key_init(sz_key_t *k, const char *s) {
    size_t len = strlen(s);
    if (len == 36 && uuid_parse(s, len, true, k->u) == 0) {
        k->uuid = true;
        k->s = NULL;
        k->len = 16;
    } else {
        k->uuid = false;
        k->s = (const uint8_t *)s;
        k->len = len;
    }
}

static const uint8_t *key_bytes(const sz_key_t *k) {
    return k->uuid ? k->u : k->s;
}

/* Heap entries: a UUID is its 16 bytes; a text is its length (1 byte, or SZ_TAG_LONG and 4
 * bytes), its bytes and a NUL. Which of the two an entry is, the event's flags say
 * (EF_EID_TEXT, EF_REF_TEXT). */
static size_t key_entry_size(const sz_key_t *k) {
    if (k->uuid) return 16;
    return k->len < SZ_TAG_LONG ? 1 + k->len + 1 : 5 + k->len + 1;
}

static void heap_write(uint8_t *p, const sz_key_t *k) {
    if (k->uuid) {
        memcpy(p, k->u, 16);
    } else if (k->len < SZ_TAG_LONG) {
        p[0] = (uint8_t)k->len;
        memcpy(p + 1, k->s, k->len);
        p[1 + k->len] = 0;
    } else {
        uint32_t len = (uint32_t)k->len;
        p[0] = SZ_TAG_LONG;
        memcpy(p + 1, &len, 4);
        memcpy(p + 5, k->s, k->len);
        p[5 + k->len] = 0;
    }
}

static void heap_key(const uint8_t *p, bool text, sz_key_t *k) {
    if (!text) {
        k->uuid = true;
        k->s = NULL;
        memcpy(k->u, p, 16);
        k->len = 16;
    } else if (p[0] == SZ_TAG_LONG) {
        uint32_t len;
        memcpy(&len, p + 1, 4);
        k->uuid = false;
        k->s = p + 5;
        k->len = len;
    } else {
        k->uuid = false;
        k->s = p + 1;
        k->len = p[0];
    }
}

static bool heap_eq(const uint8_t *p, bool text, const sz_key_t *k) {
    if (k->uuid) {
        if (text) return false;
        uint64_t a[2], b[2];
        memcpy(a, p, 16);
        memcpy(b, k->u, 16);
        return a[0] == b[0] && a[1] == b[1];
    }
    if (!text) return false;
    if (k->len < SZ_TAG_LONG) return p[0] == k->len && memcmp(p + 1, k->s, k->len) == 0;
    if (p[0] != SZ_TAG_LONG) return false;
    uint32_t len;
    memcpy(&len, p + 1, 4);
    return len == k->len && memcmp(p + 5, k->s, k->len) == 0;
}

static bool eid_is_text(const sz_event_t *e) {
    return e->flags & EF_EID_TEXT;
}

static bool ref_is_text(const sz_event_t *e) {
    return e->flags & EF_REF_TEXT;
}

/* Orders two ids as their texts compare bytewise (strcmp). */
static int key_cmp(const sz_key_t *a, const sz_key_t *b) {
    if (a->uuid && b->uuid) return memcmp(a->u, b->u, 16);
    char ta[37], tb[37];
    const uint8_t *pa = a->s, *pb = b->s;
    size_t la = a->len, lb = b->len;
    if (a->uuid) {
        uuid_fmt(a->u, ta);
        pa = (const uint8_t *)ta;
        la = 36;
    }
    if (b->uuid) {
        uuid_fmt(b->u, tb);
        pb = (const uint8_t *)tb;
        lb = 36;
    }
    int r = memcmp(pa, pb, la < lb ? la : lb);
    if (r) return r;
    return la < lb ? -1 : la > lb ? 1 : 0;
}

static int ev_cmp(const sz_visitor_t *v, const sz_event_t *x, const sz_event_t *y) {
    int64_t a = ev_ts(x), b = ev_ts(y);
    if (a != b) return a < b ? -1 : 1;
    if (!eid_is_text(x) && !eid_is_text(y)) return memcmp(v->heap + x->eid, v->heap + y->eid, 16);
    sz_key_t ka, kb;
    heap_key(v->heap + x->eid, eid_is_text(x), &ka);
    heap_key(v->heap + y->eid, eid_is_text(y), &kb);
    return key_cmp(&ka, &kb);
}

static uint64_t key_hash(const tf_sessionizer_t *sz, const sz_key_t *k) {
    return siphash13(sz->k0 ^ 0x2545f4914f6cdd1dULL, sz->k1, key_bytes(k), k->len) ^
           (k->uuid ? 1u : 0u);
}

/* The text of the eventId at heap offset off: a pointer into the heap, or buf for a UUID. */
static const char *eid_text(const sz_visitor_t *v, uint32_t off, bool text, char buf[37],
                            size_t *len) {
    sz_key_t k;
    heap_key(v->heap + off, text, &k);
    if (k.uuid) {
        uuid_fmt(k.u, buf);
        *len = 36;
        return buf;
    }
    *len = k.len;
    return (const char *)k.s;
}

/* bytes from the batch arena (valid until commit/abort), or NULL when out of memory */
static char *arena_alloc(tf_sessionizer_t *sz, size_t bytes) {
    sz_chunk_t *c = sz->arena;
    if (!c || c->cap - c->used < bytes) {
        size_t cap = bytes > 64 * 1024 ? bytes : 64 * 1024;
        c = sz_malloc(sz, sizeof *c + cap);
        if (!c) return NULL;
        sz->mem += sizeof *c + cap;
        c->next = sz->arena;
        c->used = 0;
        c->cap = cap;
        sz->arena = c;
    }
    char *out = c->data + c->used;
    c->used += bytes;
    return out;
}

/* The eventId of e as a string valid until commit/abort (UUIDs are formatted into the arena). */
static const char *eid_out(tf_sessionizer_t *sz, const sz_visitor_t *v, const sz_event_t *e) {
    const uint8_t *p = v->heap + e->eid;
    if (eid_is_text(e)) return (const char *)(p[0] == SZ_TAG_LONG ? p + 5 : p + 1);
    char *out = arena_alloc(sz, 37);
    if (out) uuid_fmt(p, out);
    return out;
}

/* A copy of the id at heap offset off in the arena (the heap may move while loading). */
static const char *eid_copy(tf_sessionizer_t *sz, const sz_visitor_t *v, uint32_t off,
                            bool text) {
    char buf[37];
    size_t len;
    const char *t = eid_text(v, off, text, buf, &len);
    char *out = arena_alloc(sz, len + 1);
    if (out) {
        memcpy(out, t, len);
        out[len] = '\0';
    }
    return out;
}

static void arena_reset(tf_sessionizer_t *sz) {
    while (sz->arena) {
        sz_chunk_t *c = sz->arena;
        sz->arena = c->next;
        sz_free_sized(sz, c, sizeof *c + c->cap);
    }
}

/* ------------------------------------------------------------------ per-visitor eventId index */

static size_t eidx_width(uint32_t cap) {
    return cap <= SZ_EIDX_NARROW ? sizeof(uint16_t) : sizeof(uint32_t);
}

static uint32_t eidx_get(const sz_visitor_t *v, size_t i) {
    return v->eidx_cap <= SZ_EIDX_NARROW ? ((const uint16_t *)v->eidx)[i]
                                         : ((const uint32_t *)v->eidx)[i];
}

static void eidx_insert(sz_visitor_t *v, uint32_t pos, uint64_t h) {
    size_t mask = v->eidx_cap - 1, i = (size_t)h & mask;
    while (eidx_get(v, i))
        i = (i + 1) & mask;
    if (v->eidx_cap <= SZ_EIDX_NARROW)
        ((uint16_t *)v->eidx)[i] = (uint16_t)(pos + 1); /* pos < 3/4 of the slots */
    else
        ((uint32_t *)v->eidx)[i] = pos + 1;
}

static void eidx_drop(tf_sessionizer_t *sz, sz_visitor_t *v) {
    sz_free_sized(sz, v->eidx, (size_t)v->eidx_cap * eidx_width(v->eidx_cap));
    v->eidx = NULL;
    v->eidx_cap = 0;
}

/* (Re)builds the index over the current positions, with room for `expect` events (and a quarter
 * more) at a load factor of at most 3/4; none below SZ_EIDX_MIN events. On failure the index is
 * dropped and lookups scan (still correct, slower). */
static void eidx_build(tf_sessionizer_t *sz, sz_visitor_t *v, uint32_t expect) {
    eidx_drop(sz, v);
    if (expect < v->n) expect = v->n;
    if (expect < SZ_EIDX_MIN) return;
    uint64_t want = (uint64_t)expect + expect / 4 + 1;
    uint64_t cap = 64;
    while (cap * 3 < want * 4)
        cap *= 2;
    if (cap > SZ_MAX_SLOTS) return;
    void *t = sz_calloc(sz, (size_t)cap, eidx_width((uint32_t)cap));
    if (!t) return;
    sz->mem += (size_t)cap * eidx_width((uint32_t)cap);
    v->eidx = t;
    v->eidx_cap = (uint32_t)cap;
    for (uint32_t i = 0; i < v->n; i++) {
        if (v->ev[i].flags & EF_DROPPED) continue;
        sz_key_t k;
        heap_key(v->heap + v->ev[i].eid, eid_is_text(&v->ev[i]), &k);
        eidx_insert(v, i, key_hash(sz, &k));
    }
}

/* Position of the held (not dropped) event with this id, or SZ_NONE. */
static uint32_t vis_find_event(const tf_sessionizer_t *sz, const sz_visitor_t *v,
                               const sz_key_t *k) {
    if (v->eidx) {
        size_t mask = v->eidx_cap - 1;
        uint32_t x;
        for (size_t i = (size_t)key_hash(sz, k) & mask; (x = eidx_get(v, i)) != 0;
             i = (i + 1) & mask) {
            if (heap_eq(v->heap + v->ev[x - 1].eid, eid_is_text(&v->ev[x - 1]), k)) return x - 1;
        }
        return SZ_NONE;
    }
    for (uint32_t i = 0; i < v->n; i++)
        if (!(v->ev[i].flags & EF_DROPPED) &&
            heap_eq(v->heap + v->ev[i].eid, eid_is_text(&v->ev[i]), k))
            return i;
    return SZ_NONE;
}

/* ------------------------------------------------------------------ large b/c values */

static size_t big_slot(const tf_sessionizer_t *sz, const sz_visitor_t *v, uint32_t key) {
    return (size_t)mix64((uint64_t)(uintptr_t)v ^ sz->k0 ^ ((uint64_t)key << 32 | key));
}

/* The slot holding (v, key), or SIZE_MAX. */
static size_t big_find(const tf_sessionizer_t *sz, const sz_visitor_t *v, uint32_t key) {
    if (!sz->bigcount) return SIZE_MAX;
    size_t mask = sz->bigcap - 1;
    for (size_t i = big_slot(sz, v, key) & mask; sz->bigs[i].v; i = (i + 1) & mask)
        if (sz->bigs[i].v == v && sz->bigs[i].key == key) return i;
    return SIZE_MAX;
}

static void big_place(tf_sessionizer_t *sz, const sz_big_t *b) {
    size_t mask = sz->bigcap - 1, i = big_slot(sz, b->v, b->key) & mask;
    while (sz->bigs[i].v)
        i = (i + 1) & mask;
    sz->bigs[i] = *b;
}

/* Sets the value of (v, key). Returns 0, or -1 when out of memory (nothing changed). Never
 * fails when the table holds fewer entries than it did at some point since its last growth. */
static int big_put(tf_sessionizer_t *sz, const sz_visitor_t *v, uint32_t key, int32_t value) {
    size_t i = big_find(sz, v, key);
    if (i != SIZE_MAX) {
        sz->bigs[i].value = value;
        return 0;
    }
    if ((sz->bigcount + 1) * 4 > sz->bigcap * 3) {
        size_t nc = sz->bigcap ? sz->bigcap * 2 : 64;
        if (nc > SZ_MAX_SLOTS) return -1;
        sz_big_t *nb = sz_calloc(sz, nc, sizeof *nb);
        if (!nb) return -1;
        sz->mem += nc * sizeof *nb;
        sz_big_t *old = sz->bigs;
        size_t oldcap = sz->bigcap;
        sz->bigs = nb;
        sz->bigcap = nc;
        for (size_t j = 0; j < oldcap; j++)
            if (old[j].v) big_place(sz, &old[j]);
        sz_free_sized(sz, old, oldcap * sizeof *old);
    }
    sz_big_t b = {v, key, value};
    big_place(sz, &b);
    sz->bigcount++;
    return 0;
}

static int32_t big_get(const tf_sessionizer_t *sz, const sz_visitor_t *v, uint32_t key) {
    size_t i = big_find(sz, v, key);
    return i == SIZE_MAX ? INT32_MAX : sz->bigs[i].value; /* always found: see sz_event_t */
}

static void big_del(tf_sessionizer_t *sz, const sz_visitor_t *v, uint32_t key) {
    size_t i = big_find(sz, v, key);
    if (i == SIZE_MAX) return;
    size_t mask = sz->bigcap - 1, j = i;
    for (;;) {
        j = (j + 1) & mask;
        if (!sz->bigs[j].v) break;
        size_t k = big_slot(sz, sz->bigs[j].v, sz->bigs[j].key) & mask;
        bool stays = (i <= j) ? (i < k && k <= j) : (i < k || k <= j);
        if (!stays) {
            sz->bigs[i] = sz->bigs[j];
            i = j;
        }
    }
    sz->bigs[i].v = NULL;
    sz->bigcount--;
}

static int32_t ev_b(const tf_sessionizer_t *sz, const sz_visitor_t *v, const sz_event_t *e) {
    return e->b != SZ_BIG ? e->b : big_get(sz, v, e->eid * 2);
}

static int32_t ev_c(const tf_sessionizer_t *sz, const sz_visitor_t *v, const sz_event_t *e) {
    return e->c != SZ_BIG ? e->c : big_get(sz, v, e->eid * 2 + 1);
}

/* Stores x (>= -1) in *field (b or c of e, key as in sz_big_t). Returns 0, or -1 when out of
 * memory (nothing changed); never fails for x < SZ_BIG. */
static int ev_set_big(tf_sessionizer_t *sz, const sz_visitor_t *v, int16_t *field, uint32_t key,
                      int32_t x) {
    if (x < SZ_BIG) {
        if (*field == SZ_BIG) big_del(sz, v, key);
        *field = (int16_t)x;
        return 0;
    }
    if (big_put(sz, v, key, x)) return -1;
    *field = SZ_BIG;
    return 0;
}

static int ev_set_b(tf_sessionizer_t *sz, const sz_visitor_t *v, sz_event_t *e, int32_t x) {
    return ev_set_big(sz, v, &e->b, e->eid * 2, x);
}

static int ev_set_c(tf_sessionizer_t *sz, const sz_visitor_t *v, sz_event_t *e, int32_t x) {
    return ev_set_big(sz, v, &e->c, e->eid * 2 + 1, x);
}

/* ------------------------------------------------------------------ visitors */

static uint64_t vis_hash(const tf_sessionizer_t *sz, const char *id, size_t len) {
    return siphash13(sz->k1, sz->k0, id, len);
}

/* A visitorId as held: 16 bytes for a canonical lowercase UUID, else the text. */
static void vis_key(const char *id, size_t len, sz_key_t *k) {
    k->len = len;
    k->s = (const uint8_t *)id;
    k->uuid = len == 36 && uuid_parse(id, len, true, k->u) == 0;
}

static size_t vis_alloc_size(const sz_visitor_t *v) {
    return offsetof(sz_visitor_t, id) + ((v->flags & VF_UUID_ID) ? 16 : (size_t)v->id_len + 1);
}

/* The visitorId's text: v->id, or buf holding the formatted UUID. */
static const char *vis_id(const sz_visitor_t *v, char buf[37]) {
    if (!(v->flags & VF_UUID_ID)) return v->id;
    uuid_fmt((const uint8_t *)v->id, buf);
    return buf;
}

/* The visitorId's text valid until commit/abort (a UUID is formatted into the arena), or NULL
 * when out of memory. */
static const char *vis_id_out(tf_sessionizer_t *sz, const sz_visitor_t *v) {
    if (!(v->flags & VF_UUID_ID)) return v->id;
    char *out = arena_alloc(sz, 37);
    if (out) uuid_fmt((const uint8_t *)v->id, out);
    return out;
}

static sz_visitor_t *vis_find(const tf_sessionizer_t *sz, const sz_key_t *k, uint64_t h) {
    if (!sz->vcap) return NULL;
    size_t mask = sz->vcap - 1;
    for (size_t i = (size_t)h & mask; sz->vslots[i].v; i = (i + 1) & mask) {
        sz_visitor_t *v = sz->vslots[i].v;
        if (v->hash != (uint32_t)h) continue;
        if (k->uuid ? (v->flags & VF_UUID_ID) && memcmp(v->id, k->u, 16) == 0
                    : !(v->flags & VF_UUID_ID) && v->id_len == k->len &&
                          memcmp(v->id, k->s, k->len) == 0)
            return v;
    }
    return NULL;
}

static sz_visitor_t *vis_lookup(const tf_sessionizer_t *sz, const char *id) {
    if (!id) return NULL;
    sz_key_t k;
    vis_key(id, strlen(id), &k);
    return vis_find(sz, &k, vis_hash(sz, id, k.len));
}

static void vslot_put(tf_sessionizer_t *sz, size_t i, const sz_vslot_t *slot) {
    sz->vslots[i] = *slot;
    slot->v->slot = (uint32_t)i;
}

static int vis_table_resize(tf_sessionizer_t *sz, size_t newcap) {
    sz_vslot_t *old = sz->vslots;
    size_t oldcap = sz->vcap;
    sz_vslot_t *ns = sz_calloc(sz, newcap, sizeof *ns);
    if (!ns) return -1;
    sz->mem += newcap * sizeof *ns;
    sz->vslots = ns;
    sz->vcap = newcap;
    size_t mask = newcap - 1;
    for (size_t i = 0; i < oldcap; i++) {
        if (!old[i].v) continue;
        size_t j = (size_t)old[i].v->hash & mask;
        while (ns[j].v)
            j = (j + 1) & mask;
        vslot_put(sz, j, &old[i]);
    }
    sz_free_sized(sz, old, oldcap * sizeof *old);
    return 0;
}

static int vis_table_insert(tf_sessionizer_t *sz, sz_visitor_t *v) {
    if ((sz->vcount + 1) * 10 > sz->vcap * 7) {
        size_t nc = sz->vcap ? sz->vcap * 2 : 1024;
        if (nc > SZ_MAX_SLOTS || vis_table_resize(sz, nc)) return -1;
    }
    size_t mask = sz->vcap - 1, i = (size_t)v->hash & mask;
    while (sz->vslots[i].v)
        i = (i + 1) & mask;
    sz_vslot_t slot = {v, INT32_MAX, INT32_MAX};
    vslot_put(sz, i, &slot);
    sz->vcount++;
    return 0;
}

/* A coarse image of a time: floor(t / 65536) clamped to int32. Monotone, so a coarse comparison
 * that is strict decides the exact one. */
static int32_t coarse_ms(int64_t t) {
    int64_t q = t >= 0 ? t / 65536 : -((-(t + 1)) / 65536) - 1;
    return q > INT32_MAX ? INT32_MAX : q < INT32_MIN ? INT32_MIN : (int32_t)q;
}

/* Of a flushed visitor (events sorted, all written): the time of its last event (INT64_MIN
 * when none) and the end of its first session when it has several (else INT64_MAX). */
static void vis_times(const sz_visitor_t *v, int64_t *last, int64_t *trim_at) {
    *last = v->n ? ev_ts(&v->ev[v->n - 1]) : INT64_MIN;
    *trim_at = INT64_MAX;
    if (v->ncs >= 2 && v->n) {
        uint32_t j = 0;
        while (j + 1 < v->n && v->ev[j + 1].link == 0)
            j++;
        *trim_at = ev_ts(&v->ev[j]);
    }
}

static void vslot_update(tf_sessionizer_t *sz, const sz_visitor_t *v) {
    int64_t last, trim_at;
    vis_times(v, &last, &trim_at);
    sz->vslots[v->slot].last = coarse_ms(last);
    sz->vslots[v->slot].trim_at = coarse_ms(trim_at);
}

static void vis_table_remove_at(tf_sessionizer_t *sz, size_t i) {
    size_t mask = sz->vcap - 1, j = i;
    for (;;) {
        j = (j + 1) & mask;
        sz_visitor_t *x = sz->vslots[j].v;
        if (!x) break;
        size_t k = (size_t)x->hash & mask;
        bool stays = (i <= j) ? (i < k && k <= j) : (i < k || k <= j);
        if (!stays) {
            vslot_put(sz, i, &sz->vslots[j]);
            i = j;
        }
    }
    sz->vslots[i].v = NULL;
    sz->vcount--;
}

static void vis_table_remove(tf_sessionizer_t *sz, const sz_visitor_t *v) {
    vis_table_remove_at(sz, v->slot);
}

static sz_visitor_t *vis_new(tf_sessionizer_t *sz, const sz_key_t *k, uint64_t h) {
    if (k->len >= SZ_MAX_STRING) return NULL;
    size_t bytes = offsetof(sz_visitor_t, id) + (k->uuid ? 16 : k->len + 1);
    sz_visitor_t *v = sz_calloc(sz, 1, bytes);
    if (!v) return NULL;
    sz->mem += bytes;
    v->hash = (uint32_t)h;
    v->id_len = (uint32_t)k->len;
    if (k->uuid) {
        v->flags = VF_UUID_ID;
        memcpy(v->id, k->u, 16);
    } else {
        memcpy(v->id, k->s, k->len);
        v->id[k->len] = '\0';
    }
    v->covered_since = INT64_MAX;
    v->min_pending = INT64_MAX;
    v->state = VS_NEW;
    v->cfg_gen = sz->cfg_gen;
    return v;
}

static void ev_release(tf_sessionizer_t *sz, const sz_visitor_t *v, const sz_event_t *e) {
    if (e->b == SZ_BIG) big_del(sz, v, e->eid * 2);
    if (e->c == SZ_BIG) big_del(sz, v, e->eid * 2 + 1);
    meta_decref(sz, e->meta);
    if (e->type == TF_EVENT_PAGE_VIEW) str_decref(sz, e->a);
}

static void vis_release_cs(tf_sessionizer_t *sz, sz_visitor_t *v) {
    for (uint32_t k = 0; k < v->ncs; k++)
        if (v->cs[k].flags & CS_LOADCTX) meta_decref(sz, v->cs[k].first);
    v->ncs = 0;
}

static void vis_free(tf_sessionizer_t *sz, sz_visitor_t *v) {
    for (uint32_t i = 0; i < v->n; i++)
        ev_release(sz, v, &v->ev[i]);
    sz->n_events -= v->n;
    vis_release_cs(sz, v);
    if (sz->hint_v == v) sz->hint_v = NULL;
    sz_free_sized(sz, v->ev, (size_t)v->cap * sizeof *v->ev);
    sz_free_sized(sz, v->cs, (size_t)v->cs_cap * sizeof *v->cs);
    sz_free_sized(sz, v->heap, v->heap_cap);
    eidx_drop(sz, v);
    sz_free_sized(sz, v, vis_alloc_size(v));
}

static int vis_reserve_events(tf_sessionizer_t *sz, sz_visitor_t *v, uint32_t extra) {
    if (v->n + (uint64_t)extra <= v->cap) return 0;
    uint64_t need = (uint64_t)v->n + extra;
    if (need > SZ_MAX_VISITOR_EVENTS) return -1;
    uint64_t ncap = (uint64_t)v->cap + v->cap / 4 + 2;
    if (ncap < need) ncap = need;
    if (ncap > SZ_MAX_VISITOR_EVENTS) ncap = SZ_MAX_VISITOR_EVENTS;
    sz_event_t *p = sz_realloc(sz, v->ev, (size_t)ncap * sizeof *p);
    if (!p) return -1;
    sz->mem = sz->mem - (size_t)v->cap * sizeof *p + (size_t)ncap * sizeof *p;
    v->ev = p;
    v->cap = (uint32_t)ncap;
    return 0;
}

static int vis_reserve_heap(tf_sessionizer_t *sz, sz_visitor_t *v, size_t extra) {
    if (v->heap_len + (uint64_t)extra <= v->heap_cap) return 0;
    uint64_t need = (uint64_t)v->heap_len + extra;
    if (need > SZ_MAX_HEAP) return -1;
    uint64_t ncap = (uint64_t)v->heap_cap + v->heap_cap / 4 + 16;
    if (ncap < need) ncap = need;
    if (ncap > SZ_MAX_HEAP) ncap = SZ_MAX_HEAP;
    uint8_t *p = sz_realloc(sz, v->heap, (size_t)ncap);
    if (!p) return -1;
    sz->mem = sz->mem - v->heap_cap + (size_t)ncap;
    v->heap = p;
    v->heap_cap = (uint32_t)ncap;
    return 0;
}

static int vis_reserve_cs(tf_sessionizer_t *sz, sz_visitor_t *v, size_t need) {
    if (need <= v->cs_cap) return 0;
    if (need > SZ_MAX_VISITOR_EVENTS) return -1;
    size_t ncap = (size_t)v->cs_cap + v->cs_cap / 2 + 1;
    if (ncap < need) ncap = need;
    sz_csess_t *p = sz_realloc(sz, v->cs, ncap * sizeof *p);
    if (!p) return -1;
    sz->mem = sz->mem - (size_t)v->cs_cap * sizeof *p + ncap * sizeof *p;
    v->cs = p;
    v->cs_cap = (uint32_t)ncap;
    return 0;
}

/* Gives back the slack of the visitor's event array, eventId heap and session records (between
 * batches: they are sized for growth while a batch adds events). A failed shrink keeps the
 * larger block. */
static void vis_shrink(tf_sessionizer_t *sz, sz_visitor_t *v) {
    if (v->n && v->cap > v->n) {
        sz_event_t *p = sz_realloc(sz, v->ev, (size_t)v->n * sizeof *p);
        if (p) {
            sz->mem -= (size_t)(v->cap - v->n) * sizeof *p;
            v->ev = p;
            v->cap = v->n;
        }
    }
    if (v->heap_len && v->heap_cap > v->heap_len) {
        uint8_t *p = sz_realloc(sz, v->heap, v->heap_len);
        if (p) {
            sz->mem -= (size_t)(v->heap_cap - v->heap_len);
            v->heap = p;
            v->heap_cap = v->heap_len;
        }
    }
    if (v->ncs && v->cs_cap > v->ncs) {
        sz_csess_t *p = sz_realloc(sz, v->cs, (size_t)v->ncs * sizeof *p);
        if (p) {
            sz->mem -= (size_t)(v->cs_cap - v->ncs) * sizeof *p;
            v->cs = p;
            v->cs_cap = v->ncs;
        }
    }
}

/* Points last_meta at the meta record of the visitor's latest held event that has one. */
static void vis_last_meta(sz_visitor_t *v) {
    v->last_meta = 0;
    for (uint32_t i = 0; i < v->n && !v->last_meta; i++)
        v->last_meta = v->ev[v->n - 1 - i].meta;
}

/* Appends an event to the visitor's unsorted tail. Returns 0 or -1 (nothing changed). */
static int vis_append(tf_sessionizer_t *sz, sz_visitor_t *v, const tf_sess_event_t *in,
                      const sz_key_t *key, uint8_t flags, uint32_t link, int32_t c_top,
                      int32_t c_scroll) {
    bool is_ref =
        (in->type == TF_EVENT_PAGE_LEAVE || in->type == TF_EVENT_SCROLL) && in->page_view_id;
    sz_key_t pk;
    uint32_t ref_at = SZ_NONE; /* the page view's own eventId bytes when it is held */
    if (is_ref) {
        key_init(&pk, in->page_view_id);
        uint32_t t = vis_find_event(sz, v, &pk);
        if (t != SZ_NONE) ref_at = v->ev[t].eid; /* same key: same kind of entry */
    }
    size_t hbytes =
        key_entry_size(key) + (is_ref && ref_at == SZ_NONE ? key_entry_size(&pk) : 0);
    if (vis_reserve_events(sz, v, 1) || vis_reserve_heap(sz, v, hbytes)) return -1;
    uint32_t path = 0;
    /* the visitor's previous meta record first: its events nearly always share it */
    uint32_t meta = meta_intern(sz, v->last_meta, in->user_id, in->campaign_key,
                                (flags & EF_CTX_FROM_SESSION) ? NULL : in->context);
    if (meta == SZ_NONE) return -1;
    if (in->type == TF_EVENT_PAGE_VIEW) {
        path = str_intern(sz, in->path);
        if (path == SZ_NONE) goto fail_meta;
    }
    int32_t b = -1, c = -1;
    if (in->type == TF_EVENT_PAGE_VIEW)
        c = c_top;
    else if (is_ref && in->type == TF_EVENT_PAGE_LEAVE)
        b = top_seconds(in->has_time_on_page, in->time_on_page);
    if (b >= SZ_BIG && big_put(sz, v, v->heap_len * 2, b)) goto fail_path;
    if (c >= SZ_BIG && big_put(sz, v, v->heap_len * 2 + 1, c)) goto fail_path;

    sz_event_t *e = &v->ev[v->n];
    uint64_t ts = (uint64_t)in->ts_ms;
    e->ts_lo = (uint32_t)ts;
    e->ts_hi = (int32_t)(in->ts_ms >> 32);
    e->eid = v->heap_len;
    heap_write(v->heap + v->heap_len, key);
    v->heap_len += (uint32_t)key_entry_size(key);
    e->meta = meta;
    e->link = link;
    e->type = (uint8_t)in->type;
    e->flags = flags | (key->uuid ? 0 : EF_EID_TEXT);
    e->b = (int16_t)(b < SZ_BIG ? b : SZ_BIG);
    e->c = (int16_t)(c < SZ_BIG ? c : SZ_BIG);
    e->d = -1;
    e->e = -1;
    if (in->type == TF_EVENT_PAGE_VIEW) {
        e->a = path;
        e->e = scroll_clamp(c_scroll);
    } else if (is_ref) {
        if (ref_at != SZ_NONE) {
            e->a = ref_at;
        } else {
            e->a = v->heap_len;
            heap_write(v->heap + v->heap_len, &pk);
            v->heap_len += (uint32_t)key_entry_size(&pk);
        }
        e->flags |= EF_HAS_REF | (pk.uuid ? 0 : EF_REF_TEXT);
        e->d = scroll_clamp(in->scroll_depth);
    } else {
        e->a = SZ_NONE;
    }
    if (v->eidx ? ((uint64_t)v->n + 1) * 4 > (uint64_t)v->eidx_cap * 3 : v->n + 1 >= SZ_EIDX_MIN)
        eidx_build(sz, v, v->n + 1);
    if (v->eidx) eidx_insert(v, v->n, key_hash(sz, key));
    v->n++;
    sz->n_events++;
    if (meta) v->last_meta = meta;
    return 0;
fail_path:
    str_decref(sz, path);
fail_meta:
    meta_decref(sz, meta);
    return -1;
}

/* Forgets the written state of an in-memory visitor before it is loaded again: keeps only its
 * pending events (as an unsorted tail, their page-view links to be resolved again). */
static void vis_wipe(tf_sessionizer_t *sz, sz_visitor_t *v) {
    uint32_t w = 0;
    for (uint32_t i = 0; i < v->n; i++) {
        sz_event_t e = v->ev[i];
        if ((e.flags & EF_PENDING) && !(e.flags & EF_DROPPED)) {
            e.flags &= (uint8_t) ~(EF_RESOLVED | EF_NEW);
            if (e.type == TF_EVENT_PAGE_VIEW) {
                (void)ev_set_b(sz, v, &e, -1); /* cannot fail */
                e.d = -1;
            }
            v->ev[w++] = e;
        } else {
            ev_release(sz, v, &e);
        }
    }
    sz->n_events -= v->n - w;
    v->n = w;
    v->n_sorted = 0;
    vis_release_cs(sz, v);
    v->unresolved = 0;
    vis_last_meta(v);
    v->flags &= (uint8_t) ~(VF_EARLIER | VF_FRESH | VF_PINNED);
    v->covered_since = INT64_MAX;
    v->state = VS_LOADING;
    if (sz->hint_v == v) sz->hint_v = NULL;
    if (v->eidx) eidx_build(sz, v, v->n);
}

static void msort(const sz_visitor_t *v, sz_event_t *a, sz_event_t *tmp, uint32_t n) {
    if (n < 2) return;
    if (n <= 12) {
        for (uint32_t i = 1; i < n; i++) {
            sz_event_t x = a[i];
            uint32_t j = i;
            while (j > 0 && ev_cmp(v, &a[j - 1], &x) > 0) {
                a[j] = a[j - 1];
                j--;
            }
            a[j] = x;
        }
        return;
    }
    uint32_t h = n / 2;
    msort(v, a, tmp, h);
    msort(v, a + h, tmp, n - h);
    if (ev_cmp(v, &a[h - 1], &a[h]) <= 0) return;
    memcpy(tmp, a, (size_t)h * sizeof *a);
    uint32_t i = 0, j = h, k = 0;
    while (i < h && j < n)
        a[k++] = ev_cmp(v, &tmp[i], &a[j]) <= 0 ? tmp[i++] : a[j++];
    while (i < h)
        a[k++] = tmp[i++];
}

/* Links a PAGE_LEAVE/SCROLL at position i to its page view when it is held. Returns 1 when
 * linked, 0 when the page view is not held, -1 when out of memory (nothing changed). */
static int vis_resolve(tf_sessionizer_t *sz, sz_visitor_t *v, uint32_t i) {
    sz_event_t *e = &v->ev[i];
    sz_key_t k;
    heap_key(v->heap + e->a, ref_is_text(e), &k);
    uint32_t t = vis_find_event(sz, v, &k);
    if (t == SZ_NONE) return 0;
    sz_event_t *pv = &v->ev[t];
    if (pv->type == TF_EVENT_PAGE_VIEW) {
        int32_t top = e->type == TF_EVENT_PAGE_LEAVE ? ev_b(sz, v, e) : -1;
        if (top > ev_b(sz, v, pv) && ev_set_b(sz, v, pv, top)) return -1;
        if (e->d > pv->d) pv->d = e->d;
    }
    e->flags |= EF_RESOLVED;
    return 1;
}

/* Sorts the tail into the sorted prefix, drops pending duplicates of stored events and links
 * new PAGE_LEAVE/SCROLL events (and earlier unresolved ones) to their page views. */
static int vis_merge(tf_sessionizer_t *sz, sz_visitor_t *v) {
    uint32_t s0 = v->n_sorted, n = v->n, w = s0;
    bool moved = false;
    for (uint32_t i = s0; i < n; i++) {
        if (v->ev[i].flags & EF_DROPPED) {
            ev_release(sz, v, &v->ev[i]);
            moved = true;
            continue;
        }
        if (w != i) v->ev[w] = v->ev[i];
        v->ev[w].flags |= EF_NEW;
        w++;
    }
    if (w != n) {
        sz->n_events -= n - w;
        v->n = n = w;
        vis_last_meta(v);
    }
    uint32_t m = n - s0;
    if (m) {
        bool sorted = true;
        for (uint32_t i = s0 + 1; i < n && sorted; i++)
            if (ev_cmp(v, &v->ev[i - 1], &v->ev[i]) > 0) sorted = false;
        if (!sorted || (s0 && ev_cmp(v, &v->ev[s0 - 1], &v->ev[s0]) > 0)) {
            SZ_RESERVE_OR(oom, sz, sz->tmp, sz->tmp_cap, m);
            if (!sorted) msort(v, v->ev + s0, sz->tmp, m);
            if (s0 && ev_cmp(v, &v->ev[s0 - 1], &v->ev[s0]) > 0) {
                memcpy(sz->tmp, v->ev + s0, (size_t)m * sizeof *sz->tmp);
                uint32_t i = s0, j = m, k = n;
                while (j > 0) {
                    if (i > 0 && ev_cmp(v, &v->ev[i - 1], &sz->tmp[j - 1]) > 0)
                        v->ev[--k] = v->ev[--i];
                    else
                        v->ev[--k] = sz->tmp[--j];
                }
            }
            moved = true;
        }
    }
    v->n_sorted = n;
    if (moved && v->eidx) eidx_build(sz, v, v->n);

    bool new_pv = false;
    for (uint32_t i = moved ? 0 : s0; i < n; i++) {
        sz_event_t *e = &v->ev[i];
        if (!(e->flags & EF_NEW)) continue;
        e->flags &= (uint8_t)~EF_NEW;
        if (e->type == TF_EVENT_PAGE_VIEW) new_pv = true;
        if ((e->flags & (EF_HAS_REF | EF_RESOLVED)) == EF_HAS_REF) {
            int r = vis_resolve(sz, v, i);
            if (r < 0) goto oom;
            if (r == 0) v->unresolved++;
        }
    }
    if (new_pv && v->unresolved) {
        for (uint32_t i = 0; i < n && v->unresolved; i++) {
            if ((v->ev[i].flags & (EF_HAS_REF | EF_RESOLVED)) != EF_HAS_REF) continue;
            int r = vis_resolve(sz, v, i);
            if (r < 0) goto oom;
            if (r > 0) v->unresolved--;
        }
    }
    return 0;
oom:
    return -1;
}

/* ------------------------------------------------------------------ fingerprints */

static uint64_t fp_step(uint64_t h, uint64_t w) {
    h = (h ^ w) * 0x9fb21c651e98df25ULL; /* a bijection of h for a given w */
    return h ^ (h >> 29);
}

/* Fingerprint of a session row. Strings enter by their keyed SipHash, so rows cannot be
 * crafted to collide; the words are combined with a keyed multiply-xorshift chain. */
static uint64_t fp_compute(const tf_sessionizer_t *sz, const sz_fpin_t *in) {
    uint64_t h = sz->k1 ^ 0x9e3779b97f4a7c15ULL;
    h = fp_step(h, in->user);
    h = fp_step(h, (uint64_t)in->started);
    h = fp_step(h, (uint64_t)in->ended);
    h = fp_step(h, (uint64_t)in->duration);
    h = fp_step(h, (uint64_t)in->pvc);
    h = fp_step(h, (uint64_t)in->evc);
    h = fp_step(
        h, (uint64_t)in->conv | (uint64_t)in->bounce << 1 | (uint64_t)(unsigned)in->reason << 2);
    h = fp_step(h, in->entry);
    h = fp_step(h, in->exit);
    for (int f = 0; f < SZ_NCTX; f++)
        h = fp_step(h, in->ctx[f]);
    h = fp_step(h, (uint64_t)in->device);
    h = fp_step(h, (uint64_t)(uint32_t)in->sw | (uint64_t)(uint32_t)in->sh << 32);
    return mix64(h ^ sz->k0);
}

static uint64_t fp_of_row(const tf_sessionizer_t *sz, const tf_session_t *row) {
    sz_fpin_t in;
    in.user = text_hash(sz, row->user_id);
    in.entry = text_hash(sz, row->entry_page);
    in.exit = text_hash(sz, row->exit_page);
    for (int f = 0; f < SZ_NCTX; f++)
        in.ctx[f] = text_hash(sz, ctx_field(&row->context, f));
    in.started = row->started_at_ms;
    in.ended = row->ended_at_ms;
    in.duration = row->duration_s;
    in.pvc = row->page_view_count;
    in.evc = row->event_count;
    in.device = row->context.device_type;
    in.sw = row->context.screen_width;
    in.sh = row->context.screen_height;
    in.conv = row->has_conversion;
    in.bounce = row->is_bounce;
    in.reason = (int)row->start_reason;
    return fp_compute(sz, &in);
}

/* ------------------------------------------------------------------ recomputation */

/* Merges an event's context (dev record d, attr record a) into the session being built. */
static void ns_merge_ctx(const tf_sessionizer_t *sz, sz_nsess_t *s, uint32_t d, uint32_t a) {
    const uint32_t *c = rec(&sz->devs, d);
    s->last_dev = d;
    if (!s->have_ctx) {
        /* Referrer and UTM are the first event's, as a group (SPEC §4): a later
         * event's referrer never fills them in. */
        s->have_ctx = true;
        s->device = (int32_t)c[DEV_DEVICE];
        if (a) {
            const uint32_t *ar = rec(&sz->attrs, a);
            for (int f = 0; f < SZ_NATTR; f++) {
                s->m[f] = ar[ATTR_S + f];
                s->missing -= s->m[f] != 0;
            }
        }
    }
    if (!s->missing) return;
    for (int f = SZ_NATTR; f < SZ_NCTX; f++) {
        if (!s->m[f] && c[DEV_S + f - SZ_NATTR]) {
            s->m[f] = c[DEV_S + f - SZ_NATTR];
            s->missing--;
        }
    }
    if (!s->sw && c[DEV_SW]) {
        s->sw = (int32_t)c[DEV_SW];
        s->missing--;
    }
    if (!s->sh && c[DEV_SH]) {
        s->sh = (int32_t)c[DEV_SH];
        s->missing--;
    }
}

static void ns_row(const tf_sessionizer_t *sz, const sz_visitor_t *v, const char *vid,
                   const sz_nsess_t *s, tf_session_t *row) {
    memcpy(row->id, s->ids, 37);
    row->visitor_id = vid;
    row->user_id = str_of(sz, s->user);
    row->started_at_ms = ev_ts(&v->ev[s->first]);
    row->ended_at_ms = ev_ts(&v->ev[s->last]);
    row->duration_s = clamp_i32(sat_sub(row->ended_at_ms, row->started_at_ms) / 1000);
    row->page_view_count = s->pvc;
    row->event_count = s->evc;
    row->has_conversion = s->conv;
    row->is_bounce = !(row->duration_s >= 10 || s->conv || s->pvc >= 2);
    row->entry_page = str_of(sz, s->entry);
    row->exit_page = str_of(sz, s->exit);
    row->start_reason = (tf_start_reason_t)s->reason;
    memset(&row->context, 0, sizeof row->context);
    for (int f = 0; f < SZ_NCTX; f++)
        ctx_set_field(&row->context, f, str_of(sz, s->m[f]));
    row->context.device_type = s->have_ctx ? s->device : TF_SESS_DEVICE_UNKNOWN;
    row->context.screen_width = s->sw;
    row->context.screen_height = s->sh;
}

static uint64_t ns_fp(const tf_sessionizer_t *sz, const sz_visitor_t *v, const sz_nsess_t *s) {
    sz_fpin_t in;
    in.user = str_hash_of(sz, s->user);
    in.entry = str_hash_of(sz, s->entry);
    in.exit = str_hash_of(sz, s->exit);
    for (int f = 0; f < SZ_NCTX; f++)
        in.ctx[f] = str_hash_of(sz, s->m[f]);
    in.started = ev_ts(&v->ev[s->first]);
    in.ended = ev_ts(&v->ev[s->last]);
    in.duration = clamp_i32(sat_sub(in.ended, in.started) / 1000);
    in.pvc = s->pvc;
    in.evc = s->evc;
    in.device = s->have_ctx ? s->device : TF_SESS_DEVICE_UNKNOWN;
    in.sw = s->sw;
    in.sh = s->sh;
    in.conv = s->conv;
    in.bounce = !(in.duration >= 10 || s->conv || s->pvc >= 2);
    in.reason = s->reason;
    return fp_compute(sz, &in);
}

/* Merges the visitor's new events, recomputes its sessions, appends the differences with the
 * written state to the output and makes the result the written state. Returns 0 or -1 (out
 * of memory; the visitor is then inconsistent and must be dropped). */
static int vis_flush(tf_sessionizer_t *sz, sz_visitor_t *v) {
    if (vis_merge(sz, v)) return -1;
    char vbuf[37];
    const char *vid = NULL; /* the visitorId for the output rows, made on first use */
    const tf_session_config_t *cfg = &sz->cfg;
    uint32_t n = v->n, ncs = v->ncs;
    sz_event_t *ev = v->ev;
    SZ_RESERVE_OR(oom, sz, sz->sess_of, sz->sess_of_cap, n);
    SZ_RESERVE_OR(oom, sz, sz->cs_map, sz->cs_map_cap, ncs);
    SZ_RESERVE_OR(oom, sz, sz->cs_cnt, sz->cs_cnt_cap, ncs);
    for (uint32_t k = 0; k < ncs; k++) {
        sz->cs_map[k] = SZ_NONE;
        sz->cs_cnt[k] = 0;
    }
    bool shortcut = !(v->flags & VF_FRESH) && v->cfg_gen == sz->cfg_gen;

    size_t nns = 0;
    sz_nsess_t *s = NULL;
    int64_t prev_ts = 0, first_ts = 0, prev_day = 0;
    uint32_t camp = 0, meta = SZ_NONE, e_user = 0, e_camp = 0, e_dev = 0, e_attr = 0;
    for (uint32_t i = 0; i < n; i++) {
        sz_event_t *e = &ev[i];
        int64_t ts = ev_ts(e), day = 0;
        if (e->meta != meta) {
            meta = e->meta;
            e_user = meta_word(sz, meta, META_USER);
            e_camp = meta_word(sz, meta, META_CAMP);
            e_dev = meta_word(sz, meta, META_DEV);
            e_attr = meta_word(sz, meta, META_ATTR);
        }
        if (cfg->split_at_midnight) day = day_of(sz, ts);
        int reason = -1;
        if (i == 0)
            reason = (v->flags & VF_PINNED)    ? v->pin_reason
                     : (v->flags & VF_EARLIER) ? TF_START_INACTIVITY
                                               : TF_START_FIRST;
        else if (sat_sub(ts, prev_ts) > cfg->timeout_ms)
            reason = TF_START_INACTIVITY;
        else if (sat_sub(ts, first_ts) > cfg->max_duration_ms)
            reason = TF_START_MAX_DURATION;
        else if (cfg->split_at_midnight && day != prev_day)
            reason = TF_START_MIDNIGHT;
        else if (cfg->split_on_campaign && e_camp && camp && e_camp != camp)
            reason = TF_START_CAMPAIGN;
        if (reason >= 0) {
            SZ_RESERVE_OR(oom, sz, sz->ns, sz->ns_cap, nns + 1);
            s = &sz->ns[nns++];
            memset(s, 0, offsetof(sz_nsess_t, ids));
            s->first = i;
            s->reason = (uint8_t)reason;
            s->missing = SZ_NCTX + 2;
            s->clean = shortcut && !(e->flags & EF_PENDING);
            s->cand = (e->flags & EF_PENDING) ? SZ_NONE : e->link;
            first_ts = ts;
            camp = e_camp;
        } else if (!camp) {
            camp = e_camp;
        }
        s->last = i;
        s->evc++;
        if (e_user) s->user = e_user;
        if (e->type == TF_EVENT_PAGE_VIEW) {
            if (!s->pvc) s->entry = e->a;
            s->exit = e->a;
            s->pvc++;
        }
        if (cfg->conversion_types >> e->type & 1u) s->conv = true;
        if (e_dev && (!s->have_ctx || e_dev != s->last_dev)) ns_merge_ctx(sz, s, e_dev, e_attr);
        if (e->flags & EF_PENDING) {
            s->clean = false;
        } else {
            sz->cs_cnt[e->link]++;
            if (e->link != s->cand) s->clean = false;
        }
        sz->sess_of[i] = (uint32_t)(nns - 1);
        prev_ts = ts;
        prev_day = day;
    }

    /* identify, compare, report sessions */
    SZ_RESERVE_OR(oom, sz, sz->ups, sz->ups_cap, sz->nups + nns);
    SZ_RESERVE_OR(oom, sz, sz->dels, sz->dels_cap, sz->ndels + ncs);
    for (size_t j = 0; j < nns; j++) {
        s = &sz->ns[j];
        const sz_event_t *f = &ev[s->first];
        s->match = SZ_NONE;
        bool by_first = !(f->flags & EF_PENDING) && f->link < ncs && v->cs[f->link].first == f->eid;
        if (by_first) {
            s->match = f->link;
            memcpy(s->id, v->cs[f->link].id, 16);
        } else {
            char buf[37];
            size_t len;
            const char *t = eid_text(v, f->eid, eid_is_text(f), buf, &len);
            session_id_bin(vis_id(v, vbuf), v->id_len, t, len, s->id);
            /* a written session with this id whose first event did not match it (stored
             * state written otherwise) is the same row: updated, not deleted and inserted */
            for (uint32_t k = 0; k < ncs && s->match == SZ_NONE; k++)
                if (v->cs[k].first == SZ_NONE && sz->cs_map[k] == SZ_NONE &&
                    memcmp(v->cs[k].id, s->id, 16) == 0)
                    s->match = k;
        }
        if (s->match != SZ_NONE) {
            const sz_csess_t *c = &v->cs[s->match];
            sz->cs_map[s->match] = (uint32_t)j;
            if (by_first && s->clean && sz->cs_cnt[s->match] == (uint32_t)s->evc &&
                c->reason == s->reason && !(c->flags & CS_NOROW)) {
                s->fp = c->fp;
                s->upsert = false;
            } else {
                s->fp = ns_fp(sz, v, s);
                s->upsert = (c->flags & CS_NOROW) || c->fp != s->fp;
            }
        } else {
            s->fp = ns_fp(sz, v, s);
            s->upsert = true;
        }
        uuid_fmt(s->id, s->ids);
        if (s->upsert) {
            if (!vid) vid = vis_id_out(sz, v);
            if (!vid) goto oom;
            ns_row(sz, v, vid, s, &sz->ups[sz->nups++]);
        }
    }
    for (uint32_t k = 0; k < ncs; k++)
        if (sz->cs_map[k] == SZ_NONE) uuid_fmt(v->cs[k].id, sz->dels[sz->ndels++]);

    /* events: new ones, re-pointed ones, page views */
    if (vis_reserve_cs(sz, v, nns)) goto oom;
    SZ_RESERVE_OR(oom, sz, sz->asg, sz->asg_cap, sz->nasg + n);
    SZ_RESERVE_OR(oom, sz, sz->pvs, sz->pvs_cap, sz->npvs + n);
    for (uint32_t i = 0; i < n; i++) {
        sz_event_t *e = &ev[i];
        uint32_t sj = sz->sess_of[i];
        bool is_new = e->flags & EF_PENDING;
        bool moved = is_new || sz->cs_map[e->link] != sj;
        const char *eid = NULL;
        if (moved) {
            eid = eid_out(sz, v, e);
            if (!eid) goto oom;
            tf_sess_assign_t *a = &sz->asg[sz->nasg++];
            a->event_id = eid;
            memcpy(a->session_id, sz->ns[sj].ids, 37);
            a->is_new = is_new;
            a->type = (tf_event_type_t)e->type;
            a->cookie = is_new ? sz->cookies[e->link] : 0;
        }
        if (e->type == TF_EVENT_PAGE_VIEW) {
            int32_t top = ev_b(sz, v, e);
            if (top < 0 && i + 1 < n && sz->sess_of[i + 1] == sj)
                top = clamp_i32(sat_sub(ev_ts(&ev[i + 1]), ev_ts(e)) / 1000);
            if (moved || top != ev_c(sz, v, e) || e->d != e->e) {
                if (!eid) eid = eid_out(sz, v, e);
                if (!eid) goto oom;
                tf_page_view_update_t *p = &sz->pvs[sz->npvs++];
                p->event_id = eid;
                memcpy(p->session_id, sz->ns[sj].ids, 37);
                p->has_time_on_page = top >= 0;
                p->time_on_page_s = top >= 0 ? top : 0;
                p->scroll_depth = e->d;
                p->is_new = is_new;
            }
            if (ev_set_c(sz, v, e, top)) goto oom;
            e->e = e->d;
        }
        e->link = sj;
        e->flags &= (uint8_t)~EF_PENDING;
    }
    for (size_t j = 0; j < nns; j++) {
        sz_csess_t *c = &v->cs[j];
        s = &sz->ns[j];
        memcpy(c->id, s->id, 16);
        c->fp = s->fp;
        c->first = ev[s->first].eid;
        c->reason = s->reason;
        c->flags = 0;
    }
    v->ncs = (uint32_t)nns;
    v->n_pending = 0;
    v->min_pending = INT64_MAX;
    v->flags &= (uint8_t)~VF_FRESH;
    v->cfg_gen = sz->cfg_gen;
    vslot_update(sz, v);
    return 0;
oom:
    return -1;
}

/* Forgets a visitor's leading written sessions that ended before cutoff, keeping at least its
 * latest one, so that a visitor that never goes idle holds a bounded window. The first kept
 * session's start is pinned: its start reason is kept, and an event at or before it makes the
 * visitor reload (covered_since). Only between batches (all events written and sorted). */
static void vis_trim(tf_sessionizer_t *sz, sz_visitor_t *v, int64_t cutoff) {
    if (v->n_sorted != v->n || v->ncs < 2) return;
    uint32_t q = 0, r = 0; /* first kept position, first kept session */
    for (uint32_t i = 0; i < v->n;) {
        uint32_t k = v->ev[i].link, j = i;
        while (j < v->n && v->ev[j].link == k)
            j++;
        if (k + 1 >= v->ncs || ev_ts(&v->ev[j - 1]) >= cutoff) break;
        q = j;
        r = k + 1;
        i = j;
    }
    if (q) {
        for (uint32_t i = 0; i < q; i++)
            ev_release(sz, v, &v->ev[i]);
        memmove(v->ev, v->ev + q, (size_t)(v->n - q) * sizeof *v->ev);
        v->n -= q;
        v->n_sorted = v->n;
        sz->n_events -= q;
        for (uint32_t i = 0; i < v->n; i++)
            v->ev[i].link -= r;
        memmove(v->cs, v->cs + r, (size_t)(v->ncs - r) * sizeof *v->cs);
        v->ncs -= r;
        /* compact the heap to the kept ids; a page_view_id whose page view is kept shares its
         * bytes (on failure the old heap stays, with its garbage) */
        size_t need = 0;
        for (uint32_t i = 0; i < v->n; i++) {
            sz_key_t k;
            heap_key(v->heap + v->ev[i].eid, eid_is_text(&v->ev[i]), &k);
            need += key_entry_size(&k);
            if (v->ev[i].flags & EF_HAS_REF) {
                heap_key(v->heap + v->ev[i].a, ref_is_text(&v->ev[i]), &k);
                need += key_entry_size(&k);
            }
        }
        uint8_t *nh = need ? sz_malloc(sz, need) : NULL;
        if (nh) {
            uint8_t *old = v->heap;
            uint32_t len = 0;
            uint32_t k_seen = SZ_NONE;
            bool rekey = false;
            for (uint32_t i = 0; i < v->n; i++) {
                sz_event_t *e = &v->ev[i];
                bool was_first = e->link != k_seen && v->cs[e->link].first == e->eid;
                sz_key_t k;
                heap_key(old + e->eid, eid_is_text(e), &k);
                heap_write(nh + len, &k);
                /* large values move to their new key, marked while old keys remain; the table
                 * never grows here (one entry removed per entry added) */
                if (e->b == SZ_BIG || e->c == SZ_BIG) rekey = true;
                if (e->b == SZ_BIG) {
                    int32_t x = big_get(sz, v, e->eid * 2);
                    big_del(sz, v, e->eid * 2);
                    (void)big_put(sz, v, (len * 2) | 0x80000000u, x);
                }
                if (e->c == SZ_BIG) {
                    int32_t x = big_get(sz, v, e->eid * 2 + 1);
                    big_del(sz, v, e->eid * 2 + 1);
                    (void)big_put(sz, v, (len * 2 + 1) | 0x80000000u, x);
                }
                e->eid = len;
                len += (uint32_t)key_entry_size(&k);
                if (was_first) v->cs[e->link].first = e->eid;
                k_seen = e->link;
            }
            for (uint32_t i = 0; rekey && i < v->n; i++) {
                const sz_event_t *e = &v->ev[i];
                for (uint32_t w = 0; w < 2; w++) {
                    if ((w ? e->c : e->b) != SZ_BIG) continue;
                    int32_t x = big_get(sz, v, (e->eid * 2 + w) | 0x80000000u);
                    big_del(sz, v, (e->eid * 2 + w) | 0x80000000u);
                    (void)big_put(sz, v, e->eid * 2 + w, x);
                }
            }
            v->heap = nh;
            sz->mem += need;
            eidx_build(sz, v, v->n); /* over the new offsets, for the lookups below */
            for (uint32_t i = 0; i < v->n; i++) {
                sz_event_t *e = &v->ev[i];
                if (!(e->flags & EF_HAS_REF)) continue;
                sz_key_t k;
                heap_key(old + e->a, ref_is_text(e), &k);
                uint32_t t = vis_find_event(sz, v, &k);
                if (t != SZ_NONE) {
                    e->a = v->ev[t].eid;
                } else {
                    heap_write(nh + len, &k);
                    e->a = len;
                    len += (uint32_t)key_entry_size(&k);
                }
            }
            sz_free_sized(sz, old, v->heap_cap);
            v->heap_len = len;
            v->heap_cap = (uint32_t)need;
        }
        vis_shrink(sz, v);
        v->unresolved = 0;
        for (uint32_t i = 0; i < v->n; i++)
            v->unresolved += (v->ev[i].flags & (EF_HAS_REF | EF_RESOLVED)) == EF_HAS_REF;
        eidx_build(sz, v, v->n);
        vis_last_meta(v);
        v->flags |= VF_PINNED;
        v->pin_reason = v->cs[0].reason;
        int64_t keep_from = sat_add(ev_ts(&v->ev[0]), 1);
        if (v->covered_since < keep_from) v->covered_since = keep_from;
        if (sz->hint_v == v) sz->hint_v = NULL;
    }
    vslot_update(sz, v);
}

/* ------------------------------------------------------------------ batch bookkeeping */

static void batch_reset(tf_sessionizer_t *sz) {
    for (size_t i = 0; i < sz->ntouched; i++)
        sz->touched[i]->flags &= (uint8_t)~VF_TOUCHED;
    sz->ntouched = 0;
    sz->ncookies = 0;
    sz->nreqs = 0;
    sz->batch_dups = 0;
    sz->flushed = false;
    sz->nups = sz->ndels = sz->nasg = sz->npvs = 0;
    sz->hint_v = NULL;
    arena_reset(sz);
}

static void drop_touched(tf_sessionizer_t *sz) {
    for (size_t i = 0; i < sz->ntouched; i++) {
        sz_visitor_t *v = sz->touched[i];
        vis_table_remove(sz, v);
        vis_free(sz, v);
    }
    sz->ntouched = 0;
    batch_reset(sz);
}

static int touch(tf_sessionizer_t *sz, sz_visitor_t *v) {
    if (v->flags & VF_TOUCHED) return 0;
    SZ_RESERVE_OR(oom, sz, sz->touched, sz->touched_cap, sz->ntouched + 1);
    sz->touched[sz->ntouched++] = v;
    v->flags |= VF_TOUCHED;
    return 0;
oom:
    return -1;
}

/* ------------------------------------------------------------------ public API */

tf_sessionizer_t *tf_sessionizer_new(const tf_session_config_t *cfg) {
    tf_sessionizer_t *sz = calloc(1, sizeof *sz);
    if (!sz) return NULL;
    if (cfg)
        sz->cfg = *cfg;
    else
        tf_session_config_default(&sz->cfg);
    config_normalise(&sz->cfg);
    sz->k0 = mix64(sz->cfg.hash_seed);
    sz->k1 = mix64(sz->cfg.hash_seed ^ 0xd6e8feb86659fd93ULL);
    sz->mem = sizeof *sz;
    sz->strs_n = 1;
    pool_init(&sz->devs, DEV_WORDS, 0x3c6ef372fe94f82bULL);
    pool_init(&sz->attrs, ATTR_WORDS, 0xa54ff53a5f1d36f1ULL);
    pool_init(&sz->metas, META_WORDS, 0x510e527fade682d1ULL);
    sz->fail_after = -1;
    return sz;
}

void tf_sessionizer_destroy(tf_sessionizer_t *sz) {
    if (!sz) return;
    for (size_t i = 0; i < sz->vcap; i++)
        if (sz->vslots[i].v) vis_free(sz, sz->vslots[i].v);
    for (size_t i = 1; i < sz->strs_n; i++)
        free(sz->strs[i]);
    arena_reset(sz);
    free(sz->vslots);
    free(sz->strs);
    free(sz->str_free);
    free(sz->sslots);
    pool_free(&sz->devs);
    pool_free(&sz->attrs);
    pool_free(&sz->metas);
    free(sz->bigs);
    free(sz->touched);
    free(sz->cookies);
    free(sz->reqs);
    free(sz->pvids);
    free(sz->ups);
    free(sz->dels);
    free(sz->asg);
    free(sz->pvs);
    free(sz->ns);
    free(sz->sess_of);
    free(sz->cs_map);
    free(sz->cs_cnt);
    free(sz->tmp);
    free(sz);
}

void tf_sessionizer_set_config(tf_sessionizer_t *sz, const tf_session_config_t *cfg) {
    if (!sz || !cfg) return;
    uint64_t seed = sz->cfg.hash_seed;
    sz->cfg = *cfg;
    sz->cfg.hash_seed = seed;
    config_normalise(&sz->cfg);
    sz->cfg_gen++;
}

int tf_sessionizer_add(tf_sessionizer_t *sz, const tf_sess_event_t *ev) {
    if (!sz || !ev || !ev->visitor_id || !ev->event_id || sz->flushed ||
        (unsigned)ev->type >= TF_EVENT_TYPE_COUNT)
        return -1;
    if (sz->n_events >= sz->cfg.max_events) return -1;
    size_t vlen = strlen(ev->visitor_id);
    uint64_t vh = vis_hash(sz, ev->visitor_id, vlen);
    sz_key_t vk;
    vis_key(ev->visitor_id, vlen, &vk);
    sz_visitor_t *v = vis_find(sz, &vk, vh);
    if (!v) {
        v = vis_new(sz, &vk, vh);
        if (!v) return -1;
        if (vis_table_insert(sz, v)) {
            vis_free(sz, v);
            return -1;
        }
    }
    if (touch(sz, v)) {
        if (!v->n) {
            vis_table_remove(sz, v);
            vis_free(sz, v);
        }
        return -1;
    }
    sz_key_t key;
    key_init(&key, ev->event_id);
    if (vis_find_event(sz, v, &key) != SZ_NONE) {
        sz->batch_dups++;
        return 0;
    }
    SZ_RESERVE_OR(oom, sz, sz->cookies, sz->cookies_cap, sz->ncookies + 1);
    if (vis_append(sz, v, ev, &key, EF_PENDING, (uint32_t)sz->ncookies, -1, -1)) return -1;
    sz->cookies[sz->ncookies++] = ev->cookie;
    v->n_pending++;
    if (ev->ts_ms < v->min_pending) v->min_pending = ev->ts_ms;
    return 0;
oom:
    return -1;
}

static const tf_sess_load_request_t no_requests[1] = {{NULL, 0, NULL, 0}};

/* Appends to sz->pvids the page views that the visitor's pending PAGE_LEAVE/SCROLL events
 * refer to and that it does not hold. Only the unsorted tail is looked at: events added since
 * the visitor was last loaded (loading merges the tail), so a page view that is nowhere in
 * storage is asked for once. */
static int collect_missing_page_views(tf_sessionizer_t *sz, sz_visitor_t *v) {
    size_t first = sz->npvids;
    for (uint32_t i = v->n_sorted; i < v->n; i++) {
        const sz_event_t *e = &v->ev[i];
        if ((e->flags & (EF_PENDING | EF_HAS_REF | EF_DROPPED | EF_RESOLVED)) !=
            (EF_PENDING | EF_HAS_REF))
            continue;
        sz_key_t k;
        heap_key(v->heap + e->a, ref_is_text(e), &k);
        if (vis_find_event(sz, v, &k) != SZ_NONE) continue;
        const char *id = eid_copy(sz, v, e->a, ref_is_text(e));
        if (!id) return -1;
        bool seen = false;
        for (size_t j = first; j < sz->npvids && !seen; j++)
            seen = strcmp(sz->pvids[j], id) == 0;
        if (seen) continue;
        SZ_RESERVE_OR(oom, sz, sz->pvids, sz->pvids_cap, sz->npvids + 1);
        sz->pvids[sz->npvids++] = id;
    }
    return 0;
oom:
    return -1;
}

const tf_sess_load_request_t *tf_sessionizer_load_requests(tf_sessionizer_t *sz, size_t *n) {
    *n = 0;
    if (!sz) return NULL;
    sz->nreqs = 0;
    sz->npvids = 0;
    if (sz->flushed) return no_requests;
    for (size_t i = 0; i < sz->ntouched; i++) {
        sz_visitor_t *v = sz->touched[i];
        size_t pv0 = sz->npvids;
        if (collect_missing_page_views(sz, v)) goto oom;
        if (v->state == VS_LOADED) {
            bool window = v->n_pending && v->covered_since > v->min_pending;
            if (!window && sz->npvids == pv0) continue;
            /* reloaded from scratch: every page view held so far must come back too (the
             * wipe puts all pending events back in the tail) */
            vis_wipe(sz, v);
            sz->npvids = pv0;
            if (collect_missing_page_views(sz, v)) goto oom;
        }
        SZ_RESERVE_OR(oom, sz, sz->reqs, sz->reqs_cap, sz->nreqs + 1);
        tf_sess_load_request_t *r = &sz->reqs[sz->nreqs++];
        r->visitor_id = vis_id_out(sz, v);
        if (!r->visitor_id) goto oom;
        r->since_ms = sat_sub(v->min_pending, sz->cfg.timeout_ms);
        r->page_view_ids = NULL;
        r->n_page_view_ids = sz->npvids - pv0;
    }
    size_t off = 0;
    for (size_t i = 0; i < sz->nreqs; i++) {
        tf_sess_load_request_t *r = &sz->reqs[i];
        if (r->n_page_view_ids) r->page_view_ids = sz->pvids + off;
        off += r->n_page_view_ids;
    }
    *n = sz->nreqs;
    return sz->nreqs ? sz->reqs : no_requests;
oom:
    sz->nreqs = 0;
    return NULL;
}

/* The visitor a load call is about, when it was requested (not yet marked loaded). */
static sz_visitor_t *load_target(tf_sessionizer_t *sz, const char *visitor_id) {
    if (sz->flushed) return NULL;
    sz_visitor_t *v = vis_lookup(sz, visitor_id);
    if (!v || v->state == VS_LOADED || !(v->flags & VF_TOUCHED)) return NULL;
    v->state = VS_LOADING;
    return v;
}

static uint32_t cs_find(tf_sessionizer_t *sz, const sz_visitor_t *v, const uint8_t id[16]) {
    if (sz->hint_v == v && sz->hint_k < v->ncs && memcmp(v->cs[sz->hint_k].id, id, 16) == 0)
        return sz->hint_k;
    for (uint32_t k = v->ncs; k-- > 0;)
        if (memcmp(v->cs[k].id, id, 16) == 0) return k;
    return SZ_NONE;
}

int tf_sessionizer_load_session(tf_sessionizer_t *sz, const tf_session_t *stored) {
    if (!sz || !stored) return -1;
    sz_visitor_t *v = load_target(sz, stored->visitor_id);
    uint8_t id[16];
    if (!v || uuid_parse(stored->id, strnlen(stored->id, 37), false, id)) return -1;
    uint32_t k = cs_find(sz, v, id);
    if (k != SZ_NONE && !(v->cs[k].flags & CS_NOROW)) return 0;
    uint32_t ctx = meta_intern(sz, 0, NULL, NULL, &stored->context);
    if (ctx == SZ_NONE) return -1;
    if (k == SZ_NONE) {
        if (vis_reserve_cs(sz, v, (size_t)v->ncs + 1)) {
            meta_decref(sz, ctx);
            return -1;
        }
        k = v->ncs++;
        memcpy(v->cs[k].id, id, 16);
    }
    sz_csess_t *c = &v->cs[k];
    c->fp = fp_of_row(sz, stored);
    c->reason = (uint8_t)stored->start_reason;
    c->first = ctx;
    c->flags = CS_LOADCTX;
    sz->hint_v = v;
    sz->hint_k = k;
    return 0;
}

int tf_sessionizer_load_event(tf_sessionizer_t *sz, const tf_sess_event_t *ev,
                              const char *stored_session_id, bool pv_has_time_on_page,
                              int32_t pv_time_on_page_s, int32_t pv_scroll_depth) {
    if (!sz || !ev || !ev->event_id || !stored_session_id ||
        (unsigned)ev->type >= TF_EVENT_TYPE_COUNT)
        return -1;
    sz_visitor_t *v = load_target(sz, ev->visitor_id);
    uint8_t sid[16];
    if (!v || uuid_parse(stored_session_id, strnlen(stored_session_id, 37), false, sid)) return -1;
    sz_key_t key;
    key_init(&key, ev->event_id);
    uint32_t pos = vis_find_event(sz, v, &key);
    if (pos != SZ_NONE) {
        if (!(v->ev[pos].flags & EF_PENDING)) return 0; /* loaded already */
        v->ev[pos].flags |= EF_DROPPED;                 /* the stored copy wins */
        v->n_pending--;
        sz->batch_dups++;
        if (v->eidx) eidx_build(sz, v, v->n);
    }
    uint32_t k = cs_find(sz, v, sid);
    if (k == SZ_NONE) {
        if (vis_reserve_cs(sz, v, (size_t)v->ncs + 1)) return -1;
        k = v->ncs++;
        sz_csess_t *c = &v->cs[k];
        memcpy(c->id, sid, 16);
        c->fp = 0;
        c->first = 0;
        c->reason = TF_START_FIRST;
        c->flags = CS_NOROW;
    }
    sz->hint_v = v;
    sz->hint_k = k;
    int32_t c_top = pv_has_time_on_page ? (pv_time_on_page_s < 0 ? 0 : pv_time_on_page_s) : -1;
    return vis_append(sz, v, ev, &key, ev->context ? 0 : EF_CTX_FROM_SESSION, k, c_top,
                      pv_scroll_depth);
}

int tf_sessionizer_loaded(tf_sessionizer_t *sz, const char *visitor_id, bool has_earlier_history) {
    if (!sz) return -1;
    sz_visitor_t *v = load_target(sz, visitor_id);
    if (!v) return -1;
    for (uint32_t i = 0; i < v->n; i++) {
        sz_event_t *e = &v->ev[i];
        if (!(e->flags & EF_CTX_FROM_SESSION)) continue;
        const sz_csess_t *c = &v->cs[e->link];
        if (c->flags & CS_LOADCTX) {
            uint32_t m = meta_with_context(sz, e->meta, c->first);
            if (m == SZ_NONE) return -1; /* the caller aborts: the visitor is dropped */
            meta_decref(sz, e->meta);
            e->meta = m;
        }
        e->flags &= (uint8_t)~EF_CTX_FROM_SESSION;
    }
    vis_last_meta(v);
    for (uint32_t k = 0; k < v->ncs; k++) {
        sz_csess_t *c = &v->cs[k];
        if (c->flags & CS_LOADCTX) meta_decref(sz, c->first);
        c->flags &= (uint8_t)~CS_LOADCTX;
        c->first = SZ_NONE;
    }
    if (vis_merge(sz, v)) return -1;
    /* a written session keeps its id only while its first event is the one the id names */
    SZ_RESERVE_OR(oom, sz, sz->cs_map, sz->cs_map_cap, v->ncs);
    for (uint32_t k = 0; k < v->ncs; k++)
        sz->cs_map[k] = SZ_NONE;
    for (uint32_t i = 0; i < v->n; i++) {
        const sz_event_t *e = &v->ev[i];
        if (!(e->flags & EF_PENDING) && sz->cs_map[e->link] == SZ_NONE) sz->cs_map[e->link] = i;
    }
    for (uint32_t k = 0; k < v->ncs; k++) {
        if (sz->cs_map[k] == SZ_NONE) continue;
        uint32_t off = v->ev[sz->cs_map[k]].eid;
        char buf[37];
        size_t len;
        const char *t = eid_text(v, off, eid_is_text(&v->ev[sz->cs_map[k]]), buf, &len);
        uint8_t id[16];
        char vbuf[37];
        session_id_bin(vis_id(v, vbuf), v->id_len, t, len, id);
        if (memcmp(id, v->cs[k].id, 16) == 0) v->cs[k].first = off;
    }
    if (has_earlier_history)
        v->flags |= VF_EARLIER;
    else
        v->flags &= (uint8_t)~VF_EARLIER;
    v->flags |= VF_FRESH;
    v->covered_since = v->min_pending;
    v->state = VS_LOADED;
    return 0;
oom:
    return -1;
}

int tf_sessionizer_flush(tf_sessionizer_t *sz, tf_sess_changes_t *out) {
    if (!sz || !out || sz->flushed) return -1;
    for (size_t i = 0; i < sz->ntouched; i++) {
        const sz_visitor_t *v = sz->touched[i];
        if (v->state != VS_LOADED) return -1;
        if (v->n_pending && v->covered_since > v->min_pending) return -1;
    }
    sz->flushed = true;
    sz->nups = sz->ndels = sz->nasg = sz->npvs = 0;
    for (size_t i = 0; i < sz->ntouched; i++) {
        if (vis_flush(sz, sz->touched[i])) {
            drop_touched(sz);
            memset(out, 0, sizeof *out);
            return -1;
        }
    }
    out->upserts = sz->ups;
    out->n_upserts = sz->nups;
    out->deletes = (const char(*)[37])sz->dels;
    out->n_deletes = sz->ndels;
    out->assigns = sz->asg;
    out->n_assigns = sz->nasg;
    out->page_views = sz->pvs;
    out->n_page_views = sz->npvs;
    out->n_duplicates = sz->batch_dups;
    return 0;
}

void tf_sessionizer_commit(tf_sessionizer_t *sz) {
    if (!sz) return;
    if (!sz->flushed && sz->ntouched) {
        drop_touched(sz); /* nothing was flushed: the batch cannot have been written */
        return;
    }
    for (size_t i = 0; i < sz->ntouched; i++)
        vis_shrink(sz, sz->touched[i]);
    batch_reset(sz);
}

void tf_sessionizer_abort(tf_sessionizer_t *sz) {
    if (!sz) return;
    drop_touched(sz);
}

size_t tf_sessionizer_evict(tf_sessionizer_t *sz, int64_t watermark_ms) {
    if (!sz) return 0;
    int64_t cutoff =
        sat_sub(watermark_ms, sat_add(sz->cfg.timeout_ms, sz->cfg.allowed_lateness_ms));
    int32_t coarse_cut = coarse_ms(cutoff);
    size_t evicted = 0;
    for (size_t i = 0; i < sz->vcap;) {
        const sz_vslot_t *slot = &sz->vslots[i];
        sz_visitor_t *v = slot->v;
        if (!v || (slot->last > coarse_cut && slot->trim_at > coarse_cut) ||
            (v->flags & VF_TOUCHED) || v->state != VS_LOADED) {
            i++;
            continue;
        }
        int64_t last, trim_at;
        vis_times(v, &last, &trim_at);
        if (last >= cutoff && trim_at >= cutoff) {
            i++;
            continue;
        }
        if (last >= cutoff) {
            vis_trim(sz, v, cutoff);
            i++;
            continue;
        }
        vis_table_remove_at(sz, i); /* slot i now holds a later member of its cluster, or NULL */
        vis_free(sz, v);
        evicted++;
    }
    if (sz->vcap > 1024 && sz->vcount * 8 < sz->vcap) {
        size_t nc = sz->vcap;
        while (nc > 1024 && sz->vcount * 4 < nc)
            nc /= 2;
        (void)vis_table_resize(sz, nc); /* on failure the larger table stays */
    }
    return evicted;
}

size_t tf_sessionizer_visitor_count(const tf_sessionizer_t *sz) {
    return sz ? sz->vcount : 0;
}

size_t tf_sessionizer_event_count(const tf_sessionizer_t *sz) {
    return sz ? sz->n_events : 0;
}

size_t tf_sessionizer_memory_bytes(const tf_sessionizer_t *sz) {
    return sz ? sz->mem : 0;
}

void tf_sessionizer_fail_allocs_after(tf_sessionizer_t *sz, long n) {
    if (sz) sz->fail_after = n < 0 ? -1 : n;
}
