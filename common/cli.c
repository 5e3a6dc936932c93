/* cli.c — option-table parser and --help generator (see cli.h). */
#include "common/cli.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int ev_parse_ll(const char *s, long long *out) {
    if (!s || !*s) return -1;
    char *end = NULL;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    if (errno != 0 || end == s || *end != '\0') return -1;
    *out = v;
    return 0;
}

void ev_kv_list_clear(ev_kv_list_t *kv) {
    for (int i = 0; i < kv->n; i++) {
        free(kv->key[i]);
        free(kv->val[i]);
        kv->key[i] = kv->val[i] = NULL;
    }
    kv->n = 0;
}

static int kv_add(ev_kv_list_t *kv, const char *text, char *errstr, size_t errstr_size) {
    const char *eq = strchr(text, '=');
    if (!eq || eq == text) {
        snprintf(errstr, errstr_size, "expected key=value, got '%s'", text);
        return -1;
    }
    if (kv->n >= EV_KV_MAX) {
        snprintf(errstr, errstr_size, "too many key=value options (at most %d)", EV_KV_MAX);
        return -1;
    }
    kv->key[kv->n] = strndup(text, (size_t)(eq - text));
    kv->val[kv->n] = strdup(eq + 1);
    if (!kv->key[kv->n] || !kv->val[kv->n]) {
        free(kv->key[kv->n]);
        free(kv->val[kv->n]);
        snprintf(errstr, errstr_size, "out of memory");
        return -1;
    }
    kv->n++;
    return 0;
}

/* Stores value into the option's destination; source names where it came from. */
static int opt_set(const ev_opt_t *opt, const char *value, const char *source, char *errstr,
                   size_t errstr_size) {
    switch (opt->type) {
    case EV_OPT_STR:
        *(const char **)opt->dest = value;
        return 0;
    case EV_OPT_INT: {
        long long v;
        if (ev_parse_ll(value, &v) != 0) {
            snprintf(errstr, errstr_size, "%s --%s: '%s' is not a whole number", source,
                     opt->name, value);
            return -1;
        }
        if (opt->min < opt->max && (v < opt->min || v > opt->max)) {
            snprintf(errstr, errstr_size, "%s --%s: %lld is outside %lld..%lld", source,
                     opt->name, v, opt->min, opt->max);
            return -1;
        }
        *(long long *)opt->dest = v;
        return 0;
    }
    case EV_OPT_DOUBLE: {
        char *end = NULL;
        errno = 0;
        double v = strtod(value, &end);
        if (errno != 0 || end == value || *end != '\0') {
            snprintf(errstr, errstr_size, "%s --%s: '%s' is not a number", source, opt->name,
                     value);
            return -1;
        }
        *(double *)opt->dest = v;
        return 0;
    }
    case EV_OPT_BOOL:
        if (!value || strcmp(value, "true") == 0 || strcmp(value, "1") == 0 ||
            strcmp(value, "yes") == 0) {
            *(bool *)opt->dest = true;
        } else if (strcmp(value, "false") == 0 || strcmp(value, "0") == 0 ||
                   strcmp(value, "no") == 0) {
            *(bool *)opt->dest = false;
        } else {
            snprintf(errstr, errstr_size, "%s --%s: '%s' is not true or false", source,
                     opt->name, value);
            return -1;
        }
        return 0;
    case EV_OPT_KV:
        return kv_add((ev_kv_list_t *)opt->dest, value, errstr, errstr_size);
    }
    return -1;
}

void ev_cli_help(const ev_cli_t *cli) {
    printf("Usage: %s %s\n\n%s\n\nOptions:\n", cli->command, cli->usage ? cli->usage : "[OPTIONS]",
           cli->summary);
    for (const ev_opt_t *o = cli->opts; o && o->name; o++) {
        char left[96];
        const char *mv = o->type == EV_OPT_BOOL ? "" : (o->metavar ? o->metavar : "VALUE");
        if (o->short_name)
            snprintf(left, sizeof(left), "-%c, --%s%s%s", o->short_name, o->name, *mv ? " " : "",
                     mv);
        else
            snprintf(left, sizeof(left), "    --%s%s%s", o->name, *mv ? " " : "", mv);
        printf("  %-30s %s", left, o->help ? o->help : "");
        if (o->def && o->type != EV_OPT_KV) printf(" (default: %s)", *o->def ? o->def : "\"\"");
        if (o->env) printf(" [env %s]", o->env);
        printf("\n");
    }
    printf("  %-30s %s\n", "-h, --help", "show this help and exit");
    if (cli->epilog) printf("\n%s\n", cli->epilog);
}

static const ev_opt_t *find_long(const ev_opt_t *opts, const char *name, size_t len) {
    for (const ev_opt_t *o = opts; o && o->name; o++)
        if (strlen(o->name) == len && strncmp(o->name, name, len) == 0) return o;
    return NULL;
}

static const ev_opt_t *find_short(const ev_opt_t *opts, char c) {
    for (const ev_opt_t *o = opts; o && o->name; o++)
        if (o->short_name == c) return o;
    return NULL;
}

int ev_cli_parse(const ev_cli_t *cli, int argc, char **argv, int *first_positional,
                 char *errstr, size_t errstr_size) {
    /* Defaults, then environment. */
    for (const ev_opt_t *o = cli->opts; o && o->name; o++) {
        if (o->def && o->type != EV_OPT_KV && opt_set(o, o->def, "default", errstr, errstr_size))
            return -1;
        const char *env = o->env ? getenv(o->env) : NULL;
        if (env && *env) {
            char src[64];
            snprintf(src, sizeof(src), "environment %s", o->env);
            if (opt_set(o, env, src, errstr, errstr_size)) return -1;
        }
    }

    char **positional = calloc((size_t)argc + 1, sizeof(char *));
    if (!positional) {
        snprintf(errstr, errstr_size, "out of memory");
        return -1;
    }
    int npos = 0, rc = 0;
    bool only_positional = false;
    for (int i = 1; i < argc; i++) {
        char *arg = argv[i];
        if (only_positional || arg[0] != '-' || arg[1] == '\0') {
            positional[npos++] = arg;
            continue;
        }
        if (strcmp(arg, "--") == 0) {
            only_positional = true;
            continue;
        }
        if (strcmp(arg, "-h") == 0 || strcmp(arg, "--help") == 0) {
            ev_cli_help(cli);
            rc = 1;
            goto done;
        }
        const ev_opt_t *opt;
        const char *value = NULL;
        char shown[80];
        if (arg[1] == '-') {
            const char *name = arg + 2;
            const char *eq = strchr(name, '=');
            opt = find_long(cli->opts, name, eq ? (size_t)(eq - name) : strlen(name));
            if (eq) value = eq + 1;
            snprintf(shown, sizeof(shown), "%.*s", eq ? (int)(eq - arg) : (int)strlen(arg), arg);
        } else {
            opt = find_short(cli->opts, arg[1]);
            if (arg[2]) value = arg + 2;
            snprintf(shown, sizeof(shown), "-%c", arg[1]);
        }
        if (!opt) {
            snprintf(errstr, errstr_size, "unknown option %s (see %s --help)", shown,
                     cli->command);
            rc = -1;
            goto done;
        }
        if (!value && opt->type != EV_OPT_BOOL) {
            if (i + 1 >= argc) {
                snprintf(errstr, errstr_size, "option %s needs a value", shown);
                rc = -1;
                goto done;
            }
            value = argv[++i];
        }
        if (opt_set(opt, value, "option", errstr, errstr_size)) {
            rc = -1;
            goto done;
        }
    }
    if (!first_positional && npos) {
        snprintf(errstr, errstr_size, "unexpected argument '%s'", positional[0]);
        rc = -1;
        goto done;
    }
    /* Move the positional arguments to the end, in order. */
    for (int k = 0; k < npos; k++) argv[argc - npos + k] = positional[k];
    if (first_positional) *first_positional = argc - npos;
done:
    free(positional);
    return rc;
}
