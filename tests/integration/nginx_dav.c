/* nginx_dav.c — see nginx_dav.h. */
#include "tests/integration/nginx_dav.h"

#include <arpa/inet.h>
#include <check.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "tests/testlib.h"

#define NGINX_BIN "/usr/sbin/nginx"

static int port_open(int port) {
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port),
                            .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    int ok = connect(fd, (struct sockaddr *)&a, sizeof(a)) == 0;
    close(fd);
    return ok;
}

void nginx_dav_start(nginx_dav_t *n) {
    memset(n, 0, sizeof(*n));
    if (access(NGINX_BIN, X_OK) != 0) {
        printf("%s not installed; skipping the nginx WebDAV cases\n", NGINX_BIN);
        return;
    }
    n->dir = strdup("/tmp/evdav.XXXXXX");
    ck_assert(n->dir && mkdtemp(n->dir) != NULL);
    chmod(n->dir, 0755); /* workers may run as nobody */
    n->port = tl_free_port();
    char path[600];
    const char *subdirs[] = {"root", "body", "proxy", "fastcgi", "uwsgi", "scgi", "logs"};
    for (size_t i = 0; i < sizeof(subdirs) / sizeof(*subdirs); i++) {
        snprintf(path, sizeof(path), "%s/%s", n->dir, subdirs[i]);
        ck_assert(mkdir(path, 0777) == 0);
        chmod(path, 0777);
    }
    snprintf(path, sizeof(path), "%s/nginx.conf", n->dir);
    FILE *f = fopen(path, "w");
    ck_assert(f != NULL);
    const char *d = n->dir;
    fprintf(f, "daemon off;\nworker_processes 1;\npid %s/nginx.pid;\n", d);
    fprintf(f, "error_log %s/logs/error.log warn;\nevents { worker_connections 64; }\n", d);
    fprintf(f, "http {\n  access_log off;\n  client_body_temp_path %s/body;\n", d);
    fprintf(f, "  proxy_temp_path %s/proxy;\n  fastcgi_temp_path %s/fastcgi;\n", d, d);
    fprintf(f, "  uwsgi_temp_path %s/uwsgi;\n  scgi_temp_path %s/scgi;\n", d, d);
    fprintf(f, "  server {\n    listen 127.0.0.1:%d;\n    client_max_body_size 0;\n", n->port);
    fprintf(f, "    location / {\n      root %s/root;\n      dav_methods PUT DELETE;\n", d);
    fprintf(f, "      create_full_put_path on;\n      dav_access user:rw group:r all:r;\n");
    fprintf(f, "    }\n  }\n}\n");
    ck_assert(fclose(f) == 0);
    char errlog[600];
    snprintf(errlog, sizeof(errlog), "%s/logs/error.log", n->dir);
    pid_t pid = fork();
    ck_assert(pid >= 0);
    if (pid == 0) {
        execl(NGINX_BIN, "nginx", "-p", n->dir, "-e", errlog, "-c", path, (char *)NULL);
        _exit(127);
    }
    n->pid = (int)pid;
    for (int i = 0; i < 100 && !port_open(n->port); i++) usleep(50000);
    ck_assert_msg(port_open(n->port), "nginx did not start (see %s)", errlog);
}

void nginx_dav_stop(nginx_dav_t *n) {
    if (n->pid > 0) {
        kill(n->pid, SIGTERM);
        waitpid(n->pid, NULL, 0);
        n->pid = 0;
    }
    if (n->dir) {
        char cmd[700];
        snprintf(cmd, sizeof(cmd), "rm -rf '%s'", n->dir);
        if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", n->dir);
        free(n->dir);
        n->dir = NULL;
    }
}
