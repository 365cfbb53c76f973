/* C-level benchmark (scripts/bench-c.sh), through the C API only.
 * `bench WRITE_SIZE MIB`: upload throughput through norman_upload_write with `write_size`-byte
 * writes from memory to `norman receive` on loopback; prints `c <size> <MB/s>`.
 * `bench push BASE_URL WRITE_SIZE MIB`: the same writes on an asset socket `norman serve` allocated,
 * finished and completed with the backend (the upload the Go and Node benchmarks make); `c <size> <MB/s>`.
 * `bench download BASE_URL MIB`: against `norman serve`, signs up, creates a model with a "File"
 * asset, pushes a MIB-sized file, then times full retrieves through norman_download_read into a
 * 1 MiB buffer and through the norman_client_retrieve callback, checking byte count and checksum
 * against the pushed one; prints `download read <MB/s>` and `download callback <MB/s>`. */
#define _POSIX_C_SOURCE 200809L
#include <time.h>

#include "harness.h"

#define KEY "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8="
#define NONCE "ZGVmZ2hpamtsbW5v"
#define HEADER "bm9ybWFuLWMtdGVzdC1oZWFkZXItMDEyMw=="

/* Runs a request; returns its HTTP status (-1 on failure), the body NUL-terminated in `out`. */
static int request(norman_client *client, const char *method, const char *route, const char *json, char *out,
                   size_t cap) {
    norman_response *response = NULL;
    if (norman_client_request(client, method, route, json, &response) != NORMAN_OK) {
        fprintf(stderr, "%s %s: %s\n", method, route, norman_last_error());
        return -1;
    }
    const uint8_t *body = NULL;
    size_t len = 0;
    norman_response_body(response, &body, &len);
    size_t n = len < cap - 1 ? len : cap - 1;
    memcpy(out, body, n);
    out[n] = 0;
    int status = norman_response_status(response);
    norman_response_free(response);
    return status;
}

static norman_client *new_client(const char *base, const char *token) {
    norman_config *config = NULL;
    norman_client *client = NULL;
    norman_config_new(&config);
    norman_config_set_base_url(config, base);
    if (token) norman_config_set_token(config, token);
    norman_config_set_worker_threads(config, 2);
    if (norman_client_new(config, &client) != NORMAN_OK) fprintf(stderr, "client: %s\n", norman_last_error());
    norman_config_free(config);
    return client;
}

static int32_t count_chunk(void *userdata, const uint8_t *data, size_t len) {
    (void)data;
    *(uint64_t *)userdata += len;
    return 0;
}

/* Capacity of the id buffers bench_model fills. */
#define ID_CAP 128

/* Signs up on `norman serve` at `base` and creates a model with a "File" asset: returns a client with the
 * new token (NULL on failure) and fills `account`, `model` and `asset` (ID_CAP bytes each). */
static norman_client *bench_model(const char *base, char *account, char *model, char *asset) {
    static char body[65536];
    char token[512], json[2048];
    norman_client *anon = new_client(base, NULL);
    if (!anon) return NULL;
    int status = request(anon, "PUT", "authenticate/signup/default", NULL, body, sizeof body);
    norman_client_free(anon);
    if (status != 200 || json_after(body, NULL, "\"access_token\":\"", token, sizeof token) != 0 ||
        json_after(body, "\"account\":", "\"id\":\"", account, ID_CAP) != 0) {
        fprintf(stderr, "signup: %d %s\n", status, body);
        return NULL;
    }
    norman_client *client = new_client(base, token);
    if (!client) return NULL;
    snprintf(json, sizeof json,
             "[{\"account_id\":\"%s\",\"version_label\":\"v1\",\"short_description\":\"c bench\","
             "\"name\":\"c-bench\",\"request_type\":\"Post\",\"model_type\":\"Api\","
             "\"hosting_location\":\"External\",\"output_format\":\"Json\",\"long_description\":\"bench\","
             "\"assets\":[{\"account_id\":\"%s\",\"asset_name\":\"File\"}]}]",
             account, account);
    status = request(client, "POST", "persist/models/", json, body, sizeof body);
    if (status != 200 || json_after(body, "\"assets\":[", "\"model_id\":\"", model, ID_CAP) != 0 ||
        json_after(body, "\"assets\":[", "\"id\":\"", asset, ID_CAP) != 0) {
        fprintf(stderr, "create model: %d %s\n", status, body);
        norman_client_free(client);
        return NULL;
    }
    return client;
}

/* Deterministic benchmark content: 4 MiB, reused for any total size. */
#define BENCH_DATA_LEN (4u << 20)
static unsigned char *bench_data(void) {
    unsigned char *data = malloc(BENCH_DATA_LEN);
    for (size_t i = 0; data && i < BENCH_DATA_LEN; i++) data[i] = (unsigned char)(i * 131 % 251);
    return data;
}

/* Writes `total` bytes of `data` (BENCH_DATA_LEN long) in `write_size` pieces; 0 on success. */
static int write_all(norman_upload *upload, const unsigned char *data, size_t write_size, size_t total) {
    size_t sent = 0;
    while (sent < total) {
        size_t at = sent % BENCH_DATA_LEN;
        size_t n = write_size;
        if (n > total - sent) n = total - sent;
        if (n > BENCH_DATA_LEN - at) n = BENCH_DATA_LEN - at;
        if (norman_upload_write(upload, data + at, n) != NORMAN_OK) {
            fprintf(stderr, "write: %s\n", norman_last_error());
            return 1;
        }
        sent += n;
    }
    return 0;
}

/* `bench push BASE_URL WRITE_SIZE MIB`: the upload the Go and Node benchmarks make, through the C API:
 * an asset socket allocated by `norman serve`, writes from memory, finish (which completes the transfer
 * and has the backend check size and checksum). Prints `c <size> <MB/s>`. */
static int bench_push(const char *base, size_t write_size, size_t total) {
    char account[ID_CAP], model[ID_CAP], asset[ID_CAP];
    norman_client *client = bench_model(base, account, model, asset);
    unsigned char *data = bench_data();
    if (!client || !data) return 1;
    norman_target target = {NORMAN_TARGET_ASSET, account, model, NULL, asset};
    norman_upload *upload = NULL;
    double start = now_seconds();
    if (norman_client_upload_begin(client, &target, total, &upload) != NORMAN_OK) {
        fprintf(stderr, "upload_begin: %s\n", norman_last_error());
        return 1;
    }
    uint64_t sum = 0;
    if (write_all(upload, data, write_size, total) != 0) return 1;
    if (norman_upload_finish(upload, &sum) != NORMAN_OK) {
        fprintf(stderr, "finish: %s\n", norman_last_error());
        return 1;
    }
    double secs = now_seconds() - start;
    norman_upload_free(upload);
    norman_client_free(client);
    free(data);
    printf("c %zu %.0f\n", write_size, (double)total / secs / 1e6);
    return 0;
}

static int bench_download(const char *base, size_t total) {
    const char *dir = getenv("NORMAN_TEST_DIR") ? getenv("NORMAN_TEST_DIR") : "/tmp";
    char account[ID_CAP], model[ID_CAP], asset[ID_CAP], path[512];
    norman_client *client = bench_model(base, account, model, asset);
    if (!client) return 1;

    /* The file to push: deterministic content, written in 4 MiB pieces. */
    snprintf(path, sizeof path, "%s/bench-download-%d.bin", dir, (int)getpid());
    size_t piece = BENCH_DATA_LEN;
    unsigned char *data = bench_data();
    FILE *f = fopen(path, "wb");
    if (!f) {
        fprintf(stderr, "cannot write %s\n", path);
        return 1;
    }
    for (size_t done = 0; done < total; done += piece)
        fwrite(data, 1, total - done < piece ? total - done : piece, f);
    if (fclose(f) != 0) return 1;
    free(data);
    norman_target target = {NORMAN_TARGET_ASSET, account, model, NULL, asset};
    uint64_t pushed = 0;
    if (norman_client_push_file(client, &target, path, NULL, NULL, &pushed) != NORMAN_OK) {
        fprintf(stderr, "push: %s\n", norman_last_error());
        return 1;
    }
    remove(path);

    /* Pull reads into a 1 MiB buffer; the download hashes what it hands out. */
    size_t cap = 1u << 20;
    unsigned char *buf = malloc(cap);
    norman_download *download = NULL;
    double start = now_seconds();
    if (norman_client_retrieve_open(client, &target, &download) != NORMAN_OK) {
        fprintf(stderr, "retrieve_open: %s\n", norman_last_error());
        return 1;
    }
    uint64_t bytes = 0, sum = 0;
    for (;;) {
        size_t n = 0;
        if (norman_download_read(download, buf, cap, &n) != NORMAN_OK) {
            fprintf(stderr, "read: %s\n", norman_last_error());
            return 1;
        }
        if (n == 0) break;
        bytes += n;
    }
    double read_secs = now_seconds() - start;
    norman_download_checksum(download, &sum);
    norman_download_free(download);
    free(buf);
    if (bytes != total || sum != pushed) {
        fprintf(stderr, "download read: %llu bytes, checksum %016llx, pushed %zu bytes %016llx\n",
                (unsigned long long)bytes, (unsigned long long)sum, total, (unsigned long long)pushed);
        return 1;
    }

    /* Borrowed chunks through the callback. */
    uint64_t chunk_bytes = 0, chunk_sum = 0;
    start = now_seconds();
    if (norman_client_retrieve(client, &target, count_chunk, &chunk_bytes, &chunk_sum) != NORMAN_OK) {
        fprintf(stderr, "retrieve: %s\n", norman_last_error());
        return 1;
    }
    double callback_secs = now_seconds() - start;
    norman_client_free(client);
    if (chunk_bytes != total || chunk_sum != pushed) {
        fprintf(stderr, "download callback: %llu bytes, checksum %016llx, pushed %zu bytes %016llx\n",
                (unsigned long long)chunk_bytes, (unsigned long long)chunk_sum, total, (unsigned long long)pushed);
        return 1;
    }
    printf("download read %.0f\n", (double)total / read_secs / 1e6);
    printf("download callback %.0f\n", (double)total / callback_secs / 1e6);
    return 0;
}

int main(int argc, char **argv) {
    (void)g_failures;
    (void)g_checks;
    if (argc > 1 && strcmp(argv[1], "push") == 0) {
        if (argc < 4) {
            fprintf(stderr, "usage: bench push BASE_URL WRITE_SIZE [MIB]\n");
            return 2;
        }
        return bench_push(argv[2], (size_t)atol(argv[3]), (argc > 4 ? (size_t)atol(argv[4]) : 256) << 20);
    }
    if (argc > 1 && strcmp(argv[1], "download") == 0) {
        if (argc < 3) {
            fprintf(stderr, "usage: bench download BASE_URL [MIB]\n");
            return 2;
        }
        return bench_download(argv[2], (argc > 3 ? (size_t)atol(argv[3]) : 256) << 20);
    }
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

    unsigned char *data = bench_data();

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
    double start = now_seconds();
    if (norman_upload_open(client, &p, &upload) != NORMAN_OK) {
        fprintf(stderr, "open: %s\n", norman_last_error());
        return 1;
    }
    if (!data || write_all(upload, data, write_size, total) != 0) return 1;
    uint64_t sum = 0;
    if (norman_upload_finish(upload, &sum) != NORMAN_OK) {
        fprintf(stderr, "finish: %s\n", norman_last_error());
        return 1;
    }
    double secs = now_seconds() - start;
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
