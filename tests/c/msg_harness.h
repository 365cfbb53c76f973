/* Helpers of the messaging C tests and examples: clients, `norman msg serve` and netaio peers as
 * child processes, raw loopback sockets. POSIX only; include after harness.h. */
#ifndef NORMAN_TEST_MSG_HARNESS_H
#define NORMAN_TEST_MSG_HARNESS_H

#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <sys/socket.h>

#include "harness.h"

static inline norman_client *msg_client(void) {
    norman_config *config = NULL;
    norman_client *client = NULL;
    CHECK_RC(norman_config_new(&config), NORMAN_OK);
    CHECK_RC(norman_config_set_worker_threads(config, 2), NORMAN_OK);
    CHECK_RC(norman_client_new(config, &client), NORMAN_OK);
    norman_config_free(config);
    return client;
}

/* Reads lines from `c` until one contains `marker`; returns the number after its last ':' or ' '. */
static inline int child_port(child *c, const char *marker) {
    char line[512];
    while (fgets(line, sizeof line, c->out)) {
        if (!strstr(line, marker)) continue;
        char *end = line + strlen(line);
        while (end > line && (end[-1] == '\n' || end[-1] == '\r')) *--end = 0;
        char *p = end;
        while (p > line && p[-1] >= '0' && p[-1] <= '9') p--;
        return atoi(p);
    }
    return -1;
}

/* `norman msg serve --listen 127.0.0.1:0 ARGS...`; returns its port (-1 on failure). */
static inline int start_msg_serve(child *c, char *const extra[]) {
    char *argv[32] = {(char *)norman_bin(), (char *)"msg", (char *)"serve", (char *)"--listen",
                      (char *)"127.0.0.1:0"};
    int n = 5;
    for (int i = 0; extra && extra[i] && n < 31; i++) argv[n++] = extra[i];
    argv[n] = NULL;
    if (spawn(c, argv) != 0) return -1;
    return child_port(c, "listening on");
}

/* The netaio peer script of the interop tests, run with the test venv's Python; -1 when there is
 * no venv (the caller skips, or fails under NORMAN_REQUIRE_PYTHON). */
static inline int start_netaio(child *c, char *const extra[]) {
    const char *py = getenv("NORMAN_TEST_PYTHON");
    if (!py || !*py) return -1;
    const char *script = getenv("NORMAN_NETAIO_PEER");
    char *argv[32] = {(char *)py, (char *)(script ? script : "cli/tests/py/netaio_peer.py")};
    int n = 2;
    for (int i = 0; extra && extra[i] && n < 31; i++) argv[n++] = extra[i];
    argv[n] = NULL;
    if (spawn(c, argv) != 0) return -1;
    return child_port(c, "listening");
}

static inline void stop_child(child *c, int sig) {
    kill(c->pid, sig);
    child_wait(c);
}

static inline int python_required(void) {
    const char *r = getenv("NORMAN_REQUIRE_PYTHON");
    return r && *r && strcmp(r, "0") != 0;
}

static inline void addr_of(char *buf, size_t cap, int port) { snprintf(buf, cap, "127.0.0.1:%d", port); }

/* A listening TCP socket on 127.0.0.1 (port 0: any); returns the fd and writes the port. */
static inline int raw_listen(int *port) {
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a;
    memset(&a, 0, sizeof a);
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof a;
    if (fd < 0 || bind(fd, (struct sockaddr *)&a, sizeof a) != 0 || listen(fd, 8) != 0 ||
        getsockname(fd, (struct sockaddr *)&a, &len) != 0)
        return -1;
    *port = ntohs(a.sin_port);
    return fd;
}

/* Checks a message's type, uri and content. */
static inline int msg_is(const norman_msg *m, uint8_t type, const char *uri, const void *content, size_t len) {
    const uint8_t *u = NULL, *c = NULL;
    size_t ul = 0, cl = 0;
    if (!m || norman_msg_type_of(m) != type) return 0;
    if (norman_msg_uri(m, &u, &ul) != NORMAN_OK || norman_msg_content(m, &c, &cl) != NORMAN_OK) return 0;
    if (uri && (ul != strlen(uri) || memcmp(u, uri, ul) != 0)) return 0;
    return content == NULL || (cl == len && (len == 0 || memcmp(c, content, len) == 0));
}

static inline void sleep_ms(long ms) {
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

#define U(s) (const uint8_t *)(s), strlen(s)

#endif
