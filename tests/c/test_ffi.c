/* C tests of libnorman that need no backend: versions, result codes, the hasher, configuration and
 * every bad input, the streaming upload against `norman receive` (several chunkings, abort, dead
 * host, receiver killed mid-upload, concurrent uploads from C threads), asynchronous operations
 * through callbacks and next_event, cancellation, logs. Run under AddressSanitizer by
 * scripts/test-c.sh. */
#define _POSIX_C_SOURCE 200809L
#include <pthread.h>
#include <stdint.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <time.h>

#include "harness.h"

#define KEY "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8="
#define NONCE "ZGVmZ2hpamtsbW5v"
#define HEADER "bm9ybWFuLWMtdGVzdC1oZWFkZXItMDEyMw=="

static char g_dir[256];

static norman_client *new_client(const char *base_url, uint64_t timeout_ms) {
    norman_config *config = NULL;
    norman_client *client = NULL;
    CHECK_RC(norman_config_new(&config), NORMAN_OK);
    CHECK_RC(norman_config_set_base_url(config, base_url), NORMAN_OK);
    CHECK_RC(norman_config_set_timeout_ms(config, timeout_ms), NORMAN_OK);
    CHECK_RC(norman_config_set_retries(config, 0), NORMAN_OK);
    CHECK_RC(norman_config_set_worker_threads(config, 2), NORMAN_OK);
    CHECK_RC(norman_client_new(config, &client), NORMAN_OK);
    norman_config_free(config);
    return client;
}

/* ---------- a receiver process for one upload ---------- */

typedef struct receiver {
    child proc;
    int port;
    char out_path[300];
} receiver;

static int receiver_start(receiver *r, const char *name) {
    char pairing_path[300];
    snprintf(pairing_path, sizeof pairing_path, "%s/%s.pairing.json", g_dir, name);
    snprintf(r->out_path, sizeof r->out_path, "%s/%s.received", g_dir, name);
    const char *json = "{\"pairing_id\":\"p\",\"host\":\"127.0.0.1\",\"port\":1,\"encryption_key\":\"" KEY
                       "\",\"nonce\":\"" NONCE "\",\"authentication_header\":\"" HEADER "\"}";
    if (write_file(pairing_path, json, strlen(json)) != 0) return -1;
    char *argv[] = {(char *)norman_bin(), (char *)"receive", (char *)"--pairing", pairing_path,
                    (char *)"--listen", (char *)"127.0.0.1:0", (char *)"--out", r->out_path,
                    (char *)"--timeout", (char *)"20", NULL};
    if (spawn(&r->proc, argv) != 0) return -1;
    char line[256];
    if (!fgets(line, sizeof line, r->proc.err)) return -1;
    const char *colon = strrchr(line, ':');
    r->port = colon ? atoi(colon + 1) : 0;
    return r->port > 0 ? 0 : -1;
}

/* Waits for the receiver; on success fills its summary "<bytes> <hex>". Returns its exit status. */
static int receiver_finish(receiver *r, unsigned long long *bytes, char hex[17]) {
    char line[256] = {0};
    int got = fgets(line, sizeof line, r->proc.out) != NULL;
    int status = child_wait(&r->proc);
    if (got && bytes && hex) {
        char h[64] = {0};
        if (sscanf(line, "%llu %16s", bytes, h) == 2) memcpy(hex, h, 17);
    }
    return status;
}

static norman_pairing pairing_for(int port) {
    norman_pairing p;
    p.pairing_id = "p";
    p.host = "127.0.0.1";
    p.port = port;
    p.encryption_key = KEY;
    p.nonce = NONCE;
    p.authentication_header = HEADER;
    return p;
}

/* ---------- tests ---------- */

static void test_versions_and_codes(void) {
    CHECK(strcmp(norman_version(), NORMAN_VERSION) == 0);
    CHECK(norman_abi_version() == NORMAN_ABI_VERSION);
    CHECK(strncmp(norman_result_str(NORMAN_ERROR_CONNECT), "NORMAN_ERROR_CONNECT", 20) == 0);
    CHECK(strncmp(norman_result_str(NORMAN_OK), "NORMAN_OK", 9) == 0);
    CHECK(strcmp(norman_result_str(12345), "unknown norman_result") == 0);
    CHECK(strcmp(norman_result_str(-1), "unknown norman_result") == 0);
    CHECK(NORMAN_ERROR_HTTP_STATUS == 100 && NORMAN_ERROR_CONNECT == 200 && NORMAN_ERROR_PANIC == 900);
}

static void test_hasher(void) {
    uint64_t digest = 0;
    char hex[NORMAN_CHECKSUM_HEX_LEN];
    CHECK_RC(norman_checksum(NULL, 0, &digest), NORMAN_OK);
    CHECK_RC(norman_checksum_to_hex(digest, hex, sizeof hex), NORMAN_OK);
    CHECK(strcmp(hex, "2d06800538d394c2") == 0);
    CHECK_RC(norman_checksum((const uint8_t *)"abc", 3, &digest), NORMAN_OK);
    CHECK(digest == 0x78af5f94892f3950ull);
    CHECK_RC(norman_checksum(NULL, 3, &digest), NORMAN_ERROR_NULL_ARGUMENT);
    CHECK_RC(norman_checksum((const uint8_t *)"abc", 3, NULL), NORMAN_ERROR_NULL_ARGUMENT);
    CHECK_RC(norman_checksum_to_hex(digest, hex, 16), NORMAN_ERROR_BUFFER_TOO_SMALL);
    CHECK_RC(norman_checksum_to_hex(digest, NULL, 17), NORMAN_ERROR_NULL_ARGUMENT);
    CHECK_RC(norman_checksum_to_hex(digest, hex, 0), NORMAN_ERROR_BUFFER_TOO_SMALL);
    uint64_t parsed = 0;
    CHECK_RC(norman_checksum_from_hex("78AF5F94892F3950", &parsed), NORMAN_OK);
    CHECK(parsed == digest);
    CHECK_RC(norman_checksum_from_hex("78af5f94892f395", &parsed), NORMAN_ERROR_INVALID_ARGUMENT);
    CHECK_RC(norman_checksum_from_hex("\xff\xfe", &parsed), NORMAN_ERROR_INVALID_UTF8);

    /* Streaming over many chunkings equals one-shot. */
    static unsigned char data[100000];
    fill_pattern(data, sizeof data, 7);
    uint64_t whole = 0;
    CHECK_RC(norman_checksum(data, sizeof data, &whole), NORMAN_OK);
    size_t steps[] = {1, 7, 4096, 65536, sizeof data};
    for (size_t s = 0; s < sizeof steps / sizeof steps[0]; s++) {
        norman_hasher *h = NULL;
        CHECK_RC(norman_hasher_new(&h), NORMAN_OK);
        for (size_t off = 0; off < sizeof data; off += steps[s]) {
            size_t n = sizeof data - off < steps[s] ? sizeof data - off : steps[s];
            CHECK_RC(norman_hasher_update(h, data + off, n), NORMAN_OK);
        }
        CHECK_RC(norman_hasher_update(h, NULL, 0), NORMAN_OK);
        uint64_t d = 0;
        CHECK_RC(norman_hasher_digest(h, &d), NORMAN_OK);
        CHECK(d == whole);
        norman_hasher_free(h);
    }
    CHECK_RC(norman_hasher_new(NULL), NORMAN_ERROR_NULL_ARGUMENT);
    CHECK_RC(norman_hasher_update(NULL, data, 1), NORMAN_ERROR_NULL_ARGUMENT);
    CHECK_RC(norman_hasher_digest(NULL, &digest), NORMAN_ERROR_NULL_ARGUMENT);
    norman_hasher_free(NULL);
}

static void test_config_and_null_handles(void) {
    norman_config *config = NULL;
    norman_client *client = NULL;
    CHECK_RC(norman_config_new(NULL), NORMAN_ERROR_NULL_ARGUMENT);
    CHECK_RC(norman_config_new(&config), NORMAN_OK);
    CHECK_RC(norman_config_set_base_url(NULL, "http://x/v0"), NORMAN_ERROR_NULL_ARGUMENT);
    CHECK_RC(norman_config_set_base_url(config, NULL), NORMAN_ERROR_NULL_ARGUMENT);
    CHECK_RC(norman_config_set_base_url(config, "http://\xc3\x28/v0"), NORMAN_ERROR_INVALID_UTF8);
    CHECK_RC(norman_config_set_timeout_ms(config, 0), NORMAN_ERROR_INVALID_CONFIG);
    CHECK(norman_last_error() != NULL && strstr(norman_last_error(), "timeout") != NULL);
    CHECK_RC(norman_config_set_token(config, "tok-secret-value"), NORMAN_OK);
    CHECK_RC(norman_config_set_token(config, NULL), NORMAN_OK);

    /* A base URL that is no URL still makes a client (uploads on pairings work), whose HTTP calls
     * say INVALID_CONFIG; other invalid configurations are refused when the client is made. */
    CHECK_RC(norman_config_set_base_url(config, "not a url"), NORMAN_OK);
    CHECK_RC(norman_client_new(config, &client), NORMAN_OK);
    norman_response *early = NULL;
    CHECK_RC(norman_client_request(client, "GET", "x", NULL, &early), NORMAN_ERROR_INVALID_CONFIG);
    CHECK_RC(norman_client_set_token(client, "t"), NORMAN_ERROR_INVALID_CONFIG);
    CHECK(early == NULL);
    norman_client_free(client);
    client = NULL;
    CHECK_RC(norman_config_set_base_url(config, "http://127.0.0.1:1/v0/"), NORMAN_OK);
    CHECK_RC(norman_config_set_chunk_size(config, 0), NORMAN_OK);
    CHECK_RC(norman_client_new(config, &client), NORMAN_ERROR_INVALID_CONFIG);
    CHECK_RC(norman_config_set_chunk_size(config, 65536), NORMAN_OK);
    CHECK_RC(norman_config_set_flush_size(config, 1024), NORMAN_OK);
    CHECK_RC(norman_client_new(config, &client), NORMAN_ERROR_INVALID_CONFIG);
    CHECK_RC(norman_config_set_flush_size(config, 1 << 20), NORMAN_OK);
    CHECK_RC(norman_config_set_cipher_threads(config, 65), NORMAN_ERROR_INVALID_CONFIG);
    CHECK_RC(norman_config_set_cipher_threads(NULL, 2), NORMAN_ERROR_NULL_ARGUMENT);
    CHECK_RC(norman_config_set_cipher_threads(config, 2), NORMAN_OK);
    CHECK_RC(norman_client_new(NULL, &client), NORMAN_ERROR_NULL_ARGUMENT);
    CHECK_RC(norman_client_new(config, NULL), NORMAN_ERROR_NULL_ARGUMENT);
    CHECK_RC(norman_client_new(config, &client), NORMAN_OK);
    norman_config_free(config);
    norman_config_free(NULL);

    /* NULL handles and buffers everywhere. */
    norman_upload *upload = NULL;
    norman_download *download = NULL;
    norman_response *response = NULL;
    norman_event *event = NULL;
    norman_pairing pairing = pairing_for(9);
    norman_target target = {NORMAN_TARGET_ASSET, "a", "m", NULL, "x"};
    uint64_t u = 0;
    size_t n = 0;
    const uint8_t *body = NULL;
    unsigned char buf[16];
    norman_entity_state state;
    CHECK_RC(norman_upload_open(NULL, &pairing, &upload), NORMAN_ERROR_NULL_ARGUMENT);
    CHECK_RC(norman_upload_open(client, NULL, &upload), NORMAN_ERROR_NULL_ARGUMENT);
    CHECK_RC(norman_upload_open(client, &pairing, NULL), NORMAN_ERROR_NULL_ARGUMENT);
    CHECK_RC(norman_upload_open_json(client, NULL, &upload), NORMAN_ERROR_NULL_ARGUMENT);
    CHECK_RC(norman_upload_write(NULL, buf, 1), NORMAN_ERROR_NULL_ARGUMENT);
    CHECK_RC(norman_upload_finish(NULL, &u), NORMAN_ERROR_NULL_ARGUMENT);
    CHECK_RC(norman_upload_abort(NULL), NORMAN_ERROR_NULL_ARGUMENT);
    CHECK(norman_upload_bytes_written(NULL) == 0);
    norman_upload_free(NULL);
    CHECK_RC(norman_client_upload_begin(NULL, &target, 1, &upload), NORMAN_ERROR_NULL_ARGUMENT);
    CHECK_RC(norman_client_upload_begin(client, NULL, 1, &upload), NORMAN_ERROR_NULL_ARGUMENT);
    CHECK_RC(norman_client_push_file(client, &target, NULL, NULL, NULL, &u), NORMAN_ERROR_NULL_ARGUMENT);
    CHECK_RC(norman_client_push_file(NULL, &target, "/nonexistent", NULL, NULL, &u), NORMAN_ERROR_NULL_ARGUMENT);
    CHECK_RC(norman_client_retrieve_open(client, NULL, &download), NORMAN_ERROR_NULL_ARGUMENT);
    CHECK_RC(norman_client_retrieve_open(client, &target, NULL), NORMAN_ERROR_NULL_ARGUMENT);
    CHECK_RC(norman_download_read(NULL, buf, sizeof buf, &n), NORMAN_ERROR_NULL_ARGUMENT);
    CHECK_RC(norman_download_checksum(NULL, &u), NORMAN_ERROR_NULL_ARGUMENT);
    CHECK_RC(norman_download_cancel(NULL), NORMAN_ERROR_NULL_ARGUMENT);
    CHECK(norman_download_content_length(NULL) == UINT64_MAX);
    norman_download_free(NULL);
    CHECK_RC(norman_client_retrieve(client, &target, NULL, NULL, &u), NORMAN_ERROR_NULL_ARGUMENT);
    CHECK_RC(norman_client_request(NULL, "GET", "x", NULL, &response), NORMAN_ERROR_NULL_ARGUMENT);
    CHECK_RC(norman_client_request(client, NULL, "x", NULL, &response), NORMAN_ERROR_NULL_ARGUMENT);
    CHECK_RC(norman_client_request(client, "GET", NULL, NULL, &response), NORMAN_ERROR_NULL_ARGUMENT);
    CHECK_RC(norman_client_request(client, "GET", "x", NULL, NULL), NORMAN_ERROR_NULL_ARGUMENT);
    CHECK_RC(norman_client_request(client, "BREW", "x", NULL, &response), NORMAN_ERROR_INVALID_ARGUMENT);
    CHECK_RC(norman_client_request(client, "POST", "x", "{not json", &response), NORMAN_ERROR_INVALID_JSON);
    CHECK_RC(norman_client_request(client, "POST", "\xff", NULL, &response), NORMAN_ERROR_INVALID_UTF8);
    CHECK_RC(norman_response_body(NULL, &body, &n), NORMAN_ERROR_NULL_ARGUMENT);
    CHECK(norman_response_status(NULL) == 0);
    norman_response_free(NULL);
    CHECK_RC(norman_client_entity_state(client, NULL, &state), NORMAN_ERROR_NULL_ARGUMENT);
    CHECK_RC(norman_client_next_event(NULL, 0, &event), NORMAN_ERROR_NULL_ARGUMENT);
    CHECK_RC(norman_client_next_event(client, 0, NULL), NORMAN_ERROR_NULL_ARGUMENT);
    CHECK_RC(norman_client_next_event(client, 0, &event), NORMAN_NO_EVENT);
    CHECK_RC(norman_client_next_event(client, 20, &event), NORMAN_NO_EVENT);
    CHECK_RC(norman_client_cancel(NULL, 1), NORMAN_ERROR_NULL_ARGUMENT);
    CHECK_RC(norman_client_cancel(client, 424242), NORMAN_ERROR_INVALID_ARGUMENT);
    CHECK_RC(norman_client_set_token(NULL, "t"), NORMAN_ERROR_NULL_ARGUMENT);
    CHECK_RC(norman_event_body(NULL, &body, &n), NORMAN_ERROR_NULL_ARGUMENT);
    CHECK(norman_event_result(NULL) == NORMAN_ERROR_NULL_ARGUMENT);
    CHECK(norman_event_message(NULL) == NULL);
    CHECK(norman_event_op_id(NULL) == 0);
    norman_event_free(NULL);
    /* Bad target kinds and missing ids. */
    norman_target bad = {42, "a", "m", NULL, "x"};
    CHECK_RC(norman_client_upload_begin(client, &bad, 1, &upload), NORMAN_ERROR_INVALID_ARGUMENT);
    norman_target no_invocation = {NORMAN_TARGET_INPUT, "a", "m", NULL, "x"};
    CHECK_RC(norman_client_upload_begin(client, &no_invocation, 1, &upload), NORMAN_ERROR_NULL_ARGUMENT);
    norman_target output = {NORMAN_TARGET_OUTPUT, "a", "m", "i", "x"};
    CHECK_RC(norman_client_upload_begin(client, &output, 1, &upload), NORMAN_ERROR_INVALID_ARGUMENT);
    /* Status flags judged offline. */
    CHECK_RC(norman_entity_state_of_flags("[]", &state), NORMAN_OK);
    CHECK(state == NORMAN_ENTITY_PENDING);
    CHECK_RC(norman_entity_state_of_flags("[{", &state), NORMAN_ERROR_INVALID_JSON);
    CHECK(upload == NULL && download == NULL && response == NULL && event == NULL);
    norman_client_free(client);
    norman_client_free(NULL);
}

static void test_bad_pairings(void) {
    norman_client *client = new_client("http://127.0.0.1:1/v0/", 2000);
    norman_upload *upload = NULL;
    norman_pairing p;
    p = pairing_for(0);
    CHECK_RC(norman_upload_open(client, &p, &upload), NORMAN_ERROR_INVALID_PAIRING);
    p = pairing_for(70000);
    CHECK_RC(norman_upload_open(client, &p, &upload), NORMAN_ERROR_INVALID_PAIRING);
    p = pairing_for(-5);
    CHECK_RC(norman_upload_open(client, &p, &upload), NORMAN_ERROR_INVALID_PAIRING);
    p = pairing_for(9);
    p.host = "";
    CHECK_RC(norman_upload_open(client, &p, &upload), NORMAN_ERROR_INVALID_PAIRING);
    p = pairing_for(9);
    p.encryption_key = "AAECAwQ=";
    CHECK_RC(norman_upload_open(client, &p, &upload), NORMAN_ERROR_INVALID_PAIRING);
    CHECK(strstr(norman_last_error(), "encryption_key") != NULL);
    CHECK(strstr(norman_last_error(), "AAECAwQ") == NULL); /* never echoes a secret */
    p = pairing_for(9);
    p.nonce = "not base64!";
    CHECK_RC(norman_upload_open(client, &p, &upload), NORMAN_ERROR_INVALID_PAIRING);
    p = pairing_for(9);
    p.authentication_header = "%%%";
    CHECK_RC(norman_upload_open(client, &p, &upload), NORMAN_ERROR_INVALID_PAIRING);
    p = pairing_for(9);
    p.nonce = NULL;
    CHECK_RC(norman_upload_open(client, &p, &upload), NORMAN_ERROR_NULL_ARGUMENT);
    p = pairing_for(9);
    p.host = "127.0.0.\xff";
    CHECK_RC(norman_upload_open(client, &p, &upload), NORMAN_ERROR_INVALID_UTF8);
    CHECK_RC(norman_upload_open_json(client, "{\"pairing_id\": 3}", &upload), NORMAN_ERROR_INVALID_JSON);
    CHECK_RC(norman_upload_open_json(client, "[", &upload), NORMAN_ERROR_INVALID_JSON);
    /* Dead host: nothing listens on port 1. */
    p = pairing_for(1);
    CHECK_RC(norman_upload_open(client, &p, &upload), NORMAN_ERROR_CONNECT);
    CHECK(upload == NULL);
    norman_client_free(client);
}

/* Streams `len` bytes in `step`-byte writes to a fresh receiver; checks all three checksums agree. */
static void upload_once(norman_client *client, const unsigned char *data, size_t len, size_t step, const char *name) {
    receiver r;
    CHECK(receiver_start(&r, name) == 0);
    norman_pairing p = pairing_for(r.port);
    norman_upload *upload = NULL;
    CHECK_RC(norman_upload_open(client, &p, &upload), NORMAN_OK);
    for (size_t off = 0; off < len; off += step) {
        size_t n = len - off < step ? len - off : step;
        CHECK_RC(norman_upload_write(upload, data + off, n), NORMAN_OK);
    }
    CHECK_RC(norman_upload_write(upload, NULL, 0), NORMAN_OK);
    CHECK(norman_upload_bytes_written(upload) == len);
    uint64_t sum = 0;
    CHECK_RC(norman_upload_finish(upload, &sum), NORMAN_OK);
    CHECK_RC(norman_upload_finish(upload, &sum), NORMAN_ERROR_STATE);
    CHECK_RC(norman_upload_write(upload, data, 1), NORMAN_ERROR_STATE);
    CHECK_RC(norman_upload_abort(upload), NORMAN_ERROR_STATE);
    norman_upload_free(upload);
    unsigned long long got = 0;
    char received[17] = {0}, sent[17] = {0}, cli[17] = {0};
    CHECK(receiver_finish(&r, &got, received) == 0);
    CHECK(got == len);
    CHECK_RC(norman_checksum_to_hex(sum, sent, sizeof sent), NORMAN_OK);
    CHECK(norman_checksum_of(r.out_path, cli) == 0);
    CHECK(strcmp(sent, received) == 0);
    CHECK(strcmp(sent, cli) == 0);
    uint64_t local = 0;
    CHECK_RC(norman_checksum(data, len, &local), NORMAN_OK);
    CHECK(local == sum);
    remove(r.out_path);
}

static void test_streaming_upload(void) {
    norman_client *client = new_client("http://127.0.0.1:1/v0/", 5000);
    size_t len = 3 * 1024 * 1024 + 123;
    unsigned char *data = malloc(len);
    fill_pattern(data, len, 3);
    upload_once(client, data, len, 4096, "w4k");
    upload_once(client, data, len, 65536, "w64k");
    upload_once(client, data, len, 1 << 20, "w1m");
    upload_once(client, data, 1000, 1, "w1");
    upload_once(client, data, 0, 1, "empty");
    free(data);
    norman_client_free(client);
}

static void test_abort_and_killed_receiver(void) {
    norman_client *client = new_client("http://127.0.0.1:1/v0/", 3000);
    unsigned char chunk[65536];
    fill_pattern(chunk, sizeof chunk, 9);

    /* Abort: the receiver sees a reset and keeps nothing; later calls say CANCELLED. */
    receiver r;
    CHECK(receiver_start(&r, "aborted") == 0);
    norman_pairing p = pairing_for(r.port);
    norman_upload *upload = NULL;
    CHECK_RC(norman_upload_open(client, &p, &upload), NORMAN_OK);
    CHECK_RC(norman_upload_write(upload, chunk, sizeof chunk), NORMAN_OK);
    CHECK_RC(norman_upload_write(upload, chunk, sizeof chunk), NORMAN_OK);
    CHECK_RC(norman_upload_abort(upload), NORMAN_OK);
    CHECK_RC(norman_upload_abort(upload), NORMAN_OK);
    CHECK_RC(norman_upload_write(upload, chunk, 1), NORMAN_ERROR_CANCELLED);
    CHECK_RC(norman_upload_finish(upload, NULL), NORMAN_ERROR_CANCELLED);
    norman_upload_free(upload);
    CHECK(receiver_finish(&r, NULL, NULL) != 0);
    CHECK(access(r.out_path, F_OK) != 0);

    /* Receiver killed mid-upload: a write fails with an I/O error (or a timeout), then STATE. */
    CHECK(receiver_start(&r, "killed") == 0);
    p = pairing_for(r.port);
    upload = NULL;
    CHECK_RC(norman_upload_open(client, &p, &upload), NORMAN_OK);
    CHECK_RC(norman_upload_write(upload, chunk, sizeof chunk), NORMAN_OK);
    kill(r.proc.pid, SIGKILL);
    receiver_finish(&r, NULL, NULL);
    norman_result rc = NORMAN_OK;
    for (int i = 0; i < 100000 && rc == NORMAN_OK; i++) rc = norman_upload_write(upload, chunk, sizeof chunk);
    CHECK(rc == NORMAN_ERROR_IO || rc == NORMAN_ERROR_TIMEOUT);
    CHECK_RC(norman_upload_write(upload, chunk, 1), NORMAN_ERROR_STATE);
    CHECK_RC(norman_upload_finish(upload, NULL), NORMAN_ERROR_STATE);
    norman_upload_free(upload);

    /* Unfinished upload freed: the receiver sees a reset, never a short file. */
    CHECK(receiver_start(&r, "freed") == 0);
    p = pairing_for(r.port);
    CHECK_RC(norman_upload_open(client, &p, &upload), NORMAN_OK);
    CHECK_RC(norman_upload_write(upload, chunk, 100), NORMAN_OK);
    norman_upload_free(upload);
    CHECK(receiver_finish(&r, NULL, NULL) != 0);
    norman_client_free(client);
}

/* ---------- concurrent uploads from C threads ---------- */

typedef struct worker_arg {
    norman_client *client;
    int index;
    int ok;
} worker_arg;

static void *upload_worker(void *raw) {
    worker_arg *arg = raw;
    size_t len = 1024 * 1024 + (size_t)arg->index * 777;
    unsigned char *data = malloc(len);
    fill_pattern(data, len, 100 + (unsigned)arg->index);
    char name[32];
    snprintf(name, sizeof name, "thread%d", arg->index);
    receiver r;
    arg->ok = 0;
    if (receiver_start(&r, name) == 0) {
        norman_pairing p = pairing_for(r.port);
        norman_upload *upload = NULL;
        uint64_t sum = 0, local = 0;
        int ok = norman_upload_open(arg->client, &p, &upload) == NORMAN_OK;
        for (size_t off = 0; ok && off < len; off += 8192) {
            size_t n = len - off < 8192 ? len - off : 8192;
            ok = norman_upload_write(upload, data + off, n) == NORMAN_OK;
        }
        ok = ok && norman_upload_finish(upload, &sum) == NORMAN_OK;
        norman_upload_free(upload);
        unsigned long long got = 0;
        char received[17] = {0}, sent[17] = {0};
        ok = receiver_finish(&r, &got, received) == 0 && ok;
        norman_checksum(data, len, &local);
        norman_checksum_to_hex(sum, sent, sizeof sent);
        arg->ok = ok && got == len && local == sum && strcmp(sent, received) == 0;
        remove(r.out_path);
    }
    free(data);
    return NULL;
}

static void test_concurrent_uploads(void) {
    norman_client *client = new_client("http://127.0.0.1:1/v0/", 5000);
    enum { N = 4 };
    pthread_t threads[N];
    worker_arg args[N];
    for (int i = 0; i < N; i++) {
        args[i].client = client;
        args[i].index = i;
        CHECK(pthread_create(&threads[i], NULL, upload_worker, &args[i]) == 0);
    }
    for (int i = 0; i < N; i++) {
        pthread_join(threads[i], NULL);
        CHECK(args[i].ok);
    }
    norman_client_free(client);
}

/* ---------- asynchronous operations ---------- */

typedef struct tally {
    pthread_mutex_t lock;
    int completions;
    int frees;
    norman_result last;
    norman_result nested;
} tally;

static tally g_tally = {PTHREAD_MUTEX_INITIALIZER, 0, 0, NORMAN_OK, NORMAN_OK};

static void count_free(void *userdata) {
    tally *t = userdata;
    pthread_mutex_lock(&t->lock);
    t->frees++;
    pthread_mutex_unlock(&t->lock);
}

static norman_client *g_async_client;

static void on_done_nested(void *userdata, const norman_event *event) {
    tally *t = userdata;
    norman_response *response = NULL;
    norman_result nested = norman_client_request(g_async_client, "GET", "x", NULL, &response);
    pthread_mutex_lock(&t->lock);
    t->nested = nested;
    t->completions++;
    t->last = norman_event_result(event);
    pthread_mutex_unlock(&t->lock);
}

static void wait_for(tally *t, int completions, int frees) {
    for (int i = 0; i < 500; i++) {
        pthread_mutex_lock(&t->lock);
        int done = t->completions >= completions && t->frees >= frees;
        pthread_mutex_unlock(&t->lock);
        if (done) return;
        struct timespec ts = {0, 10 * 1000 * 1000};
        nanosleep(&ts, NULL);
    }
}

/* A TCP listener that accepts and never answers: requests to it hang until cancelled. */
static int silent_listener(int *port) {
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in addr;
    memset(&addr, 0, sizeof addr);
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    addr.sin_port = 0;
    socklen_t alen = sizeof addr;
    if (bind(fd, (struct sockaddr *)&addr, sizeof addr) != 0 || listen(fd, 16) != 0) return -1;
    getsockname(fd, (struct sockaddr *)&addr, &alen);
    *port = ntohs(addr.sin_port);
    return fd;
}

/* A write blocked on a receiver that never reads, and the abort another thread makes. */
typedef struct {
    norman_upload *upload;
    norman_result rc;
} blocked_writer;

static void *write_until_blocked(void *arg) {
    blocked_writer *w = arg;
    static unsigned char chunk[1 << 20];
    w->rc = NORMAN_OK;
    for (int i = 0; i < 4096 && w->rc == NORMAN_OK; i++) w->rc = norman_upload_write(w->upload, chunk, sizeof chunk);
    return NULL;
}

static void test_abort_of_a_blocked_write(void) {
    /* The timeout (30 s) is far longer than the wait below: only the abort can end the write. */
    norman_client *client = new_client("http://127.0.0.1:1/v0/", 30000);
    int port = 0;
    int fd = silent_listener(&port); /* the kernel accepts; nobody reads, so the socket fills up */
    CHECK(fd >= 0);
    norman_pairing p = pairing_for(port);
    blocked_writer w = {NULL, NORMAN_OK};
    CHECK_RC(norman_upload_open(client, &p, &w.upload), NORMAN_OK);
    pthread_t writer;
    CHECK(pthread_create(&writer, NULL, write_until_blocked, &w) == 0);
    struct timespec pause = {0, 300 * 1000 * 1000};
    nanosleep(&pause, NULL);
    double start = now_seconds();
    CHECK_RC(norman_upload_abort(w.upload), NORMAN_OK);
    pthread_join(writer, NULL);
    double elapsed = now_seconds() - start;
    CHECK_RC(w.rc, NORMAN_ERROR_CANCELLED);
    CHECK(elapsed < 10.0); /* returned because of the abort, not the 30 s timeout */
    CHECK_RC(norman_upload_write(w.upload, (const uint8_t *)"x", 1), NORMAN_ERROR_CANCELLED);
    norman_upload_free(w.upload);

    /* norman_client_close ends it too, and everything after it, before the client is freed. */
    w.upload = NULL;
    CHECK_RC(norman_upload_open(client, &p, &w.upload), NORMAN_OK);
    CHECK(pthread_create(&writer, NULL, write_until_blocked, &w) == 0);
    nanosleep(&pause, NULL);
    start = now_seconds();
    CHECK_RC(norman_client_close(client), NORMAN_OK);
    CHECK_RC(norman_client_close(client), NORMAN_OK);
    pthread_join(writer, NULL);
    CHECK_RC(w.rc, NORMAN_ERROR_CANCELLED);
    CHECK(now_seconds() - start < 10.0);
    norman_upload *late = NULL;
    CHECK_RC(norman_upload_open(client, &p, &late), NORMAN_ERROR_CANCELLED);
    CHECK(late == NULL);
    norman_event *event = NULL;
    uint64_t op = 0;
    CHECK_RC(norman_client_request_async(client, "GET", "x", NULL, NULL, NULL, NULL, &op), NORMAN_OK);
    CHECK_RC(norman_client_next_event(client, 5000, &event), NORMAN_OK);
    CHECK_RC(norman_event_result(event), NORMAN_ERROR_CANCELLED);
    norman_event_free(event);
    norman_upload_free(w.upload);
    close(fd);
    norman_client_free(client);
    CHECK_RC(norman_client_close(NULL), NORMAN_ERROR_NULL_ARGUMENT);
}

static void test_async(void) {
    /* A dead host: the request completes with CONNECT through the callback, exactly once. */
    norman_client *dead = new_client("http://127.0.0.1:1/v0/", 2000);
    g_async_client = dead;
    tally *t = &g_tally;
    uint64_t op = 0;
    CHECK_RC(norman_client_request_async(dead, "GET", "persist/flags/get", NULL, on_done_nested, t, count_free, &op), NORMAN_OK);
    CHECK(op != 0);
    wait_for(t, 1, 1);
    CHECK(t->completions == 1 && t->frees == 1);
    CHECK(t->last == NORMAN_ERROR_CONNECT);
    CHECK(t->nested == NORMAN_ERROR_WRONG_THREAD);

    /* The same through next_event (no callback): userdata_free runs when the event is freed. */
    CHECK_RC(norman_client_request_async(dead, "POST", "x", "{\"a\":1}", NULL, t, count_free, &op), NORMAN_OK);
    norman_event *event = NULL;
    CHECK_RC(norman_client_next_event(dead, 5000, &event), NORMAN_OK);
    CHECK(event != NULL);
    CHECK(norman_event_op_id(event) == op);
    CHECK(norman_event_kind_of(event) == NORMAN_EVENT_REQUEST);
    CHECK(norman_event_result(event) == NORMAN_ERROR_CONNECT);
    CHECK(norman_event_message(event) != NULL);
    CHECK(norman_event_userdata(event) == t);
    CHECK(t->frees == 1);
    norman_event_free(event);
    CHECK(t->frees == 2);

    /* A call that fails before it starts still frees the userdata, once, and completes nothing. */
    CHECK_RC(norman_client_request_async(dead, "POST", "x", "{bad", NULL, t, count_free, &op), NORMAN_ERROR_INVALID_JSON);
    CHECK(t->frees == 3);
    CHECK_RC(norman_client_next_event(dead, 50, &event), NORMAN_NO_EVENT);
    norman_client_free(dead);

    /* Cancel: a request to a server that never answers completes once with CANCELLED. */
    int port = 0;
    int fd = silent_listener(&port);
    CHECK(fd >= 0);
    char url[64];
    snprintf(url, sizeof url, "http://127.0.0.1:%d/v0/", port);
    norman_client *silent = new_client(url, 30000);
    t->completions = 0;
    t->frees = 0;
    CHECK_RC(norman_client_request_async(silent, "GET", "x", NULL, on_done_nested, t, count_free, &op), NORMAN_OK);
    g_async_client = silent;
    CHECK_RC(norman_client_cancel(silent, op), NORMAN_OK);
    wait_for(t, 1, 1);
    CHECK(t->completions == 1 && t->frees == 1);
    CHECK(t->last == NORMAN_ERROR_CANCELLED);

    /* Freeing a client with operations in flight completes each once with CANCELLED. */
    uint64_t ops[3];
    for (int i = 0; i < 3; i++)
        CHECK_RC(norman_client_request_async(silent, "GET", "x", NULL, on_done_nested, t, count_free, &ops[i]), NORMAN_OK);
    CHECK_RC(norman_client_request_async(silent, "GET", "x", NULL, NULL, t, count_free, &op), NORMAN_OK);
    norman_client_free(silent);
    CHECK(t->completions == 4);
    CHECK(t->frees == 5); /* 4 callbacks + 1 polled event never collected, freed with the client */
    CHECK(t->last == NORMAN_ERROR_CANCELLED);
    close(fd);
}

/* ---------- logs ---------- */

static int g_log_records;
static int g_log_leaks;

static void on_log(void *userdata, norman_log_level level, const char *target, const char *message) {
    (void)userdata;
    (void)level;
    (void)target;
    __atomic_add_fetch(&g_log_records, 1, __ATOMIC_SEQ_CST);
    if (strstr(message, "tok-VERY-secret") != NULL) __atomic_add_fetch(&g_log_leaks, 1, __ATOMIC_SEQ_CST);
}

static void test_logs(void) {
    CHECK_RC(norman_set_log_callback(on_log, NULL, NORMAN_LOG_TRACE), NORMAN_OK);
    norman_config *config = NULL;
    norman_client *client = NULL;
    CHECK_RC(norman_config_new(&config), NORMAN_OK);
    CHECK_RC(norman_config_set_base_url(config, "http://127.0.0.1:1/v0/"), NORMAN_OK);
    CHECK_RC(norman_config_set_token(config, "tok-VERY-secret"), NORMAN_OK);
    CHECK_RC(norman_config_set_retries(config, 0), NORMAN_OK);
    CHECK_RC(norman_client_new(config, &client), NORMAN_OK);
    norman_response *response = NULL;
    CHECK_RC(norman_client_request(client, "GET", "persist/flags/get", NULL, &response), NORMAN_ERROR_CONNECT);
    CHECK(strstr(norman_last_error(), "tok-VERY-secret") == NULL);
    norman_client_free(client);
    norman_config_free(config);
    CHECK_RC(norman_set_log_callback(NULL, NULL, NORMAN_LOG_OFF), NORMAN_OK);
    CHECK(g_log_records > 0);
    CHECK(g_log_leaks == 0);
}

/* ---------- issue 11 item 6: the ABI does what the header says ---------- */

typedef struct waiter {
    norman_client *client;
    norman_result rc;
} waiter;

static void *wait_forever(void *raw) {
    waiter *w = raw;
    norman_event *event = NULL;
    w->rc = norman_client_next_event(w->client, -1, &event);
    if (event) norman_event_free(event);
    return NULL;
}

static int last_error_mentions(const char *what) {
    const char *e = norman_last_error();
    return e && strstr(e, what) != NULL;
}

/* Serves one HTTP response that announces 100 bytes and sends 3, then closes. */
static void *short_body_server(void *raw) {
    int fd = *(int *)raw;
    int conn = accept(fd, NULL, NULL);
    if (conn >= 0) {
        char request[4096];
        ssize_t got = read(conn, request, sizeof request);
        (void)got;
        const char *reply = "HTTP/1.1 200 OK\r\nContent-Length: 100\r\nConnection: close\r\n\r\nabc";
        ssize_t sent = write(conn, reply, strlen(reply));
        (void)sent;
        close(conn);
    }
    return NULL;
}

static void test_abi_contract(void) {
    /* A thread blocked in next_event(-1) is released by close, with CANCELLED. */
    norman_client *client = new_client("http://127.0.0.1:1/v0/", 2000);
    waiter w = {client, NORMAN_OK};
    pthread_t thread;
    struct timespec pause = {0, 200 * 1000 * 1000};
    CHECK(pthread_create(&thread, NULL, wait_forever, &w) == 0);
    nanosleep(&pause, NULL);
    double start = now_seconds();
    CHECK_RC(norman_client_close(client), NORMAN_OK);
    pthread_join(thread, NULL);
    CHECK_RC(w.rc, NORMAN_ERROR_CANCELLED);
    CHECK(now_seconds() - start < 5.0);

    /* After close: set_token and next_event(0) are CANCELLED, as the header says. */
    CHECK_RC(norman_client_set_token(client, "t"), NORMAN_ERROR_CANCELLED);
    CHECK_RC(norman_client_set_token(client, NULL), NORMAN_ERROR_CANCELLED);
    norman_event *event = NULL;
    CHECK_RC(norman_client_next_event(client, 0, &event), NORMAN_ERROR_CANCELLED);
    CHECK_RC(norman_client_next_event(client, -1, &event), NORMAN_ERROR_CANCELLED);
    CHECK(event == NULL);
    norman_client_free(client);

    /* checksum_to_hex: below 17 bytes (0 included) is BUFFER_TOO_SMALL and writes nothing; any
     * capacity from 17 up (SIZE_MAX included) writes exactly 17 bytes. */
    char hex[32];
    memset(hex, 'x', sizeof hex);
    CHECK_RC(norman_checksum_to_hex(0x0123456789abcdefULL, hex, 0), NORMAN_ERROR_BUFFER_TOO_SMALL);
    CHECK_RC(norman_checksum_to_hex(0x0123456789abcdefULL, hex, 16), NORMAN_ERROR_BUFFER_TOO_SMALL);
    CHECK(hex[0] == 'x');
    CHECK_RC(norman_checksum_to_hex(0x0123456789abcdefULL, hex, SIZE_MAX), NORMAN_OK);
    CHECK(strcmp(hex, "0123456789abcdef") == 0 && hex[17] == 'x');
    CHECK_RC(norman_checksum_to_hex(1, hex, 17), NORMAN_OK);
    CHECK(strcmp(hex, "0000000000000001") == 0);

    /* Zero timeout or chunk size from the environment: the error names the variable. */
    norman_config *config = NULL;
    setenv("NORMAN_TIMEOUT_SECS", "0", 1);
    CHECK_RC(norman_config_from_env(&config), NORMAN_ERROR_INVALID_CONFIG);
    CHECK(config == NULL && last_error_mentions("NORMAN_TIMEOUT_SECS"));
    unsetenv("NORMAN_TIMEOUT_SECS");
    setenv("NORMAN_CHUNK_SIZE", "0", 1);
    CHECK_RC(norman_config_from_env(&config), NORMAN_ERROR_INVALID_CONFIG);
    CHECK(config == NULL && last_error_mentions("NORMAN_CHUNK_SIZE"));
    unsetenv("NORMAN_CHUNK_SIZE");
    CHECK_RC(norman_config_from_env(&config), NORMAN_OK);
    norman_config_free(config);

    /* An authentication header under 16 bytes authenticates nothing: refused before connecting
     * (port 1 would refuse the connection; the pairing error comes first). */
    client = new_client("http://127.0.0.1:1/v0/", 2000);
    norman_upload *upload = NULL;
    const char *short_headers[] = {"", "AAAA", "MDEyMzQ1Njc4OWFiY2Rl" /* 15 bytes */};
    for (size_t i = 0; i < sizeof short_headers / sizeof *short_headers; i++) {
        norman_pairing p = pairing_for(1);
        p.authentication_header = short_headers[i];
        CHECK_RC(norman_upload_open(client, &p, &upload), NORMAN_ERROR_INVALID_PAIRING);
        CHECK(upload == NULL && last_error_mentions("authentication_header"));
    }
    norman_pairing sixteen = pairing_for(1);
    sixteen.authentication_header = "MDEyMzQ1Njc4OWFiY2RlZg=="; /* 16 bytes: valid, then no listener */
    CHECK_RC(norman_upload_open(client, &sixteen, &upload), NORMAN_ERROR_CONNECT);
    norman_client_free(client);

    /* A body shorter than announced fails, and every later read fails again: never a 0 that
     * would pass for the end of a whole file. */
    int port = 0;
    int fd = silent_listener(&port);
    CHECK(fd >= 0);
    pthread_t server;
    CHECK(pthread_create(&server, NULL, short_body_server, &fd) == 0);
    char base[64];
    snprintf(base, sizeof base, "http://127.0.0.1:%d/v0/", port);
    client = new_client(base, 5000);
    norman_target target = {NORMAN_TARGET_ASSET, "a", "m", NULL, "x"};
    norman_download *download = NULL;
    CHECK_RC(norman_client_retrieve_open(client, &target, &download), NORMAN_OK);
    if (download) {
        unsigned char buf[256];
        size_t n = 0, total = 0;
        norman_result rc;
        while ((rc = norman_download_read(download, buf, sizeof buf, &n)) == NORMAN_OK && n > 0) total += n;
        CHECK(rc != NORMAN_OK && total <= 3);
        CHECK(norman_download_read(download, buf, sizeof buf, &n) == rc);
        CHECK(norman_download_read(download, buf, sizeof buf, &n) == rc);
        norman_download_free(download);
    }
    pthread_join(server, NULL);
    close(fd);
    norman_client_free(client);
}

int main(void) {
    snprintf(g_dir, sizeof g_dir, "%s", getenv("NORMAN_TEST_DIR") ? getenv("NORMAN_TEST_DIR") : "/tmp");
    test_versions_and_codes();
    test_hasher();
    test_config_and_null_handles();
    test_bad_pairings();
    test_streaming_upload();
    test_abort_and_killed_receiver();
    test_abort_of_a_blocked_write();
    test_concurrent_uploads();
    test_async();
    test_logs();
    test_abi_contract();
    return finish_tests("test_ffi");
}
