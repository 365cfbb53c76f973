/* C tests of libnorman against a real `norman serve` (NORMAN_TEST_BASE_URL): sign up through the
 * generic request, create models, upload a file both ways (whole-file push and streaming writes)
 * and compare checksums with `norman checksum`, retrieve it back both ways (pull reads and borrowed
 * chunks), the asynchronous forms through callbacks and next_event, status flags, HTTP errors,
 * and concurrent pushes from C threads. Run under AddressSanitizer by scripts/test-c.sh. */
#define _POSIX_C_SOURCE 200809L
#include <dirent.h>
#include <pthread.h>
#include <stdint.h>
#include <sys/stat.h>
#include <time.h>

#include "harness.h"

static char g_dir[256];
static const char *g_base;
static char g_account[128];
static char g_token[256];

/* Runs a request and returns its status; the body (NUL-terminated copy) goes to `out`. */
static int request(norman_client *client, const char *method, const char *route, const char *json, char *out, size_t cap) {
    norman_response *response = NULL;
    norman_result rc = norman_client_request(client, method, route, json, &response);
    CHECK_RC(rc, NORMAN_OK);
    if (rc != NORMAN_OK) return -1;
    const uint8_t *body = NULL;
    size_t len = 0;
    CHECK_RC(norman_response_body(response, &body, &len), NORMAN_OK);
    if (out && cap) {
        size_t n = len < cap - 1 ? len : cap - 1;
        memcpy(out, body, n);
        out[n] = 0;
    }
    int status = norman_response_status(response);
    norman_response_free(response);
    return status;
}

static norman_client *new_client(const char *token) {
    norman_config *config = NULL;
    norman_client *client = NULL;
    CHECK_RC(norman_config_new(&config), NORMAN_OK);
    CHECK_RC(norman_config_set_base_url(config, g_base), NORMAN_OK);
    if (token) CHECK_RC(norman_config_set_token(config, token), NORMAN_OK);
    CHECK_RC(norman_client_new(config, &client), NORMAN_OK);
    norman_config_free(config);
    return client;
}

/* Creates a model with one asset named "File"; returns 0 and its ids. */
static int create_model(norman_client *client, const char *name, char *model_id, char *asset_id) {
    char json[2048], body[16384];
    snprintf(json, sizeof json,
             "[{\"account_id\":\"%s\",\"version_label\":\"v1\",\"short_description\":\"c test\","
             "\"name\":\"%s\",\"request_type\":\"Post\",\"model_type\":\"Api\",\"hosting_location\":\"External\","
             "\"output_format\":\"Json\",\"long_description\":\"made by tests/c\","
             "\"assets\":[{\"account_id\":\"%s\",\"asset_name\":\"File\"}]}]",
             g_account, name, g_account);
    int status = request(client, "POST", "persist/models/", json, body, sizeof body);
    CHECK(status == 200);
    if (status != 200) {
        fprintf(stderr, "create model: %d %s\n", status, body);
        return -1;
    }
    /* The asset's model_id: the same in both answer shapes ([Model] now, {id: Model} in 0.1.0). */
    if (json_after(body, "\"assets\":[", "\"model_id\":\"", model_id, 128) != 0) return -1;
    return json_after(body, "\"assets\":[", "\"id\":\"", asset_id, 128);
}

static void make_file(const char *path, size_t len, unsigned seed) {
    unsigned char *data = malloc(len);
    fill_pattern(data, len, seed);
    CHECK(write_file(path, data, len) == 0);
    free(data);
}

/* ---------- retrieve helpers ---------- */

static uint64_t retrieve_by_reads(norman_client *client, const norman_target *target, uint64_t *bytes) {
    norman_download *download = NULL;
    CHECK_RC(norman_client_retrieve_open(client, target, &download), NORMAN_OK);
    if (!download) return 0;
    unsigned char buf[1000];
    size_t n = 0;
    norman_hasher *h = NULL;
    norman_hasher_new(&h);
    *bytes = 0;
    CHECK_RC(norman_download_read(download, buf, 0, &n), NORMAN_ERROR_INVALID_ARGUMENT);
    for (;;) {
        norman_result rc = norman_download_read(download, buf, sizeof buf, &n);
        CHECK_RC(rc, NORMAN_OK);
        if (rc != NORMAN_OK || n == 0) break;
        norman_hasher_update(h, buf, n);
        *bytes += n;
    }
    uint64_t mine = 0, theirs = 0;
    norman_hasher_digest(h, &mine);
    norman_hasher_free(h);
    CHECK_RC(norman_download_checksum(download, &theirs), NORMAN_OK);
    CHECK(mine == theirs);
    CHECK(norman_download_content_length(download) == *bytes);
    norman_download_free(download);
    return mine;
}

typedef struct chunk_tally {
    uint64_t bytes;
    norman_hasher *hasher;
} chunk_tally;

static int32_t on_chunk(void *userdata, const uint8_t *data, size_t len) {
    chunk_tally *t = userdata;
    t->bytes += len;
    norman_hasher_update(t->hasher, data, len);
    return 0;
}

static int32_t stop_now(void *userdata, const uint8_t *data, size_t len) {
    (void)userdata;
    (void)data;
    (void)len;
    return 1;
}

/* ---------- async helpers ---------- */

typedef struct done {
    pthread_mutex_t lock;
    int completions, frees, progress_calls;
    uint64_t last_sent, total;
    norman_result result;
    uint64_t checksum, bytes;
} done;

static void on_progress(void *userdata, uint64_t sent, uint64_t total) {
    done *d = userdata;
    pthread_mutex_lock(&d->lock);
    d->progress_calls++;
    d->last_sent = sent;
    d->total = total;
    pthread_mutex_unlock(&d->lock);
}

static void on_done(void *userdata, const norman_event *event) {
    done *d = userdata;
    pthread_mutex_lock(&d->lock);
    d->completions++;
    d->result = norman_event_result(event);
    d->checksum = norman_event_checksum(event);
    d->bytes = norman_event_bytes(event);
    pthread_mutex_unlock(&d->lock);
}

static void on_free(void *userdata) {
    done *d = userdata;
    pthread_mutex_lock(&d->lock);
    d->frees++;
    pthread_mutex_unlock(&d->lock);
}

static void wait_done(done *d) {
    for (int i = 0; i < 3000; i++) {
        pthread_mutex_lock(&d->lock);
        int ok = d->frees > 0;
        pthread_mutex_unlock(&d->lock);
        if (ok) return;
        struct timespec ts = {0, 10 * 1000 * 1000};
        nanosleep(&ts, NULL);
    }
}

/* ---------- concurrent pushes ---------- */

typedef struct push_arg {
    norman_client *client;
    char model_id[128], asset_id[128], path[300];
    int ok;
} push_arg;

static void *push_worker(void *raw) {
    push_arg *a = raw;
    norman_target target = {NORMAN_TARGET_ASSET, g_account, a->model_id, NULL, a->asset_id};
    uint64_t sum = 0;
    char hex[17], cli[17];
    a->ok = norman_client_push_file(a->client, &target, a->path, NULL, NULL, &sum) == NORMAN_OK &&
            norman_checksum_to_hex(sum, hex, sizeof hex) == NORMAN_OK && norman_checksum_of(a->path, cli) == 0 &&
            strcmp(hex, cli) == 0;
    return NULL;
}

int main(void) {
    g_base = getenv("NORMAN_TEST_BASE_URL");
    if (!g_base) {
        fprintf(stderr, "test_backend: NORMAN_TEST_BASE_URL is not set\n");
        return 2;
    }
    snprintf(g_dir, sizeof g_dir, "%s", getenv("NORMAN_TEST_DIR") ? getenv("NORMAN_TEST_DIR") : "/tmp");

    /* Sign up through the generic request; routes without a token are refused. */
    norman_client *anon = new_client(NULL);
    char body[8192];
    CHECK(request(anon, "PUT", "authenticate/signup/default", NULL, body, sizeof body) == 200);
    CHECK(json_after(body, NULL, "\"access_token\":\"", g_token, sizeof g_token) == 0);
    CHECK(json_after(body, "\"account\":", "\"id\":\"", g_account, sizeof g_account) == 0);
    int unauth = request(anon, "POST", "persist/flags/get", NULL, body, sizeof body);
    CHECK(unauth == 401 || unauth == 403);
    norman_entity_state state;
    norman_result rc = norman_client_entity_state(anon, "x", &state);
    CHECK(rc == NORMAN_ERROR_HTTP_UNAUTHORIZED);
    norman_client_free(anon);

    norman_client *client = new_client(g_token);
    char model[128], asset[128], model2[128], asset2[128], model3[128], asset3[128];
    CHECK(create_model(client, "c-push", model, asset) == 0);
    CHECK(create_model(client, "c-stream", model2, asset2) == 0);
    CHECK(create_model(client, "c-async", model3, asset3) == 0);

    /* 1. Whole-file push with progress; checksums agree with `norman checksum`. */
    char path[300], cli[17], hex[17];
    snprintf(path, sizeof path, "%s/push.bin", g_dir);
    size_t len = 2 * 1024 * 1024 + 99;
    make_file(path, len, 1);
    norman_target target = {NORMAN_TARGET_ASSET, g_account, model, NULL, asset};
    done progress = {PTHREAD_MUTEX_INITIALIZER, 0, 0, 0, 0, 0, NORMAN_OK, 0, 0};
    uint64_t pushed = 0;
    CHECK_RC(norman_client_push_file(client, &target, path, on_progress, &progress, &pushed), NORMAN_OK);
    CHECK(progress.progress_calls > 0 && progress.last_sent == len && progress.total == len);
    CHECK(norman_checksum_of(path, cli) == 0);
    CHECK_RC(norman_checksum_to_hex(pushed, hex, sizeof hex), NORMAN_OK);
    CHECK(strcmp(hex, cli) == 0);
    CHECK_RC(norman_client_push_file(client, &target, "/nonexistent/file", NULL, NULL, NULL), NORMAN_ERROR_IO);

    /* 2. Retrieve it back both ways. */
    uint64_t bytes = 0;
    CHECK(retrieve_by_reads(client, &target, &bytes) == pushed);
    CHECK(bytes == len);
    chunk_tally chunks = {0, NULL};
    norman_hasher_new(&chunks.hasher);
    uint64_t via_chunks = 0, hashed = 0;
    CHECK_RC(norman_client_retrieve(client, &target, on_chunk, &chunks, &via_chunks), NORMAN_OK);
    norman_hasher_digest(chunks.hasher, &hashed);
    norman_hasher_free(chunks.hasher);
    CHECK(via_chunks == pushed && hashed == pushed && chunks.bytes == len);
    CHECK_RC(norman_client_retrieve(client, &target, stop_now, NULL, NULL), NORMAN_ERROR_CANCELLED);
    norman_target missing = {NORMAN_TARGET_ASSET, g_account, model, NULL, "no-such-asset"};
    norman_download *download = NULL;
    CHECK_RC(norman_client_retrieve_open(client, &missing, &download), NORMAN_ERROR_HTTP_NOT_FOUND);
    CHECK(download == NULL);

    /* A read after norman_download_cancel is CANCELLED, at the end of the file too. */
    download = NULL;
    CHECK_RC(norman_client_retrieve_open(client, &target, &download), NORMAN_OK);
    if (download) {
        unsigned char *whole = malloc(len + 1);
        size_t got = 0, n = 0;
        while (norman_download_read(download, whole + got, len + 1 - got, &n) == NORMAN_OK && n > 0) got += n;
        CHECK(got == len && n == 0);
        CHECK_RC(norman_download_read(download, whole, len, &n), NORMAN_OK); /* still the end */
        CHECK(n == 0);
        CHECK_RC(norman_download_cancel(download), NORMAN_OK);
        n = 99;
        CHECK_RC(norman_download_read(download, whole, len, &n), NORMAN_ERROR_CANCELLED);
        CHECK(n == 99);
        free(whole);
        norman_download_free(download);
    }

    /* retrieve_file_async writes atomically: a failed retrieve leaves an existing file as it was
     * and no temporary file behind. */
    char keep_dir[300], keep[340];
    snprintf(keep_dir, sizeof keep_dir, "%s/atomic", g_dir);
    CHECK(mkdir(keep_dir, 0700) == 0);
    snprintf(keep, sizeof keep, "%s/kept.bin", keep_dir);
    CHECK(write_file(keep, "precious", 8) == 0);
    uint64_t failed_op = 0;
    CHECK_RC(norman_client_retrieve_file_async(client, &missing, keep, NULL, NULL, NULL, &failed_op), NORMAN_OK);
    norman_event *failed = NULL;
    CHECK_RC(norman_client_next_event(client, 30000, &failed), NORMAN_OK);
    CHECK(norman_event_op_id(failed) == failed_op);
    CHECK(norman_event_result(failed) == NORMAN_ERROR_HTTP_NOT_FOUND);
    norman_event_free(failed);
    char kept[16] = {0};
    FILE *f = fopen(keep, "rb");
    CHECK(f != NULL);
    if (f) {
        CHECK(fread(kept, 1, sizeof kept, f) == 8 && memcmp(kept, "precious", 8) == 0);
        fclose(f);
    }
    CHECK_RC(norman_client_retrieve_file_async(client, &target, keep, NULL, NULL, NULL, &failed_op), NORMAN_OK);
    CHECK_RC(norman_client_next_event(client, 30000, &failed), NORMAN_OK);
    CHECK(norman_event_result(failed) == NORMAN_OK && norman_event_checksum(failed) == pushed);
    norman_event_free(failed);
    CHECK(norman_checksum_of(keep, hex) == 0 && strcmp(hex, cli) == 0);
    DIR *dir = opendir(keep_dir);
    int entries = 0;
    for (struct dirent *e; dir && (e = readdir(dir));)
        if (e->d_name[0] != '.' || (strcmp(e->d_name, ".") && strcmp(e->d_name, ".."))) entries++;
    if (dir) closedir(dir);
    CHECK(entries == 1); /* kept.bin only: no .part file left */

    /* Status flags: the uploaded asset is done. */
    CHECK_RC(norman_client_entity_state(client, asset, &state), NORMAN_OK);
    CHECK(state == NORMAN_ENTITY_DONE);

    /* 3. Streaming upload: allocate + open, 4 KiB writes, finish completes with the backend. */
    unsigned char *data = malloc(len);
    fill_pattern(data, len, 2);
    norman_target target2 = {NORMAN_TARGET_ASSET, g_account, model2, NULL, asset2};
    norman_upload *upload = NULL;
    CHECK_RC(norman_client_upload_begin(client, &target2, len, &upload), NORMAN_OK);
    for (size_t off = 0; off < len; off += 4096)
        CHECK_RC(norman_upload_write(upload, data + off, len - off < 4096 ? len - off : 4096), NORMAN_OK);
    uint64_t streamed = 0, local = 0;
    CHECK_RC(norman_upload_finish(upload, &streamed), NORMAN_OK);
    norman_upload_free(upload);
    CHECK_RC(norman_checksum(data, len, &local), NORMAN_OK);
    CHECK(streamed == local);
    CHECK(retrieve_by_reads(client, &target2, &bytes) == local);
    CHECK(bytes == len);
    /* A short stream is refused by the backend on complete (size mismatch), and nothing is kept. */
    upload = NULL;
    CHECK_RC(norman_client_upload_begin(client, &target2, len, &upload), NORMAN_OK);
    CHECK_RC(norman_upload_write(upload, data, len - 1), NORMAN_OK);
    rc = norman_upload_finish(upload, NULL);
    CHECK(rc == NORMAN_ERROR_HTTP_STATUS);
    norman_upload_free(upload);
    CHECK(retrieve_by_reads(client, &target2, &bytes) == local); /* the first upload is still there */

    /* 4. Async: push through a callback (progress on the callback thread), retrieve via next_event. */
    norman_target target3 = {NORMAN_TARGET_ASSET, g_account, model3, NULL, asset3};
    done d = {PTHREAD_MUTEX_INITIALIZER, 0, 0, 0, 0, 0, NORMAN_OK, 0, 0};
    uint64_t op = 0;
    CHECK_RC(norman_client_push_file_async(client, &target3, path, on_progress, on_done, &d, on_free, &op), NORMAN_OK);
    wait_done(&d);
    CHECK(d.completions == 1 && d.frees == 1);
    CHECK(d.result == NORMAN_OK && d.checksum == pushed && d.bytes == len);
    CHECK(d.progress_calls > 0 && d.last_sent == len);
    char out_path[300];
    snprintf(out_path, sizeof out_path, "%s/retrieved.bin", g_dir);
    CHECK_RC(norman_client_retrieve_file_async(client, &target3, out_path, NULL, NULL, NULL, &op), NORMAN_OK);
    norman_event *event = NULL;
    CHECK_RC(norman_client_next_event(client, 30000, &event), NORMAN_OK);
    CHECK(norman_event_op_id(event) == op);
    CHECK(norman_event_kind_of(event) == NORMAN_EVENT_RETRIEVE_FILE);
    CHECK(norman_event_result(event) == NORMAN_OK);
    CHECK(norman_event_checksum(event) == pushed && norman_event_bytes(event) == len);
    norman_event_free(event);
    CHECK(norman_checksum_of(out_path, hex) == 0 && strcmp(hex, cli) == 0);
    CHECK_RC(norman_client_request_async(client, "POST", "persist/flags/get", NULL, NULL, NULL, NULL, &op), NORMAN_OK);
    CHECK_RC(norman_client_next_event(client, 30000, &event), NORMAN_OK);
    CHECK(norman_event_result(event) == NORMAN_OK && norman_event_http_status(event) == 200);
    const uint8_t *ebody = NULL;
    size_t elen = 0;
    CHECK_RC(norman_event_body(event, &ebody, &elen), NORMAN_OK);
    CHECK(elen > 0 && ebody[0] == '{');
    norman_event_free(event);
    CHECK_RC(norman_client_entity_state_async(client, asset3, NULL, NULL, NULL, &op), NORMAN_OK);
    CHECK_RC(norman_client_next_event(client, 30000, &event), NORMAN_OK);
    CHECK(norman_event_kind_of(event) == NORMAN_EVENT_ENTITY_STATE);
    CHECK(norman_event_entity_state(event) == NORMAN_ENTITY_DONE);
    norman_event_free(event);

    /* 5. Concurrent whole-file pushes from C threads, one client. */
    enum { N = 3 };
    push_arg args[N];
    pthread_t threads[N];
    for (int i = 0; i < N; i++) {
        char name[32];
        snprintf(name, sizeof name, "c-thread-%d", i);
        args[i].client = client;
        CHECK(create_model(client, name, args[i].model_id, args[i].asset_id) == 0);
        snprintf(args[i].path, sizeof args[i].path, "%s/thread%d.bin", g_dir, i);
        make_file(args[i].path, 512 * 1024 + (size_t)i, 10 + (unsigned)i);
        CHECK(pthread_create(&threads[i], NULL, push_worker, &args[i]) == 0);
    }
    for (int i = 0; i < N; i++) {
        pthread_join(threads[i], NULL);
        CHECK(args[i].ok);
    }

    free(data);
    norman_client_free(client);
    return finish_tests("test_backend");
}
