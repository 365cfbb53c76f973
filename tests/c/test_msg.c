/* The messaging C API (norman_msg_*) against real peers: C servers and clients of this library,
 * `norman msg serve` processes, and netaio 0.0.9 from the test venv (NORMAN_TEST_PYTHON; skipped
 * without it unless NORMAN_REQUIRE_PYTHON is set). Run by scripts/test-c.sh with NORMAN_BIN set.
 * Loopback only; every wait is bounded. */
#define _POSIX_C_SOURCE 200809L
#include <poll.h>

#include "msg_harness.h"

static const uint8_t AEAD_KEY[32] = {7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7,
                                     7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7};

/* ---------------------------------------------------------------- handlers of the C servers */

typedef struct counter {
    pthread_mutex_t lock;
    int calls;
    int freed;
} counter;

static counter g_count = {PTHREAD_MUTEX_INITIALIZER, 0, 0};
static norman_msg_conn *g_conn = NULL; /* for the wrong-thread checks inside a handler */

static void count_free(void *userdata) {
    counter *c = userdata;
    pthread_mutex_lock(&c->lock);
    c->freed++;
    pthread_mutex_unlock(&c->lock);
}

/* Echo: RESPOND_URI with the request's content, from the callback thread. */
static void echo_handler(void *userdata, norman_msg_call *call) {
    counter *c = userdata;
    const norman_msg *m = NULL;
    const uint8_t *content = NULL;
    size_t len = 0;
    pthread_mutex_lock(&c->lock);
    c->calls++;
    pthread_mutex_unlock(&c->lock);
    if (norman_msg_call_message(call, &m) != NORMAN_OK || norman_msg_content(m, &content, &len) != NORMAN_OK) {
        norman_msg_call_free(call);
        return;
    }
    /* A blocking call on the callback thread is refused, not deadlocked. */
    norman_msg *none = NULL;
    if (g_conn) {
        CHECK_RC(norman_msg_conn_next(g_conn, 10, &none), NORMAN_ERROR_WRONG_THREAD);
        CHECK_RC(norman_msg_conn_request(g_conn, 0, U("echo"), NULL, 0, NULL, 10, &none), NORMAN_ERROR_WRONG_THREAD);
    }
    CHECK_RC(norman_msg_call_reply(call, NORMAN_MSG_RESPOND_URI, content, len), NORMAN_OK);
}

/* Calls handed to a worker thread that answers them later (a queue of one-at-a-time slots). */
#define DEFERRED_MAX 64
typedef struct deferred {
    pthread_mutex_t lock;
    pthread_cond_t ready;
    norman_msg_call *calls[DEFERRED_MAX];
    int head, tail, stop;
} deferred;

static void defer_handler(void *userdata, norman_msg_call *call) {
    deferred *d = userdata;
    pthread_mutex_lock(&d->lock);
    if (d->tail - d->head < DEFERRED_MAX) {
        d->calls[d->tail++ % DEFERRED_MAX] = call;
        call = NULL;
    }
    pthread_cond_signal(&d->ready);
    pthread_mutex_unlock(&d->lock);
    norman_msg_call_free(call); /* full: no answer */
}

static void *defer_worker(void *arg) {
    deferred *d = arg;
    for (;;) {
        pthread_mutex_lock(&d->lock);
        while (d->head == d->tail && !d->stop) pthread_cond_wait(&d->ready, &d->lock);
        if (d->head == d->tail) {
            pthread_mutex_unlock(&d->lock);
            return NULL;
        }
        norman_msg_call *call = d->calls[d->head++ % DEFERRED_MAX];
        pthread_mutex_unlock(&d->lock);
        const norman_msg *m = NULL;
        const uint8_t *content = NULL;
        size_t len = 0;
        CHECK_RC(norman_msg_call_message(call, &m), NORMAN_OK);
        CHECK_RC(norman_msg_content(m, &content, &len), NORMAN_OK);
        char peer[64];
        CHECK_RC(norman_msg_call_peer(call, peer, sizeof peer), NORMAN_OK);
        CHECK(strncmp(peer, "127.0.0.1:", 10) == 0);
        CHECK_RC(norman_msg_call_peer(call, peer, 4), NORMAN_ERROR_BUFFER_TOO_SMALL);
        CHECK(norman_msg_call_conn_id(call) > 0);
        /* "later": the reply leaves from this thread, not the handler's */
        uint8_t out[256] = "late:";
        size_t n = len < sizeof out - 5 ? len : sizeof out - 5;
        memcpy(out + 5, content, n);
        CHECK_RC(norman_msg_call_reply(call, NORMAN_MSG_OK, out, 5 + n), NORMAN_OK);
    }
}

/* Holds the call it gets (answered by the test after the server is freed). */
static norman_msg_call *g_held = NULL;
static void hold_handler(void *userdata, norman_msg_call *call) {
    (void)userdata;
    g_held = call;
}

/* Never answers. */
static void drop_handler(void *userdata, norman_msg_call *call) {
    (void)userdata;
    norman_msg_call_free(call);
}

/* ---------------------------------------------------------------- C server, C client */

typedef struct req_thread {
    norman_msg_conn *conn;
    int id;
    int ok;
} req_thread;

static void *request_loop(void *arg) {
    req_thread *t = arg;
    for (int i = 0; i < 40; i++) {
        char body[64];
        snprintf(body, sizeof body, "thread %d request %d", t->id, i);
        norman_msg *reply = NULL;
        norman_result rc = norman_msg_conn_request(t->conn, NORMAN_MSG_REQUEST_URI, U("echo"), U(body), NULL,
                                                   10000, &reply);
        if (rc == NORMAN_OK && msg_is(reply, NORMAN_MSG_RESPOND_URI, "echo", body, strlen(body))) t->ok++;
        norman_msg_free(reply);
    }
    return NULL;
}

typedef struct async_done {
    pthread_mutex_t lock;
    pthread_cond_t cond;
    int done;
    norman_result result;
    uint8_t type;
    int freed;
} async_done;

static void on_reply(void *userdata, const norman_event *event) {
    async_done *a = userdata;
    norman_msg *m = NULL;
    pthread_mutex_lock(&a->lock);
    a->result = norman_event_result(event);
    CHECK(norman_event_kind_of(event) == NORMAN_EVENT_MSG_REPLY);
    if (norman_event_take_msg(event, &m) == NORMAN_OK) a->type = norman_msg_type_of(m);
    norman_msg_free(m);
    CHECK_RC(norman_event_take_msg(event, &m), NORMAN_ERROR_STATE); /* once */
    a->done = 1;
    pthread_cond_signal(&a->cond);
    pthread_mutex_unlock(&a->lock);
}

static void async_free(void *userdata) {
    async_done *a = userdata;
    pthread_mutex_lock(&a->lock);
    a->freed++;
    pthread_cond_signal(&a->cond);
    pthread_mutex_unlock(&a->lock);
}

static void test_c_server(norman_client *client) {
    printf("-- C server and C client (AEAD outer, HMAC inner on one handler)\n");
    norman_msg_layers *outer = NULL, *inner = NULL, *wrong = NULL;
    CHECK_RC(norman_msg_layers_new(&outer), NORMAN_OK);
    CHECK_RC(norman_msg_layers_add_aead(outer, AEAD_KEY, 32), NORMAN_OK);
    CHECK_RC(norman_msg_layers_new(&inner), NORMAN_OK);
    CHECK_RC(norman_msg_layers_add_netaio_hmac_field(inner, U("inner secret"), 0, "hmac2"), NORMAN_OK);
    CHECK_RC(norman_msg_layers_new(&wrong), NORMAN_OK);
    CHECK_RC(norman_msg_layers_add_netaio_hmac_field(wrong, U("not it"), 0, "hmac2"), NORMAN_OK);

    norman_msg_server *server = NULL;
    CHECK_RC(norman_msg_server_new(client, outer, &server), NORMAN_OK);
    deferred d;
    memset(&d, 0, sizeof d);
    pthread_mutex_init(&d.lock, NULL);
    pthread_cond_init(&d.ready, NULL);
    pthread_t worker;
    pthread_create(&worker, NULL, defer_worker, &d);
    g_count.calls = g_count.freed = 0;
    CHECK_RC(norman_msg_server_on(server, NORMAN_MSG_REQUEST_URI, U("echo"), NULL, 0, echo_handler, &g_count,
                                  count_free),
             NORMAN_OK);
    CHECK_RC(norman_msg_server_on(server, NORMAN_MSG_CREATE_URI, NULL, 0, inner, 0, defer_handler, &d, NULL),
             NORMAN_OK);
    CHECK_RC(norman_msg_server_on(server, NORMAN_MSG_REQUEST_URI, U("silent"), NULL, 0, drop_handler, NULL, NULL),
             NORMAN_OK);
    CHECK_RC(norman_msg_server_on(server, NORMAN_MSG_REQUEST_URI, U("once"), NULL, NORMAN_MSG_ONCE, echo_handler,
                                  &g_count, count_free),
             NORMAN_OK);
    CHECK_RC(norman_msg_server_auto_subscribe(server, true), NORMAN_OK);
    uint16_t port = 0;
    CHECK_RC(norman_msg_server_listen(server, "127.0.0.1:0", &port), NORMAN_OK);
    CHECK(port > 0);
    char addr[64];
    addr_of(addr, sizeof addr, port);

    norman_msg_conn *conn = NULL, *sub = NULL, *bad = NULL;
    CHECK_RC(norman_msg_connect(client, addr, outer, 5000, &conn), NORMAN_OK);
    g_conn = conn;
    norman_msg *reply = NULL;
    CHECK_RC(norman_msg_conn_request(conn, NORMAN_MSG_REQUEST_URI, U("echo"), U("hello"), NULL, 5000, &reply),
             NORMAN_OK);
    CHECK(msg_is(reply, NORMAN_MSG_RESPOND_URI, "echo", "hello", 5));
    const uint8_t *rid = NULL;
    size_t rid_len = 0;
    CHECK_RC(norman_msg_auth_field(reply, "norman_rid", &rid, &rid_len), NORMAN_OK);
    CHECK(rid_len == 8);
    CHECK_RC(norman_msg_auth_field(reply, "absent", &rid, &rid_len), NORMAN_ERROR_INVALID_ARGUMENT);
    norman_msg_free(reply);
    reply = NULL;

    /* Empty uri and content (NULL with length 0): NOT_FOUND comes back, reply handed out. */
    CHECK_RC(norman_msg_conn_request(conn, NORMAN_MSG_REQUEST_URI, NULL, 0, NULL, 0, NULL, 5000, &reply),
             NORMAN_ERROR_MSG_REMOTE);
    CHECK(msg_is(reply, NORMAN_MSG_NOT_FOUND, "", NULL, 0));
    norman_msg_free(reply);
    reply = NULL;

    /* Per-handler inner layer; the reply comes later from the worker thread. */
    CHECK_RC(norman_msg_conn_request(conn, NORMAN_MSG_CREATE_URI, U("thing"), U("abc"), inner, 5000, &reply),
             NORMAN_OK);
    CHECK(msg_is(reply, NORMAN_MSG_OK, "thing", "late:abc", 8));
    norman_msg_free(reply);
    reply = NULL;
    /* Without it, or with the wrong secret: AUTH_ERROR, the handler never sees it. */
    CHECK_RC(norman_msg_conn_request(conn, NORMAN_MSG_CREATE_URI, U("thing"), U("abc"), NULL, 5000, &reply),
             NORMAN_ERROR_MSG_REMOTE);
    CHECK(reply && norman_msg_type_of(reply) == NORMAN_MSG_AUTH_ERROR);
    norman_msg_free(reply);
    reply = NULL;
    CHECK_RC(norman_msg_conn_request(conn, NORMAN_MSG_CREATE_URI, U("thing"), U("abc"), wrong, 5000, &reply),
             NORMAN_ERROR_MSG_REMOTE);
    CHECK(reply && norman_msg_type_of(reply) == NORMAN_MSG_AUTH_ERROR);
    norman_msg_free(reply);
    reply = NULL;

    /* Wrong outer key: AUTH_ERROR in the clear, completing the request at once. */
    norman_msg_layers *other = NULL;
    uint8_t key2[32];
    memset(key2, 9, sizeof key2);
    CHECK_RC(norman_msg_layers_new(&other), NORMAN_OK);
    CHECK_RC(norman_msg_layers_add_aead(other, key2, 32), NORMAN_OK);
    CHECK_RC(norman_msg_connect(client, addr, other, 5000, &bad), NORMAN_OK);
    CHECK_RC(norman_msg_conn_request(bad, NORMAN_MSG_REQUEST_URI, U("echo"), U("x"), NULL, 5000, &reply),
             NORMAN_ERROR_MSG_REMOTE);
    CHECK(reply && norman_msg_type_of(reply) == NORMAN_MSG_AUTH_ERROR);
    norman_msg_free(reply);
    reply = NULL;
    norman_msg_conn_free(bad);
    norman_msg_layers_free(other);

    /* No answer: the deadline. */
    CHECK_RC(norman_msg_conn_request(conn, NORMAN_MSG_REQUEST_URI, U("silent"), NULL, 0, NULL, 200, &reply),
             NORMAN_ERROR_TIMEOUT);
    CHECK(reply == NULL);

    /* One-shot handler: the second message finds none. */
    CHECK_RC(norman_msg_conn_request(conn, NORMAN_MSG_REQUEST_URI, U("once"), U("1"), NULL, 5000, &reply), NORMAN_OK);
    norman_msg_free(reply);
    reply = NULL;
    CHECK_RC(norman_msg_conn_request(conn, NORMAN_MSG_REQUEST_URI, U("once"), U("2"), NULL, 5000, &reply),
             NORMAN_ERROR_MSG_REMOTE);
    CHECK(reply && norman_msg_type_of(reply) == NORMAN_MSG_NOT_FOUND);
    norman_msg_free(reply);
    reply = NULL;

    /* Concurrent requests from several threads on one connection: each gets its own reply. */
    pthread_t threads[4];
    req_thread t[4];
    for (int i = 0; i < 4; i++) {
        t[i] = (req_thread){conn, i, 0};
        pthread_create(&threads[i], NULL, request_loop, &t[i]);
    }
    for (int i = 0; i < 4; i++) {
        pthread_join(threads[i], NULL);
        CHECK(t[i].ok == 40);
    }

    /* Async requests: callback, and the event queue. */
    async_done a = {PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, 0, NORMAN_OK, 255, 0};
    uint64_t op = 0;
    CHECK_RC(norman_msg_conn_request_async(conn, NORMAN_MSG_REQUEST_URI, U("echo"), U("async"), NULL, 5000, on_reply,
                                           &a, async_free, &op),
             NORMAN_OK);
    CHECK(op > 0);
    pthread_mutex_lock(&a.lock);
    while (!a.freed) pthread_cond_wait(&a.cond, &a.lock);
    pthread_mutex_unlock(&a.lock);
    CHECK(a.done && a.result == NORMAN_OK && a.type == NORMAN_MSG_RESPOND_URI && a.freed == 1);
    CHECK_RC(norman_msg_conn_request_async(conn, NORMAN_MSG_REQUEST_URI, U("nothing here"), NULL, 0, NULL, 5000,
                                           NULL, NULL, NULL, &op),
             NORMAN_OK);
    norman_event *ev = NULL;
    CHECK_RC(norman_client_next_event(client, 5000, &ev), NORMAN_OK);
    CHECK(ev && norman_event_op_id(ev) == op && norman_event_result(ev) == NORMAN_ERROR_MSG_REMOTE);
    CHECK_RC(norman_event_take_msg(ev, &reply), NORMAN_OK);
    CHECK(reply && norman_msg_type_of(reply) == NORMAN_MSG_NOT_FOUND);
    norman_msg_free(reply);
    reply = NULL;
    norman_event_free(ev);

    /* Pub/sub through the library's subscribe handling, notify and broadcast. */
    CHECK_RC(norman_msg_connect(client, addr, outer, 5000, &sub), NORMAN_OK);
    CHECK_RC(norman_msg_conn_request(sub, NORMAN_MSG_SUBSCRIBE_URI, U("news"), NULL, 0, NULL, 5000, &reply),
             NORMAN_OK);
    CHECK(msg_is(reply, NORMAN_MSG_CONFIRM_SUBSCRIBE, "news", NULL, 0));
    norman_msg_free(reply);
    reply = NULL;
    CHECK_RC(norman_msg_conn_next(sub, 0, &reply), NORMAN_NO_EVENT);
    size_t delivered = 99;
    CHECK_RC(norman_msg_server_notify(server, U("news"), U("extra"), &delivered), NORMAN_OK);
    CHECK(delivered == 1);
    CHECK_RC(norman_msg_server_notify(server, U("nobody"), U("x"), &delivered), NORMAN_OK);
    CHECK(delivered == 0);
    CHECK_RC(norman_msg_server_broadcast(server, 42, U("all"), U("hi"), &delivered), NORMAN_OK);
    CHECK(delivered == 2);
    CHECK_RC(norman_msg_conn_next(sub, 5000, &reply), NORMAN_OK);
    CHECK(msg_is(reply, NORMAN_MSG_NOTIFY_URI, "news", "extra", 5));
    norman_msg_free(reply);
    reply = NULL;
    CHECK_RC(norman_msg_conn_next(sub, 5000, &reply), NORMAN_OK);
    CHECK(msg_is(reply, 42, "all", "hi", 2));
    norman_msg_free(reply);
    reply = NULL;
    CHECK_RC(norman_msg_conn_next(conn, 5000, &reply), NORMAN_OK); /* the broadcast reached it too */
    CHECK(msg_is(reply, 42, "all", "hi", 2));
    norman_msg_free(reply);
    reply = NULL;
    CHECK_RC(norman_msg_conn_request(sub, NORMAN_MSG_UNSUBSCRIBE_URI, U("news"), NULL, 0, NULL, 5000, &reply),
             NORMAN_OK);
    CHECK(reply && norman_msg_type_of(reply) == NORMAN_MSG_CONFIRM_UNSUBSCRIBE);
    norman_msg_free(reply);
    reply = NULL;
    CHECK_RC(norman_msg_server_notify(server, U("news"), U("late"), &delivered), NORMAN_OK);
    CHECK(delivered == 0);

    /* A call held by the application while the server is freed: its reply finds it closed. */
    CHECK_RC(norman_msg_server_on(server, NORMAN_MSG_REQUEST_URI, U("hold"), NULL, 0, hold_handler, NULL, NULL),
             NORMAN_OK);
    uint64_t held_op = 0;
    CHECK_RC(norman_msg_conn_request_async(conn, NORMAN_MSG_REQUEST_URI, U("hold"), NULL, 0, NULL, 5000, NULL, NULL,
                                           NULL, &held_op),
             NORMAN_OK);
    for (int i = 0; i < 500 && !__atomic_load_n(&g_held, __ATOMIC_SEQ_CST); i++) sleep_ms(10);
    CHECK(g_held != NULL);
    norman_msg_server_free(server);
    CHECK_RC(norman_msg_call_reply(g_held, NORMAN_MSG_RESPOND_URI, U("too late")), NORMAN_CLOSED);
    g_held = NULL;
    CHECK_RC(norman_client_next_event(client, 5000, &ev), NORMAN_OK);
    CHECK(ev && norman_event_op_id(ev) == held_op && norman_event_result(ev) == NORMAN_CLOSED);
    norman_event_free(ev);
    /* The connection is gone with the server: requests and next say so. */
    CHECK_RC(norman_msg_conn_request(conn, NORMAN_MSG_REQUEST_URI, U("echo"), NULL, 0, NULL, 5000, &reply),
             NORMAN_CLOSED);
    CHECK_RC(norman_msg_conn_next(sub, 5000, &reply), NORMAN_CLOSED);
    /* Each userdata_free ran exactly once (the one-shot's after its message, the echo's at free). */
    for (int i = 0; i < 500 && g_count.freed < 2; i++) sleep_ms(10);
    CHECK(g_count.freed == 2);

    g_conn = NULL;
    norman_msg_conn_free(conn);
    norman_msg_conn_free(sub);
    pthread_mutex_lock(&d.lock);
    d.stop = 1;
    pthread_cond_signal(&d.ready);
    pthread_mutex_unlock(&d.lock);
    pthread_join(worker, NULL);
    norman_msg_layers_free(outer);
    norman_msg_layers_free(inner);
    norman_msg_layers_free(wrong);
}

/* ---------------------------------------------------------------- bad input */

/* A peer that reads one frame, answers the first 5 bytes of a header announcing a body, and
 * closes: killed mid-message. */
static void *half_frame_peer(void *arg) {
    int fd = *(int *)arg;
    int c = accept(fd, NULL, NULL);
    if (c >= 0) {
        uint8_t buf[4096];
        ssize_t n = read(c, buf, sizeof buf);
        (void)n;
        const uint8_t half[5] = {NORMAN_MSG_RESPOND_URI, 0, 0, 0, 40};
        ssize_t w = write(c, half, sizeof half);
        (void)w;
        close(c);
    }
    return NULL;
}

static void test_bad_input(norman_client *client) {
    printf("-- bad input\n");
    norman_msg_layers *l = NULL;
    CHECK_RC(norman_msg_layers_new(NULL), NORMAN_ERROR_NULL_ARGUMENT);
    CHECK_RC(norman_msg_layers_new(&l), NORMAN_OK);
    uint8_t key[33] = {0};
    CHECK_RC(norman_msg_layers_add_aead(l, key, 31), NORMAN_ERROR_INVALID_ARGUMENT);
    CHECK_RC(norman_msg_layers_add_aead(l, key, 33), NORMAN_ERROR_INVALID_ARGUMENT);
    CHECK_RC(norman_msg_layers_add_aead(l, NULL, 32), NORMAN_ERROR_NULL_ARGUMENT);
    CHECK_RC(norman_msg_layers_add_aead(NULL, key, 32), NORMAN_ERROR_NULL_ARGUMENT);
    CHECK_RC(norman_msg_layers_add_netaio_hmac(l, key, 0, 0), NORMAN_ERROR_INVALID_ARGUMENT);
    CHECK_RC(norman_msg_layers_add_netaio_cipher(l, NULL, 0, true), NORMAN_ERROR_INVALID_ARGUMENT);
    CHECK_RC(norman_msg_layers_add_netaio_hmac_field(l, key, 4, 0, ""), NORMAN_ERROR_INVALID_ARGUMENT);
    CHECK_RC(norman_msg_layers_add_netaio_hmac_field(l, key, 4, 0, "\xff"), NORMAN_ERROR_INVALID_UTF8);
    norman_msg_layers_free(l);
    norman_msg_layers_free(NULL);
    CHECK(norman_msg_type_of(NULL) == 255);
    const uint8_t *p = NULL;
    size_t n = 0;
    CHECK_RC(norman_msg_uri(NULL, &p, &n), NORMAN_ERROR_NULL_ARGUMENT);
    CHECK_RC(norman_msg_content(NULL, &p, &n), NORMAN_ERROR_NULL_ARGUMENT);
    norman_msg_free(NULL);
    norman_msg_call_free(NULL);
    CHECK_RC(norman_msg_call_reply(NULL, NORMAN_MSG_OK, NULL, 0), NORMAN_ERROR_NULL_ARGUMENT);
    norman_string_free(NULL);
    norman_bytes_free(NULL, 0);

    /* Server: NULLs, unknown type and flags (userdata freed at once), a bad address. */
    norman_msg_server *s = NULL;
    CHECK_RC(norman_msg_server_new(NULL, NULL, &s), NORMAN_ERROR_NULL_ARGUMENT);
    CHECK_RC(norman_msg_server_new(client, NULL, NULL), NORMAN_ERROR_NULL_ARGUMENT);
    CHECK_RC(norman_msg_server_new(client, NULL, &s), NORMAN_OK);
    counter c = {PTHREAD_MUTEX_INITIALIZER, 0, 0};
    CHECK_RC(norman_msg_server_on(s, 17, NULL, 0, NULL, 0, echo_handler, &c, count_free), NORMAN_ERROR_INVALID_ARGUMENT);
    CHECK_RC(norman_msg_server_on(s, 0, NULL, 0, NULL, 8, echo_handler, &c, count_free), NORMAN_ERROR_INVALID_ARGUMENT);
    CHECK_RC(norman_msg_server_on(s, 0, NULL, 0, NULL, 0, NULL, &c, count_free), NORMAN_ERROR_NULL_ARGUMENT);
    CHECK_RC(norman_msg_server_on(NULL, 0, NULL, 0, NULL, 0, echo_handler, &c, count_free), NORMAN_ERROR_NULL_ARGUMENT);
    CHECK_RC(norman_msg_server_on(s, 0, NULL, 3, NULL, 0, echo_handler, &c, count_free), NORMAN_ERROR_NULL_ARGUMENT);
    CHECK(c.freed == 5 && c.calls == 0);
    CHECK_RC(norman_msg_server_listen(s, "not an address", NULL), NORMAN_ERROR_CONNECT);
    CHECK_RC(norman_msg_server_listen(s, NULL, NULL), NORMAN_ERROR_NULL_ARGUMENT);
    uint16_t port = 0;
    CHECK_RC(norman_msg_server_listen(s, "127.0.0.1:0", &port), NORMAN_OK);
    CHECK_RC(norman_msg_server_notify(s, NULL, 1, NULL, 0, NULL), NORMAN_ERROR_NULL_ARGUMENT);
    CHECK_RC(norman_msg_server_broadcast(s, 19, U("x"), NULL, 0, NULL), NORMAN_ERROR_INVALID_ARGUMENT);
    CHECK_RC(norman_msg_server_close(s), NORMAN_OK);
    CHECK_RC(norman_msg_server_close(s), NORMAN_OK); /* idempotent */
    norman_msg_server_free(s);
    norman_msg_server_free(NULL);

    /* Connect: dead peer (the port just closed), malformed address, NULLs. */
    char addr[64];
    addr_of(addr, sizeof addr, port);
    norman_msg_conn *conn = NULL;
    CHECK_RC(norman_msg_connect(client, addr, NULL, 2000, &conn), NORMAN_ERROR_CONNECT);
    CHECK(conn == NULL);
    CHECK_RC(norman_msg_connect(client, "nowhere", NULL, 2000, &conn), NORMAN_ERROR_CONNECT);
    CHECK_RC(norman_msg_connect(client, NULL, NULL, 2000, &conn), NORMAN_ERROR_NULL_ARGUMENT);
    CHECK_RC(norman_msg_connect(NULL, addr, NULL, 2000, &conn), NORMAN_ERROR_NULL_ARGUMENT);
    CHECK_RC(norman_msg_connect(client, addr, NULL, 2000, NULL), NORMAN_ERROR_NULL_ARGUMENT);
    norman_msg_conn_free(NULL);

    /* A peer killed mid-message: the request ends with NORMAN_CLOSED, nothing hangs. */
    int raw_port = 0;
    int fd = raw_listen(&raw_port);
    CHECK(fd >= 0);
    pthread_t peer;
    pthread_create(&peer, NULL, half_frame_peer, &fd);
    addr_of(addr, sizeof addr, raw_port);
    CHECK_RC(norman_msg_connect(client, addr, NULL, 2000, &conn), NORMAN_OK);
    norman_msg *reply = NULL;
    CHECK_RC(norman_msg_conn_request(conn, NORMAN_MSG_REQUEST_URI, U("echo"), U("x"), NULL, 5000, &reply),
             NORMAN_CLOSED);
    CHECK(reply == NULL);
    pthread_join(peer, NULL);
    close(fd);
    /* After the loss: sends, requests and next all say closed; close is idempotent. */
    CHECK_RC(norman_msg_conn_send(conn, NORMAN_MSG_NOTIFY_URI, U("x"), NULL, 0, NULL), NORMAN_CLOSED);
    CHECK_RC(norman_msg_conn_next(conn, -1, &reply), NORMAN_CLOSED);
    CHECK_RC(norman_msg_conn_close(conn), NORMAN_OK);
    CHECK_RC(norman_msg_conn_close(conn), NORMAN_OK);
    /* Argument checks come before the connection's state. */
    static uint8_t big[70000];
    CHECK_RC(norman_msg_conn_send(conn, NORMAN_MSG_NOTIFY_URI, U("x"), big, sizeof big, NULL), NORMAN_ERROR_OVERSIZE);
    CHECK_RC(norman_msg_conn_send(conn, NORMAN_MSG_NOTIFY_URI, NULL, 2, NULL, 0, NULL), NORMAN_ERROR_NULL_ARGUMENT);
    CHECK_RC(norman_msg_conn_send(conn, 26, U("x"), NULL, 0, NULL), NORMAN_ERROR_INVALID_ARGUMENT);
    CHECK_RC(norman_msg_conn_request(conn, 0, U("x"), NULL, 0, NULL, 100, NULL), NORMAN_ERROR_NULL_ARGUMENT);
    CHECK_RC(norman_event_take_msg(NULL, &reply), NORMAN_ERROR_NULL_ARGUMENT);
    norman_msg_conn_free(conn);
}

/* ---------------------------------------------------------------- against norman msg serve / netaio */

typedef struct layer_case {
    const char *name;
    char *flags[10];  /* the peer's command-line layers */
    int hmac, cipher, aead; /* the client's */
    int inner;        /* --inner-secret / --inner-cipher-key on both sides */
} layer_case;

static norman_msg_layers *outer_of(const layer_case *k, const char *secret) {
    norman_msg_layers *l = NULL;
    CHECK_RC(norman_msg_layers_new(&l), NORMAN_OK);
    if (k->cipher) CHECK_RC(norman_msg_layers_add_netaio_cipher(l, U("cipher key"), true), NORMAN_OK);
    if (k->hmac) CHECK_RC(norman_msg_layers_add_netaio_hmac(l, U(secret), 0), NORMAN_OK);
    if (k->aead) CHECK_RC(norman_msg_layers_add_aead(l, AEAD_KEY, 32), NORMAN_OK);
    return l;
}

static norman_msg_layers *inner_of(const layer_case *k) {
    if (!k->inner) return NULL;
    norman_msg_layers *l = NULL;
    CHECK_RC(norman_msg_layers_new(&l), NORMAN_OK);
    CHECK_RC(norman_msg_layers_add_netaio_cipher_field(l, U("inner key"), false, "iv2"), NORMAN_OK);
    CHECK_RC(norman_msg_layers_add_netaio_hmac_field(l, U("inner secret"), 0, "hmac2"), NORMAN_OK);
    return l;
}

/* Request/response, CRUD, remote errors and pub/sub against a broker (`norman msg serve` or
 * netaio_peer.py server: the same resource broker). */
static void broker_session(norman_client *client, int port, const layer_case *k, int rid_expected) {
    char addr[64];
    addr_of(addr, sizeof addr, port);
    norman_msg_layers *outer = outer_of(k, "secret"), *inner = inner_of(k);
    norman_msg_conn *conn = NULL, *sub = NULL;
    CHECK_RC(norman_msg_connect(client, addr, outer, 5000, &conn), NORMAN_OK);
    CHECK_RC(norman_msg_connect(client, addr, outer, 5000, &sub), NORMAN_OK);
    if (!conn || !sub) goto out;
    norman_msg *r = NULL;
    const uint8_t bin[6] = {0, 1, 'b', 'i', 'n', 0xff};
    CHECK_RC(norman_msg_conn_request(conn, NORMAN_MSG_REQUEST_URI, U("echo"), bin, sizeof bin, inner, 5000, &r),
             NORMAN_OK);
    CHECK(msg_is(r, NORMAN_MSG_RESPOND_URI, "echo", bin, sizeof bin));
    const uint8_t *rid = NULL;
    size_t rid_len = 0;
    CHECK((norman_msg_auth_field(r, "norman_rid", &rid, &rid_len) == NORMAN_OK) == rid_expected);
    norman_msg_free(r);
    r = NULL;
    CHECK_RC(norman_msg_conn_request(sub, NORMAN_MSG_SUBSCRIBE_URI, U("topic"), NULL, 0, inner, 5000, &r), NORMAN_OK);
    CHECK(msg_is(r, NORMAN_MSG_CONFIRM_SUBSCRIBE, "topic", NULL, 0));
    norman_msg_free(r);
    r = NULL;
    CHECK_RC(norman_msg_conn_request(conn, NORMAN_MSG_CREATE_URI, U("topic"), U("v1"), inner, 5000, &r), NORMAN_OK);
    CHECK(msg_is(r, NORMAN_MSG_OK, "topic", NULL, 0));
    norman_msg_free(r);
    r = NULL;
    CHECK_RC(norman_msg_conn_request(conn, NORMAN_MSG_REQUEST_URI, U("topic"), NULL, 0, inner, 5000, &r), NORMAN_OK);
    CHECK(msg_is(r, NORMAN_MSG_RESPOND_URI, "topic", "v1", 2));
    norman_msg_free(r);
    r = NULL;
    CHECK_RC(norman_msg_conn_request(conn, NORMAN_MSG_REQUEST_URI, U("missing"), NULL, 0, inner, 5000, &r),
             NORMAN_ERROR_MSG_REMOTE);
    CHECK(msg_is(r, NORMAN_MSG_NOT_FOUND, NULL, "not found", 9));
    norman_msg_free(r);
    r = NULL;
    CHECK_RC(norman_msg_conn_request(conn, NORMAN_MSG_PUBLISH_URI, U("topic"), U("flash"), inner, 5000, &r), NORMAN_OK);
    norman_msg_free(r);
    r = NULL;
    /* The notifications of the create and the publish, in order (sealed with the inner layers too:
     * an inner-layered subscriber reads them opened only when it registered them; here they come
     * to next as the outer layers opened them, so compare the plain ones only). */
    CHECK_RC(norman_msg_conn_next(sub, 5000, &r), NORMAN_OK);
    CHECK(r && norman_msg_type_of(r) == NORMAN_MSG_NOTIFY_URI);
    if (!k->inner) CHECK(msg_is(r, NORMAN_MSG_NOTIFY_URI, "topic", "v1", 2));
    norman_msg_free(r);
    r = NULL;
    CHECK_RC(norman_msg_conn_next(sub, 5000, &r), NORMAN_OK);
    if (!k->inner) CHECK(msg_is(r, NORMAN_MSG_NOTIFY_URI, "topic", "flash", 5));
    norman_msg_free(r);
    r = NULL;
    CHECK_RC(norman_msg_conn_next(sub, 0, &r), NORMAN_NO_EVENT);
out:
    norman_msg_conn_free(conn);
    norman_msg_conn_free(sub);
    /* The wrong outer secret or key: the peer refuses with AUTH_ERROR, handed out as MSG_REMOTE. */
    if (k->hmac || k->aead) {
        norman_msg_layers *bad = NULL;
        CHECK_RC(norman_msg_layers_new(&bad), NORMAN_OK);
        if (k->cipher) CHECK_RC(norman_msg_layers_add_netaio_cipher(bad, U("cipher key"), true), NORMAN_OK);
        if (k->hmac) CHECK_RC(norman_msg_layers_add_netaio_hmac(bad, U("wrong"), 0), NORMAN_OK);
        uint8_t key[32];
        memset(key, 1, sizeof key);
        if (k->aead) CHECK_RC(norman_msg_layers_add_aead(bad, key, 32), NORMAN_OK);
        CHECK_RC(norman_msg_connect(client, addr, bad, 5000, &conn), NORMAN_OK);
        CHECK_RC(norman_msg_conn_request(conn, NORMAN_MSG_REQUEST_URI, U("echo"), U("x"), inner, 5000, &r),
                 NORMAN_ERROR_MSG_REMOTE);
        CHECK(r && norman_msg_type_of(r) == NORMAN_MSG_AUTH_ERROR);
        norman_msg_free(r);
        r = NULL;
        norman_msg_conn_free(conn);
        norman_msg_layers_free(bad);
    }
    norman_msg_layers_free(outer);
    norman_msg_layers_free(inner);
}

static layer_case CASES[] = {
    {"plain", {NULL}, 0, 0, 0, 0},
    {"netaio HMAC", {"--secret", "secret", NULL}, 1, 0, 0, 0},
    {"netaio cipher", {"--cipher-key", "cipher key", NULL}, 0, 1, 0, 0},
    {"netaio cipher + HMAC, inner cipher + HMAC",
     {"--secret", "secret", "--cipher-key", "cipher key", "--inner-secret", "inner secret", "--inner-cipher-key",
      "inner key", NULL},
     1, 1, 0, 1},
    {"AEAD", {"--aead-key-file", NULL /* set at run time */, NULL}, 0, 0, 1, 0},
};

static void test_norman_serve(norman_client *client, const char *key_file) {
    for (size_t i = 0; i < sizeof CASES / sizeof CASES[0]; i++) {
        layer_case *k = &CASES[i];
        if (k->aead) k->flags[1] = (char *)key_file;
        printf("-- norman msg serve: %s\n", k->name);
        child c;
        int port = start_msg_serve(&c, k->flags);
        CHECK(port > 0);
        if (port > 0) broker_session(client, port, k, 1);
        stop_child(&c, SIGTERM);
    }
    /* The server killed while a client waits for notifications: next says closed. */
    printf("-- norman msg serve killed under a client\n");
    child c;
    int port = start_msg_serve(&c, NULL);
    char addr[64];
    addr_of(addr, sizeof addr, port);
    norman_msg_conn *conn = NULL;
    CHECK_RC(norman_msg_connect(client, addr, NULL, 5000, &conn), NORMAN_OK);
    stop_child(&c, SIGKILL);
    norman_msg *r = NULL;
    CHECK_RC(norman_msg_conn_next(conn, 5000, &r), NORMAN_CLOSED);
    CHECK_RC(norman_msg_conn_request(conn, NORMAN_MSG_REQUEST_URI, U("echo"), NULL, 0, NULL, 1000, &r), NORMAN_CLOSED);
    norman_msg_conn_free(conn);
}

static int test_netaio(norman_client *client) {
    if (!getenv("NORMAN_TEST_PYTHON") || !*getenv("NORMAN_TEST_PYTHON")) {
        if (python_required()) {
            fprintf(stderr, "NORMAN_REQUIRE_PYTHON is set but NORMAN_TEST_PYTHON is not\n");
            g_failures++;
        } else {
            printf("-- SKIPPED netaio interop: NORMAN_TEST_PYTHON unset (source scripts/py-venv.sh)\n");
        }
        return 0;
    }
    for (size_t i = 0; i < sizeof CASES / sizeof CASES[0]; i++) {
        layer_case *k = &CASES[i];
        if (k->aead) continue; /* libnorman's own layer: netaio has none */
        printf("-- netaio 0.0.9 server: %s\n", k->name);
        char *argv[12] = {"server", "0"};
        int n = 2;
        for (int j = 0; k->flags[j] && n < 11; j++) argv[n++] = k->flags[j];
        argv[n] = NULL;
        child c;
        int port = start_netaio(&c, argv);
        CHECK(port > 0);
        if (port > 0) broker_session(client, port, k, 0);
        stop_child(&c, SIGTERM);
    }
    /* netaio's garbage: a truncated frame then a close. */
    printf("-- netaio peer sending a truncated frame\n");
    char *argv[] = {"server", "0", "--garbage", "truncated", NULL};
    child c;
    int port = start_netaio(&c, argv);
    char addr[64];
    addr_of(addr, sizeof addr, port);
    norman_msg_conn *conn = NULL;
    CHECK_RC(norman_msg_connect(client, addr, NULL, 5000, &conn), NORMAN_OK);
    norman_msg *r = NULL;
    CHECK_RC(norman_msg_conn_request(conn, NORMAN_MSG_REQUEST_URI, U("echo"), U("x"), NULL, 5000, &r), NORMAN_CLOSED);
    norman_msg_conn_free(conn);
    stop_child(&c, SIGTERM);
    return 1;
}

/* ---------------------------------------------------------------- UDP nodes */

static void udp_echo(void *userdata, norman_msg_call *call) {
    (void)userdata;
    const norman_msg *m = NULL;
    const uint8_t *c = NULL;
    size_t n = 0;
    CHECK_RC(norman_msg_call_message(call, &m), NORMAN_OK);
    CHECK_RC(norman_msg_content(m, &c, &n), NORMAN_OK);
    CHECK(norman_msg_call_conn_id(call) == 0);
    CHECK_RC(norman_msg_call_subscribe(call, U("x")), NORMAN_ERROR_INVALID_ARGUMENT);
    CHECK_RC(norman_msg_call_reply(call, NORMAN_MSG_RESPOND_URI, c, n), NORMAN_OK);
}

static void test_udp(norman_client *client) {
    printf("-- two C UDP nodes on loopback: discovery, requests, datagrams\n");
    /* A group port of our own (loopback only), shared by both nodes' group sockets. */
    char group[64];
    snprintf(group, sizeof group, "224.0.0.1:%d", 20000 + (int)(getpid() % 20000));
    norman_msg_layers *outer = NULL;
    CHECK_RC(norman_msg_layers_new(&outer), NORMAN_OK);
    CHECK_RC(norman_msg_layers_add_aead(outer, AEAD_KEY, 32), NORMAN_OK);
    norman_msg_node *a = NULL, *b = NULL;
    CHECK_RC(norman_msg_node_new(client, "127.0.0.1:0", group, "127.0.0.1", outer, &a), NORMAN_OK);
    CHECK_RC(norman_msg_node_new(client, "127.0.0.1:0", group, "127.0.0.1", outer, &b), NORMAN_OK);
    if (!a || !b) goto out;
    uint16_t pa = 0, pb = 0;
    CHECK_RC(norman_msg_node_port(a, &pa), NORMAN_OK);
    CHECK_RC(norman_msg_node_port(b, &pb), NORMAN_OK);
    CHECK(pa > 0 && pb > 0 && pa != pb);
    CHECK_RC(norman_msg_node_on(b, NORMAN_MSG_REQUEST_URI, U("echo"), NULL, 0, udp_echo, NULL, NULL), NORMAN_OK);
    CHECK_RC(norman_msg_node_manage_peers(a, U("node-a"), U("data a"), 100, 2000), NORMAN_OK);
    CHECK_RC(norman_msg_node_manage_peers(b, U("node-b"), U("data b"), 100, 2000), NORMAN_OK);
    /* Discovery: each sees the other (bounded wait). */
    int found = 0;
    for (int i = 0; i < 100 && !found; i++) {
        char *ja = NULL, *jb = NULL;
        CHECK_RC(norman_msg_node_peers_json(a, &ja), NORMAN_OK);
        CHECK_RC(norman_msg_node_peers_json(b, &jb), NORMAN_OK);
        /* hex of "node-b" / "node-a" */
        found = ja && jb && strstr(ja, "\"id_hex\":\"6e6f64652d62\"") && strstr(jb, "\"id_hex\":\"6e6f64652d61\"");
        if (found) {
            char want[64];
            snprintf(want, sizeof want, "\"addr\":\"127.0.0.1:%u\"", pb);
            CHECK(strstr(ja, want) != NULL);
            CHECK(strstr(ja, "\"data_b64\":\"ZGF0YSBi\"") != NULL);
        }
        norman_string_free(ja);
        norman_string_free(jb);
        if (!found) sleep_ms(50);
    }
    CHECK(found);
    char addr_b[64];
    addr_of(addr_b, sizeof addr_b, pb);
    norman_msg *r = NULL;
    CHECK_RC(norman_msg_node_request(a, addr_b, NORMAN_MSG_REQUEST_URI, U("echo"), U("ping"), NULL, 5000, &r), NORMAN_OK);
    CHECK(msg_is(r, NORMAN_MSG_RESPOND_URI, "echo", "ping", 4));
    norman_msg_free(r);
    r = NULL;
    CHECK_RC(norman_msg_node_request(a, addr_b, NORMAN_MSG_REQUEST_URI, U("nope"), NULL, 0, NULL, 5000, &r),
             NORMAN_ERROR_MSG_REMOTE);
    CHECK(r && norman_msg_type_of(r) == NORMAN_MSG_NOT_FOUND);
    norman_msg_free(r);
    r = NULL;
    /* Datagrams no handler takes reach next: the request above (answered NOT_FOUND), and a
     * notification (answered nothing: NOTIFY is an answer type). */
    CHECK_RC(norman_msg_node_next(b, 5000, &r), NORMAN_OK);
    CHECK(msg_is(r, NORMAN_MSG_REQUEST_URI, "nope", NULL, 0));
    norman_msg_free(r);
    r = NULL;
    CHECK_RC(norman_msg_node_send_to(a, addr_b, NORMAN_MSG_NOTIFY_URI, U("note"), U("n1"), NULL), NORMAN_OK);
    CHECK_RC(norman_msg_node_next(b, 5000, &r), NORMAN_OK);
    CHECK(msg_is(r, NORMAN_MSG_NOTIFY_URI, "note", "n1", 2));
    norman_msg_free(r);
    r = NULL;
    /* Multicast reaches the other node's group socket. */
    CHECK_RC(norman_msg_node_multicast(a, 77, U("all"), U("m"), NULL), NORMAN_OK);
    int got = 0;
    for (int i = 0; i < 20 && !got; i++) {
        if (norman_msg_node_next(b, 250, &r) == NORMAN_OK) got = msg_is(r, 77, "all", "m", 1);
        norman_msg_free(r);
        r = NULL;
    }
    CHECK(got);
    /* A dead address: no reply within the deadline. Oversize, bad addresses. */
    char dead[64];
    addr_of(dead, sizeof dead, 9);
    CHECK_RC(norman_msg_node_request(a, dead, NORMAN_MSG_REQUEST_URI, U("echo"), NULL, 0, NULL, 200, &r),
             NORMAN_ERROR_TIMEOUT);
    static uint8_t big[70000];
    CHECK_RC(norman_msg_node_send_to(a, addr_b, 40, U("x"), big, sizeof big, NULL), NORMAN_ERROR_OVERSIZE);
    CHECK_RC(norman_msg_node_send_to(a, "nowhere", 40, U("x"), NULL, 0, NULL), NORMAN_ERROR_INVALID_ARGUMENT);
    norman_msg_node *bad = NULL;
    CHECK_RC(norman_msg_node_new(client, "127.0.0.1:0", "127.0.0.2", "127.0.0.1", NULL, &bad), NORMAN_ERROR_INVALID_ARGUMENT);
    CHECK_RC(norman_msg_node_new(client, "127.0.0.1", NULL, NULL, NULL, &bad), NORMAN_ERROR_INVALID_ARGUMENT);
    CHECK_RC(norman_msg_node_new(client, "127.0.0.1:0", group, "no", NULL, &bad), NORMAN_ERROR_INVALID_ARGUMENT);
    CHECK_RC(norman_msg_node_new(client, "127.0.0.1:0", NULL, NULL, NULL, &bad), NORMAN_OK);
    CHECK_RC(norman_msg_node_manage_peers(bad, U("x"), NULL, 0, 100, 1000), NORMAN_ERROR_INVALID_CONFIG);
    CHECK_RC(norman_msg_node_manage_peers(bad, NULL, 0, NULL, 0, 100, 1000), NORMAN_ERROR_INVALID_ARGUMENT);
    CHECK_RC(norman_msg_node_multicast(bad, 40, U("x"), NULL, 0, NULL), NORMAN_ERROR_INVALID_CONFIG);
    norman_msg_node_free(bad);
    /* Close b: a leaves it when its DISCONNECT arrives; b's own calls say closed. */
    CHECK_RC(norman_msg_node_close(b), NORMAN_OK);
    CHECK_RC(norman_msg_node_close(b), NORMAN_OK);
    CHECK_RC(norman_msg_node_next(b, 1000, &r), NORMAN_CLOSED);
    CHECK_RC(norman_msg_node_send_to(b, addr_b, 40, U("x"), NULL, 0, NULL), NORMAN_CLOSED);
    int gone = 0;
    for (int i = 0; i < 100 && !gone; i++) {
        char *ja = NULL;
        CHECK_RC(norman_msg_node_peers_json(a, &ja), NORMAN_OK);
        gone = ja && strcmp(ja, "[]") == 0;
        norman_string_free(ja);
        if (!gone) sleep_ms(50);
    }
    CHECK(gone);
out:
    norman_msg_node_free(a);
    norman_msg_node_free(b);
    norman_msg_node_free(NULL);
    norman_msg_layers_free(outer);
}

/* ------------------------------------------------- the event descriptor */

static int readable(int fd, int timeout_ms) {
    struct pollfd p = {fd, POLLIN, 0};
    return poll(&p, 1, timeout_ms) > 0 && (p.revents & POLLIN);
}

/* Waits on `fd` and drains events until `want` arrived (or 5 s without one); counts them by result. */
static int drain_events(norman_client *client, int fd, int want, uint64_t op, norman_result *result) {
    int got = 0;
    while (got < want && readable(fd, 5000)) {
        norman_event *ev = NULL;
        while (norman_client_next_event(client, 0, &ev) == NORMAN_OK) {
            got++;
            if (norman_event_op_id(ev) == op) *result = norman_event_result(ev);
            norman_event_free(ev);
        }
    }
    return got;
}

static void test_event_fd(void) {
    printf("-- the event descriptor (norman_client_event_fd) with norman msg serve\n");
    norman_client *client = msg_client();
    child c;
    int port = start_msg_serve(&c, NULL);
    CHECK(port > 0);
    if (!client || port <= 0) return;
    char addr[64];
    addr_of(addr, sizeof addr, port);
    norman_msg_conn *conn = NULL;
    CHECK_RC(norman_msg_connect(client, addr, NULL, 5000, &conn), NORMAN_OK);

    int fd = -1;
    CHECK_RC(norman_client_event_fd(NULL, &fd), NORMAN_ERROR_NULL_ARGUMENT);
    CHECK_RC(norman_client_event_fd(client, NULL), NORMAN_ERROR_NULL_ARGUMENT);
    CHECK_RC(norman_client_event_fd(client, &fd), NORMAN_OK);
    CHECK(fd >= 0);
    CHECK(!readable(fd, 0));

    /* Three replies: readable until every event is taken, then not (level, nothing to read). */
    uint64_t ops[3] = {0, 0, 0};
    for (int i = 0; i < 3; i++) {
        CHECK_RC(norman_msg_conn_request_async(conn, NORMAN_MSG_REQUEST_URI, U("echo"), U("fd"), NULL, 5000, NULL,
                                               NULL, NULL, &ops[i]),
                 NORMAN_OK);
    }
    int seen = 0;
    while (seen < 3 && readable(fd, 5000)) {
        norman_event *ev = NULL;
        while (norman_client_next_event(client, 0, &ev) == NORMAN_OK) {
            norman_msg *reply = NULL;
            CHECK(norman_event_result(ev) == NORMAN_OK);
            CHECK(norman_event_op_id(ev) == ops[0] || norman_event_op_id(ev) == ops[1] ||
                  norman_event_op_id(ev) == ops[2]);
            CHECK_RC(norman_event_take_msg(ev, &reply), NORMAN_OK);
            CHECK(msg_is(reply, NORMAN_MSG_RESPOND_URI, "echo", "fd", 2));
            norman_msg_free(reply);
            norman_event_free(ev);
            seen++;
        }
    }
    CHECK(seen == 3);
    CHECK(!readable(fd, 0));

    /* A deadline and a cancel wake it too (the broker never answers NOTIFY_URI). */
    uint64_t op = 0;
    norman_result result = NORMAN_OK;
    CHECK_RC(norman_msg_conn_request_async(conn, NORMAN_MSG_NOTIFY_URI, U("quiet"), U("x"), NULL, 200, NULL, NULL,
                                           NULL, &op),
             NORMAN_OK);
    CHECK(drain_events(client, fd, 1, op, &result) == 1);
    CHECK(result == NORMAN_ERROR_TIMEOUT);
    CHECK_RC(norman_msg_conn_request_async(conn, NORMAN_MSG_NOTIFY_URI, U("quiet"), U("x"), NULL, 30000, NULL, NULL,
                                           NULL, &op),
             NORMAN_OK);
    CHECK(!readable(fd, 100));
    CHECK_RC(norman_client_cancel(client, op), NORMAN_OK);
    CHECK(drain_events(client, fd, 1, op, &result) == 1);
    CHECK(result == NORMAN_ERROR_CANCELLED);
    CHECK(!readable(fd, 0));

    /* Closing the client: the request in flight ends as cancelled, then the descriptor stays
     * readable and next_event says the client is closed. */
    CHECK_RC(norman_msg_conn_request_async(conn, NORMAN_MSG_NOTIFY_URI, U("quiet"), U("x"), NULL, 30000, NULL, NULL,
                                           NULL, &op),
             NORMAN_OK);
    CHECK_RC(norman_client_close(client), NORMAN_OK);
    CHECK(drain_events(client, fd, 1, op, &result) == 1);
    CHECK(result == NORMAN_ERROR_CANCELLED);
    CHECK(readable(fd, 0));
    norman_event *ev = NULL;
    CHECK_RC(norman_client_next_event(client, 0, &ev), NORMAN_ERROR_CANCELLED);
    CHECK(readable(fd, 0));

    /* Freed: end of file (after the byte that says "closed"); the descriptor is still ours. */
    norman_msg_conn_free(conn);
    norman_client_free(client);
    char buf[16];
    ssize_t n;
    int reads = 0;
    while ((n = read(fd, buf, sizeof buf)) > 0 && reads < 10) reads++;
    CHECK(n == 0);
    CHECK(close(fd) == 0);
    stop_child(&c, SIGTERM);
}

int main(void) {
    norman_client *client = msg_client();
    if (!client) return 1;
    char key_file[256];
    const char *dir = getenv("NORMAN_TEST_DIR");
    snprintf(key_file, sizeof key_file, "%s/msg-aead.key", dir ? dir : "/tmp");
    CHECK(write_file(key_file, AEAD_KEY, sizeof AEAD_KEY) == 0);

    test_bad_input(client);
    test_c_server(client);
    test_udp(client);
    test_norman_serve(client, key_file);
    test_event_fd();
    test_netaio(client);

    norman_client_free(client);
    unlink(key_file);
    return finish_tests("test_msg");
}
