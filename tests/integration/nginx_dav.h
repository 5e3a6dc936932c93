/* nginx_dav.h — Debian's nginx as a WebDAV upload target on loopback for the tests:
 * PUT (full paths created) and DELETE under <dir>/root, served on a free port. */
#ifndef TEST_NGINX_DAV_H
#define TEST_NGINX_DAV_H

typedef struct nginx_dav_s {
    int pid;   /* 0 when nginx is not installed (the caller skips its cases) */
    int port;
    char *dir; /* private folder; files land in dir/root/<path> */
} nginx_dav_t;

/* Starts nginx (aborts the test when it is installed and fails to start). */
void nginx_dav_start(nginx_dav_t *n);
void nginx_dav_stop(nginx_dav_t *n);

#endif
