/* cli.h — one option table per subcommand: flags, environment, defaults and the
 * generated --help, so the documentation can never drift from the parser. */
#ifndef EV_CLI_H
#define EV_CLI_H

#include <stdbool.h>
#include <stddef.h>

typedef enum {
    EV_OPT_STR,    /* dest: const char ** (points into argv/environ/def; not owned) */
    EV_OPT_INT,    /* dest: long long * */
    EV_OPT_DOUBLE, /* dest: double * */
    EV_OPT_BOOL,   /* dest: bool * ; a flag without value, or --name=true|false */
    EV_OPT_KV,     /* dest: ev_kv_list_t * ; repeatable key=value (e.g. -X) */
} ev_opt_type_t;

#define EV_KV_MAX 64
typedef struct ev_kv_list_s {
    int n;
    char *key[EV_KV_MAX]; /* owned copies; free with ev_kv_list_clear() */
    char *val[EV_KV_MAX];
} ev_kv_list_t;

typedef struct ev_opt_s {
    const char *name;    /* long name, without "--" */
    char short_name;     /* 0 for none */
    ev_opt_type_t type;
    const char *def;     /* default as text, NULL for none */
    const char *env;     /* environment variable consulted before the default, or NULL */
    const char *metavar; /* shown in --help, e.g. "LIST" */
    const char *help;    /* one line */
    void *dest;
    long long min, max;  /* for EV_OPT_INT when min < max: allowed range */
} ev_opt_t;

/* The option-table terminator. */
#define EV_OPT_END {0}

typedef struct ev_cli_s {
    const char *command;  /* "evpipe ingest" */
    const char *usage;    /* "[OPTIONS]" or "[OPTIONS] FILE..." */
    const char *summary;  /* one paragraph shown at the top of --help */
    const char *epilog;   /* examples etc., shown at the end of --help, or NULL */
    const ev_opt_t *opts; /* terminated by EV_OPT_END */
} ev_cli_t;

/* Parses argv (argv[0] is the subcommand name) after applying defaults and the
 * environment: precedence flag > environment > default. Positional arguments are
 * left in argv[*first_positional .. argc-1] (order kept, options may be mixed in); a
 * command without any passes NULL, and a positional argument is a usage error
 * ("unexpected argument 'X'").
 * Returns 0 on success, 1 when --help was printed (caller exits 0), -1 on a usage
 * error with errstr filled (caller prints it and exits 2). */
int ev_cli_parse(const ev_cli_t *cli, int argc, char **argv, int *first_positional,
                 char *errstr, size_t errstr_size);

/* Prints the generated help to stdout. */
void ev_cli_help(const ev_cli_t *cli);

/* Frees the copies held by a kv list and empties it. Safe on an empty list. */
void ev_kv_list_clear(ev_kv_list_t *kv);

/* Parses a whole decimal integer; returns 0 and sets *out, or -1 on garbage/overflow. */
int ev_parse_ll(const char *s, long long *out);

#endif
