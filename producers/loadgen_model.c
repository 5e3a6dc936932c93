/* loadgen_model.c — deterministic synthetic traffic of an eyewear shop with online
 * sales and appointment booking (see loadgen_model.h). Pure: no I/O, no clock. */
#include "producers/loadgen_model.h"
#include "transforms/event.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- random numbers: xoshiro256** seeded through splitmix64 --------------------- */

typedef struct rng_s {
    uint64_t s[4];
} rng_t;

static uint64_t splitmix64(uint64_t *x) {
    uint64_t z = (*x += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

/* A well-mixed 64-bit value of three inputs (stable across runs and platforms). */
static uint64_t mix3(uint64_t a, uint64_t b, uint64_t c) {
    uint64_t x = a ^ 0x243f6a8885a308d3ULL;
    uint64_t h = splitmix64(&x);
    x = h ^ b;
    h = splitmix64(&x);
    x = h ^ c;
    return splitmix64(&x);
}

static void rng_seed(rng_t *r, uint64_t seed) {
    for (int i = 0; i < 4; i++) r->s[i] = splitmix64(&seed);
}

static uint64_t rotl64(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }

static uint64_t rng_u64(rng_t *r) {
    uint64_t *s = r->s;
    uint64_t result = rotl64(s[1] * 5, 7) * 9;
    uint64_t t = s[1] << 17;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = rotl64(s[3], 45);
    return result;
}

/* Uniform in [0, 1). */
static double rng_unit(rng_t *r) { return (double)(rng_u64(r) >> 11) * 0x1.0p-53; }

/* Uniform in [0, n); 0 when n is 0. */
static uint32_t rng_below(rng_t *r, uint32_t n) {
    return (uint32_t)(((rng_u64(r) >> 32) * (uint64_t)n) >> 32);
}

/* Uniform in [lo, hi]. */
static int64_t rng_range(rng_t *r, int64_t lo, int64_t hi) {
    if (hi <= lo) return lo;
    return lo + (int64_t)(rng_unit(r) * (double)(hi - lo + 1));
}

static int rng_chance(rng_t *r, double p) { return rng_unit(r) < p; }

static double rng_normal(rng_t *r) {
    double u1 = 1.0 - rng_unit(r); /* (0, 1] */
    double u2 = rng_unit(r);
    return sqrt(-2.0 * log(u1)) * cos(6.283185307179586 * u2);
}

/* Log-normal with the given median; sigma is the spread of the logarithm. */
static double rng_lognormal(rng_t *r, double median, double sigma) {
    return median * exp(sigma * rng_normal(r));
}

/* Index drawn with the given integer weights (their sum must be > 0). */
static size_t rng_weighted(rng_t *r, const unsigned *weights, size_t n) {
    unsigned total = 0;
    for (size_t i = 0; i < n; i++) total += weights[i];
    unsigned x = rng_below(r, total);
    for (size_t i = 0; i < n; i++) {
        if (x < weights[i]) return i;
        x -= weights[i];
    }
    return n - 1;
}

/* ---- output buffer with a hard cap --------------------------------------------- */

#define LG_MSG_CAP (1024 * 1024) /* no message is allowed to grow beyond this */
#define LG_OVERSIZE_PAD 66000    /* an oversize message is just above the 64 KiB limit */

typedef struct lg_buf_s {
    char *p;
    size_t len, cap;
    int failed; /* a write was refused (cap or memory): the message is unusable */
} lg_buf_t;

static int buf_grow(lg_buf_t *b, size_t need) {
    if (b->failed) return -1;
    size_t ncap = b->cap ? b->cap : 4096;
    while (ncap < need) ncap *= 2;
    if (ncap > LG_MSG_CAP) {
        if (need > LG_MSG_CAP) {
            b->failed = 1;
            return -1;
        }
        ncap = LG_MSG_CAP;
    }
    char *np = realloc(b->p, ncap);
    if (!np) {
        b->failed = 1;
        return -1;
    }
    b->p = np;
    b->cap = ncap;
    return 0;
}

static void put(lg_buf_t *b, const char *s, size_t n) {
    if (b->len + n > b->cap && buf_grow(b, b->len + n) != 0) return;
    memcpy(b->p + b->len, s, n);
    b->len += n;
}

#define PUT_LIT(b, lit) put((b), (lit), sizeof(lit) - 1)

static void put_s(lg_buf_t *b, const char *s) { put(b, s, strlen(s)); }

static void put_c(lg_buf_t *b, char c) {
    if (b->len + 1 > b->cap && buf_grow(b, b->len + 1) != 0) return;
    b->p[b->len++] = c;
}

static void put_u64(lg_buf_t *b, uint64_t v) {
    char tmp[24];
    int n = 0;
    do {
        tmp[n++] = (char)('0' + v % 10);
        v /= 10;
    } while (v);
    if (b->len + (size_t)n > b->cap && buf_grow(b, b->len + (size_t)n) != 0) return;
    while (n) b->p[b->len++] = tmp[--n];
}

static void put_i64(lg_buf_t *b, int64_t v) {
    if (v < 0) {
        put_c(b, '-');
        put_u64(b, (uint64_t)0 - (uint64_t)v);
    } else {
        put_u64(b, (uint64_t)v);
    }
}

/* A non-negative amount of hundredths as "149.00". */
static void put_cents(lg_buf_t *b, uint64_t cents) {
    put_u64(b, cents / 100);
    char frac[3] = {'.', (char)('0' + cents / 10 % 10), (char)('0' + cents % 10)};
    put(b, frac, 3);
}

/* Milliseconds as seconds with three decimals: "12.345". */
static void put_ms_as_s(lg_buf_t *b, uint64_t ms) {
    put_u64(b, ms / 1000);
    char frac[4] = {'.', (char)('0' + ms / 100 % 10), (char)('0' + ms / 10 % 10),
                    (char)('0' + ms % 10)};
    put(b, frac, 4);
}

/* A JSON string body: escapes quotes, backslashes and control characters. */
static void put_esc(lg_buf_t *b, const char *s, size_t n) {
    static const char hex[] = "0123456789abcdef";
    size_t start = 0;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c >= 0x20 && c != '"' && c != '\\') continue;
        put(b, s + start, i - start);
        if (c == '"' || c == '\\') {
            char e[2] = {'\\', (char)c};
            put(b, e, 2);
        } else {
            char e[6] = {'\\', 'u', '0', '0', hex[c >> 4], hex[c & 15]};
            put(b, e, 6);
        }
        start = i + 1;
    }
    put(b, s + start, n - start);
}

/* A 128-bit value as a version-4 UUID (the version and variant bits are forced). */
static void put_uuid(lg_buf_t *b, uint64_t hi, uint64_t lo) {
    static const char hex[] = "0123456789abcdef";
    hi = (hi & 0xffffffffffff0fffULL) | 0x0000000000004000ULL;
    lo = (lo & 0x3fffffffffffffffULL) | 0x8000000000000000ULL;
    char out[36];
    int o = 0;
    for (int i = 0; i < 16; i++) {
        uint64_t word = i < 8 ? hi : lo;
        unsigned byte = (unsigned)(word >> (56 - 8 * (i % 8))) & 0xff;
        if (i == 4 || i == 6 || i == 8 || i == 10) out[o++] = '-';
        out[o++] = hex[byte >> 4];
        out[o++] = hex[byte & 15];
    }
    put(b, out, 36);
}

/* ---- calendar ------------------------------------------------------------------- */

static int64_t floor_div(int64_t a, int64_t b) {
    return a / b - ((a % b != 0) && ((a < 0) != (b < 0)));
}

/* Proleptic Gregorian date of a day number (days since 1970-01-01). */
static void civil_from_days(int64_t z, int *year, int *month, int *day) {
    z += 719468;
    int64_t era = (z >= 0 ? z : z - 146096) / 146097;
    unsigned doe = (unsigned)(z - era * 146097);
    unsigned yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    int64_t y = (int64_t)yoe + era * 400;
    unsigned doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    unsigned mp = (5 * doy + 2) / 153;
    unsigned d = doy - (153 * mp + 2) / 5 + 1;
    unsigned m = mp < 10 ? mp + 3 : mp - 9;
    *year = (int)(y + (m <= 2));
    *month = (int)m;
    *day = (int)d;
}

static void put_2d(char *dst, int v) {
    dst[0] = (char)('0' + v / 10 % 10);
    dst[1] = (char)('0' + v % 10);
}

/* RFC 3339 with milliseconds; offset_min == INT32_MIN writes "Z", else "+hh:mm". */
static void put_time(lg_buf_t *b, int64_t ms, int offset_min) {
    int64_t local = ms + (offset_min == INT32_MIN ? 0 : (int64_t)offset_min * 60000);
    int64_t days = floor_div(local, 86400000);
    int64_t rem = local - days * 86400000;
    int y, mo, d;
    civil_from_days(days, &y, &mo, &d);
    char t[29];
    t[0] = (char)('0' + y / 1000 % 10);
    t[1] = (char)('0' + y / 100 % 10);
    put_2d(t + 2, y % 100);
    t[4] = '-';
    put_2d(t + 5, mo);
    t[7] = '-';
    put_2d(t + 8, d);
    t[10] = 'T';
    put_2d(t + 11, (int)(rem / 3600000));
    t[13] = ':';
    put_2d(t + 14, (int)(rem / 60000 % 60));
    t[16] = ':';
    put_2d(t + 17, (int)(rem / 1000 % 60));
    t[19] = '.';
    t[20] = (char)('0' + rem / 100 % 10);
    put_2d(t + 21, (int)(rem % 100));
    size_t n = 23;
    if (offset_min == INT32_MIN) {
        t[n++] = 'Z';
    } else {
        int off = offset_min < 0 ? -offset_min : offset_min;
        t[n++] = offset_min < 0 ? '-' : '+';
        put_2d(t + n, off / 60);
        t[n + 2] = ':';
        put_2d(t + n + 3, off % 60);
        n += 5;
    }
    put(b, t, n);
}

/* ---- the shop, its visitors and where they come from (constant tables) --------- */

/* Event type names come from the validator's table (transforms/event.h): one list. */
_Static_assert(LG_EVENT_TYPE_COUNT == TF_EVENT_TYPE_COUNT, "event type lists differ");

enum {
    ET_PAGE_VIEW = 0,
    ET_PAGE_LEAVE,
    ET_PRODUCT_VIEW,
    ET_PRODUCT_LIST_VIEW,
    ET_SEARCH,
    ET_ADD_TO_CART,
    ET_REMOVE_FROM_CART,
    ET_CHECKOUT_START,
    ET_PURCHASE,
    ET_APPT_START,
    ET_APPT_COMPLETE,
    ET_APPT_CANCEL,
    ET_FORM_START,
    ET_FORM_SUBMIT,
    ET_LEAD,
    ET_SIGN_UP,
    ET_LOGIN,
    ET_CLICK,
    ET_SCROLL,
    ET_OUTBOUND_CLICK,
    ET_FILE_DOWNLOAD,
    ET_VIDEO_PLAY,
    ET_CUSTOM
};

static const char *const kind_names[LG_KIND_COUNT] = {"valid",
                                                      "duplicate",
                                                      "invalid_json",
                                                      "truncated",
                                                      "not_object",
                                                      "wrong_type",
                                                      "missing_event_id",
                                                      "missing_type",
                                                      "missing_timestamp",
                                                      "missing_visitor_id",
                                                      "unknown_type",
                                                      "bad_timestamp",
                                                      "too_long",
                                                      "bad_url",
                                                      "value_without_currency",
                                                      "bad_currency",
                                                      "out_of_range",
                                                      "deep_properties",
                                                      "invalid_utf8",
                                                      "oversize",
                                                      "bad_country",
                                                      "bad_language",
                                                      "duplicate_field"};

typedef struct region_s {
    const char *region, *city;
} region_t;

typedef enum { CUR_EUR = 0, CUR_USD, CUR_GBP } currency_t;
static const char *const currency_codes[3] = {"EUR", "USD", "GBP"};
/* Price in a currency from the EUR price: converted, then rounded to .x9 or .x0 as shops do. */
static const double currency_rates[3] = {1.0, 1.08, 0.86};

typedef struct country_s {
    const char *code;
    const char *languages[2]; /* main, second (NULL) */
    currency_t currency;
    unsigned weight;
    int utc_offset_min; /* standard time, for visitors whose clock sends offsets */
    const char *google; /* the local Google front page */
    region_t regions[5];
    int n_regions;
} country_t;

static const country_t countries[] = {
    {"DE",
     {"de-DE", NULL},
     CUR_EUR,
     22,
     60,
     "https://www.google.de/",
     {{"Berlin", "Berlin"},
      {"Bavaria", "Munich"},
      {"Hamburg", "Hamburg"},
      {"North Rhine-Westphalia", "Cologne"},
      {"Hesse", "Frankfurt am Main"}},
     5},
    {"FR",
     {"fr-FR", NULL},
     CUR_EUR,
     12,
     60,
     "https://www.google.fr/",
     {{"Île-de-France", "Paris"},
      {"Auvergne-Rhône-Alpes", "Lyon"},
      {"Provence-Alpes-Côte d'Azur", "Marseille"},
      {"Occitanie", "Toulouse"}},
     4},
    {"NL",
     {"nl-NL", NULL},
     CUR_EUR,
     8,
     60,
     "https://www.google.nl/",
     {{"North Holland", "Amsterdam"}, {"South Holland", "Rotterdam"}, {"Utrecht", "Utrecht"}},
     3},
    {"AT",
     {"de-AT", NULL},
     CUR_EUR,
     4,
     60,
     "https://www.google.at/",
     {{"Vienna", "Vienna"}, {"Styria", "Graz"}},
     2},
    {"CH",
     {"de-CH", "fr-CH"},
     CUR_EUR,
     3,
     60,
     "https://www.google.ch/",
     {{"Zurich", "Zürich"}, {"Geneva", "Genève"}, {"Bern", "Bern"}},
     3},
    {"ES",
     {"es-ES", NULL},
     CUR_EUR,
     6,
     60,
     "https://www.google.es/",
     {{"Madrid", "Madrid"}, {"Catalonia", "Barcelona"}, {"Andalusia", "Seville"}},
     3},
    {"IT",
     {"it-IT", NULL},
     CUR_EUR,
     6,
     60,
     "https://www.google.it/",
     {{"Lazio", "Rome"}, {"Lombardy", "Milan"}, {"Campania", "Naples"}},
     3},
    {"BE",
     {"nl-BE", "fr-BE"},
     CUR_EUR,
     3,
     60,
     "https://www.google.be/",
     {{"Brussels", "Brussels"}, {"Flanders", "Antwerp"}, {"Wallonia", "Liège"}},
     3},
    {"PL",
     {"pl-PL", NULL},
     CUR_EUR,
     2,
     60,
     "https://www.google.pl/",
     {{"Masovia", "Warsaw"}, {"Lesser Poland", "Kraków"}},
     2},
    {"IE",
     {"en-IE", NULL},
     CUR_EUR,
     3,
     0,
     "https://www.google.ie/",
     {{"Leinster", "Dublin"}, {"Munster", "Cork"}},
     2},
    {"GB",
     {"en-GB", NULL},
     CUR_GBP,
     14,
     0,
     "https://www.google.co.uk/",
     {{"England", "London"},
      {"England", "Manchester"},
      {"Scotland", "Edinburgh"},
      {"Wales", "Cardiff"}},
     4},
    {"US",
     {"en-US", "es-US"},
     CUR_USD,
     14,
     -300,
     "https://www.google.com/",
     {{"California", "San Francisco"},
      {"New York", "New York"},
      {"Texas", "Austin"},
      {"Illinois", "Chicago"},
      {"Washington", "Seattle"}},
     5},
    {"CA",
     {"en-CA", "fr-CA"},
     CUR_USD,
     3,
     -300,
     "https://www.google.ca/",
     {{"Ontario", "Toronto"}, {"Quebec", "Montréal"}, {"British Columbia", "Vancouver"}},
     3},
};
#define N_COUNTRIES (sizeof(countries) / sizeof(countries[0]))
#define COUNTRY_US 11 /* most crawlers run there */

typedef struct category_s {
    const char *slug, *label;
} category_t;

static const category_t categories[] = {
    {"eyeglasses", "Eyeglasses"},
    {"sunglasses", "Sunglasses"},
    {"contact-lenses", "Contact lenses"},
    {"accessories", "Accessories"},
};
#define N_CATEGORIES 4

typedef struct product_s {
    const char *sku, *slug, *name;
    int category;
    unsigned price_eur_cents;
    unsigned popularity;
} product_t;

static const product_t products[] = {
    {"LO-1001", "aviator-classic", "Aviator Classic", 0, 14900, 9},
    {"LO-1002", "round-titanium", "Round Titanium", 0, 18900, 7},
    {"LO-1003", "cat-eye-acetate", "Cat-Eye Acetate", 0, 12900, 8},
    {"LO-1004", "wayfarer-optical", "Wayfarer Optical", 0, 11900, 10},
    {"LO-1005", "rimless-air", "Rimless Air", 0, 21900, 4},
    {"LO-1006", "browline-heritage", "Browline Heritage", 0, 13900, 5},
    {"LO-1007", "kids-flex", "Kids Flex", 0, 7900, 4},
    {"LO-1008", "blue-light-reader", "Blue Light Reader", 0, 5900, 6},
    {"LO-1009", "oversized-square", "Oversized Square", 0, 12900, 5},
    {"LO-1010", "hexagon-metal", "Hexagon Metal", 0, 15900, 3},
    {"LO-2001", "aviator-sun-gold", "Aviator Sun Gold", 1, 16900, 8},
    {"LO-2002", "wayfarer-sun-black", "Wayfarer Sun Black", 1, 13900, 9},
    {"LO-2003", "sport-wrap-polarized", "Sport Wrap Polarized", 1, 17900, 4},
    {"LO-2004", "round-sun-tortoise", "Round Sun Tortoise", 1, 14900, 5},
    {"LO-2005", "clubmaster-sun", "Clubmaster Sun", 1, 15900, 4},
    {"LO-2006", "shield-sun-mirror", "Shield Sun Mirror", 1, 18900, 2},
    {"LO-2007", "cat-eye-sun-rose", "Cat-Eye Sun Rosé", 1, 13900, 3},
    {"LO-2008", "kids-sun-blue", "Kids Sun Blue", 1, 4900, 2},
    {"LO-3001", "daily-comfort-30", "Daily Comfort (30 lenses)", 2, 2990, 8},
    {"LO-3002", "daily-comfort-90", "Daily Comfort (90 lenses)", 2, 7990, 5},
    {"LO-3003", "monthly-aqua-6", "Monthly Aqua (6 lenses)", 2, 3990, 4},
    {"LO-3004", "toric-daily-30", "Toric Daily (30 lenses)", 2, 3990, 2},
    {"LO-3005", "multifocal-monthly-6", "Multifocal Monthly (6 lenses)", 2, 5990, 2},
    {"LO-3006", "colour-daily-10", "Colour Daily (10 lenses)", 2, 2490, 2},
    {"LO-4001", "microfiber-cloth-3-pack", "Microfiber Cloth 3-Pack", 3, 990, 5},
    {"LO-4002", "hard-case-leather", "Leather Hard Case", 3, 2900, 3},
    {"LO-4003", "lens-cleaner-spray", "Lens Cleaner Spray 60 ml", 3, 790, 4},
    {"LO-4004", "retainer-cord", "Retainer Cord", 3, 1200, 2},
    {"LO-4005", "lens-solution-360", "All-in-One Lens Solution 360 ml", 3, 1490, 3},
    {"LO-4006", "gift-card-50", "Gift Card 50", 3, 5000, 1},
};
#define N_PRODUCTS (sizeof(products) / sizeof(products[0]))

typedef struct post_s {
    const char *slug, *title;
} post_t;

static const post_t posts[] = {
    {"how-to-choose-frames-for-your-face-shape", "How to choose frames for your face shape"},
    {"blue-light-glasses-do-they-work", "Blue light glasses: do they work?"},
    {"polarized-vs-non-polarized-sunglasses", "Polarized vs. non-polarized sunglasses"},
    {"how-often-should-you-get-an-eye-exam", "How often should you get an eye exam?"},
    {"contact-lenses-for-beginners", "Contact lenses for beginners"},
    {"uv-protection-explained", "UV400, CE, category 3: UV protection explained"},
    {"kids-eye-health-checklist", "A parent's checklist for kids' eye health"},
    {"caring-for-your-glasses", "Caring for your glasses: 7 habits"},
    {"progressive-lenses-guide", "Progressive lenses: a first-timer's guide"},
};
#define N_POSTS (sizeof(posts) / sizeof(posts[0]))

typedef struct query_s {
    const char *text, *url; /* as typed, and form-encoded for the URL */
    unsigned results;
} query_t;

static const query_t queries[] = {
    {"aviator", "aviator", 4},
    {"blue light glasses", "blue+light+glasses", 3},
    {"polarized sunglasses", "polarized+sunglasses", 5},
    {"daily contact lenses", "daily+contact+lenses", 6},
    {"round glasses", "round+glasses", 3},
    {"kids glasses", "kids+glasses", 2},
    {"eye exam", "eye+exam", 0},
    {"titanium", "titanium", 1},
    {"cat eye", "cat+eye", 2},
    {"lens cleaner", "lens+cleaner", 2},
    {"lunettes de soleil", "lunettes+de+soleil", 8},
    {"brille rund", "brille+rund", 3},
    {"gafas de sol", "gafas+de+sol", 8},
    {"sonnenbrille damen", "sonnenbrille+damen", 6},
    {"rosé", "ros%C3%A9", 1},
    {"progressive", "progressive", 0},
};
#define N_QUERIES (sizeof(queries) / sizeof(queries[0]))

typedef struct appt_type_s {
    const char *id, *label;
    unsigned price_eur_cents; /* 0: free */
} appt_type_t;

static const appt_type_t appt_types[] = {
    {"eye_exam", "Eye exam", 2500},
    {"contact_lens_fitting", "Contact lens fitting", 0},
    {"frame_consultation", "Frame styling consultation", 0},
    {"kids_eye_exam", "Kids eye exam", 0},
};
#define N_APPT_TYPES 4

static const char *const stores[] = {"Berlin Mitte",          "Munich Marienplatz",
                                     "Hamburg Jungfernstieg", "Paris Le Marais",
                                     "Amsterdam Centrum",     "London Soho",
                                     "New York SoHo",         "Online video consultation"};
#define N_STORES (sizeof(stores) / sizeof(stores[0]))

/* How a session was reached. */
typedef enum {
    CH_DIRECT = 0,
    CH_ORGANIC,
    CH_PAID_SEARCH,
    CH_SOCIAL,
    CH_PAID_SOCIAL,
    CH_EMAIL,
    CH_REFERRAL,
    CH_COUNT
} channel_t;

typedef struct campaign_s {
    channel_t channel;
    const char *source, *medium, *campaign, *term, *content;
    const char *click_param; /* "gclid" etc., or NULL */
    const char *referrer;    /* sent by the browser, or NULL */
} campaign_t;

static const campaign_t campaigns[] = {
    {CH_PAID_SEARCH, "google", "cpc", "brand_search", "lumen optics", NULL, "gclid",
     "https://www.google.com/"},
    {CH_PAID_SEARCH, "google", "cpc", "sunglasses_winter", "polarized sunglasses", "ad_variant_b",
     "gclid", "https://www.google.com/"},
    {CH_PAID_SEARCH, "google", "cpc", "eye_exam_booking", "eye exam near me", NULL, "gclid",
     "https://www.google.com/"},
    {CH_PAID_SEARCH, "bing", "cpc", "brand_search", "lumen optics", NULL, "msclkid",
     "https://www.bing.com/"},
    {CH_PAID_SOCIAL, "facebook", "paid_social", "new_collection_2026", NULL, "carousel_a", "fbclid",
     "https://l.facebook.com/"},
    {CH_PAID_SOCIAL, "instagram", "paid_social", "new_collection_2026", NULL, "story_video",
     "fbclid", "https://l.instagram.com/"},
    {CH_PAID_SOCIAL, "tiktok", "paid_social", "virtual_try_on", NULL, NULL, "ttclid", NULL},
    {CH_EMAIL, "newsletter", "email", "winter_sale", NULL, "hero_button", NULL, NULL},
    {CH_EMAIL, "newsletter", "email", "weekly_digest", NULL, "article_link", NULL, NULL},
    {CH_EMAIL, "crm", "email", "appointment_reminder", NULL, NULL, NULL, NULL},
    {CH_REFERRAL, "partner_blog", "referral", "affiliate_q1", NULL, "review_link", NULL,
     "https://www.style-journal.example/best-frames-2026/"},
};
#define N_CAMPAIGNS (sizeof(campaigns) / sizeof(campaigns[0]))

/* Referrers of visits without campaign parameters. */
static const char *const organic_referrers[] = {
    "https://www.bing.com/", "https://duckduckgo.com/", "https://www.ecosia.org/",
    "https://search.yahoo.com/", "https://www.qwant.com/"};
static const char *const social_referrers[] = {
    "https://www.facebook.com/",  "https://m.facebook.com/",
    "https://t.co/3xKq9vPz",      "https://www.instagram.com/",
    "https://www.pinterest.com/", "https://www.reddit.com/r/glasses/",
    "https://www.linkedin.com/",  "android-app://com.google.android.gm/"};
static const char *const referral_referrers[] = {
    "https://www.trustpilot.com/review/shop.example.com",
    "https://www.vogue.example/eyewear-trends",
    "https://forum.eyecare.example/t/best-online-optician/4412",
    "https://maps.google.com/",
    "https://news.ycombinator.com/item?id=38112233",
    "https://www.optician-finder.example/de/berlin"};

typedef struct screen_s {
    unsigned short w, h;
} screen_t;

static const screen_t screens_desktop[] = {{1920, 1080}, {1366, 768}, {1536, 864},  {1440, 900},
                                           {2560, 1440}, {1280, 720}, {1680, 1050}, {3840, 2160}};
static const screen_t screens_mac[] = {
    {1440, 900}, {1512, 982}, {1728, 1117}, {2560, 1440}, {1680, 1050}};
static const screen_t screens_iphone[] = {{390, 844}, {393, 852}, {375, 667},
                                          {414, 896}, {428, 926}, {430, 932}};
static const screen_t screens_android[] = {{412, 915}, {360, 800}, {393, 873},
                                           {384, 854}, {360, 780}, {412, 892}};
static const screen_t screens_ipad[] = {
    {810, 1080}, {820, 1180}, {768, 1024}, {834, 1194}, {1024, 1366}};
static const screen_t screens_android_tab[] = {{800, 1280}, {1280, 800}, {962, 601}, {753, 1205}};
static const screen_t screens_tv[] = {{1920, 1080}, {1280, 720}, {3840, 2160}};

#define N_OF(a) (sizeof(a) / sizeof((a)[0]))

static const char *const click_names[] = {"nav_menu",      "filter_color",     "size_guide",
                                          "store_locator", "cta_book_exam",    "product_gallery",
                                          "lens_options",  "newsletter_banner"};
static const char *const payment_methods[] = {"card", "paypal", "klarna", "apple_pay",
                                              "google_pay"};
static const char *const auth_methods[] = {"email", "google", "apple"};

/* ---- sessions -------------------------------------------------------------------- */

typedef enum {
    PG_HOME = 0,
    PG_LIST,
    PG_PRODUCT,
    PG_SEARCH,
    PG_CART,
    PG_CHECKOUT,
    PG_ORDER_DONE,
    PG_APPTS,
    PG_APPT_BOOK,
    PG_APPT_DONE,
    PG_APPT_MANAGE,
    PG_BLOG,
    PG_POST,
    PG_CONTACT,
    PG_SIGNUP,
    PG_LOGIN,
    PG_ACCOUNT,
    PG_STORES,
    PG_ABOUT,
    PG_COUNT
} page_kind_t;

typedef struct page_s {
    uint8_t kind;
    uint8_t arg; /* category + 1 for PG_LIST (0 = all), product, post, query, appointment type */
    uint8_t landing; /* carries the campaign parameters of the session */
} page_t;

/* Event flags. */
#define EVF_USER 0x01 /* the visitor is known: userId is sent */
#define EVF_LANDING 0x02

typedef struct lg_ev_s {
    int64_t t;
    uint8_t type;
    uint8_t flags;
    uint8_t page;    /* index into the session's pages */
    int8_t scroll;   /* scrollDepth, -1 when none */
    uint16_t pv;     /* the PAGE_VIEW this event belongs to (event index) */
    uint16_t seq;    /* position at creation: a stable order among equal times */
    uint16_t detail; /* product / click name / post / ... depending on the type */
    uint16_t detail2;
    uint32_t amount; /* cents, or timeOnPage ms for PAGE_LEAVE */
} lg_ev_t;

#define LG_MAX_PAGES 96
#define LG_MAX_EVENTS 600
#define LG_CART_MAX 4

typedef struct lg_profile_s {
    uint64_t visitor;
    uint64_t id_hi, id_lo; /* the visitorId as a UUID */
    uac_device_t device;
    const uac_agent_t *agent;
    screen_t screen; /* 0x0: not sent */
    const country_t *country;
    const region_t *region;
    const char *language; /* NULL: not sent */
    char language_buf[8];
    int geo_mode; /* 0 country+region+city, 1 country only, 2 none (ip instead) */
    uint8_t ip[4];
    int ts_style; /* 0 UTC "Z", 1 local offset, 2 epoch milliseconds */
    currency_t currency;
    int referrer_empty; /* its tracker sends "referrer":"" when there is none */
} lg_profile_t;

typedef struct lg_session_s {
    lg_profile_t prof;
    uint32_t number;
    int campaign;             /* index into campaigns, -1 none */
    const char *ext_referrer; /* external referrer of the landing page, or NULL */
    uint64_t click_id;
    uint64_t user_no; /* the userId number when known */
    page_t pages[LG_MAX_PAGES];
    int n_pages;
    lg_ev_t ev[LG_MAX_EVENTS];
    int n_ev, next;
    /* cart and order state while building */
    uint8_t cart[LG_CART_MAX], cart_qty[LG_CART_MAX];
    int n_cart;
    uint8_t appt_type, appt_store;
} lg_session_t;

/* Persistent per-visitor state between sessions (the heap entry). */
#define VF_ACCOUNT 0x01 /* has an account: userId known from the next session on */
#define VF_CART 0x02    /* left items in the cart */
#define VF_APPT 0x04    /* has a booked appointment */
#define VF_LOGGED_IN 0x08

typedef struct lg_visitor_s {
    int64_t next_ms;
    uint64_t visitor;
    uint32_t sessions; /* sessions started */
    uint16_t flags;
    uint8_t cart_product;
    uint8_t appt_type;
    lg_session_t *active;
} lg_visitor_t;

static int pages_add(lg_session_t *S, page_kind_t kind, int arg, int landing) {
    if (S->n_pages >= LG_MAX_PAGES) return -1;
    page_t *p = &S->pages[S->n_pages];
    p->kind = (uint8_t)kind;
    p->arg = (uint8_t)arg;
    p->landing = (uint8_t)landing;
    return S->n_pages++;
}

/* Appends an event; returns its index or -1 when the session is full. */
static int ev_add(lg_session_t *S, int64_t t, int type, int page, int pv, uint8_t flags) {
    if (S->n_ev >= LG_MAX_EVENTS) return -1;
    lg_ev_t *e = &S->ev[S->n_ev];
    memset(e, 0, sizeof(*e));
    e->t = t;
    e->type = (uint8_t)type;
    e->page = (uint8_t)page;
    e->pv = (uint16_t)(pv < 0 ? S->n_ev : pv);
    e->seq = (uint16_t)S->n_ev;
    e->scroll = -1;
    e->flags = flags;
    return S->n_ev++;
}

/* Builder state for one session. */
typedef struct build_s {
    lg_session_t *S;
    rng_t *r;
    int64_t t;        /* time of the next page view */
    uint8_t uflags;   /* EVF_USER once the visitor is known */
    int pv;           /* event index of the current page view */
    int page;         /* index of the current page */
    int64_t pv_t;     /* its time */
    int64_t dwell;    /* its time on page, ms */
    uint64_t user_no; /* the visitor's userId number (when known) */
} build_t;

static const double page_median_s[PG_COUNT] = {
    /* HOME */ 14,      /* LIST */ 28,        /* PRODUCT */ 48, /* SEARCH */ 20,
    /* CART */ 25,
    /* CHECKOUT */ 95,  /* ORDER_DONE */ 18,  /* APPTS */ 35,   /* APPT_BOOK */ 110,
    /* APPT_DONE */ 15, /* APPT_MANAGE */ 40, /* BLOG */ 25,    /* POST */ 150,
    /* CONTACT */ 60,
    /* SIGNUP */ 55,    /* LOGIN */ 20,       /* ACCOUNT */ 30, /* STORES */ 45,
    /* ABOUT */ 35};

/* Opens a page: a PAGE_VIEW at b->t and the page's time on page. quick: a bounce. */
static void page_open(build_t *b, page_kind_t kind, int arg, int quick) {
    lg_session_t *S = b->S;
    int landing = S->n_pages == 0;
    int page = pages_add(S, kind, arg, landing);
    if (page < 0) page = S->n_pages - 1;
    b->page = page;
    int pv =
        ev_add(S, b->t, ET_PAGE_VIEW, page, -1, (uint8_t)(b->uflags | (landing ? EVF_LANDING : 0)));
    b->pv = pv < 0 ? 0 : pv;
    b->pv_t = b->t;
    double median = page_median_s[kind] * 1000.0 * (quick ? 0.25 : 1.0);
    double dwell = rng_lognormal(b->r, median, 0.85);
    if (dwell < 1200) dwell = 1200 + (double)rng_below(b->r, 800);
    if (dwell > 25 * 60000.0) dwell = 25 * 60000.0 - (double)rng_below(b->r, 60000);
    b->dwell = (int64_t)dwell;
}

/* A time inside the current page's visit, at fraction lo..hi of it. */
static int64_t page_at(build_t *b, double lo, double hi) {
    double f = lo + (hi - lo) * rng_unit(b->r);
    return b->pv_t + 300 + (int64_t)(f * (double)(b->dwell - 300));
}

/* An interaction on the current page. */
static lg_ev_t *page_event(build_t *b, int type, double lo, double hi) {
    int i = ev_add(b->S, page_at(b, lo, hi), type, b->page, b->pv, b->uflags);
    return i < 0 ? NULL : &b->S->ev[i];
}

/* Closes the current page: SCROLL events at the thresholds crossed, then a PAGE_LEAVE
 * (unless the browser never sent it), and moves b->t to the next page view. */
static void page_close(build_t *b, int last, int bot) {
    lg_session_t *S = b->S;
    rng_t *r = b->r;
    if (!bot) {
        page_kind_t kind = (page_kind_t)S->pages[b->page].kind;
        double ratio = (double)b->dwell / (page_median_s[kind] * 1000.0);
        int depth = (int)(100.0 * (1.0 - exp(-0.9 * ratio))) + (int)rng_below(r, 20) - 5;
        if (kind == PG_ORDER_DONE || kind == PG_APPT_DONE || kind == PG_LOGIN) depth /= 2;
        if (depth < 0) depth = 0;
        if (depth > 100) depth = 100;
        static const int marks[2] = {50, 90}; /* scroll milestones reported by the tracker */
        for (int m = 0; m < 2 && marks[m] <= depth; m++) {
            double f = (double)marks[m] / (double)(depth + 10);
            int i = ev_add(S, b->pv_t + 200 + (int64_t)(f * (double)(b->dwell - 200)), ET_SCROLL,
                           b->page, b->pv, b->uflags);
            if (i >= 0) S->ev[i].scroll = (int8_t)marks[m];
        }
        if (!rng_chance(r, last ? 0.18 : 0.03)) {
            int i = ev_add(S, b->pv_t + b->dwell, ET_PAGE_LEAVE, b->page, b->pv, b->uflags);
            if (i >= 0) {
                S->ev[i].scroll = (int8_t)depth;
                S->ev[i].amount = (uint32_t)b->dwell;
            }
        }
    }
    b->t = b->pv_t + b->dwell + rng_range(r, 250, 1800);
}

static int pick_product(rng_t *r, int category) {
    unsigned w[N_PRODUCTS];
    for (size_t i = 0; i < N_PRODUCTS; i++)
        w[i] = (category < 0 || products[i].category == category) ? products[i].popularity : 0;
    return (int)rng_weighted(r, w, N_PRODUCTS);
}

/* Price of a product in the visitor's currency, in cents. */
static uint32_t price_in(unsigned eur_cents, currency_t cur) {
    if (cur == CUR_EUR) return eur_cents;
    double v = (double)eur_cents * currency_rates[cur] / 100.0; /* whole units */
    long whole = (long)ceil(v);
    return (uint32_t)(whole * 100 - (whole >= 10 ? 1 : 10)); /* 160.99, 9.90 */
}

static uint32_t cart_total(const lg_session_t *S) {
    uint32_t total = 0;
    for (int i = 0; i < S->n_cart; i++)
        total += price_in(products[S->cart[i]].price_eur_cents, S->prof.currency) * S->cart_qty[i];
    return total;
}

/* ---- what happens in a session ---------------------------------------------------- */

typedef enum {
    IN_BOUNCE = 0,
    IN_BROWSE,
    IN_SHOP,
    IN_APPT,
    IN_CONTENT,
    IN_ACCOUNT,
    IN_CONTACT,
    IN_COUNT
} intent_t;

enum { FORM_NEWSLETTER = 0, FORM_CONTACT, FORM_APPOINTMENT, FORM_SIGN_UP };
enum { CUSTOM_TRY_ON = 0, CUSTOM_CONFIGURATOR };

/* Closes the open page (not the last one) and opens the next. */
static void visit(build_t *b, page_kind_t kind, int arg, int quick) {
    if (b->S->n_ev > 0) page_close(b, 0, 0);
    page_open(b, kind, arg, quick);
    rng_t *r = b->r;
    lg_ev_t *e;
    switch (kind) {
    case PG_PRODUCT:
        if ((e = page_event(b, ET_PRODUCT_VIEW, 0.0, 0.04))) e->detail = (uint16_t)arg;
        if (rng_chance(r, 0.22) && (e = page_event(b, ET_CLICK, 0.1, 0.6))) e->detail = 5;
        if (rng_chance(r, 0.08) && (e = page_event(b, ET_CLICK, 0.1, 0.8))) e->detail = 2;
        if (rng_chance(r, 0.10) && (e = page_event(b, ET_CUSTOM, 0.2, 0.9))) {
            int cfg = products[arg].category == 0 && rng_chance(r, 0.4);
            e->detail = (uint16_t)(cfg ? CUSTOM_CONFIGURATOR : CUSTOM_TRY_ON);
            e->detail2 = (uint16_t)arg;
            e->amount = (uint32_t)rng_range(r, 4000, 90000);
        }
        break;
    case PG_LIST:
        if ((e = page_event(b, ET_PRODUCT_LIST_VIEW, 0.0, 0.04))) {
            unsigned n = 0;
            for (size_t i = 0; i < N_PRODUCTS; i++)
                n += arg == 0 || products[i].category == arg - 1;
            e->detail = (uint16_t)arg;
            e->detail2 = (uint16_t)n;
        }
        if (rng_chance(r, 0.3) && (e = page_event(b, ET_CLICK, 0.1, 0.7))) e->detail = 1;
        break;
    case PG_SEARCH:
        if ((e = page_event(b, ET_SEARCH, 0.0, 0.03))) e->detail = (uint16_t)arg;
        break;
    case PG_HOME:
    case PG_STORES:
    case PG_ABOUT:
        if (rng_chance(r, 0.25) && (e = page_event(b, ET_CLICK, 0.1, 0.9)))
            e->detail = (uint16_t)(kind == PG_STORES ? 3 : rng_chance(r, 0.5) ? 0 : 7);
        break;
    case PG_POST:
        if (rng_chance(r, 0.25) && (e = page_event(b, ET_VIDEO_PLAY, 0.1, 0.5)))
            e->detail = (uint16_t)rng_below(r, 3);
        if (rng_chance(r, 0.08) && (e = page_event(b, ET_FILE_DOWNLOAD, 0.3, 0.95)))
            e->detail = (uint16_t)rng_below(r, 3);
        if (rng_chance(r, 0.08) && (e = page_event(b, ET_OUTBOUND_CLICK, 0.5, 0.99)))
            e->detail = (uint16_t)rng_below(r, 3);
        break;
    default: break;
    }
}

/* Ends the session: closes the last page. */
static void finish(build_t *b, int bot) {
    if (b->S->n_ev > 0) page_close(b, 1, bot);
}

static void cart_add(build_t *b, int product, int qty) {
    lg_session_t *S = b->S;
    lg_ev_t *e = page_event(b, ET_ADD_TO_CART, 0.55, 0.95);
    if (!e) return;
    e->detail = (uint16_t)product;
    e->detail2 = (uint16_t)qty;
    e->amount = price_in(products[product].price_eur_cents, S->prof.currency) * (uint32_t)qty;
    for (int i = 0; i < S->n_cart; i++)
        if (S->cart[i] == product) {
            S->cart_qty[i] = (uint8_t)(S->cart_qty[i] + qty);
            return;
        }
    if (S->n_cart < LG_CART_MAX) {
        S->cart[S->n_cart] = (uint8_t)product;
        S->cart_qty[S->n_cart++] = (uint8_t)qty;
    }
}

/* A product the visitor would look at, favouring one category per session. */
static int next_product(build_t *b, int category) {
    return pick_product(b->r, rng_chance(b->r, 0.7) ? category : -1);
}

/* Cart -> checkout -> maybe purchase. Returns 1 when an order was placed. */
static int checkout(build_t *b, lg_visitor_t *v, int from_email) {
    lg_session_t *S = b->S;
    rng_t *r = b->r;
    visit(b, PG_CART, 0, 0);
    lg_ev_t *e;
    if (S->n_cart > 1 && rng_chance(r, 0.3) && (e = page_event(b, ET_REMOVE_FROM_CART, 0.3, 0.9))) {
        int i = S->n_cart - 1;
        e->detail = S->cart[i];
        e->detail2 = S->cart_qty[i];
        e->amount =
            price_in(products[S->cart[i]].price_eur_cents, S->prof.currency) * S->cart_qty[i];
        S->n_cart--;
    }
    if (!rng_chance(r, 0.72)) return 0;
    visit(b, PG_CHECKOUT, 0, 0);
    uint32_t total = cart_total(S);
    if ((v->flags & VF_ACCOUNT) && !(b->uflags & EVF_USER) && rng_chance(r, 0.6)) {
        /* Signs in to check out. */
        S->user_no = b->user_no;
        b->uflags = EVF_USER;
        if ((e = page_event(b, ET_LOGIN, 0.06, 0.2))) e->detail = (uint16_t)rng_below(r, 3);
        v->flags |= VF_LOGGED_IN;
    }
    if ((e = page_event(b, ET_CHECKOUT_START, 0.0, 0.05))) {
        e->amount = total;
        unsigned items = 0;
        for (int i = 0; i < S->n_cart; i++) items += S->cart_qty[i];
        e->detail = (uint16_t)items;
    }
    if (!rng_chance(r, from_email ? 0.7 : 0.55)) return 0;
    visit(b, PG_ORDER_DONE, 0, 0);
    if ((e = page_event(b, ET_PURCHASE, 0.0, 0.03))) {
        int coupon = from_email && rng_chance(r, 0.6);
        uint32_t value = coupon ? total - total / 10 : total;
        int shipping = value < price_in(5000, S->prof.currency);
        if (shipping) value += price_in(490, S->prof.currency);
        e->amount = value;
        e->detail = (uint16_t)(coupon | (shipping << 1));
        e->detail2 = (uint16_t)rng_below(r, N_OF(payment_methods));
    }
    return 1;
}

static void flow_shop(build_t *b, lg_visitor_t *v, page_kind_t landing, int landing_arg) {
    lg_session_t *S = b->S;
    rng_t *r = b->r;
    int category = landing == PG_PRODUCT                   ? products[landing_arg].category
                   : landing == PG_LIST && landing_arg > 0 ? landing_arg - 1
                                                           : (int)rng_below(r, 2);
    int product = landing == PG_PRODUCT ? landing_arg : -1;
    int views = (int)rng_range(r, 1, 4);
    for (int i = 0; i < views || product < 0; i++) {
        if (product >= 0 && (rng_chance(r, 0.4) || i == views - 1)) {
            int qty = products[product].category == 2 ? (int)rng_range(r, 1, 3) : 1;
            cart_add(b, product, qty);
            if (rng_chance(r, 0.7)) break;
        }
        if (rng_chance(r, 0.2)) visit(b, PG_LIST, category + 1, 0);
        product = next_product(b, category);
        visit(b, PG_PRODUCT, product, 0);
        if (i > 8) break;
    }
    if (S->n_cart == 0) {
        cart_add(b, product, 1);
    }
    int email = S->campaign >= 0 && campaigns[S->campaign].channel == CH_EMAIL;
    if (rng_chance(r, 0.15) && S->n_cart > 0) {
        /* Looks around a bit more before the cart. */
        visit(b, PG_PRODUCT, next_product(b, category), 0);
    }
    if (rng_chance(r, 0.8)) {
        if (checkout(b, v, email)) {
            v->flags &= (uint16_t)~VF_CART;
            return;
        }
    }
    v->flags |= VF_CART;
    v->cart_product = S->cart[0];
}

static void flow_return_cart(build_t *b, lg_visitor_t *v) {
    lg_session_t *S = b->S;
    S->cart[0] = v->cart_product;
    S->cart_qty[0] = 1;
    S->n_cart = 1;
    int email = S->campaign >= 0 && campaigns[S->campaign].channel == CH_EMAIL;
    /* Lands on the product again and goes to the cart. */
    visit(b, PG_PRODUCT, v->cart_product, 0);
    if (checkout(b, v, email || rng_chance(b->r, 0.3))) v->flags &= (uint16_t)~VF_CART;
}

static void flow_appointment(build_t *b, lg_visitor_t *v, page_kind_t landing) {
    lg_session_t *S = b->S;
    rng_t *r = b->r;
    lg_ev_t *e;
    if (landing != PG_APPTS) visit(b, PG_APPTS, 0, 0);
    if (rng_chance(r, 0.15)) {
        visit(b, PG_STORES, 0, 0);
        visit(b, PG_APPTS, 0, 0);
    }
    static const unsigned type_w[N_APPT_TYPES] = {55, 20, 15, 10};
    int type = (int)rng_weighted(r, type_w, N_APPT_TYPES);
    int store = (int)rng_below(r, N_STORES);
    S->appt_type = (uint8_t)type;
    S->appt_store = (uint8_t)store;
    if (!rng_chance(r, 0.8)) return; /* only looked at the offer */
    visit(b, PG_APPT_BOOK, type, 0);
    if ((e = page_event(b, ET_APPT_START, 0.0, 0.05))) {
        e->detail = (uint16_t)type;
        e->detail2 = (uint16_t)store;
    }
    if ((e = page_event(b, ET_FORM_START, 0.1, 0.3))) e->detail = FORM_APPOINTMENT;
    if (!rng_chance(r, 0.62)) return;
    if ((e = page_event(b, ET_APPT_COMPLETE, 0.96, 0.99))) {
        e->detail = (uint16_t)type;
        e->detail2 = (uint16_t)store;
        e->amount = price_in(appt_types[type].price_eur_cents, S->prof.currency);
        if (appt_types[type].price_eur_cents == 0) e->amount = 0;
    }
    visit(b, PG_APPT_DONE, type, 0);
    v->flags |= VF_APPT;
    v->appt_type = (uint8_t)type;
}

static void flow_cancel(build_t *b, lg_visitor_t *v) {
    lg_ev_t *e;
    visit(b, PG_APPT_MANAGE, 0, 0);
    if (rng_chance(b->r, 0.6) && (e = page_event(b, ET_APPT_CANCEL, 0.4, 0.9))) {
        e->detail = v->appt_type;
        e->detail2 = (uint16_t)rng_below(b->r, 3);
        v->flags &= (uint16_t)~VF_APPT;
    } else if (rng_chance(b->r, 0.5)) {
        visit(b, PG_APPTS, 0, 0);
    }
}

static void flow_content(build_t *b, page_kind_t landing, int arg) {
    rng_t *r = b->r;
    lg_ev_t *e;
    int reads = (int)rng_range(r, 0, 2);
    if (landing == PG_BLOG) visit(b, PG_POST, (int)rng_below(r, N_POSTS), 0);
    (void)arg;
    for (int i = 0; i < reads; i++) visit(b, PG_POST, (int)rng_below(r, N_POSTS), 0);
    if (rng_chance(r, 0.08)) {
        if ((e = page_event(b, ET_FORM_START, 0.6, 0.75))) e->detail = FORM_NEWSLETTER;
        if (rng_chance(r, 0.8)) {
            if ((e = page_event(b, ET_FORM_SUBMIT, 0.8, 0.85))) e->detail = FORM_NEWSLETTER;
            if ((e = page_event(b, ET_LEAD, 0.86, 0.9))) e->detail = FORM_NEWSLETTER;
        }
    }
    if (rng_chance(r, 0.25)) visit(b, PG_PRODUCT, pick_product(r, -1), 0);
}

static void flow_account(build_t *b, lg_visitor_t *v) {
    uint64_t user_no = b->user_no;
    lg_session_t *S = b->S;
    rng_t *r = b->r;
    lg_ev_t *e;
    if (v->flags & VF_ACCOUNT) {
        visit(b, PG_LOGIN, 0, 0);
        if (rng_chance(r, 0.9)) {
            S->user_no = user_no;
            b->uflags = EVF_USER;
            if ((e = page_event(b, ET_LOGIN, 0.7, 0.95))) e->detail = (uint16_t)rng_below(r, 3);
            v->flags |= VF_LOGGED_IN;
            visit(b, PG_ACCOUNT, 0, 0);
        }
    } else {
        visit(b, PG_SIGNUP, 0, 0);
        if ((e = page_event(b, ET_FORM_START, 0.1, 0.3))) e->detail = FORM_SIGN_UP;
        if (rng_chance(r, 0.7)) {
            S->user_no = user_no;
            b->uflags = EVF_USER;
            if ((e = page_event(b, ET_SIGN_UP, 0.9, 0.99))) e->detail = (uint16_t)rng_below(r, 3);
            v->flags |= VF_ACCOUNT | VF_LOGGED_IN;
            visit(b, PG_ACCOUNT, 0, 0);
        }
    }
    int more = (int)rng_range(r, 0, 3);
    for (int i = 0; i < more; i++) visit(b, PG_PRODUCT, pick_product(r, -1), 0);
}

static void flow_contact(build_t *b) {
    rng_t *r = b->r;
    lg_ev_t *e;
    if (b->S->pages[b->page].kind != PG_CONTACT) visit(b, PG_CONTACT, 0, 0);
    if ((e = page_event(b, ET_FORM_START, 0.15, 0.3))) e->detail = FORM_CONTACT;
    if (rng_chance(r, 0.7)) {
        if ((e = page_event(b, ET_FORM_SUBMIT, 0.85, 0.9))) e->detail = FORM_CONTACT;
        if ((e = page_event(b, ET_LEAD, 0.91, 0.93))) e->detail = FORM_CONTACT;
    }
}

/* A few pages of browsing among lists, products, search and the store pages. */
static void flow_browse(build_t *b, int pages) {
    rng_t *r = b->r;
    int category = (int)rng_below(r, N_CATEGORIES);
    static const unsigned w[] = {30, 40, 10, 6, 5, 5, 4};
    for (int i = 0; i < pages; i++) {
        switch (rng_weighted(r, w, N_OF(w))) {
        case 0: visit(b, PG_LIST, rng_chance(r, 0.3) ? 0 : category + 1, 0); break;
        case 1: visit(b, PG_PRODUCT, next_product(b, category), 0); break;
        case 2: visit(b, PG_SEARCH, (int)rng_below(r, N_QUERIES), 0); break;
        case 3: visit(b, PG_STORES, 0, 0); break;
        case 4: visit(b, PG_BLOG, 0, 0); break;
        case 5: visit(b, PG_ABOUT, 0, 0); break;
        default: visit(b, PG_HOME, 0, 0); break;
        }
    }
}

/* A crawler: many pages, quickly, nothing but page views. */
static void flow_bot(build_t *b) {
    rng_t *r = b->r;
    int pages = 3 + (int)fmin(57.0, rng_lognormal(r, 8.0, 0.9));
    for (int i = 0; i < pages; i++) {
        if (b->S->n_ev > 0) page_close(b, 0, 1);
        unsigned pick = rng_below(r, 10);
        if (i == 0 || pick == 0)
            page_open(b, PG_HOME, 0, 0);
        else if (pick <= 5)
            page_open(b, PG_PRODUCT, (int)rng_below(r, N_PRODUCTS), 0);
        else if (pick <= 7)
            page_open(b, PG_POST, (int)rng_below(r, N_POSTS), 0);
        else if (pick == 8)
            page_open(b, PG_LIST, (int)rng_below(r, N_CATEGORIES + 1), 0);
        else
            page_open(b, PG_STORES, 0, 0);
        b->dwell = rng_range(r, 400, 6000);
    }
    finish(b, 1);
}

/* ---- the model -------------------------------------------------------------------- */

/* A message made from the current event, waiting to be emitted. */
typedef struct lg_pending_s {
    int have;
    lg_session_t *S;
    int ei;
    uint64_t visitor;
    lg_session_t *release; /* returned to the pool once the event has been emitted */
} lg_pending_t;

/* A message held back by --disorder. */
typedef struct lg_held_s {
    int64_t release_ms;
    uint64_t seq;
    lg_message_t meta; /* key/value point into data */
    char *data;
} lg_held_t;

struct lg_model_s {
    lg_options_t opts;
    char *site;
    size_t site_len;
    const uac_corpus_t *corpus;
    unsigned device_weights[UAC_DEVICE_COUNT];
    uint32_t *modern[UAC_DEVICE_COUNT]; /* agents of current browsers, preferred */
    size_t n_modern[UAC_DEVICE_COUNT];

    /* arrivals: sorted uniform order statistics mapped through the daily traffic curve */
    long long arrived;
    double arrival_x;
    double *cum; /* cumulative traffic weight per hour of the window, n_hours + 1 */
    size_t n_hours, cum_idx;
    int64_t window_end_ms;
    int64_t next_arrival_ms; /* INT64_MAX when every visitor has arrived */

    lg_visitor_t *heap; /* min-heap on (next_ms, visitor) */
    size_t heap_n, heap_cap;
    lg_session_t **pool; /* free session buffers */
    size_t pool_n, pool_cap;

    rng_t arrivals; /* when visitors come */
    rng_t noise;    /* duplicates and malformed messages */
    rng_t late;     /* lateness under --disorder */
    double dup_q;   /* chance of a duplicate after a valid event */
    lg_pending_t cur;
    int pending_dup;
    int64_t dup_time_ms;
    lg_message_t dup_meta;
    lg_buf_t out, dup, scratch;
    char key[160]; /* the key of the message in out */
    size_t key_len;
    char dup_key[40];
    uint64_t bad_counter;

    lg_held_t *held; /* min-heap on (release_ms, seq) */
    size_t held_n, held_cap, held_bytes;
    uint64_t held_seq;
    char *released; /* data of the message returned last (freed on the next call) */
    int exhausted;

    lg_stats_t stats;
};

const char *lg_kind_name(lg_kind_t kind) {
    return (unsigned)kind < LG_KIND_COUNT ? kind_names[kind] : NULL;
}

const char *lg_event_type_name(int type) {
    return type >= 0 && type < LG_EVENT_TYPE_COUNT ? tf_event_type_name((tf_event_type_t)type) : NULL;
}

void lg_options_init(lg_options_t *opts) {
    memset(opts, 0, sizeof(*opts));
    opts->seed = 1;
    opts->start_ms = LG_DEFAULT_START_MS;
    opts->days = 7;
    opts->visitors = 1000;
    opts->site = LG_DEFAULT_SITE;
}

static const screen_t *pick_screen(rng_t *r, const screen_t *list, size_t n) {
    return &list[rng_below(r, (uint32_t)n)];
}

/* Current browsers: Chromium 90+, Safari/iOS 14+, Firefox 90+ (uap-core also holds
 * agents from 1998; those are kept, only less likely). */
static int agent_is_modern(const uac_agent_t *a) {
    if (a->chromium_major >= 90) return 1;
    const char *v = strstr(a->ua, "Version/");
    if (v && strstr(a->ua, "Safari/") && v[8] == '1' && v[9] >= '4' && v[9] <= '9') return 1;
    const char *f = strstr(a->ua, "Firefox/");
    if (f && f[8] >= '1' && f[8] <= '9' && f[9] >= '0' && f[9] <= '9' &&
        (f[10] == '.' ? f[8] >= '9' : f[10] >= '0' && f[10] <= '9'))
        return 1;
    return 0;
}

/* The visitor's device, agent, screen, place and language: a function of seed and
 * visitor number only, so every session of the visitor agrees. */
static void make_profile(const lg_model_t *m, uint64_t visitor, lg_profile_t *p) {
    rng_t r;
    rng_seed(&r, mix3(m->opts.seed, visitor, 0x70726f66696c65ULL));
    memset(p, 0, sizeof(*p));
    p->visitor = visitor;
    p->id_hi = rng_u64(&r);
    p->id_lo = rng_u64(&r);
    p->device = (uac_device_t)rng_weighted(&r, m->device_weights, UAC_DEVICE_COUNT);
    size_t nm = m->n_modern[p->device];
    if (nm > 0 && rng_chance(&r, 0.8))
        p->agent = uac_corpus_agent(m->corpus, p->device,
                                    m->modern[p->device][rng_below(&r, (uint32_t)nm)]);
    else
        p->agent = uac_corpus_agent(
            m->corpus, p->device, rng_below(&r, (uint32_t)uac_corpus_count(m->corpus, p->device)));
    uac_os_t os = p->agent->os;
    const screen_t *s = NULL;
    switch (p->device) {
    case UAC_DESKTOP:
        s = os == UAC_OS_MACOS ? pick_screen(&r, screens_mac, N_OF(screens_mac))
                               : pick_screen(&r, screens_desktop, N_OF(screens_desktop));
        break;
    case UAC_MOBILE:
        s = os == UAC_OS_IOS ? pick_screen(&r, screens_iphone, N_OF(screens_iphone))
                             : pick_screen(&r, screens_android, N_OF(screens_android));
        break;
    case UAC_TABLET:
        s = os == UAC_OS_IOS ? pick_screen(&r, screens_ipad, N_OF(screens_ipad))
                             : pick_screen(&r, screens_android_tab, N_OF(screens_android_tab));
        break;
    case UAC_UNKNOWN:
        if (rng_chance(&r, 0.6)) s = pick_screen(&r, screens_tv, N_OF(screens_tv));
        break;
    default: break;
    }
    if (s && rng_chance(&r, 0.97)) p->screen = *s;

    unsigned cw[N_COUNTRIES];
    for (size_t i = 0; i < N_COUNTRIES; i++) cw[i] = countries[i].weight;
    p->country =
        &countries[p->device == UAC_BOT && rng_chance(&r, 0.7) ? COUNTRY_US
                                                               : rng_weighted(&r, cw, N_COUNTRIES)];
    p->region = &p->country->regions[rng_below(&r, (uint32_t)p->country->n_regions)];
    p->currency = p->country->currency;
    const char *lang = p->country->languages[p->country->languages[1] && rng_chance(&r, 0.25)];
    if (rng_chance(&r, 0.07)) lang = "en-US"; /* expats, travellers, English browsers */
    if (p->device == UAC_BOT) lang = rng_chance(&r, 0.4) ? "en" : NULL;
    if (lang && p->device != UAC_BOT && rng_chance(&r, 0.15)) {
        /* The browser sends only the primary subtag. */
        size_t n = strcspn(lang, "-");
        memcpy(p->language_buf, lang, n);
        p->language_buf[n] = '\0';
        lang = p->language_buf;
    }
    p->language = lang;
    double g = rng_unit(&r);
    p->geo_mode = p->device == UAC_BOT ? 2 : g < 0.86 ? 0 : g < 0.94 ? 1 : 2;
    static const uint8_t nets[3][3] = {{192, 0, 2}, {198, 51, 100}, {203, 0, 113}};
    const uint8_t *net = nets[rng_below(&r, 3)];
    p->ip[0] = net[0];
    p->ip[1] = net[1];
    p->ip[2] = net[2];
    p->ip[3] = (uint8_t)(1 + rng_below(&r, 254));
    double ts = rng_unit(&r);
    p->ts_style = p->device == UAC_BOT ? (ts < 0.5 ? 2 : 0) : ts < 0.8 ? 0 : ts < 0.9 ? 1 : 2;
    p->referrer_empty = rng_chance(&r, 0.2);
}

static uint64_t user_number(const lg_model_t *m, uint64_t visitor) {
    return 10000000 + mix3(m->opts.seed, visitor, 0x75736572ULL) % 90000000;
}

static int cmp_ev(const void *a, const void *b) {
    const lg_ev_t *x = a, *y = b;
    if (x->t != y->t) return x->t < y->t ? -1 : 1;
    return (int)x->seq - (int)y->seq;
}

/* Chooses where the session comes from. */
static void pick_source(lg_session_t *S, rng_t *r, int returning, intent_t intent, int cancel) {
    static const unsigned first_w[CH_COUNT] = {26, 30, 12, 8, 8, 4, 12};
    static const unsigned again_w[CH_COUNT] = {40, 18, 8, 5, 5, 18, 6};
    channel_t ch = (channel_t)rng_weighted(r, returning ? again_w : first_w, CH_COUNT);
    if (cancel) ch = rng_chance(r, 0.6) ? CH_EMAIL : CH_DIRECT;
    S->campaign = -1;
    S->ext_referrer = NULL;
    int cands[N_CAMPAIGNS];
    int n = 0;
    for (size_t i = 0; i < N_CAMPAIGNS; i++)
        if (campaigns[i].channel == ch) cands[n++] = (int)i;
    switch (ch) {
    case CH_DIRECT: break;
    case CH_ORGANIC:
        S->ext_referrer = rng_chance(r, 0.75)
                              ? S->prof.country->google
                              : organic_referrers[rng_below(r, N_OF(organic_referrers))];
        break;
    case CH_SOCIAL: S->ext_referrer = social_referrers[rng_below(r, N_OF(social_referrers))]; break;
    case CH_REFERRAL:
        if (rng_chance(r, 0.3)) {
            S->campaign = cands[rng_below(r, (uint32_t)n)];
        } else {
            S->ext_referrer = referral_referrers[rng_below(r, N_OF(referral_referrers))];
        }
        break;
    default:
        S->campaign = cands[rng_below(r, (uint32_t)n)];
        if (ch == CH_PAID_SEARCH && intent == IN_APPT) S->campaign = 2;
        if (ch == CH_EMAIL) S->campaign = cancel ? 9 : 7 + (int)rng_below(r, 2);
        break;
    }
    if (S->campaign >= 0) {
        S->ext_referrer = campaigns[S->campaign].referrer;
        if (campaigns[S->campaign].click_param) S->click_id = rng_u64(r);
    }
}

/* Builds the visitor's next session starting at v->next_ms into S. */
static void build_session(lg_model_t *m, lg_visitor_t *v, lg_session_t *S) {
    rng_t r;
    rng_seed(&r, mix3(m->opts.seed, v->visitor, 0x73657373ULL + ((uint64_t)v->sessions << 32)));
    memset(S, 0, offsetof(lg_session_t, pages));
    make_profile(m, v->visitor, &S->prof);
    S->number = v->sessions;
    S->n_pages = 0;
    S->n_ev = 0;
    S->next = 0;
    S->n_cart = 0;
    int returning = v->sessions > 0;
    uint64_t user_no = user_number(m, v->visitor);

    build_t b = {0};
    b.S = S;
    b.r = &r;
    b.t = v->next_ms;
    b.user_no = user_no;

    if (S->prof.device == UAC_BOT) {
        S->campaign = -1;
        S->ext_referrer = NULL;
        flow_bot(&b);
    } else {
        if ((v->flags & VF_ACCOUNT) && (v->flags & VF_LOGGED_IN) && rng_chance(&r, 0.75)) {
            b.uflags = EVF_USER; /* still signed in */
            S->user_no = user_no;
        } else {
            v->flags &= (uint16_t)~VF_LOGGED_IN;
        }
        static const unsigned first_w[IN_COUNT] = {30, 32, 15, 9, 8, 3, 3};
        static const unsigned again_w[IN_COUNT] = {22, 25, 22, 11, 6, 10, 4};
        intent_t intent = (intent_t)rng_weighted(&r, returning ? again_w : first_w, IN_COUNT);
        if (S->prof.device == UAC_UNKNOWN) intent = rng_chance(&r, 0.5) ? IN_BOUNCE : IN_BROWSE;
        int return_cart = (v->flags & VF_CART) && rng_chance(&r, 0.5);
        int cancel = !return_cart && (v->flags & VF_APPT) && rng_chance(&r, 0.4);
        if (return_cart) intent = IN_SHOP;
        pick_source(S, &r, returning, intent, cancel);
        if (return_cart) {
            flow_return_cart(&b, v);
        } else if (cancel) {
            flow_cancel(&b, v);
        } else {
            /* Where the visit starts. */
            page_kind_t landing;
            int arg = 0;
            switch (intent) {
            case IN_BOUNCE: {
                static const page_kind_t k[] = {PG_HOME, PG_HOME, PG_PRODUCT, PG_PRODUCT,
                                                PG_POST, PG_LIST, PG_STORES};
                landing = k[rng_below(&r, N_OF(k))];
                break;
            }
            case IN_BROWSE:
            case IN_SHOP: {
                static const page_kind_t k[] = {PG_HOME, PG_LIST, PG_PRODUCT, PG_PRODUCT};
                landing = k[rng_below(&r, N_OF(k))];
                break;
            }
            case IN_APPT: landing = rng_chance(&r, 0.5) ? PG_APPTS : PG_HOME; break;
            case IN_CONTENT: landing = rng_chance(&r, 0.75) ? PG_POST : PG_BLOG; break;
            case IN_CONTACT: landing = rng_chance(&r, 0.4) ? PG_CONTACT : PG_HOME; break;
            default: landing = PG_HOME; break;
            }
            if (landing == PG_PRODUCT)
                arg = pick_product(&r, -1);
            else if (landing == PG_POST)
                arg = (int)rng_below(&r, N_POSTS);
            else if (landing == PG_LIST)
                arg = (int)rng_below(&r, N_CATEGORIES + 1);
            visit(&b, landing, arg, intent == IN_BOUNCE);
            switch (intent) {
            case IN_BOUNCE: break;
            case IN_BROWSE: flow_browse(&b, (int)rng_range(&r, 1, 7)); break;
            case IN_SHOP: flow_shop(&b, v, landing, arg); break;
            case IN_APPT: flow_appointment(&b, v, landing); break;
            case IN_CONTENT: flow_content(&b, landing, arg); break;
            case IN_ACCOUNT: flow_account(&b, v); break;
            case IN_CONTACT: flow_contact(&b); break;
            default: break;
            }
        }
        finish(&b, 0);
    }
    qsort(S->ev, (size_t)S->n_ev, sizeof(lg_ev_t), cmp_ev);
    /* pv indices refer to creation order: map them to the sorted positions. */
    uint16_t where[LG_MAX_EVENTS];
    for (int i = 0; i < S->n_ev; i++) where[S->ev[i].seq] = (uint16_t)i;
    for (int i = 0; i < S->n_ev; i++) S->ev[i].pv = where[S->ev[i].pv];
    for (int i = 0; i < S->n_ev; i++) S->ev[i].seq = (uint16_t)i;
}

/* ---- visitors: arrivals, the heap, returns ---------------------------------------- */

static const double hour_weight[24] = {20, 12, 8,  6,  6,  10, 22, 38, 52, 60, 64, 66,
                                       70, 68, 64, 62, 64, 70, 80, 88, 90, 80, 60, 38};

/* Length of the window in hours. */
static int64_t window_hours(const lg_options_t *opts) {
    return opts->hours > 0 ? opts->hours : (int64_t)opts->days * 24;
}

static int build_curve(lg_model_t *m) {
    m->n_hours = (size_t)window_hours(&m->opts);
    m->cum = malloc((m->n_hours + 1) * sizeof(double));
    if (!m->cum) return -1;
    m->cum[0] = 0;
    for (size_t h = 0; h < m->n_hours; h++) {
        int64_t t = m->opts.start_ms + (int64_t)h * 3600000;
        int64_t day = floor_div(t, 86400000);
        int hour = (int)((t - day * 86400000) / 3600000);
        int weekday = (int)((day % 7 + 11) % 7); /* 0 = Monday (1970-01-01 was a Thursday) */
        double w = hour_weight[hour] * (weekday >= 5 ? 1.2 : 1.0);
        m->cum[h + 1] = m->cum[h] + w;
    }
    return 0;
}

/* The next arrival time, or INT64_MAX when all visitors have come. */
static int64_t next_arrival(lg_model_t *m) {
    long long n = m->opts.visitors;
    if (m->arrived >= n) return INT64_MAX;
    /* Order statistics of n uniforms, one after the other. */
    double u = rng_unit(&m->arrivals);
    double x =
        m->arrival_x + (1.0 - m->arrival_x) * (1.0 - pow(1.0 - u, 1.0 / (double)(n - m->arrived)));
    if (x >= 1.0) x = nextafter(1.0, 0.0);
    if (x < m->arrival_x) x = m->arrival_x;
    m->arrival_x = x;
    double target = x * m->cum[m->n_hours];
    while (m->cum_idx + 1 < m->n_hours && m->cum[m->cum_idx + 1] <= target) m->cum_idx++;
    double lo = m->cum[m->cum_idx], hi = m->cum[m->cum_idx + 1];
    double frac = hi > lo ? (target - lo) / (hi - lo) : 0.0;
    if (frac < 0) frac = 0;
    if (frac > 1) frac = 1;
    return m->opts.start_ms + (int64_t)m->cum_idx * 3600000 + (int64_t)(frac * 3599999.0);
}

static int vis_less(const lg_visitor_t *a, const lg_visitor_t *b) {
    return a->next_ms < b->next_ms || (a->next_ms == b->next_ms && a->visitor < b->visitor);
}

static int heap_push(lg_model_t *m, const lg_visitor_t *v) {
    if (m->heap_n == m->heap_cap) {
        size_t ncap = m->heap_cap ? m->heap_cap * 2 : 1024;
        if (ncap > (size_t)LG_MAX_VISITORS) ncap = (size_t)LG_MAX_VISITORS;
        if (ncap <= m->heap_n) return -1;
        lg_visitor_t *nh = realloc(m->heap, ncap * sizeof(*nh));
        if (!nh) return -1;
        m->heap = nh;
        m->heap_cap = ncap;
    }
    size_t i = m->heap_n++;
    while (i > 0) {
        size_t parent = (i - 1) / 2;
        if (!vis_less(v, &m->heap[parent])) break;
        m->heap[i] = m->heap[parent];
        i = parent;
    }
    m->heap[i] = *v;
    return 0;
}

static void heap_pop(lg_model_t *m, lg_visitor_t *out) {
    *out = m->heap[0];
    lg_visitor_t last = m->heap[--m->heap_n];
    size_t i = 0, n = m->heap_n;
    for (;;) {
        size_t c = 2 * i + 1;
        if (c >= n) break;
        if (c + 1 < n && vis_less(&m->heap[c + 1], &m->heap[c])) c++;
        if (!vis_less(&m->heap[c], &last)) break;
        m->heap[i] = m->heap[c];
        i = c;
    }
    if (n > 0) m->heap[i] = last;
}

static lg_session_t *session_get(lg_model_t *m) {
    if (m->pool_n > 0) return m->pool[--m->pool_n];
    return malloc(sizeof(lg_session_t));
}

static void session_put(lg_model_t *m, lg_session_t *S) {
    if (!S) return;
    if (m->pool_n == m->pool_cap) {
        size_t ncap = m->pool_cap ? m->pool_cap * 2 : 64;
        lg_session_t **np = ncap <= 65536 ? realloc(m->pool, ncap * sizeof(*np)) : NULL;
        if (!np) {
            free(S);
            return;
        }
        m->pool = np;
        m->pool_cap = ncap;
    }
    m->pool[m->pool_n++] = S;
}

/* When (and whether) the visitor comes back after a session that ended at end_ms. */
static int64_t return_time(lg_model_t *m, const lg_visitor_t *v, const lg_session_t *S,
                           int64_t end_ms) {
    rng_t r;
    rng_seed(&r, mix3(m->opts.seed, v->visitor, 0x72657475726eULL + ((uint64_t)v->sessions << 32)));
    double p = S->prof.device == UAC_BOT ? 0.35
               : (v->flags & VF_CART)    ? 0.7
               : (v->flags & VF_APPT)    ? 0.65
                                         : 0.6;
    if (v->sessions >= 50 || !rng_chance(&r, p)) return INT64_MAX;
    int64_t gap = LG_SESSION_GAP_MS + 60000; /* always more than the session timeout */
    if (rng_chance(&r, 0.4))
        gap += (int64_t)fmin(20.0 * 3600000.0, rng_lognormal(&r, 3.0 * 3600000.0, 0.9));
    else
        gap += (int64_t)(-log(1.0 - rng_unit(&r)) * 1.2 * 86400000.0);
    int64_t next = end_ms + gap;
    return next < m->window_end_ms ? next : INT64_MAX;
}

/* ---- rendering events as JSON ------------------------------------------------------ */

static void event_id(const lg_model_t *m, uint64_t visitor, uint32_t session, int ei, uint64_t *hi,
                     uint64_t *lo) {
    uint64_t where = ((uint64_t)session << 20) | (uint64_t)ei;
    *hi = mix3(m->opts.seed, visitor, where ^ 0x6576656e74ULL);
    *lo = mix3(m->opts.seed ^ 0x5bd1e995ULL, visitor, where);
}

static void put_key_str(lg_buf_t *b, const char *key) {
    put_c(b, '"');
    put_s(b, key);
    PUT_LIT(b, "\":");
}

static void put_str_field(lg_buf_t *b, const char *key, const char *value) {
    put_c(b, ',');
    put_key_str(b, key);
    put_c(b, '"');
    put_esc(b, value, strlen(value));
    put_c(b, '"');
}

static void put_repeat(lg_buf_t *b, char c, size_t n) {
    if (b->len + n > b->cap && buf_grow(b, b->len + n) != 0) return;
    memset(b->p + b->len, c, n);
    b->len += n;
}

/* A term of a query string: spaces as '+', the rest is already URL-safe ASCII. */
static void put_form(lg_buf_t *b, const char *s) {
    for (; *s; s++) put_c(b, *s == ' ' ? '+' : *s);
}

static void put_path(lg_buf_t *b, const page_t *pg) {
    switch ((page_kind_t)pg->kind) {
    case PG_HOME: put_c(b, '/'); break;
    case PG_LIST:
        PUT_LIT(b, "/products");
        if (pg->arg > 0) {
            PUT_LIT(b, "?category=");
            put_s(b, categories[pg->arg - 1].slug);
        }
        break;
    case PG_PRODUCT:
        PUT_LIT(b, "/products/");
        put_s(b, products[pg->arg].slug);
        break;
    case PG_SEARCH:
        PUT_LIT(b, "/search?q=");
        put_s(b, queries[pg->arg].url);
        break;
    case PG_CART: PUT_LIT(b, "/cart"); break;
    case PG_CHECKOUT: PUT_LIT(b, "/checkout"); break;
    case PG_ORDER_DONE: PUT_LIT(b, "/checkout/confirmation"); break;
    case PG_APPTS: PUT_LIT(b, "/appointments"); break;
    case PG_APPT_BOOK:
        PUT_LIT(b, "/appointments/book?type=");
        put_s(b, appt_types[pg->arg].id);
        break;
    case PG_APPT_DONE: PUT_LIT(b, "/appointments/confirmation"); break;
    case PG_APPT_MANAGE: PUT_LIT(b, "/account/appointments"); break;
    case PG_BLOG: PUT_LIT(b, "/blog"); break;
    case PG_POST:
        PUT_LIT(b, "/blog/");
        put_s(b, posts[pg->arg].slug);
        break;
    case PG_CONTACT: PUT_LIT(b, "/contact"); break;
    case PG_SIGNUP: PUT_LIT(b, "/account/signup"); break;
    case PG_LOGIN: PUT_LIT(b, "/account/login"); break;
    case PG_ACCOUNT: PUT_LIT(b, "/account"); break;
    case PG_STORES: PUT_LIT(b, "/stores"); break;
    default: PUT_LIT(b, "/about"); break;
    }
}

/* The page's full URL; the landing page carries the campaign parameters. */
static void put_url(const lg_model_t *m, const lg_session_t *S, int page, lg_buf_t *b) {
    const page_t *pg = &S->pages[page];
    put(b, m->site, m->site_len);
    size_t path_at = b->len;
    put_path(b, pg);
    if (!pg->landing || S->campaign < 0) return;
    const campaign_t *c = &campaigns[S->campaign];
    put_c(b, memchr(b->p + path_at, '?', b->len - path_at) ? '&' : '?');
    PUT_LIT(b, "utm_source=");
    put_s(b, c->source);
    PUT_LIT(b, "&utm_medium=");
    put_s(b, c->medium);
    PUT_LIT(b, "&utm_campaign=");
    put_s(b, c->campaign);
    if (c->term) {
        PUT_LIT(b, "&utm_term=");
        put_form(b, c->term);
    }
    if (c->content) {
        PUT_LIT(b, "&utm_content=");
        put_s(b, c->content);
    }
    if (c->click_param) {
        put_c(b, '&');
        put_s(b, c->click_param);
        put_c(b, '=');
        static const char alnum[] =
            "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-";
        uint64_t x = S->click_id, word = 0;
        char id[22];
        for (int i = 0; i < 22; i++) {
            if (i % 10 == 0) word = splitmix64(&x);
            id[i] = alnum[word & 63];
            word >>= 6;
        }
        put(b, id, 22);
    }
}

static void put_title(lg_buf_t *b, const page_t *pg) {
    switch ((page_kind_t)pg->kind) {
    case PG_HOME: PUT_LIT(b, "Lumen Optics — Glasses, Sunglasses & Eye Exams"); return;
    case PG_LIST:
        if (pg->arg == 0)
            PUT_LIT(b, "All frames & lenses");
        else
            put_s(b, categories[pg->arg - 1].label);
        break;
    case PG_PRODUCT:
        put_s(b, products[pg->arg].name);
        PUT_LIT(b, " – ");
        put_s(b, categories[products[pg->arg].category].label);
        break;
    case PG_SEARCH:
        PUT_LIT(b, "Search: ");
        put_esc(b, queries[pg->arg].text, strlen(queries[pg->arg].text));
        break;
    case PG_CART: PUT_LIT(b, "Your cart"); break;
    case PG_CHECKOUT: PUT_LIT(b, "Checkout"); break;
    case PG_ORDER_DONE: PUT_LIT(b, "Thank you for your order"); break;
    case PG_APPTS: PUT_LIT(b, "Book an eye exam or fitting"); break;
    case PG_APPT_BOOK:
        PUT_LIT(b, "Book: ");
        put_s(b, appt_types[pg->arg].label);
        break;
    case PG_APPT_DONE: PUT_LIT(b, "Appointment confirmed"); break;
    case PG_APPT_MANAGE: PUT_LIT(b, "My appointments"); break;
    case PG_BLOG: PUT_LIT(b, "Journal"); break;
    case PG_POST:
        put_s(b, posts[pg->arg].title);
        PUT_LIT(b, " | Lumen Optics Journal");
        return;
    case PG_CONTACT: PUT_LIT(b, "Contact us"); break;
    case PG_SIGNUP: PUT_LIT(b, "Create your account"); break;
    case PG_LOGIN: PUT_LIT(b, "Sign in"); break;
    case PG_ACCOUNT: PUT_LIT(b, "My account"); break;
    case PG_STORES: PUT_LIT(b, "Find a store near you"); break;
    default: PUT_LIT(b, "About us"); break;
    }
    PUT_LIT(b, " | Lumen Optics");
}

static void put_timestamp(lg_buf_t *b, const lg_profile_t *p, int64_t ms) {
    if (p->ts_style == 2) {
        put_i64(b, ms);
        return;
    }
    put_c(b, '"');
    put_time(b, ms, p->ts_style == 1 ? p->country->utc_offset_min : INT32_MIN);
    put_c(b, '"');
}

static void put_product_props(lg_buf_t *b, const lg_profile_t *p, int product, int qty) {
    const product_t *pr = &products[product];
    PUT_LIT(b, "{\"productId\":\"");
    put_s(b, pr->sku);
    PUT_LIT(b, "\",\"name\":\"");
    put_s(b, pr->name);
    PUT_LIT(b, "\",\"category\":\"");
    put_s(b, categories[pr->category].slug);
    PUT_LIT(b, "\",\"price\":");
    put_cents(b, price_in(pr->price_eur_cents, p->currency));
    if (qty > 0) {
        PUT_LIT(b, ",\"quantity\":");
        put_u64(b, (uint64_t)qty);
    } else {
        PUT_LIT(b, ",\"currency\":\"");
        put_s(b, currency_codes[p->currency]);
        put_c(b, '"');
    }
    put_c(b, '}');
}

static void put_value(lg_buf_t *b, const lg_profile_t *p, uint32_t cents) {
    PUT_LIT(b, ",\"value\":");
    put_cents(b, cents);
    PUT_LIT(b, ",\"currency\":\"");
    put_s(b, currency_codes[p->currency]);
    put_c(b, '"');
}

static const char *const form_ids[] = {"newsletter", "contact", "appointment_booking", "sign_up"};
static const char *const videos[] = {"frame-fitting-101", "how-we-make-lenses",
                                     "store-tour-berlin"};
static const char *const downloads[] = {"lens-care-guide.pdf", "size-guide.pdf", "return-form.pdf"};
static const char *const outbound[] = {"https://www.instagram.com/lumenoptics/",
                                       "https://www.youtube.com/@lumenoptics",
                                       "https://www.aoa.org/healthy-eyes"};
static const char *const cancel_reasons[] = {"schedule_conflict", "found_elsewhere",
                                             "feeling_unwell"};

/* Number of variants of each malformed kind (see render_event and make_bad). */
static const int kind_variants[LG_KIND_COUNT] = {
    [LG_KIND_BAD_INVALID_JSON] = 8,      [LG_KIND_BAD_TRUNCATED] = 1,
    [LG_KIND_BAD_NOT_OBJECT] = 6,        [LG_KIND_BAD_WRONG_TYPE] = 10,
    [LG_KIND_BAD_MISSING_EVENT_ID] = 2,  [LG_KIND_BAD_MISSING_TYPE] = 2,
    [LG_KIND_BAD_MISSING_TIMESTAMP] = 2, [LG_KIND_BAD_MISSING_VISITOR_ID] = 2,
    [LG_KIND_BAD_UNKNOWN_TYPE] = 7,      [LG_KIND_BAD_TIMESTAMP] = 9,
    [LG_KIND_BAD_TOO_LONG] = 7,          [LG_KIND_BAD_URL] = 7,
    [LG_KIND_BAD_VALUE_NO_CURRENCY] = 1, [LG_KIND_BAD_CURRENCY] = 5,
    [LG_KIND_BAD_OUT_OF_RANGE] = 6,      [LG_KIND_BAD_DEEP_PROPERTIES] = 1,
    [LG_KIND_BAD_INVALID_UTF8] = 8,      [LG_KIND_BAD_OVERSIZE] = 1,
    [LG_KIND_BAD_COUNTRY] = 5,           [LG_KIND_BAD_LANGUAGE] = 6,
    [LG_KIND_BAD_DUPLICATE_FIELD] = 3,
};

#define IS(k, v) (kind == (k) && variant == (v))

/* Renders event ei of S as JSON into b. kind/variant select one broken rule for a
 * malformed message (LG_KIND_VALID: none); id_hi/id_lo are its eventId. */
static void render_event(const lg_model_t *m, const lg_session_t *S, int ei, lg_kind_t kind,
                         int variant, uint64_t id_hi, uint64_t id_lo, lg_buf_t *b) {
    const lg_ev_t *e = &S->ev[ei];
    const lg_profile_t *p = &S->prof;
    int type = e->type;
    b->len = 0;
    b->failed = 0;
    put_c(b, '{');
    /* eventId */
    if (kind == LG_KIND_BAD_MISSING_EVENT_ID) {
        if (variant == 1) PUT_LIT(b, "\"eventId\":null,");
    } else if (IS(LG_KIND_BAD_WRONG_TYPE, 0)) {
        PUT_LIT(b, "\"eventId\":");
        put_u64(b, id_lo % 100000000);
        put_c(b, ',');
    } else if (IS(LG_KIND_BAD_TOO_LONG, 0)) {
        PUT_LIT(b, "\"eventId\":\"");
        put_uuid(b, id_hi, id_lo);
        put_repeat(b, 'f', 129 - 36);
        PUT_LIT(b, "\",");
    } else if (IS(LG_KIND_BAD_TOO_LONG, 1)) {
        PUT_LIT(b, "\"eventId\":\"\",");
    } else {
        PUT_LIT(b, "\"eventId\":\"");
        put_uuid(b, id_hi, id_lo);
        PUT_LIT(b, "\",");
    }
    /* type */
    if (kind == LG_KIND_BAD_MISSING_TYPE) {
        if (variant == 1) PUT_LIT(b, "\"type\":null,");
    } else if (kind == LG_KIND_BAD_UNKNOWN_TYPE) {
        static const char *const bad_types[] = {"PAGEVIEW",          "page_view",       "Purchase",
                                                "CHECKOUT_COMPLETE", "ADD_TO_WISHLIST", "PAGE VIEW",
                                                "PAGE_VIEW "};
        PUT_LIT(b, "\"type\":\"");
        put_s(b, bad_types[variant]);
        PUT_LIT(b, "\",");
    } else if (IS(LG_KIND_BAD_WRONG_TYPE, 4)) {
        PUT_LIT(b, "\"type\":");
        put_u64(b, (uint64_t)type);
        put_c(b, ',');
    } else {
        PUT_LIT(b, "\"type\":\"");
        put_s(b, tf_event_type_name((tf_event_type_t)type));
        PUT_LIT(b, "\",");
    }
    /* timestamp */
    if (kind == LG_KIND_BAD_MISSING_TIMESTAMP) {
        if (variant == 1) PUT_LIT(b, "\"timestamp\":null,");
    } else if (kind == LG_KIND_BAD_TIMESTAMP) {
        PUT_LIT(b, "\"timestamp\":");
        size_t at = b->len;
        switch (variant) {
        case 0: /* no zone */
            put_c(b, '"');
            put_time(b, e->t, INT32_MIN);
            b->len--; /* drop the Z */
            put_c(b, '"');
            break;
        case 1: PUT_LIT(b, "\"2026-02-30T10:15:00Z\""); break;
        case 2: PUT_LIT(b, "\"2026-13-01T00:00:00Z\""); break;
        case 3:
            put_c(b, '"');
            put_time(b, e->t, INT32_MIN);
            memcpy(b->p + at + 12, "25", 2); /* hour 25 */
            put_c(b, '"');
            break;
        case 4: PUT_LIT(b, "\"05/01/2026 10:15:00\""); break;
        case 5: put_i64(b, -e->t); break;
        case 6:
            put_i64(b, e->t);
            PUT_LIT(b, ".5");
            break;
        case 7: PUT_LIT(b, "\"yesterday\""); break;
        default: PUT_LIT(b, "\"\""); break;
        }
        put_c(b, ',');
    } else if (IS(LG_KIND_BAD_WRONG_TYPE, 9)) {
        PUT_LIT(b, "\"timestamp\":true,");
    } else {
        PUT_LIT(b, "\"timestamp\":");
        put_timestamp(b, p, e->t);
        put_c(b, ',');
    }
    /* visitorId */
    if (kind == LG_KIND_BAD_MISSING_VISITOR_ID) {
        if (variant == 1) PUT_LIT(b, "\"visitorId\":null,");
    } else if (IS(LG_KIND_BAD_WRONG_TYPE, 1)) {
        PUT_LIT(b, "\"visitorId\":");
        put_u64(b, p->id_lo % 1000000000);
        put_c(b, ',');
    } else {
        PUT_LIT(b, "\"visitorId\":\"");
        put_uuid(b, p->id_hi, p->id_lo);
        if (IS(LG_KIND_BAD_TOO_LONG, 2)) put_repeat(b, '0', 129 - 36);
        PUT_LIT(b, "\",");
    }
    /* userId */
    if ((e->flags & EVF_USER) || IS(LG_KIND_BAD_TOO_LONG, 3)) {
        PUT_LIT(b, "\"userId\":\"usr_");
        put_u64(b, S->user_no ? S->user_no : 10000000 + p->id_lo % 90000000);
        if (IS(LG_KIND_BAD_TOO_LONG, 3)) put_repeat(b, '7', 129 - 12);
        PUT_LIT(b, "\",");
    }
    /* url */
    PUT_LIT(b, "\"url\":");
    if (kind == LG_KIND_BAD_URL && variant < 6) {
        static const char *const bad_urls[] = {"\"/products/aviator-classic\"",
                                               "\"shop.example.com/cart\"",
                                               "\"ftp://shop.example.com/\"",
                                               "\"javascript:void(0)\"",
                                               "\"https://\"",
                                               "\"http//shop.example.com/blog\""};
        put_s(b, bad_urls[variant]);
    } else if (IS(LG_KIND_BAD_WRONG_TYPE, 3)) {
        PUT_LIT(b, "42");
    } else {
        put_c(b, '"');
        put_url(m, S, e->page, b);
        put_c(b, '"');
    }
    int pv = type == ET_PAGE_VIEW;
    /* the page view's context: referrer, title, agent, hints, screen, language, place */
    if (pv) {
        const char *ext = e->page == 0 ? S->ext_referrer : NULL;
        if (IS(LG_KIND_BAD_URL, 6)) {
            /* handled below for every event type */
        } else if (e->page > 0) {
            PUT_LIT(b, ",\"referrer\":\"");
            put_url(m, S, e->page - 1, b);
            put_c(b, '"');
        } else if (ext) {
            put_str_field(b, "referrer", ext);
        } else if (p->referrer_empty) {
            PUT_LIT(b, ",\"referrer\":\"\"");
        }
    }
    if (IS(LG_KIND_BAD_URL, 6)) PUT_LIT(b, ",\"referrer\":\"www.google.com\"");
    if (pv || kind == LG_KIND_BAD_INVALID_UTF8 || IS(LG_KIND_BAD_TOO_LONG, 4)) {
        PUT_LIT(b, ",\"title\":\"");
        if (IS(LG_KIND_BAD_TOO_LONG, 4)) {
            put_repeat(b, 'x', 1025);
        } else if (kind == LG_KIND_BAD_INVALID_UTF8) {
            static const char *const bad_bytes[] = {"\xC3\x28", "\xFF\xFE",     "\x80",
                                                    "\xC0\xAF", "\xED\xA0\x80", "\xF4\x90\x80\x80",
                                                    "\\ud800",  "\xE2\x82"};
            PUT_LIT(b, "Lumen ");
            put_s(b, bad_bytes[variant]);
            PUT_LIT(b, " Optics");
        } else {
            put_title(b, &S->pages[e->page]);
        }
        put_c(b, '"');
    }
    if ((pv && p->agent) || IS(LG_KIND_BAD_TOO_LONG, 5)) {
        PUT_LIT(b, ",\"userAgent\":\"");
        if (IS(LG_KIND_BAD_TOO_LONG, 5)) {
            PUT_LIT(b, "Mozilla/5.0 ");
            put_repeat(b, 'A', 2049 - 12);
        } else {
            put(b, p->agent->ua_json, p->agent->ua_json_len);
        }
        put_c(b, '"');
    }
    if ((pv && p->agent && p->agent->chromium_major >= 89 && p->device != UAC_BOT) ||
        IS(LG_KIND_BAD_WRONG_TYPE, 8)) {
        PUT_LIT(b, ",\"clientHints\":{\"mobile\":");
        if (IS(LG_KIND_BAD_WRONG_TYPE, 8))
            PUT_LIT(b, "\"?0\"");
        else if (p->device == UAC_MOBILE)
            PUT_LIT(b, "true");
        else
            PUT_LIT(b, "false");
        const char *platform = p->agent ? uac_os_name(p->agent->os) : "";
        PUT_LIT(b, ",\"platform\":\"");
        put_s(b, *platform ? platform : "Unknown");
        put_c(b, '"');
        if (p->agent && p->agent->model[0]) put_str_field(b, "model", p->agent->model);
        put_c(b, '}');
    }
    if ((pv && p->screen.w) || IS(LG_KIND_BAD_WRONG_TYPE, 6) || IS(LG_KIND_BAD_OUT_OF_RANGE, 2) ||
        IS(LG_KIND_BAD_OUT_OF_RANGE, 3)) {
        unsigned w = p->screen.w ? p->screen.w : 1280, h = p->screen.h ? p->screen.h : 720;
        if (IS(LG_KIND_BAD_OUT_OF_RANGE, 2)) w = 0;
        if (IS(LG_KIND_BAD_OUT_OF_RANGE, 3)) h = 25000;
        const char *q = IS(LG_KIND_BAD_WRONG_TYPE, 6) ? "\"" : "";
        PUT_LIT(b, ",\"screen\":{\"width\":");
        put_s(b, q);
        put_u64(b, w);
        put_s(b, q);
        PUT_LIT(b, ",\"height\":");
        put_s(b, q);
        put_u64(b, h);
        put_s(b, q);
        put_c(b, '}');
    }
    if (kind == LG_KIND_BAD_LANGUAGE) {
        static const char *const bad_langs[] = {
            "de_DE",  "en-", "123",
            "en--US", "-en", "de-DE-x-a-very-long-private-use-subtag-list-1234"};
        put_str_field(b, "language", bad_langs[variant]);
    } else if (pv && p->language) {
        put_str_field(b, "language", p->language);
    }
    if (kind == LG_KIND_BAD_COUNTRY) {
        static const char *const bad_countries[] = {"Germany", "de", "DEU", "D1", "d e"};
        PUT_LIT(b, ",\"geo\":{\"country\":\"");
        put_s(b, bad_countries[variant]);
        PUT_LIT(b, "\"}");
    } else if (IS(LG_KIND_BAD_WRONG_TYPE, 5)) {
        PUT_LIT(b, ",\"geo\":\"DE\"");
    } else if (pv && p->geo_mode < 2) {
        PUT_LIT(b, ",\"geo\":{\"country\":\"");
        put_s(b, p->country->code);
        put_c(b, '"');
        if (p->geo_mode == 0) {
            put_str_field(b, "region", p->region->region);
            put_str_field(b, "city", p->region->city);
        }
        put_c(b, '}');
    } else if (pv && p->geo_mode == 2) {
        PUT_LIT(b, ",\"ip\":\"");
        for (int i = 0; i < 4; i++) {
            if (i) put_c(b, '.');
            put_u64(b, p->ip[i]);
        }
        put_c(b, '"');
    }
    /* name */
    const char *name = NULL;
    if (type == ET_CLICK)
        name = click_names[e->detail % N_OF(click_names)];
    else if (type == ET_CUSTOM)
        name = e->detail == CUSTOM_CONFIGURATOR ? "lens_configurator" : "virtual_try_on";
    else if (type == ET_FORM_START || type == ET_FORM_SUBMIT)
        name = form_ids[e->detail % 4];
    else if (type == ET_LEAD)
        name = e->detail == FORM_NEWSLETTER ? "newsletter_signup" : "contact_request";
    if (IS(LG_KIND_BAD_TOO_LONG, 6)) {
        PUT_LIT(b, ",\"name\":\"");
        put_repeat(b, 'n', 257);
        put_c(b, '"');
    } else if (name) {
        put_str_field(b, "name", name);
    }
    /* page view details */
    if (type == ET_PAGE_LEAVE || type == ET_SCROLL) {
        uint64_t hi, lo;
        event_id(m, p->visitor, S->number, e->pv, &hi, &lo);
        PUT_LIT(b, ",\"pageViewId\":\"");
        put_uuid(b, hi, lo);
        put_c(b, '"');
    }
    if (IS(LG_KIND_BAD_OUT_OF_RANGE, 5)) {
        PUT_LIT(b, ",\"timeOnPage\":-3.5");
    } else if (type == ET_PAGE_LEAVE) {
        PUT_LIT(b, ",\"timeOnPage\":");
        put_ms_as_s(b, e->amount);
    }
    if (IS(LG_KIND_BAD_OUT_OF_RANGE, 0)) {
        PUT_LIT(b, ",\"scrollDepth\":150");
    } else if (IS(LG_KIND_BAD_OUT_OF_RANGE, 1)) {
        PUT_LIT(b, ",\"scrollDepth\":-5");
    } else if (IS(LG_KIND_BAD_WRONG_TYPE, 7)) {
        PUT_LIT(b, ",\"scrollDepth\":\"75\"");
    } else if (e->scroll >= 0) {
        PUT_LIT(b, ",\"scrollDepth\":");
        put_u64(b, (uint64_t)e->scroll);
    }
    /* value */
    int has_value = type == ET_ADD_TO_CART || type == ET_REMOVE_FROM_CART ||
                    type == ET_CHECKOUT_START || type == ET_PURCHASE ||
                    (type == ET_APPT_COMPLETE && e->amount > 0);
    if (kind == LG_KIND_BAD_VALUE_NO_CURRENCY) {
        PUT_LIT(b, ",\"value\":");
        put_cents(b, has_value ? e->amount : 4990);
    } else if (kind == LG_KIND_BAD_CURRENCY) {
        static const char *const bad_currencies[] = {"eur", "EURO", "€", "US$", "E1R"};
        PUT_LIT(b, ",\"value\":");
        put_cents(b, has_value ? e->amount : 4990);
        put_str_field(b, "currency", bad_currencies[variant]);
    } else if (IS(LG_KIND_BAD_OUT_OF_RANGE, 4)) {
        PUT_LIT(b, ",\"value\":-10.00,\"currency\":\"EUR\"");
    } else if (has_value) {
        put_value(b, p, e->amount);
    }
    /* properties */
    if (kind == LG_KIND_BAD_DEEP_PROPERTIES) {
        PUT_LIT(b, ",\"properties\":");
        for (int i = 0; i < 12; i++) PUT_LIT(b, "{\"level\":");
        PUT_LIT(b, "\"deep\"");
        put_repeat(b, '}', 12);
    } else if (kind == LG_KIND_BAD_OVERSIZE) {
        PUT_LIT(b, ",\"properties\":{\"notes\":\"");
        put_repeat(b, 'z', LG_OVERSIZE_PAD);
        PUT_LIT(b, "\"}");
    } else if (IS(LG_KIND_BAD_WRONG_TYPE, 2)) {
        PUT_LIT(b, ",\"properties\":[\"productId\",\"LO-1001\"]");
    } else {
        switch (type) {
        case ET_PRODUCT_VIEW:
            PUT_LIT(b, ",\"properties\":");
            put_product_props(b, p, e->detail, 0);
            break;
        case ET_PRODUCT_LIST_VIEW:
            PUT_LIT(b, ",\"properties\":{\"list\":\"");
            put_s(b, e->detail ? categories[e->detail - 1].slug : "all");
            PUT_LIT(b, "\",\"items\":");
            put_u64(b, e->detail2);
            put_c(b, '}');
            break;
        case ET_SEARCH:
            PUT_LIT(b, ",\"properties\":{\"query\":\"");
            put_esc(b, queries[e->detail].text, strlen(queries[e->detail].text));
            PUT_LIT(b, "\",\"results\":");
            put_u64(b, queries[e->detail].results);
            put_c(b, '}');
            break;
        case ET_ADD_TO_CART:
        case ET_REMOVE_FROM_CART:
            PUT_LIT(b, ",\"properties\":");
            put_product_props(b, p, e->detail, e->detail2);
            break;
        case ET_CHECKOUT_START:
            PUT_LIT(b, ",\"properties\":{\"items\":");
            put_u64(b, e->detail);
            PUT_LIT(b, ",\"step\":\"shipping\"}");
            break;
        case ET_PURCHASE: {
            PUT_LIT(b, ",\"properties\":{\"orderId\":\"LO-");
            put_u64(b, 1000000000 + mix3(m->opts.seed, p->visitor,
                                         ((uint64_t)S->number << 20) | (uint64_t)ei) %
                                        9000000000ULL);
            PUT_LIT(b, "\",\"items\":[");
            for (int i = 0; i < S->n_cart; i++) {
                if (i) put_c(b, ',');
                put_product_props(b, p, S->cart[i], S->cart_qty[i]);
            }
            PUT_LIT(b, "],\"shipping\":");
            put_cents(b, (e->detail & 2) ? price_in(490, p->currency) : 0);
            if (e->detail & 1) PUT_LIT(b, ",\"coupon\":\"WINTER10\"");
            PUT_LIT(b, ",\"paymentMethod\":\"");
            put_s(b, payment_methods[e->detail2 % N_OF(payment_methods)]);
            PUT_LIT(b, "\"}");
            break;
        }
        case ET_APPT_START:
        case ET_APPT_COMPLETE:
        case ET_APPT_CANCEL: {
            uint64_t h = mix3(m->opts.seed, p->visitor, 0x61707074ULL);
            PUT_LIT(b, ",\"properties\":{\"appointmentId\":\"APT-");
            put_u64(b, 10000000 + h % 90000000);
            PUT_LIT(b, "\",\"appointmentType\":\"");
            put_s(b, appt_types[e->detail % N_APPT_TYPES].id);
            put_c(b, '"');
            if (type == ET_APPT_CANCEL) {
                put_str_field(b, "reason", cancel_reasons[e->detail2 % N_OF(cancel_reasons)]);
            } else {
                put_str_field(b, "store", stores[e->detail2 % N_STORES]);
            }
            if (type == ET_APPT_COMPLETE) {
                int64_t day = floor_div(e->t, 86400000) + 2 + (int64_t)(h % 8);
                int64_t minute = 9 * 60 + (int64_t)((h >> 8) % 17) * 30;
                PUT_LIT(b, ",\"slot\":\"");
                put_time(b, day * 86400000 + minute * 60000, INT32_MIN);
                put_c(b, '"');
            }
            put_c(b, '}');
            break;
        }
        case ET_FORM_START:
        case ET_FORM_SUBMIT:
        case ET_LEAD:
            PUT_LIT(b, ",\"properties\":{\"formId\":\"");
            put_s(b, form_ids[e->detail % 4]);
            PUT_LIT(b, "\"}");
            break;
        case ET_SIGN_UP:
        case ET_LOGIN:
            PUT_LIT(b, ",\"properties\":{\"method\":\"");
            put_s(b, auth_methods[e->detail % N_OF(auth_methods)]);
            PUT_LIT(b, "\"}");
            break;
        case ET_CLICK:
            PUT_LIT(b, ",\"properties\":{\"element\":\"");
            put_s(b, e->detail == 4 || e->detail == 7 ? "banner" : "button");
            PUT_LIT(b, "\",\"position\":");
            put_u64(b, 1 + e->seq % 6);
            put_c(b, '}');
            break;
        case ET_OUTBOUND_CLICK:
            PUT_LIT(b, ",\"properties\":{\"href\":\"");
            put_s(b, outbound[e->detail % N_OF(outbound)]);
            PUT_LIT(b, "\"}");
            break;
        case ET_FILE_DOWNLOAD:
            PUT_LIT(b, ",\"properties\":{\"file\":\"");
            put_s(b, downloads[e->detail % N_OF(downloads)]);
            PUT_LIT(b, "\",\"href\":\"");
            put(b, m->site, m->site_len);
            PUT_LIT(b, "/downloads/");
            put_s(b, downloads[e->detail % N_OF(downloads)]);
            PUT_LIT(b, "\"}");
            break;
        case ET_VIDEO_PLAY:
            PUT_LIT(b, ",\"properties\":{\"videoId\":\"");
            put_s(b, videos[e->detail % N_OF(videos)]);
            PUT_LIT(b, "\",\"provider\":\"youtube\",\"durationSec\":");
            put_u64(b, 95 + (e->detail % N_OF(videos)) * 61);
            put_c(b, '}');
            break;
        case ET_CUSTOM:
            PUT_LIT(b, ",\"properties\":{\"productId\":\"");
            put_s(b, products[e->detail2 % N_PRODUCTS].sku);
            put_c(b, '"');
            if (e->detail == CUSTOM_CONFIGURATOR) {
                PUT_LIT(b, ",\"config\":{\"lens\":{\"type\":\"");
                put_s(b, e->amount % 3 == 0   ? "progressive"
                         : e->amount % 3 == 1 ? "single_vision"
                                              : "reading");
                PUT_LIT(b, "\",\"coatings\":[\"anti_reflective\"");
                if (e->amount % 2) PUT_LIT(b, ",\"blue_light\"");
                PUT_LIT(b, "]},\"frameColor\":\"tortoise\"}");
            } else {
                PUT_LIT(b, ",\"durationMs\":");
                put_u64(b, e->amount);
                PUT_LIT(b, ",\"camera\":{\"facing\":\"user\",\"resolution\":{\"width\":1280,"
                           "\"height\":720}}");
            }
            put_c(b, '}');
            break;
        default: break;
        }
    }
    put_c(b, '}');
}

#undef IS

/* ---- malformed messages ------------------------------------------------------------ */

static void set_key(lg_model_t *m, const lg_profile_t *p, int long_id) {
    lg_buf_t k = {m->key, 0, sizeof(m->key), 0};
    put_uuid(&k, p->id_hi, p->id_lo);
    if (long_id) put_repeat(&k, '0', 129 - 36);
    m->key_len = k.len;
}

/* Makes a malformed message of the given kind from event ei of S into m->out. */
static void make_bad(lg_model_t *m, const lg_session_t *S, int ei, lg_kind_t kind, int variant) {
    m->bad_counter++;
    uint64_t hi = mix3(m->opts.seed, m->bad_counter, 0x6261642d6869ULL);
    uint64_t lo = mix3(m->opts.seed, m->bad_counter, 0x6261642d6c6fULL);
    lg_buf_t *out = &m->out;
    int structural = kind == LG_KIND_BAD_INVALID_JSON || kind == LG_KIND_BAD_TRUNCATED ||
                     kind == LG_KIND_BAD_NOT_OBJECT || kind == LG_KIND_BAD_DUPLICATE_FIELD;
    if (!structural) {
        render_event(m, S, ei, kind, variant, hi, lo, out);
        return;
    }
    lg_buf_t *v = &m->scratch;
    render_event(m, S, ei, LG_KIND_VALID, 0, hi, lo, v);
    if (v->failed) {
        out->failed = 1;
        return;
    }
    const char *s = v->p;
    size_t n = v->len; /* s starts with {"eventId":" and ends with } */
    out->len = 0;
    out->failed = 0;
    switch (kind) {
    case LG_KIND_BAD_INVALID_JSON:
        switch (variant) {
        case 0: /* trailing comma */
            put(out, s, n - 1);
            PUT_LIT(out, ",}");
            break;
        case 1: /* unquoted key */
            PUT_LIT(out, "{eventId");
            put(out, s + 10, n - 10);
            break;
        case 2: /* two objects in one message */
            put(out, s, n);
            put(out, s, n);
            break;
        case 3: /* single quotes */
            PUT_LIT(out, "{'eventId'");
            put(out, s + 10, n - 10);
            break;
        case 4: /* missing colon */
            PUT_LIT(out, "{\"eventId\" ");
            put(out, s + 11, n - 11);
            break;
        case 5: /* raw control character inside a string */
            put(out, s, 12);
            put_c(out, '\t');
            put(out, s + 12, n - 12);
            break;
        case 6: /* NaN is not JSON */
            put(out, s, n - 1);
            PUT_LIT(out, ",\"score\":NaN}");
            break;
        default: /* comments are not JSON */
            PUT_LIT(out, "/* tracker v2 */");
            put(out, s, n);
            break;
        }
        break;
    case LG_KIND_BAD_TRUNCATED: {
        size_t cut = n / 4 + rng_below(&m->noise, (uint32_t)(n - n / 4 - 1));
        put(out, s, cut);
        break;
    }
    case LG_KIND_BAD_NOT_OBJECT:
        switch (variant) {
        case 0:
            put_c(out, '[');
            put(out, s, n);
            put_c(out, ']');
            break;
        case 1: PUT_LIT(out, "\"PAGE_VIEW\""); break;
        case 2: put_i64(out, S->ev[ei].t); break;
        case 3: PUT_LIT(out, "true"); break;
        case 4: PUT_LIT(out, "null"); break;
        default: PUT_LIT(out, "[]"); break;
        }
        break;
    default: /* LG_KIND_BAD_DUPLICATE_FIELD */
        if (variant == 0) {
            PUT_LIT(out, "{\"type\":\"PAGE_VIEW\",");
            put(out, s + 1, n - 1);
        } else {
            put(out, s, n - 1);
            if (variant == 1) {
                PUT_LIT(out, ",\"eventId\":\"");
                put_uuid(out, lo, hi);
                PUT_LIT(out, "\"}");
            } else {
                PUT_LIT(out, ",\"timestamp\":");
                put_i64(out, S->ev[ei].t);
                put_c(out, '}');
            }
        }
        break;
    }
}

/* ---- the message stream ------------------------------------------------------------ */

/* Makes m->cur the next event in event-time order. Returns 1, 0 when the traffic is
 * over, -1 when memory ran out. */
static int advance(lg_model_t *m) {
    if (m->cur.have) return 1;
    for (;;) {
        if (m->next_arrival_ms != INT64_MAX &&
            (m->heap_n == 0 || m->next_arrival_ms < m->heap[0].next_ms)) {
            lg_visitor_t v;
            memset(&v, 0, sizeof(v));
            v.next_ms = m->next_arrival_ms;
            v.visitor = (uint64_t)m->arrived;
            /* Some visitors are customers from before the window: they have an account. */
            if (mix3(m->opts.seed, v.visitor, 0x63757374ULL) % 100 < 12) v.flags = VF_ACCOUNT;
            if (heap_push(m, &v) != 0) return -1;
            m->arrived++;
            m->next_arrival_ms = next_arrival(m);
            continue;
        }
        if (m->heap_n == 0) return 0;
        lg_visitor_t v;
        heap_pop(m, &v);
        if (!v.active) {
            lg_session_t *S = session_get(m);
            if (!S) {
                (void)heap_push(m, &v); /* a slot was just freed */
                return -1;
            }
            build_session(m, &v, S);
            if (S->number == 0) {
                m->stats.visitors++;
                m->stats.visitors_by_device[S->prof.device]++;
            }
            m->stats.sessions++;
            v.sessions++;
            v.active = S;
        }
        lg_session_t *S = v.active;
        m->cur.have = 1;
        m->cur.S = S;
        m->cur.ei = S->next++;
        m->cur.visitor = v.visitor;
        m->cur.release = NULL;
        if (S->next < S->n_ev) {
            v.next_ms = S->ev[S->next].t;
            (void)heap_push(m, &v); /* cannot fail: a slot was just freed */
        } else {
            int64_t next = return_time(m, &v, S, S->ev[S->n_ev - 1].t);
            m->cur.release = S;
            v.active = NULL;
            if (next != INT64_MAX) {
                v.next_ms = next;
                (void)heap_push(m, &v);
            }
        }
        return 1;
    }
}

static void fill_meta(const lg_session_t *S, int ei, lg_kind_t kind, lg_message_t *msg) {
    msg->kind = kind;
    msg->event_time_ms = S->ev[ei].t;
    msg->visitor = S->prof.visitor;
    msg->session = S->number;
    msg->event_type = kind == LG_KIND_VALID ? S->ev[ei].type : -1;
    msg->device = S->prof.device;
}

/* The next message before --disorder. Returns 1, 0 at the end, -1 out of memory. */
static int produce(lg_model_t *m, lg_message_t *msg) {
    if (m->pending_dup) {
        m->pending_dup = 0;
        *msg = m->dup_meta;
        msg->kind = LG_KIND_DUPLICATE;
        msg->key = m->dup_key;
        msg->value = m->dup.p;
        msg->value_len = m->dup.len;
        return 1;
    }
    int r = advance(m);
    if (r <= 0) return r;
    lg_session_t *S = m->cur.S;
    int ei = m->cur.ei;
    if (m->opts.bad_ratio > 0 && rng_unit(&m->noise) < m->opts.bad_ratio) {
        lg_kind_t kind = (lg_kind_t)(LG_KIND_FIRST_BAD +
                                     (int)rng_below(&m->noise, LG_KIND_COUNT - LG_KIND_FIRST_BAD));
        int variant = (int)rng_below(&m->noise, (uint32_t)kind_variants[kind]);
        make_bad(m, S, ei, kind, variant);
        if (m->out.failed) return -1;
        set_key(m, &S->prof, kind == LG_KIND_BAD_TOO_LONG && variant == 2);
        fill_meta(S, ei, kind, msg);
        msg->key = kind == LG_KIND_BAD_MISSING_VISITOR_ID ? NULL : m->key;
        msg->key_len = msg->key ? m->key_len : 0;
        msg->value = m->out.p;
        msg->value_len = m->out.len;
        return 1;
    }
    uint64_t hi, lo;
    event_id(m, S->prof.visitor, S->number, ei, &hi, &lo);
    render_event(m, S, ei, LG_KIND_VALID, 0, hi, lo, &m->out);
    if (m->out.failed) return -1;
    set_key(m, &S->prof, 0);
    fill_meta(S, ei, LG_KIND_VALID, msg);
    msg->key = m->key;
    msg->key_len = m->key_len;
    msg->value = m->out.p;
    msg->value_len = m->out.len;
    if (m->dup_q > 0 && rng_unit(&m->noise) < m->dup_q) {
        m->dup.len = 0;
        m->dup.failed = 0;
        put(&m->dup, m->out.p, m->out.len);
        if (m->dup.failed) return -1;
        memcpy(m->dup_key, m->key, m->key_len);
        m->dup_meta = *msg;
        m->dup_meta.key = m->dup_key;
        m->pending_dup = 1;
    }
    m->cur.have = 0;
    session_put(m, m->cur.release);
    m->cur.release = NULL;
    return 1;
}

/* ---- --disorder: messages held back until their (later) release time -------------- */

static int held_less(const lg_held_t *a, const lg_held_t *b) {
    return a->release_ms < b->release_ms || (a->release_ms == b->release_ms && a->seq < b->seq);
}

static int held_push(lg_model_t *m, const lg_message_t *msg, int64_t release_ms) {
    if (m->held_n == m->held_cap) {
        size_t ncap = m->held_cap ? m->held_cap * 2 : 1024;
        lg_held_t *nh = realloc(m->held, ncap * sizeof(*nh));
        if (!nh) return -1;
        m->held = nh;
        m->held_cap = ncap;
    }
    size_t size = msg->key_len + msg->value_len;
    char *data = malloc(size ? size : 1);
    if (!data) return -1;
    if (msg->key_len) memcpy(data, msg->key, msg->key_len);
    memcpy(data + msg->key_len, msg->value, msg->value_len);
    lg_held_t h;
    h.release_ms = release_ms;
    h.seq = m->held_seq++;
    h.meta = *msg;
    h.meta.key = msg->key ? data : NULL;
    h.meta.value = data + msg->key_len;
    h.data = data;
    size_t i = m->held_n++;
    while (i > 0) {
        size_t parent = (i - 1) / 2;
        if (!held_less(&h, &m->held[parent])) break;
        m->held[i] = m->held[parent];
        i = parent;
    }
    m->held[i] = h;
    m->held_bytes += size + sizeof(lg_held_t);
    return 0;
}

static void held_pop(lg_model_t *m, lg_held_t *out) {
    *out = m->held[0];
    lg_held_t last = m->held[--m->held_n];
    size_t i = 0, n = m->held_n;
    for (;;) {
        size_t c = 2 * i + 1;
        if (c >= n) break;
        if (c + 1 < n && held_less(&m->held[c + 1], &m->held[c])) c++;
        if (!held_less(&m->held[c], &last)) break;
        m->held[i] = m->held[c];
        i = c;
    }
    if (n > 0) m->held[i] = last;
    m->held_bytes -= out->meta.key_len + out->meta.value_len + sizeof(lg_held_t);
}

/* The earliest event time any message not yet produced can have. */
static int64_t frontier(const lg_model_t *m) {
    int64_t f = m->next_arrival_ms;
    if (m->heap_n > 0 && m->heap[0].next_ms < f) f = m->heap[0].next_ms;
    if (m->cur.have && m->cur.S->ev[m->cur.ei].t < f) f = m->cur.S->ev[m->cur.ei].t;
    if (m->pending_dup && m->dup_meta.event_time_ms < f) f = m->dup_meta.event_time_ms;
    return f;
}

static void count(lg_model_t *m, const lg_message_t *msg) {
    m->stats.messages++;
    m->stats.by_kind[msg->kind]++;
    if (msg->kind == LG_KIND_VALID && msg->event_type >= 0)
        m->stats.by_event_type[msg->event_type]++;
}

int lg_model_next(lg_model_t *m, lg_message_t *msg) {
    free(m->released);
    m->released = NULL;
    if (m->opts.disorder_ms <= 0) {
        int r = produce(m, msg);
        if (r == 1) count(m, msg);
        return r;
    }
    for (;;) {
        if (m->held_n > 0) {
            int64_t f = m->exhausted ? INT64_MAX : frontier(m);
            int full = m->held_bytes > (size_t)LG_REORDER_MAX_BYTES;
            if (m->held[0].release_ms <= f || full) {
                if (m->held[0].release_ms > f) m->stats.reorder_overflows++;
                lg_held_t h;
                held_pop(m, &h);
                *msg = h.meta;
                m->released = h.data;
                count(m, msg);
                return 1;
            }
        } else if (m->exhausted) {
            return 0;
        }
        lg_message_t tmp;
        int r = produce(m, &tmp);
        if (r < 0) return -1;
        if (r == 0) {
            m->exhausted = 1;
            continue;
        }
        int64_t late = rng_range(&m->late, 0, m->opts.disorder_ms);
        if (held_push(m, &tmp, tmp.event_time_ms + late) != 0) return -1;
    }
}

void lg_model_stats(const lg_model_t *m, lg_stats_t *stats) { *stats = m->stats; }

/* ---- creation ---------------------------------------------------------------------- */

static int site_ok(const char *site) {
    size_t n = strlen(site);
    if (n < 8 || n > 512) return 0;
    if (strncmp(site, "http://", 7) != 0 && strncmp(site, "https://", 8) != 0) return 0;
    const char *host = site + (site[4] == 's' ? 8 : 7);
    if (!*host || *host == '/') return 0;
    for (const char *p = site; *p; p++)
        if ((unsigned char)*p <= 0x20 || *p == '"' || *p == '\\' || (unsigned char)*p >= 0x7f)
            return 0;
    return 1;
}

lg_model_t *lg_model_new(const lg_options_t *opts, const uac_corpus_t *corpus, char *errstr,
                         size_t errstr_size) {
    if (opts->visitors < 1 || opts->visitors > LG_MAX_VISITORS) {
        snprintf(errstr, errstr_size, "visitors must be 1..%lld", LG_MAX_VISITORS);
        return NULL;
    }
    if (opts->days < 1 || opts->days > LG_MAX_DAYS) {
        snprintf(errstr, errstr_size, "days must be 1..%d", LG_MAX_DAYS);
        return NULL;
    }
    if (opts->hours < 0 || opts->hours > LG_MAX_DAYS * 24) {
        snprintf(errstr, errstr_size, "hours must be 0..%d", LG_MAX_DAYS * 24);
        return NULL;
    }
    if (opts->disorder_ms < 0 || opts->disorder_ms > LG_MAX_DISORDER_MS) {
        snprintf(errstr, errstr_size, "disorder must be 0..%lld seconds",
                 LG_MAX_DISORDER_MS / 1000);
        return NULL;
    }
    if (!(opts->dup_ratio >= 0 && opts->dup_ratio <= 0.9) ||
        !(opts->bad_ratio >= 0 && opts->bad_ratio <= 0.9)) {
        snprintf(errstr, errstr_size, "dup-ratio and bad-ratio must be within 0..0.9");
        return NULL;
    }
    /* Events stay within years 1970..9998 whatever the returns and session lengths. */
    if (opts->start_ms < 0 ||
        opts->start_ms > 253370764800000LL - window_hours(opts) * 3600000) {
        snprintf(errstr, errstr_size, "start must be between 1970 and 9998");
        return NULL;
    }
    const char *site = opts->site ? opts->site : LG_DEFAULT_SITE;
    if (!site_ok(site)) {
        snprintf(errstr, errstr_size,
                 "site must be an http(s) URL without spaces, quotes or backslashes, at most 512 "
                 "bytes: %.80s",
                 site);
        return NULL;
    }
    static const uac_device_t required[3] = {UAC_DESKTOP, UAC_MOBILE, UAC_TABLET};
    for (int i = 0; i < 3; i++)
        if (!corpus || uac_corpus_count(corpus, required[i]) == 0) {
            snprintf(errstr, errstr_size, "the user agent corpus has no %s agent",
                     uac_device_name(required[i]));
            return NULL;
        }
    lg_model_t *m = calloc(1, sizeof(*m));
    if (!m) goto oom;
    m->opts = *opts;
    m->corpus = corpus;
    m->site_len = strlen(site);
    while (m->site_len > 8 && site[m->site_len - 1] == '/') m->site_len--;
    m->site = malloc(m->site_len + 1);
    if (!m->site) goto oom;
    memcpy(m->site, site, m->site_len);
    m->site[m->site_len] = '\0';
    m->opts.site = m->site;
    /* Per mille of visitors by device (BOT/UNKNOWN only when the corpus has them). */
    static const unsigned share[UAC_DEVICE_COUNT] = {350, 75, 520, 40, 15};
    for (int d = 0; d < UAC_DEVICE_COUNT; d++) {
        size_t n = uac_corpus_count(corpus, (uac_device_t)d);
        m->device_weights[d] = n > 0 ? share[d] : 0;
        if (n == 0) continue;
        m->modern[d] = malloc(n * sizeof(uint32_t));
        if (!m->modern[d]) goto oom;
        for (size_t i = 0; i < n; i++)
            if (agent_is_modern(uac_corpus_agent(corpus, (uac_device_t)d, i)))
                m->modern[d][m->n_modern[d]++] = (uint32_t)i;
    }
    rng_seed(&m->arrivals, mix3(opts->seed, 0, 0x617272697661ULL));
    rng_seed(&m->noise, mix3(opts->seed, 0, 0x6e6f697365ULL));
    rng_seed(&m->late, mix3(opts->seed, 0, 0x6c617465ULL));
    m->dup_q = opts->dup_ratio > 0 ? opts->dup_ratio / (1.0 - opts->dup_ratio) : 0;
    m->window_end_ms = opts->start_ms + window_hours(opts) * 3600000;
    if (build_curve(m) != 0) goto oom;
    m->next_arrival_ms = next_arrival(m);
    return m;
oom:
    snprintf(errstr, errstr_size, "out of memory");
    lg_model_destroy(m);
    return NULL;
}

void lg_model_destroy(lg_model_t *m) {
    if (!m) return;
    for (size_t i = 0; i < m->heap_n; i++) free(m->heap[i].active);
    free(m->heap);
    if (m->cur.have) free(m->cur.release);
    for (size_t i = 0; i < m->pool_n; i++) free(m->pool[i]);
    free(m->pool);
    for (size_t i = 0; i < m->held_n; i++) free(m->held[i].data);
    free(m->held);
    free(m->released);
    free(m->out.p);
    free(m->dup.p);
    free(m->scratch.p);
    for (int d = 0; d < UAC_DEVICE_COUNT; d++) free(m->modern[d]);
    free(m->cum);
    free(m->site);
    free(m);
}
