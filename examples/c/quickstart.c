/* libnorman quickstart: sign up on a Norman backend, create a model, upload a file to it and read
 * it back, checking the checksum. Build and run (see README.md, "C API"):
 *
 *   cc -Iinclude examples/c/quickstart.c -Ltarget/release -lnorman -o quickstart
 *   NORMAN_BASE_URL=http://127.0.0.1:8080/v0/ ./quickstart
 */
#include <stdio.h>
#include <string.h>

#include "norman.h"

/* Stops on the first error, printing what went wrong (never a secret). */
#define TRY(call)                                                                            \
    do {                                                                                     \
        norman_result rc_ = (call);                                                          \
        if (rc_ != NORMAN_OK) {                                                              \
            fprintf(stderr, "%s: %s (%s)\n", #call, norman_result_str(rc_), norman_last_error()); \
            return 1;                                                                        \
        }                                                                                    \
    } while (0)

/* Copies the string value after `key` in a compact JSON body (enough for a demo). */
static void json_value(const char *body, const char *after, const char *key, char *out, size_t cap) {
    const char *at = strstr(strstr(body, after), key) + strlen(key);
    size_t n = strcspn(at, "\"");
    snprintf(out, cap, "%.*s", (int)(n < cap ? n : cap - 1), at);
}

/* Runs a request and copies its body (NUL-terminated) into `out`. */
static norman_result call(norman_client *client, const char *method, const char *route, const char *json,
                          char *out, size_t cap) {
    norman_response *response = NULL;
    norman_result rc = norman_client_request(client, method, route, json, &response);
    if (rc != NORMAN_OK) return rc;
    const uint8_t *body;
    size_t len;
    norman_response_body(response, &body, &len);
    snprintf(out, cap, "%.*s", (int)len, (const char *)body);
    norman_response_free(response);
    return NORMAN_OK;
}

int main(void) {
    /* 1. A client configured from NORMAN_BASE_URL (and NORMAN_TOKEN, NORMAN_TIMEOUT_SECS, ...). */
    norman_config *config = NULL;
    norman_client *client = NULL;
    TRY(norman_config_from_env(&config));
    TRY(norman_client_new(config, &client));
    norman_config_free(config); /* the client keeps its own copy */

    /* 2. Sign up (any route is reachable through norman_client_request) and use the token. */
    char body[8192], token[256], account[128], model[128], asset[128];
    TRY(call(client, "PUT", "authenticate/signup/default", NULL, body, sizeof body));
    json_value(body, "\"access_token\"", "\"access_token\":\"", token, sizeof token);
    json_value(body, "\"account\"", "\"id\":\"", account, sizeof account);
    TRY(norman_client_set_token(client, token));

    /* 3. A model with one asset slot named "File". */
    char json[1024];
    snprintf(json, sizeof json,
             "[{\"account_id\":\"%s\",\"name\":\"quickstart\",\"version_label\":\"v1\",\"short_description\":\"\","
             "\"long_description\":\"\",\"request_type\":\"Post\",\"model_type\":\"Api\","
             "\"hosting_location\":\"External\",\"output_format\":\"Json\","
             "\"assets\":[{\"account_id\":\"%s\",\"asset_name\":\"File\"}]}]",
             account, account);
    TRY(call(client, "POST", "persist/models/", json, body, sizeof body));
    /* The asset's model_id is the model's: found the same in [Model] (today's API) and {id: Model} (0.1.0). */
    json_value(body, "\"assets\"", "\"model_id\":\"", model, sizeof model);
    json_value(body, "\"assets\"", "\"id\":\"", asset, sizeof asset);

    /* 4. Stream bytes to the asset: allocate + connect, write (any sizes), finish = complete. */
    norman_target target = {NORMAN_TARGET_ASSET, account, model, NULL, asset};
    const char *text = "hello from C\n";
    norman_upload *upload = NULL;
    uint64_t sent = 0;
    TRY(norman_client_upload_begin(client, &target, strlen(text), &upload));
    TRY(norman_upload_write(upload, (const uint8_t *)text, strlen(text)));
    TRY(norman_upload_finish(upload, &sent));
    norman_upload_free(upload);

    /* 5. Read it back into our own buffer and compare checksums. */
    norman_download *download = NULL;
    uint8_t buf[256];
    size_t n = 0, total = 0;
    uint64_t received = 0;
    TRY(norman_client_retrieve_open(client, &target, &download));
    do {
        TRY(norman_download_read(download, buf + total, sizeof buf - total, &n));
        total += n;
    } while (n > 0 && total < sizeof buf);
    TRY(norman_download_checksum(download, &received));
    norman_download_free(download);

    char hex[NORMAN_CHECKSUM_HEX_LEN];
    TRY(norman_checksum_to_hex(sent, hex, sizeof hex));
    printf("uploaded %zu bytes, checksum %s, read back: %.*s", strlen(text), hex, (int)total, (const char *)buf);
    norman_client_free(client);
    return sent == received ? 0 : 1;
}
