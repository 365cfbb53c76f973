"""A py-bson (PyPI `bson` 0.5.10) peer for the `norman bson` tests, speaking through
`bson.patch_socket()`: sendobj / recvobj / recvbytes on plain sockets, 127.0.0.1 only.

  bson_peer.py client PORT        send py-bson's codec table to an echo server, check each echo
  bson_peer.py echo-server        listen on 127.0.0.1:0 (prints "port N"), echo every document,
                                  printing a typed description of each, until killed
  bson_peer.py send PORT CASE     send one document of the codec table, then close
"""
import datetime
import socket
import sys
import time
import uuid

import bson

bson.patch_socket()

UTC = bson.codec.utc
BIG = 2**63 + 5


def cases():
    """Every type of py-bson's codec table, one document each, plus the larger cases."""
    return {
        "int32": {"v": -2**31, "w": 2**31 - 1},
        "int64": {"v": 2**31, "w": -2**63},
        "uint64": {"v": BIG, "w": 2**64 - 1},
        "double": {"v": 1.5, "w": -0.0, "x": 1e300},
        "string": {"v": "héllo wörld ✓", "w": "", "x": "nul\x00inside"},
        "binary": {"v": b"\x00\x01\xfe\xff"},
        "uuid": {"v": uuid.UUID("12345678-1234-5678-1234-567812345678")},
        "datetime": {"v": datetime.datetime(2024, 2, 29, 12, 34, 56, 789000, tzinfo=UTC)},
        "null": {"v": None},
        "bool": {"t": True, "f": False},
        "document": {"v": {"a": 1, "b": {"c": "d"}}},
        "array": {"v": [1, "two", 3.0, [4], {"five": 5}, None]},
        "mixed": {"z": 1, "a": [BIG, {"u": uuid.UUID(int=1)}], "m": "order kept"},
        "big_binary": {"blob": bytes(range(256)) * (3 * 4096)},  # 3 MiB
    }


def expect_equal(name, sent, got):
    if got != sent:
        raise SystemExit("case %s: sent %r, got back %r" % (name, sent, got))


def client(port):
    s = socket.create_connection(("127.0.0.1", port))
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    for name, doc in cases().items():
        s.sendobj(doc)
        expect_equal(name, doc, s.recvobj())
        print("ok", name, flush=True)
    # Two documents in one TCP segment.
    a, b = {"first": 1}, {"second": [2]}
    s.sendall(bson.dumps(a) + bson.dumps(b))
    expect_equal("two-in-one/a", a, s.recvobj())
    expect_equal("two-in-one/b", b, s.recvobj())
    print("ok two-in-one", flush=True)
    # One document trickled one byte at a time.
    doc = {"trickle": "one byte at a time", "n": 42}
    for byte in bson.dumps(doc):
        s.sendall(bytes([byte]))
        time.sleep(0.002)
    expect_equal("trickle", doc, s.recvobj())
    print("ok trickle", flush=True)
    # Clean close: the server sees the end between documents.
    s.shutdown(socket.SHUT_WR)
    if s.recvobj() is not None:
        raise SystemExit("expected the server to close after our clean close")
    print("ok clean-close", flush=True)


def describe(value):
    """A typed, JSON-friendly description, so the test sees what py-bson decoded."""
    if isinstance(value, bool):
        return ["bool", value]
    if isinstance(value, int):
        return ["int", str(value)]
    if isinstance(value, float):
        return ["float", repr(value)]
    if isinstance(value, str):
        return ["str", value]
    if isinstance(value, bytes):
        return ["bytes", value.hex()]
    if isinstance(value, uuid.UUID):
        return ["uuid", str(value)]
    if isinstance(value, datetime.datetime):
        return ["datetime", value.isoformat()]
    if value is None:
        return ["none"]
    if isinstance(value, dict):
        return ["dict", [[k, describe(v)] for k, v in value.items()]]
    if isinstance(value, list):
        return ["list", [describe(v) for v in value]]
    return ["other", repr(value)]


def echo_server():
    import json

    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(4)
    print("port", listener.getsockname()[1], flush=True)
    while True:
        conn, _ = listener.accept()
        while True:
            try:
                doc = conn.recvobj()
            except Exception as e:  # what py-bson does with what it cannot read
                print(json.dumps(["error", type(e).__name__]), flush=True)
                break
            if doc is None:
                print("closed", flush=True)
                break
            print(json.dumps(describe(doc)), flush=True)
            conn.sendobj(doc)
        conn.close()


def send(port, case):
    s = socket.create_connection(("127.0.0.1", port))
    s.sendobj(cases()[case])
    s.close()


if __name__ == "__main__":
    mode = sys.argv[1]
    if mode == "client":
        client(int(sys.argv[2]))
    elif mode == "echo-server":
        echo_server()
    elif mode == "send":
        send(int(sys.argv[2]), sys.argv[3])
    else:
        raise SystemExit("unknown mode " + mode)
