"""netaio 0.0.9 peers for the `norman msg` interop tests and the messaging bench.

Started by cli/tests/msg_interop.rs and `norman msg bench` with the interpreter of the test venv
(NORMAN_TEST_PYTHON, see scripts/py-venv.sh). Every mode talks to 127.0.0.1 only, except `node`,
which multicasts and must therefore run inside a private network namespace (the Rust test makes it
with `unshare -n`). Replies are printed one per line in the format of `norman msg request`:
`TYPE_NAME uri=URI content=CONTENT` (text when printable UTF-8, else `base64:...`).

Modes:
  server  PORT [layers] [--garbage KIND]   a resource broker like `norman msg serve`; first line
                                           `listening PORT`; --garbage answers every frame with a
                                           malformed one instead (checksum|type|packify|truncated)
  client  PORT SCENARIO [layers]           runs SCENARIO against a broker and prints each reply
  node    PORT ID [--peer-port P] [--every S] [--duration S] [--echo-to-peers] [--reuse-addr] [layers]
  bench-server PORT [layers]               echo server for the bench; first line `listening PORT`
  bench-client PORT N SIZE [layers]        N sequential echo requests; prints `rps p50_us p99_us`
Layers: --secret S --cipher-key K (outer, netaio's order) --inner-secret S --inner-cipher-key K
(per-handler, fields hmac2 / iv2, encrypt_uri off so routing by uri keeps working).
"""

import argparse
import asyncio
import base64
import logging
import socket
import sys
import time
import unicodedata

import netaio
from netaio import (
    HMACAuthPlugin,
    Message,
    MessageType,
    Body,
    Peer,
    Sha256StreamCipherPlugin,
    TCPClient,
    TCPServer,
    UDPNode,
)
import packify

# netaio logs every exception it swallows at ERROR; the tests read our lines, not its logs.
for name in ("netaio.server", "netaio.client", "netaio.node"):
    logging.getLogger(name).setLevel(logging.CRITICAL)
netaio.default_server_logger.setLevel(logging.CRITICAL)
netaio.default_client_logger.setLevel(logging.CRITICAL)
netaio.default_node_logger.setLevel(logging.CRITICAL)

T = MessageType


def out(line: str) -> None:
    print(line, flush=True)


def show(data: bytes) -> str:
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        text = None
    # Control characters = Unicode category Cc, as Rust's char::is_control.
    if text is None or any(unicodedata.category(c) == "Cc" for c in text):
        return "base64:" + base64.b64encode(data).decode()
    return text


def line_of(msg) -> str:
    return f"{msg.header.message_type.name} uri={show(msg.body.uri)} content={show(msg.body.content)}"


def outer_layers(args):
    auth = HMACAuthPlugin({"secret": args.secret}) if args.secret else None
    cipher = Sha256StreamCipherPlugin({"key": args.cipher_key}) if args.cipher_key else None
    return auth, cipher


def inner_layers(args):
    auth = (
        HMACAuthPlugin({"secret": args.inner_secret, "hmac_field": "hmac2"})
        if args.inner_secret
        else None
    )
    cipher = (
        Sha256StreamCipherPlugin(
            {"key": args.inner_cipher_key, "iv_field": "iv2", "encrypt_uri": False}
        )
        if args.inner_cipher_key
        else None
    )
    return auth, cipher


def msg(mtype, uri: bytes, content: bytes = b""):
    return Message.prepare(Body.prepare(content, uri), mtype)


# ---------------------------------------------------------------------------------------- server

async def run_server(args) -> None:
    auth, cipher = outer_layers(args)
    iauth, icipher = inner_layers(args)
    server = TCPServer(port=args.port, interface="127.0.0.1", auth_plugin=auth, cipher_plugin=cipher)
    store: dict[bytes, bytes] = {}

    async def notify(uri: bytes, content: bytes):
        await server.notify(uri, msg(T.NOTIFY_URI, uri, content), auth_plugin=iauth, cipher_plugin=icipher)

    def on(mtype):
        return server.on(mtype, auth_plugin=iauth, cipher_plugin=icipher)

    @on(T.REQUEST_URI)
    def request(m, writer):
        uri = m.body.uri
        if uri == b"echo":
            return msg(T.RESPOND_URI, uri, m.body.content)
        if uri not in store:
            return msg(T.NOT_FOUND, uri, b"not found")
        return msg(T.RESPOND_URI, uri, store[uri])

    async def write(m, writer):
        uri = m.body.uri
        store[uri] = m.body.content
        await notify(uri, m.body.content)
        return msg(T.OK, uri)

    on(T.CREATE_URI)(write)
    on(T.UPDATE_URI)(write)

    @on(T.DELETE_URI)
    async def delete(m, writer):
        uri = m.body.uri
        store.pop(uri, None)
        await notify(uri, b"")
        return msg(T.OK, uri)

    @on(T.PUBLISH_URI)
    async def publish(m, writer):
        await notify(m.body.uri, m.body.content)
        return msg(T.OK, m.body.uri)

    @on(T.SUBSCRIBE_URI)
    def subscribe(m, writer):
        server.subscribe(m.body.uri, writer)
        return msg(T.CONFIRM_SUBSCRIBE, m.body.uri)

    @on(T.UNSUBSCRIBE_URI)
    def unsubscribe(m, writer):
        try:
            server.unsubscribe(m.body.uri, writer)
        except KeyError:
            pass
        return msg(T.CONFIRM_UNSUBSCRIBE, m.body.uri)

    task = asyncio.create_task(server.start())
    await announce(server, task)


async def announce(server, task) -> None:
    while not hasattr(server, "server"):
        if task.done():
            task.result()
        await asyncio.sleep(0.01)
    out(f"listening {server.server.sockets[0].getsockname()[1]}")
    await task


async def run_garbage(args) -> None:
    """Answers every frame with a malformed one (what `norman msg request` must survive)."""
    async def handle(reader, writer):
        try:
            header = await reader.readexactly(9)
            auth_len = int.from_bytes(header[1:3], "big")
            body_len = int.from_bytes(header[3:5], "big")
            await reader.readexactly(auth_len + body_len)
        except (asyncio.IncompleteReadError, ConnectionError):
            writer.close()
            return
        good = msg(T.RESPOND_URI, b"echo", b"hello").encode()
        if args.garbage == "checksum":
            frame = good[:5] + bytes(b ^ 0xFF for b in good[5:9]) + good[9:]
        elif args.garbage == "type":
            frame = bytes([17]) + good[1:]
        elif args.garbage == "packify":
            frame = good[:9] + b"\x4d\x40\x01" + good[12:]
        elif args.garbage == "oversize":
            # A header announcing 65535 bytes of body, followed by a few and a close.
            frame = good[:3] + b"\xff\xff" + good[5:]
        else:  # truncated
            frame = good[:5]
        writer.write(frame)
        await writer.drain()
        await asyncio.sleep(0.2)
        writer.close()

    srv = await asyncio.start_server(handle, "127.0.0.1", args.port)
    out(f"listening {srv.sockets[0].getsockname()[1]}")
    async with srv:
        await srv.serve_forever()


# ---------------------------------------------------------------------------------------- client

async def run_client(args) -> int:
    auth, cipher = outer_layers(args)
    iauth, icipher = inner_layers(args)
    server = ("127.0.0.1", args.port)

    async def connect():
        c = TCPClient("127.0.0.1", args.port, auth_plugin=auth, cipher_plugin=cipher)
        await c.connect()
        # Started without the inner layers: request() then applies them once, in its handlers
        # (a loop started by request() itself would decrypt the inner layer twice).
        await c.start_receive_loop()
        return c

    async def call(c, mtype, uri: bytes, content: bytes = b""):
        if mtype in (T.SUBSCRIBE_URI, T.UNSUBSCRIBE_URI):
            # request() only waits for RESPOND_URI / OK: wait for the confirmation by hand.
            want = T.CONFIRM_SUBSCRIBE if mtype == T.SUBSCRIBE_URI else T.CONFIRM_UNSUBSCRIBE
            done = asyncio.get_running_loop().create_future()
            c.add_ephemeral_handler(
                (want, uri, server), lambda m, w: done.set_result(m),
                auth_plugin=iauth, cipher_plugin=icipher,
            )
            await c.send(msg(mtype, uri, content), auth_plugin=iauth, cipher_plugin=icipher)
            reply = await asyncio.wait_for(done, args.timeout)
            out(line_of(reply))
            return reply
        reply = await c.request(
            uri, message_type=mtype, content=content, timeout=args.timeout,
            auth_plugin=iauth, cipher_plugin=icipher,
        )
        out(line_of(reply))
        return reply

    scenario = args.scenario
    if scenario == "crud":
        c = await connect()
        await call(c, T.CREATE_URI, b"a", b"one")
        await call(c, T.REQUEST_URI, b"a")
        await call(c, T.UPDATE_URI, b"a", b"two")
        await call(c, T.REQUEST_URI, b"a")
        await call(c, T.REQUEST_URI, b"echo", b"\x00\x01binary\xff")
        await call(c, T.DELETE_URI, b"a")
        await call(c, T.REQUEST_URI, b"a")
        await call(c, T.PUBLISH_URI, b"news", b"hello")
        await c.close()
    elif scenario == "pubsub":
        sub = await connect()
        pub = await connect()
        got: asyncio.Queue = asyncio.Queue()
        sub.add_handler(
            (T.NOTIFY_URI, b"topic"), lambda m, w: got.put_nowait(m),
            auth_plugin=iauth, cipher_plugin=icipher,
        )
        await call(sub, T.SUBSCRIBE_URI, b"topic")
        await call(pub, T.CREATE_URI, b"topic", b"v1")
        await call(pub, T.UPDATE_URI, b"topic", b"v2")
        await call(pub, T.PUBLISH_URI, b"topic", b"flash")
        await call(pub, T.DELETE_URI, b"topic")
        await call(pub, T.PUBLISH_URI, b"other", b"not for us")
        for _ in range(4):
            out(line_of(await asyncio.wait_for(got.get(), args.timeout)))
        await call(sub, T.UNSUBSCRIBE_URI, b"topic")
        await call(pub, T.PUBLISH_URI, b"topic", b"after")
        await asyncio.sleep(0.3)
        out(f"after unsubscribe: {got.qsize()} notifications")
        await sub.close()
        await pub.close()
    elif scenario == "wrong-secret":
        # Raw receive: the AUTH_ERROR comes in the clear with uri ERROR, which request() would
        # never match (it waits for the request's uri).
        c = TCPClient("127.0.0.1", args.port, auth_plugin=auth, cipher_plugin=cipher)
        await c.connect()
        await c.send(msg(T.REQUEST_URI, b"echo", b"x"))
        reply = await asyncio.wait_for(
            c.receive_once(use_auth=False, use_cipher=False), args.timeout
        )
        out(line_of(reply))
        await c.close()
    else:
        print(f"unknown scenario {scenario}", file=sys.stderr)
        return 2
    return 0


# ---------------------------------------------------------------------------------------- node

async def run_node(args) -> None:
    auth, cipher = outer_layers(args)
    node = UDPNode(
        port=args.port, interface="0.0.0.0", local_peer=Peer(set(), args.id.encode(), packify.pack({"name": args.id})),
        auth_plugin=auth, cipher_plugin=cipher,
        # Inside the test's namespace get_ip() is 127.0.0.1, the address of every peer.
        ignore_own_ip=False,
    )

    @node.on((T.REQUEST_URI, b"echo"))
    def echo(m, addr):
        return msg(T.RESPOND_URI, b"echo", m.body.content)

    if args.reuse_addr:
        # Only the socket setup differs from UDPNode.start(): SO_REUSEADDR lets a libnorman node's
        # group socket share the port, so that each hears the other's multicasts.
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("0.0.0.0", args.port))
        node.transport, _ = await asyncio.get_running_loop().create_datagram_endpoint(lambda: node, sock=sock)
    else:
        await node.start()
    await node.manage_peers_automatically(advertise_every=args.every, peer_timeout=args.peer_timeout)
    out(f"listening {args.port}")
    if args.peer_port:
        # netaio advertises to its own port only; reach a node on another port directly as well.
        node.multicast(
            msg(T.ADVERTISE_PEER, b"netaio", node.peer_plugin.pack(node.local_peer)), args.peer_port
        )
    deadline = time.monotonic() + args.duration
    seen: set[bytes] = set()
    echoed: set[bytes] = set()
    while time.monotonic() < deadline:
        for pid, peer in list(node.peers.items()):
            if pid not in seen:
                seen.add(pid)
                addr = sorted(peer.addrs)[0]
                out(f"peer {show(pid)} at {addr[0]}:{addr[1]}")
            if args.echo_to_peers and pid not in echoed:
                addr = sorted(peer.addrs)[0]
                try:
                    reply = await node.request(b"echo", addr, content=b"ping " + pid, timeout=2)
                    out("echo " + line_of(reply))
                    echoed.add(pid)
                except TimeoutError:
                    out(f"echo timeout {show(pid)}")
        await asyncio.sleep(0.05)
    await node.stop()  # multicasts DISCONNECT
    await asyncio.sleep(0.1)
    out("stopped")


# ---------------------------------------------------------------------------------------- bench

async def run_bench_server(args) -> None:
    auth, cipher = outer_layers(args)
    server = TCPServer(port=args.port, interface="127.0.0.1", auth_plugin=auth, cipher_plugin=cipher)

    @server.on((T.REQUEST_URI, b"echo"))
    def echo(m, writer):
        return msg(T.RESPOND_URI, b"echo", m.body.content)

    task = asyncio.create_task(server.start())
    await announce(server, task)


async def run_bench_client(args) -> None:
    auth, cipher = outer_layers(args)
    c = TCPClient("127.0.0.1", args.port, auth_plugin=auth, cipher_plugin=cipher)
    await c.connect()
    await c.start_receive_loop()
    payload = bytes(i % 251 for i in range(args.size))
    lat = []
    start = time.perf_counter()
    for _ in range(args.n):
        t0 = time.perf_counter()
        reply = await c.request(b"echo", content=payload, timeout=10)
        lat.append(time.perf_counter() - t0)
        if reply.header.message_type != T.RESPOND_URI or reply.body.content != payload:
            raise SystemExit("bad reply")
    total = time.perf_counter() - start
    lat.sort()
    p50 = lat[len(lat) // 2] * 1e6
    p99 = lat[min(len(lat) - 1, (len(lat) * 99) // 100)] * 1e6
    out(f"{args.n / total:.1f} {p50:.1f} {p99:.1f}")
    await c.close()


def main() -> int:
    p = argparse.ArgumentParser()
    sub = p.add_subparsers(dest="mode", required=True)

    def layered(name):
        s = sub.add_parser(name)
        s.add_argument("port", type=int)
        for flag in ("--secret", "--cipher-key", "--inner-secret", "--inner-cipher-key"):
            s.add_argument(flag)
        s.add_argument("--timeout", type=float, default=5.0)
        return s

    s = layered("server")
    s.add_argument("--garbage", choices=["checksum", "type", "packify", "oversize", "truncated"])
    s = layered("client")
    s.add_argument("scenario")
    s = layered("node")
    s.add_argument("id")
    s.add_argument("--peer-port", type=int)
    s.add_argument("--every", type=float, default=0.2)
    s.add_argument("--peer-timeout", type=int, default=1)
    s.add_argument("--duration", type=float, default=3.0)
    s.add_argument("--echo-to-peers", action="store_true")
    s.add_argument("--reuse-addr", action="store_true")
    layered("bench-server")
    s = layered("bench-client")
    s.add_argument("n", type=int)
    s.add_argument("size", type=int)
    args = p.parse_args()

    if args.mode == "server":
        asyncio.run(run_garbage(args) if args.garbage else run_server(args))
    elif args.mode == "client":
        return asyncio.run(run_client(args))
    elif args.mode == "node":
        asyncio.run(run_node(args))
    elif args.mode == "bench-server":
        asyncio.run(run_bench_server(args))
    elif args.mode == "bench-client":
        asyncio.run(run_bench_client(args))
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KeyboardInterrupt:
        sys.exit(130)
