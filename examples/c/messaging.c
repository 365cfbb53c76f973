/* libnorman messaging from C: a server with one handler and a client that asks it, in one program,
 * on loopback, with libnorman's AEAD layer. Build and run (see README.md, "Messaging from C"):
 *
 *   cc -Iinclude examples/c/messaging.c -Ltarget/release -lnorman -o messaging && ./messaging
 */
#include <stdio.h>
#include <string.h>

#include "norman.h"

#define TRY(call)                                                                                 \
    do {                                                                                          \
        norman_result rc_ = (call);                                                               \
        if (rc_ != NORMAN_OK) {                                                                   \
            fprintf(stderr, "%s: %s (%s)\n", #call, norman_result_str(rc_), norman_last_error()); \
            return 1;                                                                             \
        }                                                                                         \
    } while (0)

/* Runs on the client's callback thread, once per request. The call is ours: answer it (here, at
 * once; or keep it and answer later from any thread) or free it. The reply echoes the uri and the
 * request id, so the client matches it to its request. */
static void greet(void *userdata, norman_msg_call *call) {
    const char *greeting = userdata;
    const norman_msg *request;
    const uint8_t *name;
    size_t len;
    norman_msg_call_message(call, &request);
    norman_msg_content(request, &name, &len);
    char text[128];
    int n = snprintf(text, sizeof text, "%s, %.*s", greeting, (int)len, (const char *)name);
    norman_msg_call_reply(call, NORMAN_MSG_RESPOND_URI, (const uint8_t *)text, (size_t)n);
}

int main(void) {
    /* One client: the runtime and the callback thread that servers, connections and nodes use. */
    norman_config *config;
    norman_client *client;
    TRY(norman_config_new(&config));
    TRY(norman_client_new(config, &client));
    norman_config_free(config);

    /* Both ends share a 32-byte key (read it from a file in real life). */
    uint8_t key[32];
    memset(key, 42, sizeof key);
    norman_msg_layers *layers;
    TRY(norman_msg_layers_new(&layers));
    TRY(norman_msg_layers_add_aead(layers, key, sizeof key));

    /* The server: REQUEST_URI "greet" goes to `greet`; anything else gets NOT_FOUND. */
    norman_msg_server *server;
    uint16_t port;
    TRY(norman_msg_server_new(client, layers, &server));
    TRY(norman_msg_server_on(server, NORMAN_MSG_REQUEST_URI, (const uint8_t *)"greet", 5, NULL, 0, greet,
                             (void *)"hello", NULL));
    TRY(norman_msg_server_listen(server, "127.0.0.1:0", &port));

    /* The client: connect, ask, read the reply. */
    char addr[32];
    snprintf(addr, sizeof addr, "127.0.0.1:%u", port);
    norman_msg_conn *conn;
    norman_msg *reply;
    const uint8_t *text;
    size_t len;
    TRY(norman_msg_connect(client, addr, layers, 5000, &conn));
    TRY(norman_msg_conn_request(conn, NORMAN_MSG_REQUEST_URI, (const uint8_t *)"greet", 5,
                                (const uint8_t *)"world", 5, NULL, 5000, &reply));
    TRY(norman_msg_content(reply, &text, &len));
    printf("%.*s\n", (int)len, (const char *)text); /* hello, world */
    norman_msg_free(reply);

    /* A uri nobody handles: NORMAN_ERROR_MSG_REMOTE, and the NOT_FOUND reply is still ours. */
    if (norman_msg_conn_request(conn, NORMAN_MSG_REQUEST_URI, (const uint8_t *)"nobody", 6, NULL, 0, NULL, 5000,
                                &reply) == NORMAN_ERROR_MSG_REMOTE) {
        printf("nobody: type %u\n", norman_msg_type_of(reply)); /* 24, NOT_FOUND */
        norman_msg_free(reply);
    }

    /* Free connections and servers before their client. */
    norman_msg_conn_free(conn);
    norman_msg_server_free(server);
    norman_msg_layers_free(layers);
    norman_client_free(client);
    return 0;
}
