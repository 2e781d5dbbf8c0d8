#!/usr/bin/env python3
"""Soak test: the release server under a mixed load for a fixed time, with 0 errors
and flat memory expected.

Starts `encrypted-attr server` on a keyring file (initialised and unsealed over
HTTP, as an operator would), then for SOAK_SECONDS (default 60) runs wrk with 64
connections cycling encrypt / decrypt / rewrap / batch-of-10 encrypt requests,
while a second loop rotates the key once a second. Reports requests, non-2xx
answers, socket errors, rotations, and the server's resident memory after warm-up
and at the end (VmRSS) and its peak (VmHWM). Exits 1 on any error.

Usage: python3 scripts/soak.py   (needs wrk and
`cargo build --release -p encrypted-attr-server --bins`; honours CARGO_TARGET_DIR).
"""
import base64, json, os, re, subprocess, sys, tempfile, threading, time, urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TARGET = os.environ.get("CARGO_TARGET_DIR", os.path.join(ROOT, "target"))
SERVER = os.path.join(TARGET, "release", "encrypted-attr")
SECONDS = int(os.environ.get("SOAK_SECONDS", "60"))
ADDRESS = "127.0.0.1:8311"
BASE = f"http://{ADDRESS}"


def http(method, path, token=None, body=None):
    headers = {"Content-Type": "application/json"}
    if token:
        headers["X-Vault-Token"] = token
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(BASE + path, method=method, data=data, headers=headers)
    with urllib.request.urlopen(req, timeout=30) as r:
        text = r.read()
        return json.loads(text) if text else None


def memory(pid):
    status = open(f"/proc/{pid}/status").read()
    rss = int(re.search(r"VmRSS:\s+(\d+)", status).group(1)) // 1024
    hwm = int(re.search(r"VmHWM:\s+(\d+)", status).group(1)) // 1024
    return rss, hwm


def main():
    work = tempfile.mkdtemp(prefix="ea-soak-")
    server = subprocess.Popen([SERVER, "server", "--storage-file", os.path.join(work, "keys.json"),
                               "--listen", ADDRESS], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        for _ in range(100):
            try:
                urllib.request.urlopen(BASE + "/v1/sys/seal-status", timeout=1)
                break
            except Exception:
                time.sleep(0.1)
        init = http("PUT", "/v1/sys/init", body={"secret_shares": 1, "secret_threshold": 1})
        http("PUT", "/v1/sys/unseal", body={"key": init["keys"][0]})
        token = init["root_token"]
        http("POST", "/v1/transit/keys/soak", token, {})
        plaintext = base64.b64encode(b"x" * 64).decode()
        sealed = http("POST", "/v1/transit/encrypt/soak", token, {"plaintext": plaintext})["data"]["ciphertext"]
        requests = [
            ("/v1/transit/encrypt/soak", {"plaintext": plaintext}),
            ("/v1/transit/decrypt/soak", {"ciphertext": sealed}),
            ("/v1/transit/rewrap/soak", {"ciphertext": sealed}),
            ("/v1/transit/encrypt/soak", {"batch_input": [{"plaintext": plaintext}] * 10}),
        ]
        with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as lua:
            lua.write("local paths = {%s}\n" % ", ".join(json.dumps(p) for p, _ in requests))
            lua.write("local bodies = {%s}\n" % ", ".join(json.dumps(json.dumps(b)) for _, b in requests))
            lua.write('local headers = {["Content-Type"] = "application/json", ["X-Vault-Token"] = "%s"}\n' % token)
            lua.write("local n = 0\n")
            lua.write("request = function()\n  n = n + 1\n  local k = n %% %d + 1\n" % len(requests))
            lua.write('  return wrk.format("POST", paths[k], headers, bodies[k])\nend\n')
        # Warm up, then take the starting memory.
        subprocess.run(["wrk", "-t2", "-c64", "-d5s", "-s", lua.name, BASE], capture_output=True)
        rss_start, _ = memory(server.pid)
        rotations, rotate_errors, stop = [0], [0], threading.Event()

        def rotate():
            while not stop.wait(1.0):
                try:
                    http("POST", "/v1/transit/keys/soak/rotate", token, {})
                    rotations[0] += 1
                except Exception:
                    rotate_errors[0] += 1

        rotator = threading.Thread(target=rotate)
        rotator.start()
        out = subprocess.run(["wrk", "-t2", "-c64", f"-d{SECONDS}s", "-s", lua.name, BASE],
                             capture_output=True, text=True).stdout
        stop.set()
        rotator.join()
        os.unlink(lua.name)
        rss_end, hwm = memory(server.pid)
        total = int(re.search(r"(\d+) requests in", out).group(1))
        rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
        non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
        non2xx = int(non2xx.group(1)) if non2xx else 0
        socket = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
        socket_errors = sum(int(x) for x in socket.groups()) if socket else 0
        print(f"soak: {SECONDS} s, 64 connections, encrypt/decrypt/rewrap/batch-10 + 1 rotation/s")
        print(f"requests {total} ({rps:.0f}/s), non-2xx {non2xx}, socket errors {socket_errors}, "
              f"rotations {rotations[0]} (failed {rotate_errors[0]})")
        print(f"server RSS after warm-up {rss_start} MiB, at end {rss_end} MiB, peak {hwm} MiB")
        ok = non2xx == 0 and socket_errors == 0 and rotate_errors[0] == 0
        sys.exit(0 if ok else 1)
    finally:
        server.terminate()
        server.wait()


if __name__ == "__main__":
    main()
