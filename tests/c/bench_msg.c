/* The C part of the messaging benchmark (scripts/bench-msg-bindings.sh): against one
 * `norman msg serve`, sequential 1 KiB echo requests (norman_msg_conn_request), then pipelined
 * one-way 1 KiB messages (norman_msg_conn_send of NOTIFY_URI, which the broker takes without an
 * answer) closed by one request: when it is answered, all were processed. Prints one line:
 *
 *   MSGBENCH lang=c seq_req_per_s=<float> pipelined_msg_per_s=<float>
 *
 * Usage: bench_msg [HOST:PORT] (else NORMAN_MSG_ADDR). NORMAN_BENCH_SEQ (or NORMAN_BENCH_REQUESTS)
 * and NORMAN_BENCH_PIPELINED set the counts (20000 and 200000). Numbers, never pass/fail. */
#define _POSIX_C_SOURCE 200809L
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "norman.h"

#define TRY(call)                                                                                 \
    do {                                                                                          \
        norman_result rc_ = (call);                                                               \
        if (rc_ != NORMAN_OK) {                                                                   \
            fprintf(stderr, "%s: %s (%s)\n", #call, norman_result_str(rc_), norman_last_error()); \
            exit(1);                                                                              \
        }                                                                                         \
    } while (0)

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static long count(const char *name, const char *alt, long def) {
    const char *v = getenv(name);
    if (!v && alt) v = getenv(alt);
    long n = v ? strtol(v, NULL, 10) : def;
    return n > 0 ? n : def;
}

static void request(norman_msg_conn *conn, const uint8_t *payload, size_t len) {
    norman_msg *reply = NULL;
    const uint8_t *content;
    size_t n;
    TRY(norman_msg_conn_request(conn, NORMAN_MSG_REQUEST_URI, (const uint8_t *)"echo", 4, payload, len, NULL, 120000,
                                &reply));
    TRY(norman_msg_content(reply, &content, &n));
    if (n != len || memcmp(content, payload, len) != 0) {
        fprintf(stderr, "the echo differs from the request\n");
        exit(1);
    }
    norman_msg_free(reply);
}

int main(int argc, char **argv) {
    const char *addr = argc > 1 ? argv[1] : getenv("NORMAN_MSG_ADDR");
    if (!addr) {
        fprintf(stderr, "usage: bench_msg HOST:PORT (or NORMAN_MSG_ADDR)\n");
        return 2;
    }
    long seq = count("NORMAN_BENCH_SEQ", "NORMAN_BENCH_REQUESTS", 20000);
    long pipelined = count("NORMAN_BENCH_PIPELINED", NULL, 200000);
    norman_config *config;
    norman_client *client;
    norman_msg_conn *conn;
    TRY(norman_config_new(&config));
    TRY(norman_client_new(config, &client));
    norman_config_free(config);
    TRY(norman_msg_connect(client, addr, NULL, 5000, &conn));
    uint8_t payload[1024];
    for (size_t i = 0; i < sizeof payload; i++) payload[i] = (uint8_t)(i * 7);

    for (long i = 0; i < seq / 20 + 1; i++) request(conn, payload, sizeof payload); /* warm-up */
    double t = now();
    for (long i = 0; i < seq; i++) request(conn, payload, sizeof payload);
    double seq_rate = (double)seq / (now() - t);

    t = now();
    for (long i = 0; i < pipelined; i++)
        TRY(norman_msg_conn_send(conn, NORMAN_MSG_NOTIFY_URI, (const uint8_t *)"bench", 5, payload, sizeof payload,
                                 NULL));
    request(conn, payload, sizeof payload); /* barrier */
    double piped_rate = (double)pipelined / (now() - t);

    printf("MSGBENCH lang=c seq_req_per_s=%.1f pipelined_msg_per_s=%.1f\n", seq_rate, piped_rate);
    norman_msg_conn_free(conn);
    norman_client_free(client);
    return 0;
}
