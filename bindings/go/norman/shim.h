/* C side of the Go binding: the callbacks Go exports, and wrappers that turn a cgo.Handle (an integer)
 * into the void* userdata of the C API, so no Go pointer is ever handed to C to keep. */
#ifndef NORMAN_GO_SHIM_H
#define NORMAN_GO_SHIM_H

#include <stdint.h>
#include "norman.h"

enum norman_result go_request_async(const norman_client *client, const char *method, const char *route,
                               const char *json_body, uintptr_t handle, uint64_t *op_id_out);
enum norman_result go_entity_state_async(const norman_client *client, const char *entity_id, uintptr_t handle,
                                    uint64_t *op_id_out);
enum norman_result go_push_file_async(const norman_client *client, const norman_target *target, const char *path,
                                 int with_progress, uintptr_t handle, uint64_t *op_id_out);
enum norman_result go_retrieve_file_async(const norman_client *client, const norman_target *target, const char *path,
                                     uintptr_t handle, uint64_t *op_id_out);


/* Messaging: one message's fields as the library lends them (valid until msg is freed). */
typedef struct go_msg_view {
    norman_msg *msg;
    uint8_t msg_type;
    const uint8_t *uri;
    size_t uri_len;
    const uint8_t *content;
    size_t content_len;
} go_msg_view;

/* Fills v from m (msg = m). */
void go_msg_view_of(norman_msg *m, go_msg_view *v);
/* norman_msg_conn_request, and the reply's view in one cgo call; v->msg is NULL when there is none. */
enum norman_result go_msg_conn_request(const norman_msg_conn *c, uint8_t type, const uint8_t *uri, size_t uri_len,
                                       const uint8_t *content, size_t len, const norman_msg_layers *inner,
                                       int32_t timeout_ms, go_msg_view *v);
enum norman_result go_msg_conn_request_async(const norman_msg_conn *c, uint8_t type, const uint8_t *uri,
                                             size_t uri_len, const uint8_t *content, size_t len,
                                             const norman_msg_layers *inner, int32_t timeout_ms, uintptr_t handle,
                                             uint64_t *op_id_out);
/* norman_msg_node_request with the reply's view. */
enum norman_result go_msg_node_request(const norman_msg_node *n, const char *addr, uint8_t type, const uint8_t *uri,
                                       size_t uri_len, const uint8_t *content, size_t len,
                                       const norman_msg_layers *inner, int32_t timeout_ms, go_msg_view *v);
/* norman_msg_conn_next / norman_msg_node_next with the message's view. */
enum norman_result go_msg_conn_next(const norman_msg_conn *c, int32_t timeout_ms, go_msg_view *v);
enum norman_result go_msg_node_next(const norman_msg_node *n, int32_t timeout_ms, go_msg_view *v);
/* The call's message (borrowed from the call) as a view. */
enum norman_result go_msg_call_view(const norman_msg_call *c, go_msg_view *v);
/* Handlers calling the exported goNormanMsgCall with the cgo.Handle, freed by goNormanFree. */
enum norman_result go_msg_server_on(norman_msg_server *s, uint8_t type, const uint8_t *uri, size_t uri_len,
                                    const norman_msg_layers *inner, uint32_t flags, uintptr_t handle);
enum norman_result go_msg_node_on(norman_msg_node *n, uint8_t type, const uint8_t *uri, size_t uri_len,
                                  const norman_msg_layers *inner, uint32_t flags, uintptr_t handle);

/* Sends the library's log records to the exported Go function goNormanLog (NULL userdata). */
enum norman_result go_set_log_callback(int enabled, int32_t max_level);
#endif
