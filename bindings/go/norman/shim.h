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



/* Sends the library's log records to the exported Go function goNormanLog (NULL userdata). */
enum norman_result go_set_log_callback(int enabled, int32_t max_level);
#endif
