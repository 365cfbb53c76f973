#include "shim.h"
#include "_cgo_export.h"

/* The exported Go functions take unsafe.Pointer; these adapters give them the C API's signatures. */
static void on_complete(void *userdata, const norman_event *event) { goNormanComplete(userdata, (norman_event *)event); }
static void on_progress(void *userdata, uint64_t sent, uint64_t total) { goNormanProgress(userdata, sent, total); }
static void on_free(void *userdata) { goNormanFree(userdata); }

enum norman_result go_request_async(const norman_client *client, const char *method, const char *route,
                               const char *json_body, uintptr_t handle, uint64_t *op_id_out) {
    return norman_client_request_async(client, method, route, json_body, on_complete, (void *)handle, on_free,
                                       op_id_out);
}

enum norman_result go_entity_state_async(const norman_client *client, const char *entity_id, uintptr_t handle,
                                    uint64_t *op_id_out) {
    return norman_client_entity_state_async(client, entity_id, on_complete, (void *)handle, on_free, op_id_out);
}

enum norman_result go_push_file_async(const norman_client *client, const norman_target *target, const char *path,
                                 int with_progress, uintptr_t handle, uint64_t *op_id_out) {
    return norman_client_push_file_async(client, target, path, with_progress ? on_progress : NULL, on_complete,
                                         (void *)handle, on_free, op_id_out);
}

enum norman_result go_retrieve_file_async(const norman_client *client, const norman_target *target, const char *path,
                                     uintptr_t handle, uint64_t *op_id_out) {
    return norman_client_retrieve_file_async(client, target, path, on_complete, (void *)handle, on_free,
                                             op_id_out);
}

static void on_log(void *userdata, enum norman_log_level level, const char *target, const char *message) {
    (void)userdata;
    goNormanLog((int32_t)level, (char *)target, (char *)message);
}

enum norman_result go_set_log_callback(int enabled, int32_t max_level) {
    return norman_set_log_callback(enabled ? on_log : NULL, NULL, max_level);
}
