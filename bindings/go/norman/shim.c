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

void go_msg_view_of(norman_msg *m, go_msg_view *v) {
    v->msg = m;
    v->msg_type = norman_msg_type_of(m);
    v->uri = NULL;
    v->uri_len = 0;
    v->content = NULL;
    v->content_len = 0;
    norman_msg_uri(m, &v->uri, &v->uri_len);
    norman_msg_content(m, &v->content, &v->content_len);
}

/* A reply comes with NORMAN_OK and with NORMAN_ERROR_MSG_REMOTE. */
static enum norman_result view_reply(enum norman_result rc, norman_msg *m, go_msg_view *v) {
    if (m != NULL) {
        go_msg_view_of(m, v);
    } else {
        v->msg = NULL;
    }
    return rc;
}

enum norman_result go_msg_conn_request(const norman_msg_conn *c, uint8_t type, const uint8_t *uri, size_t uri_len,
                                       const uint8_t *content, size_t len, const norman_msg_layers *inner,
                                       int32_t timeout_ms, go_msg_view *v) {
    norman_msg *m = NULL;
    enum norman_result rc = norman_msg_conn_request(c, type, uri, uri_len, content, len, inner, timeout_ms, &m);
    return view_reply(rc, m, v);
}

enum norman_result go_msg_conn_request_async(const norman_msg_conn *c, uint8_t type, const uint8_t *uri,
                                             size_t uri_len, const uint8_t *content, size_t len,
                                             const norman_msg_layers *inner, int32_t timeout_ms, uintptr_t handle,
                                             uint64_t *op_id_out) {
    return norman_msg_conn_request_async(c, type, uri, uri_len, content, len, inner, timeout_ms, on_complete,
                                         (void *)handle, on_free, op_id_out);
}

enum norman_result go_msg_node_request(const norman_msg_node *n, const char *addr, uint8_t type, const uint8_t *uri,
                                       size_t uri_len, const uint8_t *content, size_t len,
                                       const norman_msg_layers *inner, int32_t timeout_ms, go_msg_view *v) {
    norman_msg *m = NULL;
    enum norman_result rc =
        norman_msg_node_request(n, addr, type, uri, uri_len, content, len, inner, timeout_ms, &m);
    return view_reply(rc, m, v);
}

enum norman_result go_msg_conn_next(const norman_msg_conn *c, int32_t timeout_ms, go_msg_view *v) {
    norman_msg *m = NULL;
    enum norman_result rc = norman_msg_conn_next(c, timeout_ms, &m); /* before m is read */
    return view_reply(rc, m, v);
}

enum norman_result go_msg_node_next(const norman_msg_node *n, int32_t timeout_ms, go_msg_view *v) {
    norman_msg *m = NULL;
    enum norman_result rc = norman_msg_node_next(n, timeout_ms, &m);
    return view_reply(rc, m, v);
}

enum norman_result go_msg_call_view(const norman_msg_call *c, go_msg_view *v) {
    const norman_msg *m = NULL;
    enum norman_result rc = norman_msg_call_message(c, &m);
    return view_reply(rc, (norman_msg *)m, v);
}

static void on_msg_call(void *userdata, norman_msg_call *call) { goNormanMsgCall(userdata, call); }

enum norman_result go_msg_server_on(norman_msg_server *s, uint8_t type, const uint8_t *uri, size_t uri_len,
                                    const norman_msg_layers *inner, uint32_t flags, uintptr_t handle) {
    return norman_msg_server_on(s, type, uri, uri_len, inner, flags, on_msg_call, (void *)handle, on_free);
}

enum norman_result go_msg_node_on(norman_msg_node *n, uint8_t type, const uint8_t *uri, size_t uri_len,
                                  const norman_msg_layers *inner, uint32_t flags, uintptr_t handle) {
    return norman_msg_node_on(n, type, uri, uri_len, inner, flags, on_msg_call, (void *)handle, on_free);
}

static void on_log(void *userdata, enum norman_log_level level, const char *target, const char *message) {
    (void)userdata;
    goNormanLog((int32_t)level, (char *)target, (char *)message);
}

enum norman_result go_set_log_callback(int enabled, int32_t max_level) {
    return norman_set_log_callback(enabled ? on_log : NULL, NULL, max_level);
}
