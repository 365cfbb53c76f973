/* A tiny test harness shared by the C tests: checks that count failures, and process helpers to run
 * `norman receive` / `norman serve` and read their first lines. POSIX only. */
#ifndef NORMAN_TEST_HARNESS_H
#define NORMAN_TEST_HARNESS_H

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "norman.h"

static int g_failures = 0;
static int g_checks = 0;

#define CHECK(cond)                                                                  \
    do {                                                                             \
        g_checks++;                                                                  \
        if (!(cond)) {                                                               \
            g_failures++;                                                            \
            fprintf(stderr, "%s:%d: CHECK failed: %s\n", __FILE__, __LINE__, #cond); \
        }                                                                            \
    } while (0)

#define CHECK_RC(call, expected)                                                                   \
    do {                                                                                           \
        norman_result rc_ = (call);                                                                \
        g_checks++;                                                                                \
        if (rc_ != (expected)) {                                                                   \
            const char *why_ = norman_last_error();                                                \
            g_failures++;                                                                          \
            fprintf(stderr, "%s:%d: %s returned %d (%s), expected %s; last error: %s\n", __FILE__, \
                    __LINE__, #call, (int)rc_, norman_result_str(rc_), #expected,                  \
                    why_ ? why_ : "(none)");                                                       \
        }                                                                                          \
    } while (0)

static inline const char *norman_bin(void) {
    const char *bin = getenv("NORMAN_BIN");
    return bin ? bin : "norman";
}

/* A child process with its stdout (and optionally stderr) on pipes. */
typedef struct child {
    pid_t pid;
    FILE *out;
    FILE *err;
} child;

static inline int spawn(child *c, char *const argv[]) {
    int out[2], err[2];
    if (pipe(out) != 0 || pipe(err) != 0) return -1;
    pid_t pid = fork();
    if (pid < 0) return -1;
    if (pid == 0) {
        dup2(out[1], 1);
        dup2(err[1], 2);
        close(out[0]);
        close(err[0]);
        close(out[1]);
        close(err[1]);
        execvp(argv[0], argv);
        _exit(127);
    }
    close(out[1]);
    close(err[1]);
    c->pid = pid;
    c->out = fdopen(out[0], "r");
    c->err = fdopen(err[0], "r");
    return 0;
}

/* Waits for the child; returns its exit status (128+signal when killed). */
static inline int child_wait(child *c) {
    int status = 0;
    while (waitpid(c->pid, &status, 0) < 0 && errno == EINTR) {
    }
    if (c->out) fclose(c->out);
    if (c->err) fclose(c->err);
    c->out = c->err = NULL;
    if (WIFEXITED(status)) return WEXITSTATUS(status);
    if (WIFSIGNALED(status)) return 128 + WTERMSIG(status);
    return -1;
}

/* Writes `content` to `path`; returns 0 on success. */
static inline int write_file(const char *path, const void *content, size_t len) {
    FILE *f = fopen(path, "wb");
    if (!f) return -1;
    size_t n = fwrite(content, 1, len, f);
    return fclose(f) == 0 && n == len ? 0 : -1;
}

/* Runs `norman checksum PATH` and returns its 16 hex digits in `hex` (17 bytes). */
static inline int norman_checksum_of(const char *path, char hex[17]) {
    child c;
    char *argv[] = {(char *)norman_bin(), (char *)"checksum", (char *)path, NULL};
    if (spawn(&c, argv) != 0) return -1;
    char line[512] = {0};
    int ok = fgets(line, sizeof line, c.out) != NULL;
    int status = child_wait(&c);
    if (!ok || status != 0 || strlen(line) < 16) return -1;
    memcpy(hex, line, 16);
    hex[16] = 0;
    return 0;
}

/* Deterministic test content. */
static inline void fill_pattern(unsigned char *buf, size_t len, unsigned seed) {
    unsigned x = seed * 2654435761u + 1;
    for (size_t i = 0; i < len; i++) {
        x = x * 1103515245u + 12345u;
        buf[i] = (unsigned char)(x >> 16);
    }
}

/* Copies the JSON string value that follows the first `key` (e.g. "\"access_token\":\"") after
 * `from` in body. Test-grade: the server writes compact JSON. */
static inline int json_after(const char *body, const char *from, const char *key, char *out, size_t cap) {
    const char *at = from ? strstr(body, from) : body;
    if (!at) return -1;
    at = strstr(at, key);
    if (!at) return -1;
    at += strlen(key);
    size_t n = 0;
    while (at[n] && at[n] != '"' && n + 1 < cap) n++;
    memcpy(out, at, n);
    out[n] = 0;
    return n > 0 ? 0 : -1;
}

/* Monotonic seconds (needs _POSIX_C_SOURCE >= 199309L before the includes, as every test defines). */
static inline double now_seconds(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static inline int finish_tests(const char *name) {
    printf("%s: %d checks, %d failed\n", name, g_checks, g_failures);
    return g_failures == 0 ? 0 : 1;
}

#endif
