"""The side-by-side benchmark of scripts/bench-vs-python.sh: `norman` next to the Python SDK
(norman-core 0.1.0) on loopback. `run` drives everything and prints the table; the other commands
are the pieces it starts as separate processes, so each one's CPU time and peak memory is its own
(os.wait4). A benchmark, not a test: it reports figures and never judges them."""

import argparse
import asyncio
import base64
import json
import os
import socket
import statistics
import subprocess
import sys
import time

MIB = 1 << 20
GIB = 1 << 30
HERE = os.path.dirname(os.path.abspath(__file__))


# ---------------------------------------------------------------- pieces (child processes)

def discard(args):
    """Accepts one connection, reads until EOF into one reused buffer, checks the byte count."""
    server = socket.create_server(("127.0.0.1", 0))
    with open(args.port_file + ".tmp", "w") as f:
        f.write(str(server.getsockname()[1]))
    os.rename(args.port_file + ".tmp", args.port_file)
    conn, _ = server.accept()
    buf = bytearray(4 * MIB)
    view = memoryview(buf)
    total = 0
    while True:
        n = conn.recv_into(view)
        if n == 0:
            break
        total += n
    conn.close()
    if args.expect and total != args.expect:
        sys.exit(f"discard receiver: got {total} bytes, expected {args.expect}")


def load_pairing(path):
    from norman_objects.services.file_push.pairing.socket_pairing_response import SocketPairingResponse

    with open(path) as f:
        return SocketPairingResponse.model_validate(json.load(f))


def sdk_send(args):
    """norman-core's SocketClient.write_and_digest, with a plain file object or aiofiles."""
    from norman_core.clients.socket_client import SocketClient

    pairing = load_pairing(args.pairing)

    async def main():
        if args.mode == "aiofiles":
            import aiofiles  # as the SDK's docs show

            async with aiofiles.open(args.file, "rb") as f:
                return await SocketClient.write_and_digest(pairing, f)
        with open(args.file, "rb") as f:
            return await SocketClient.write_and_digest(pairing, f)

    print(asyncio.run(main()))


def sdk_client(args):
    from norman_core.clients.http_client import HttpClient
    from norman_objects.shared.security.sensitive import Sensitive

    return HttpClient(base_url=args.base_url, timeout=600), Sensitive(args.token)


def sdk_push(args):
    """FilePush: pair an asset socket, write_and_digest (plain file), complete with the checksum."""
    from norman_core.clients.socket_client import SocketClient
    from norman_core.services.file_push.file_push import FilePush
    from norman_objects.services.file_push.checksum.checksum_request import ChecksumRequest
    from norman_objects.services.file_push.pairing.socket_asset_pairing_request import SocketAssetPairingRequest

    async def main():
        http, token = sdk_client(args)
        async with http:
            request = SocketAssetPairingRequest(
                account_id=args.account, model_id=args.model, asset_id=args.asset,
                file_size_in_bytes=os.path.getsize(args.file))
            pairing = await FilePush.allocate_socket_for_asset(http, token, request)
            with open(args.file, "rb") as f:
                checksum = await SocketClient.write_and_digest(pairing, f)
            await FilePush.complete_file_transfer(
                http, token, ChecksumRequest(pairing_id=pairing.pairing_id, checksum=checksum))
            return checksum

    print(asyncio.run(main()))


def sdk_pull(args):
    """Retrieve.get_model_asset, its chunks written to a file."""
    from norman_core.services.retrieve.retrieve import Retrieve

    async def main():
        http, token = sdk_client(args)
        total = 0
        async with http:
            _headers, chunks = await Retrieve.get_model_asset(http, token, args.account, args.model, args.asset)
            with open(args.out, "wb") as f:
                async for chunk in chunks:
                    f.write(chunk)
                    total += len(chunk)
        return total

    print(asyncio.run(main()))


def py_cipher(args):
    """cryptography's (OpenSSL's) ChaCha20 on one core: `chunk`-byte update_into calls over `mib`."""
    from cryptography.hazmat.primitives.ciphers import Cipher, algorithms

    enc = Cipher(algorithms.ChaCha20(os.urandom(32), bytes(4) + os.urandom(12)), mode=None).encryptor()
    src = bytearray(b"\x5a" * args.chunk)
    dst = bytearray(args.chunk + 16)
    n = args.mib * MIB // args.chunk
    wall, cpu = time.perf_counter(), time.thread_time()
    for _ in range(n):
        enc.update_into(src, dst)
    wall, cpu = time.perf_counter() - wall, time.thread_time() - cpu
    print(f"{n * args.chunk / wall / 1e6:.0f} {n * args.chunk / cpu / 1e6:.0f}")


# ---------------------------------------------------------------- the driver

def measured(cmd, env=None, stdout=subprocess.DEVNULL):
    """Runs cmd to its end: (wall s, user+sys s, peak RSS KiB, exit status)."""
    start = time.perf_counter()
    child = subprocess.Popen(cmd, env=env, stdout=stdout)
    _, status, usage = os.wait4(child.pid, 0)
    child.returncode = os.waitstatus_to_exitcode(status)
    out = child.stdout.read().decode() if child.stdout else ""
    return time.perf_counter() - start, usage.ru_utime + usage.ru_stime, usage.ru_maxrss, child.returncode, out


def pairing_file(path, port):
    """A pairing of our own (fresh key, nonce, 32-byte header) for `norman send` and the SDK."""
    with open(path, "w") as f:
        json.dump({
            "pairing_id": "bench", "host": "127.0.0.1", "port": port,
            "encryption_key": base64.b64encode(os.urandom(32)).decode(),
            "nonce": base64.b64encode(os.urandom(12)).decode(),
            "authentication_header": base64.b64encode(os.urandom(32)).decode(),
        }, f)


def wait_for(path, proc):
    for _ in range(200):
        if os.path.exists(path):
            with open(path) as f:
                return int(f.read())
        if proc.poll() is not None:
            raise SystemExit("receiver exited before listening")
        time.sleep(0.05)
    raise SystemExit("receiver did not start")


def send_once(args, sender, work, size):
    """One upload into a fresh discard receiver: (MB/s, sender CPU s/GiB, sender peak KiB)."""
    port_file = os.path.join(work, "port")
    if os.path.exists(port_file):
        os.remove(port_file)
    receiver = subprocess.Popen([sys.executable, __file__, "discard", "--port-file", port_file,
                                 "--expect", str(size + 32)])
    port = wait_for(port_file, receiver)
    pairing = os.path.join(work, "pairing.json")
    pairing_file(pairing, port)
    if sender == "norman send":
        cmd = [args.norman, "send", "--pairing", pairing, args.file]
    else:
        cmd = [sys.executable, __file__, "sdk-send", "--pairing", pairing, "--file", args.file,
               "--mode", "aiofiles" if "aiofiles" in sender else "plain"]
    wall, cpu, rss, rc, _ = measured(cmd)
    if rc != 0 or receiver.wait() != 0:
        raise SystemExit(f"{sender}: sender exit {rc}, receiver exit {receiver.returncode}")
    return size / wall / 1e6, cpu / (size / GIB), rss


def serve_env(args):
    env = dict(os.environ, NORMAN_BASE_URL=args.base_url, NORMAN_TOKEN=args.token)
    env.pop("NORMAN_CONFIG", None)
    return env


def legacy(args):
    """The SDK's generation of the API: the same server under /legacy/v0/ (PROTOCOL.md section 5)."""
    from urllib.parse import urlsplit

    url = urlsplit(args.base_url)
    return ["--base-url", f"{url.scheme}://{url.netloc}/legacy/v0/", "--token", args.token]


def serve_once(args, what, work, size, asset):
    """One push or pull through norman serve: (MB/s, client CPU s/GiB, client peak KiB)."""
    account, model, asset_id = asset.split("/")
    out = os.path.join(work, "pulled.bin")
    if os.path.exists(out):
        os.remove(out)
    if what == "norman push":
        cmd, env = [args.norman, "push", "--asset", asset, args.file], serve_env(args)
    elif what == "norman pull":
        cmd, env = [args.norman, "pull", "--asset", asset, "--out", out], serve_env(args)
    else:
        sub = {"SDK FilePush": "sdk-push", "SDK Retrieve": "sdk-pull"}[what]
        cmd = [sys.executable, __file__, sub, *legacy(args), "--account", account, "--model", model,
               "--asset", asset_id]
        cmd += ["--file", args.file] if sub == "sdk-push" else ["--out", out]
        env = None
    wall, cpu, rss, rc, _ = measured(cmd, env=env)
    if rc != 0:
        raise SystemExit(f"{what} failed (exit {rc})")
    if what in ("norman pull", "SDK Retrieve") and os.path.getsize(out) != size:
        raise SystemExit(f"{what}: {os.path.getsize(out)} bytes pulled, expected {size}")
    return size / wall / 1e6, cpu / (size / GIB), rss


def cipher_rates(args):
    """(ours wall, ours per CPU s, python wall, python per CPU s) in MB/s, one interleaved round."""
    _, _, _, rc, out = measured([args.norman, "bench", "--cpu-only", "--cpu-mib", str(args.cipher_mib)],
                                stdout=subprocess.PIPE)
    line = next((l for l in out.splitlines() if l.startswith("chacha20 (one core)")), None)
    if rc != 0 or line is None:
        raise SystemExit(f"norman bench --cpu-only failed:\n{out}")
    words = line.split()
    ours = (float(words[3]), float(words[5]))  # "chacha20 (one core) W MB/s, C MB/s per CPU-second ..."
    _, _, _, rc, out = measured([sys.executable, __file__, "py-cipher", "--mib", str(args.cipher_mib),
                                 "--chunk", str(MIB)], stdout=subprocess.PIPE)
    py = tuple(float(x) for x in out.split())
    return (*ours, *py), next((l for l in out.splitlines()), ""), line


def run(args):
    size = os.path.getsize(args.file)
    work = args.work
    senders = ["norman send", "SDK write_and_digest, plain file", "SDK write_and_digest, aiofiles"]
    through_serve = ["norman push", "SDK FilePush", "norman pull", "SDK Retrieve"]
    results = {name: [] for name in senders + through_serve}
    ciphers = []
    for r in range(1, args.rounds + 1):
        print(f"round {r} of {args.rounds}: load {os.getloadavg()[0]:.2f}", file=sys.stderr, flush=True)
        for name in senders:
            results[name].append(send_once(args, name, work, size))
            print(f"  {name}: {results[name][-1][0]:.0f} MB/s, {results[name][-1][1]:.2f} CPU s/GiB",
                  file=sys.stderr)
        if args.base_url:
            for name in through_serve:
                # Pushes go to their own asset; pulls read norman push's asset, pushed just before.
                asset = args.sdk_asset if name == "SDK FilePush" else args.asset
                results[name].append(serve_once(args, name, work, size, asset))
                print(f"  {name}: {results[name][-1][0]:.0f} MB/s, {results[name][-1][1]:.2f} CPU s/GiB",
                      file=sys.stderr)
        rates, _, line = cipher_rates(args)
        ciphers.append(rates)
        print(f"  {line.strip()}", file=sys.stderr)

    med = lambda rows, i: statistics.median(row[i] for row in rows)
    print()
    print(f"{size / MIB:.0f} MiB from the page cache, median of {args.rounds} interleaved rounds; "
          f"CPU: {args.cpu}; load before: {args.load}")
    print(f"{'':40} {'MB/s':>8} {'CPU s/GiB':>10} {'peak RSS MiB':>13}")
    groups = [senders, through_serve[:2], through_serve[2:]] if args.base_url else [senders]
    for group in groups:
        for name in group:
            rows = results[name]
            print(f"{name:40} {med(rows, 0):8.0f} {med(rows, 1):10.2f} {med(rows, 2) / 1024:13.1f}")
        base, other = results[group[0]], results[group[1]]
        print(f"{'  ratio ' + group[0] + ' / ' + group[1]:40} {med(base, 0) / med(other, 0):7.2f}x "
              f"{med(base, 1) / med(other, 1):9.2f}x")
    if not args.base_url:
        print("(norman serve paths skipped)")
    print()
    print(f"ChaCha20, one core, 1 MiB chunks over {args.cipher_mib} MiB (MB/s; per CPU-second is the "
          "figure a busy machine does not distort):")
    names = ["ours (norman bench)", "Python cryptography (OpenSSL)"]
    print(f"{'':40} {'wall':>8} {'per CPU s':>10}")
    for i, name in enumerate(names):
        print(f"{name:40} {med(ciphers, 2 * i):8.0f} {med(ciphers, 2 * i + 1):10.0f}")
    print(f"{'  ours / cryptography':40} {med(ciphers, 0) / med(ciphers, 2):7.2f}x "
          f"{med(ciphers, 1) / med(ciphers, 3):9.2f}x")


def big(args):
    """Peak RSS of `norman send` and `norman receive` for one upload of args.file."""
    size = os.path.getsize(args.file)
    pairing = os.path.join(args.work, "big-pairing.json")
    pairing_file(pairing, 1)
    err = os.path.join(args.work, "receive.err")
    with open(err, "w") as errf:
        receiver = subprocess.Popen([args.norman, "receive", "--pairing", pairing, "--listen", "127.0.0.1:0",
                                     "--out", "-", "--size", str(size)], stdout=subprocess.DEVNULL, stderr=errf)
    port = None
    for _ in range(200):
        with open(err) as f:
            text = f.read()
        if "listening on" in text:
            port = int(text.split("listening on")[1].split()[0].rsplit(":", 1)[1])
            break
        time.sleep(0.05)
    if port is None:
        raise SystemExit("norman receive did not start")
    with open(pairing) as f:
        p = json.load(f)
    p["port"] = port
    with open(pairing, "w") as f:
        json.dump(p, f)
    wall, cpu, rss, rc, _ = measured([args.norman, "send", "--pairing", pairing, args.file])
    _, rstatus, rusage = os.wait4(receiver.pid, 0)
    if rc != 0 or os.waitstatus_to_exitcode(rstatus) != 0:
        raise SystemExit(f"big run failed: send exit {rc}, receive status {rstatus}")
    print(f"{size / GIB:.0f} GiB norman send -> norman receive: {size / wall / 1e6:.0f} MB/s, "
          f"peak RSS sender {rss / 1024:.1f} MiB, receiver {rusage.ru_maxrss / 1024:.1f} MiB (target < 32 MiB)")


def main():
    p = argparse.ArgumentParser()
    sub = p.add_subparsers(dest="cmd", required=True)
    d = sub.add_parser("discard")
    d.add_argument("--port-file", required=True)
    d.add_argument("--expect", type=int, default=0)
    s = sub.add_parser("sdk-send")
    s.add_argument("--pairing", required=True)
    s.add_argument("--file", required=True)
    s.add_argument("--mode", choices=["plain", "aiofiles"], required=True)
    for name in ["sdk-push", "sdk-pull"]:
        q = sub.add_parser(name)
        for a in ["--base-url", "--token", "--account", "--model", "--asset"]:
            q.add_argument(a, required=True)
        q.add_argument("--file" if name == "sdk-push" else "--out", required=True)
    c = sub.add_parser("py-cipher")
    c.add_argument("--mib", type=int, default=1024)
    c.add_argument("--chunk", type=int, default=MIB)
    for name in ["run", "big"]:
        r = sub.add_parser(name)
        r.add_argument("--norman", required=True)
        r.add_argument("--file", required=True)
        r.add_argument("--work", required=True)
        r.add_argument("--rounds", type=int, default=3)
        r.add_argument("--cipher-mib", type=int, default=1024)
        r.add_argument("--base-url", default="")
        r.add_argument("--token", default="")
        r.add_argument("--asset", default="", help="ACCOUNT/MODEL/ASSET for norman push and both pulls")
        r.add_argument("--sdk-asset", default="", help="ACCOUNT/MODEL/ASSET for the SDK's push")
        r.add_argument("--cpu", default="?")
        r.add_argument("--load", default="?")
    args = p.parse_args()
    {"discard": discard, "sdk-send": sdk_send, "sdk-push": sdk_push, "sdk-pull": sdk_pull,
     "py-cipher": py_cipher, "run": run, "big": big}[args.cmd](args)


if __name__ == "__main__":
    main()
