/* The bearer token goes to the configured origin only: routes that would reach another scheme,
 * host or port (absolute URLs in any case, `\\host`, leading blanks, `..` above the base path) are
 * NORMAN_ERROR_INVALID_ARGUMENT, through the blocking and the asynchronous request, and nothing
 * reaches the other listener. A route under the base still reaches it with the token. No backend:
 * two loopback listeners stand for the base and for the other host. */
#define _POSIX_C_SOURCE 200809L
#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdint.h>
#include <sys/socket.h>

#include "harness.h"

#define TOKEN "tok-must-stay-home-0123"

static int listener(int *port) {
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in addr;
    memset(&addr, 0, sizeof addr);
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t alen = sizeof addr;
    if (fd < 0 || bind(fd, (struct sockaddr *)&addr, sizeof addr) != 0 || listen(fd, 64) != 0) return -1;
    getsockname(fd, (struct sockaddr *)&addr, &alen);
    *port = ntohs(addr.sin_port);
    return fd;
}

/* Whether a connection is waiting on fd (the kernel completes handshakes without accept()). */
static int has_connection(int fd) {
    struct pollfd p = {fd, POLLIN, 0};
    return poll(&p, 1, 0) > 0;
}

/* The base: answers one request with 200 {} and keeps what it read. */
typedef struct {
    int fd;
    char seen[4096];
} base_server;

static void *serve_one(void *arg) {
    base_server *s = arg;
    struct pollfd p = {s->fd, POLLIN, 0};
    if (poll(&p, 1, 10000) <= 0) return NULL;
    int c = accept(s->fd, NULL, NULL);
    if (c < 0) return NULL;
    size_t n = 0;
    while (n + 1 < sizeof s->seen && !strstr(s->seen, "\r\n\r\n")) {
        ssize_t r = read(c, s->seen + n, sizeof s->seen - 1 - n);
        if (r <= 0) break;
        n += (size_t)r;
        s->seen[n] = 0;
    }
    const char answer[] = "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 2\r\nconnection: close\r\n\r\n{}";
    if (write(c, answer, sizeof answer - 1) < 0) perror("write");
    close(c);
    return NULL;
}

int main(void) {
    int base_port = 0, other_port = 0;
    base_server base = {listener(&base_port), {0}};
    int other = listener(&other_port);
    CHECK(base.fd >= 0 && other >= 0);

    char base_url[64];
    snprintf(base_url, sizeof base_url, "http://127.0.0.1:%d/v0/", base_port);
    norman_config *config = NULL;
    norman_client *client = NULL;
    CHECK_RC(norman_config_new(&config), NORMAN_OK);
    CHECK_RC(norman_config_set_base_url(config, base_url), NORMAN_OK);
    CHECK_RC(norman_config_set_token(config, TOKEN), NORMAN_OK);
    CHECK_RC(norman_config_set_retries(config, 0), NORMAN_OK);
    CHECK_RC(norman_config_set_timeout_ms(config, 5000), NORMAN_OK);
    CHECK_RC(norman_client_new(config, &client), NORMAN_OK);
    norman_config_free(config);

    const char *forms[] = {"http://%s/steal",   "HTTP://%s/steal",   "https://%s/steal", " http://%s/steal",
                           "\thttp://%s/steal", "ht\ttp://%s/steal", "\\\\%s/steal",     "/\\\\%s/steal",
                           "\\/%s/steal",       " //%s/steal",       "http://x@%s/steal"};
    char other_host[32];
    snprintf(other_host, sizeof other_host, "127.0.0.1:%d", other_port);
    for (size_t i = 0; i < sizeof forms / sizeof forms[0]; i++) {
        char route[128];
        snprintf(route, sizeof route, forms[i], other_host);
        norman_response *response = NULL;
        CHECK_RC(norman_client_request(client, "GET", route, NULL, &response), NORMAN_ERROR_INVALID_ARGUMENT);
        CHECK(response == NULL);
        CHECK(strstr(norman_last_error(), "leaves the base URL") != NULL);
        CHECK(strstr(norman_last_error(), TOKEN) == NULL);
        /* The asynchronous form goes through the same join: its event carries the same error. */
        uint64_t op = 0;
        CHECK_RC(norman_client_request_async(client, "POST", route, "{}", NULL, NULL, NULL, &op), NORMAN_OK);
        norman_event *event = NULL;
        CHECK_RC(norman_client_next_event(client, 5000, &event), NORMAN_OK);
        CHECK(event != NULL && norman_event_result(event) == NORMAN_ERROR_INVALID_ARGUMENT);
        norman_event_free(event);
    }
    const char *parents[] = {"../steal", "%2e%2e/steal", "a/../../steal"};
    for (size_t i = 0; i < sizeof parents / sizeof parents[0]; i++) {
        norman_response *response = NULL;
        CHECK_RC(norman_client_request(client, "GET", parents[i], NULL, &response), NORMAN_ERROR_INVALID_ARGUMENT);
    }
    CHECK(!has_connection(other));
    CHECK(!has_connection(base.fd));

    /* A route under the base reaches it, token included. */
    pthread_t thread;
    CHECK(pthread_create(&thread, NULL, serve_one, &base) == 0);
    norman_response *response = NULL;
    CHECK_RC(norman_client_request(client, "GET", "persist/x", NULL, &response), NORMAN_OK);
    CHECK(response != NULL && norman_response_status(response) == 200);
    norman_response_free(response);
    pthread_join(thread, NULL);
    CHECK(strncmp(base.seen, "GET /v0/persist/x HTTP/1.1\r\n", 28) == 0);
    CHECK(strstr(base.seen, "Bearer " TOKEN) != NULL);
    CHECK(!has_connection(other));

    norman_client_free(client);
    close(base.fd);
    close(other);
    return finish_tests("test_routes");
}
