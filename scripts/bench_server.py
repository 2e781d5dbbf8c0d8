#!/usr/bin/env python3
"""Side-by-side load test: this server, OpenBao in dev mode, and a bare axum handler.

Runs wrk (64 connections, 2 threads, 10 s, loopback) against each target for
single-item encrypts, batches of 100 and 1,000, and single encrypts with a file
audit device; reports requests/s, items/s and the server's CPU time per request
(from /proc/<pid>/stat). Usage: python3 scripts/bench_server.py  (needs wrk, bao,
and `cargo build --release -p encrypted-attr-server --examples --bins`).

`python3 scripts/bench_server.py --vault-scenarios` measures what the Vault guides
add, side by side with OpenBao in the same run: KV version 2 reads, and AppRole
logins (each makes a token).

`python3 scripts/bench_server.py --compare OLD_BINARY [ROUNDS] [--new-first]`
instead runs two builds of this server side by side (OLD_BINARY, and the current
release build), each workload on one then the other, alternating for ROUNDS rounds
(default 3), and reports the median of each and their ratio: a change's cost,
measured in one run on one machine state. The server started first has had an
edge of up to 9% over an identical binary started second (measured with one
binary against a copy of itself), so run it twice, the second time with
`--new-first`, and take both ratios together.
"""
import base64, json, os, re, subprocess, sys, tempfile, time, urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TARGET = os.environ.get("CARGO_TARGET_DIR", os.path.join(ROOT, "target"))
SERVER = os.path.join(TARGET, "release", "encrypted-attr")
CEILING = os.path.join(TARGET, "release", "examples", "bare_axum")
DURATION = os.environ.get("BENCH_DURATION", "10s")
TICKS = os.sysconf("SC_CLK_TCK")


def http(method, url, token, body=None):
    req = urllib.request.Request(url, method=method, data=json.dumps(body).encode() if body is not None else None,
                                 headers={"X-Vault-Token": token, "Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=10) as r:
        return r.read()


def wait(url):
    for _ in range(150):
        try:
            urllib.request.urlopen(url, timeout=1)
            return
        except Exception:
            time.sleep(0.1)
    sys.exit(f"not up: {url}")


def cpu_seconds(pid):
    fields = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS


def wrk(url, token, body, method="POST"):
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as lua:
        lua.write(f'wrk.method = "{method}"\n')
        if body is not None:
            lua.write(f'wrk.body = {json.dumps(json.dumps(body))}\n')
        lua.write(f'wrk.headers["Content-Type"] = "application/json"\nwrk.headers["X-Vault-Token"] = "{token}"\n')
    out = subprocess.run(["wrk", "-t2", "-c64", "-d" + DURATION, "-s", lua.name, url],
                         capture_output=True, text=True).stdout
    os.unlink(lua.name)
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    total = int(re.search(r"(\d+) requests in", out).group(1))
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    return rps, total, int(non2xx.group(1)) if non2xx else 0


def measure(name, proc, url, token, body, items, method="POST"):
    before = cpu_seconds(proc.pid)
    rps, total, errors = wrk(url, token, body, method)
    cpu = cpu_seconds(proc.pid) - before
    us = cpu / total * 1e6 if total else 0
    print(f"| {name} | {rps:,.0f} | {rps * items:,.0f} | {us:.1f} | {errors} |", flush=True)
    # Refused requests do no work: only successful ones count.
    return rps * (1 - errors / total) if total else 0


def main():
    pt = base64.b64encode(b"x" * 64).decode()
    single = {"plaintext": pt}
    batch = lambda n: {"batch_input": [{"plaintext": pt}] * n}
    audit_dir = tempfile.mkdtemp()
    procs = []
    try:
        for binary in (SERVER, CEILING):
            if not os.path.exists(binary):
                sys.exit(f"missing {binary}: cargo build --release -p encrypted-attr-server --examples --bins")
        ours = subprocess.Popen([SERVER, "server", "--dev", "--listen", "127.0.0.1:8297", "--dev-root-token-id", "root"],
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env={**os.environ, "ENCRYPTED_ATTR_LOG": "warn"})
        # OpenBao refuses audit devices created over the API unless its config allows it.
        bao_config = os.path.join(audit_dir, "bao.hcl")
        with open(bao_config, "w") as f:
            f.write("unsafe_allow_api_audit_creation = true\n")
            # A second listener whose JSON limit admits batches of 1,000 (OpenBao's
            # default refuses them: "exceeded maximum number of strings").
            f.write('listener "tcp" {\n  address = "127.0.0.1:8296"\n  tls_disable = true\n'
                    '  max_request_json_strings = 1000000\n}\n')
        bao = subprocess.Popen(["bao", "server", "-dev", "-dev-root-token-id=root", "-dev-listen-address=127.0.0.1:8298",
                                "-log-level=error", f"-config={bao_config}"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        procs = [ours]
        procs.append(bao)
        ceiling = subprocess.Popen([CEILING, "127.0.0.1:8299"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        procs.append(ceiling)
        wait("http://127.0.0.1:8297/v1/sys/health")
        wait("http://127.0.0.1:8298/v1/sys/health")
        for p in procs:
            if p.poll() is not None:
                sys.exit(f"{p.args[0]} exited at start (is its port taken by an earlier run?)")
        time.sleep(0.5)
        http("POST", "http://127.0.0.1:8298/v1/sys/mounts/transit", "root", {"type": "transit"})
        for port in (8297, 8298):
            http("POST", f"http://127.0.0.1:{port}/v1/transit/keys/bench", "root", {})
        print(f"| target ({DURATION}, 64 connections) | requests/s | items/s | server CPU µs/request | non-2xx |")
        print("|---|---|---|---|---|")
        measure("bare axum, no crypto (ceiling)", ceiling, "http://127.0.0.1:8299/v1/transit/encrypt/bench", "root", single, 1)
        items = {}
        for label, port, big_port, proc in (("encrypted-attr", 8297, 8297, ours), ("OpenBao 2.7.2", 8298, 8296, bao)):
            url = f"http://127.0.0.1:{port}/v1/transit/encrypt/bench"
            items[label, "single"] = measure(f"{label}: single encrypt", proc, url, "root", single, 1)
            items[label, "100"] = measure(f"{label}: batch of 100", proc, url, "root", batch(100), 100) * 100
            big = f"http://127.0.0.1:{big_port}/v1/transit/encrypt/bench"
            note = " (JSON string limit raised)" if big_port != port else ""
            items[label, "1000"] = measure(f"{label}: batch of 1,000{note}", proc, big, "root", batch(1000), 1000) * 1000
        for label, port, proc in (("encrypted-attr", 8297, ours), ("OpenBao 2.7.2", 8298, bao)):
            path = os.path.join(audit_dir, f"{port}.log")
            http("PUT", f"http://127.0.0.1:{port}/v1/sys/audit/file", "root", {"type": "file", "options": {"file_path": path}})
            items[label, "audit"] = measure(f"{label}: single encrypt, file audit", proc,
                                            f"http://127.0.0.1:{port}/v1/transit/encrypt/bench", "root", single, 1)
        print()
        print("| workload | encrypted-attr ÷ OpenBao (items/s) |")
        print("|---|---|")
        for key, name in (("single", "single encrypt"), ("100", "batch of 100"), ("1000", "batch of 1,000"),
                          ("audit", "single encrypt, file audit")):
            theirs = items["OpenBao 2.7.2", key]
            ratio = items["encrypted-attr", key] / theirs if theirs else float("nan")
            print(f"| {name} | {ratio:.2f}× |")
    finally:
        for p in procs:
            p.terminate()
            p.wait()


def vault_scenarios():
    """KV v2 reads and AppRole logins on this server and on OpenBao, dev mode both."""
    procs = []
    try:
        ours = subprocess.Popen([SERVER, "server", "--dev", "--listen", "127.0.0.1:8291", "--dev-root-token-id", "root"],
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env={**os.environ, "ENCRYPTED_ATTR_LOG": "warn"})
        procs.append(ours)
        bao = subprocess.Popen(["bao", "server", "-dev", "-dev-root-token-id=root", "-dev-listen-address=127.0.0.1:8292",
                                "-log-level=error"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        procs.append(bao)
        targets = (("encrypted-attr", 8291, ours), ("OpenBao 2.7.2", 8292, bao))
        for _, port, _ in targets:
            wait(f"http://127.0.0.1:{port}/v1/sys/health")
        time.sleep(0.5)
        logins = {}
        for label, port, _ in targets:
            base = f"http://127.0.0.1:{port}/v1"
            http("POST", f"{base}/secret/data/bench", "root", {"data": {"user": "app", "password": "x" * 32}})
            http("POST", f"{base}/sys/auth/approle", "root", {"type": "approle"})
            http("POST", f"{base}/auth/approle/role/bench", "root", {"token_policies": "default", "token_ttl": "10m"})
            role_id = json.loads(http("GET", f"{base}/auth/approle/role/bench/role-id", "root"))["data"]["role_id"]
            secret_id = json.loads(http("POST", f"{base}/auth/approle/role/bench/secret-id", "root", {}))["data"]["secret_id"]
            logins[label] = {"role_id": role_id, "secret_id": secret_id}
        print(f"| target ({DURATION}, 64 connections) | requests/s | items/s | server CPU µs/request | non-2xx |")
        print("|---|---|---|---|---|")
        rates = {}
        for label, port, proc in targets:
            rates[label, "kv"] = measure(f"{label}: KV v2 read", proc, f"http://127.0.0.1:{port}/v1/secret/data/bench",
                                         "root", None, 1, method="GET")
            rates[label, "login"] = measure(f"{label}: AppRole login", proc, f"http://127.0.0.1:{port}/v1/auth/approle/login",
                                            "", logins[label], 1)
        print()
        print("| workload | encrypted-attr ÷ OpenBao (requests/s) |")
        print("|---|---|")
        for key, name in (("kv", "KV v2 read"), ("login", "AppRole login")):
            theirs = rates["OpenBao 2.7.2", key]
            print(f"| {name} | {rates['encrypted-attr', key] / theirs if theirs else float('nan'):.2f}× |")
    finally:
        for p in procs:
            p.terminate()
            p.wait()


def compare(old_binary, rounds, new_first):
    """Old and new builds of this server, interleaved workload by workload."""
    pt = base64.b64encode(b"x" * 64).decode()
    workloads = (("single encrypt", {"plaintext": pt}, 1), ("batch of 100", {"batch_input": [{"plaintext": pt}] * 100}, 100),
                 ("batch of 1,000", {"batch_input": [{"plaintext": pt}] * 1000}, 1000), ("single encrypt, file audit", {"plaintext": pt}, 1))
    audit_dir = tempfile.mkdtemp()
    builds = (("old", old_binary, 8293), ("new", SERVER, 8294))
    if new_first:
        builds = (("new", SERVER, 8293), ("old", old_binary, 8294))
    procs = {}
    try:
        for label, binary, port in builds:
            procs[label] = subprocess.Popen([binary, "server", "--dev", "--listen", f"127.0.0.1:{port}", "--dev-root-token-id", "root"],
                                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env={**os.environ, "ENCRYPTED_ATTR_LOG": "warn"})
        for label, _, port in builds:
            wait(f"http://127.0.0.1:{port}/v1/sys/health")
            http("POST", f"http://127.0.0.1:{port}/v1/transit/keys/bench", "root", {})
        first = "new" if new_first else "old"
        print(f"| workload ({DURATION} per run, {rounds} rounds, interleaved, {first} build started first) "
              "| old build items/s (median) | new build items/s (median) | new ÷ old |")
        print("|---|---|---|---|")
        for name, body, items in workloads:
            if name.endswith("file audit"):
                for label, _, port in builds:
                    path = os.path.join(audit_dir, f"{port}.log")
                    http("PUT", f"http://127.0.0.1:{port}/v1/sys/audit/file", "root", {"type": "file", "options": {"file_path": path}})
            runs = {"old": [], "new": []}
            for round_ in range(rounds):
                order = builds if round_ % 2 == 0 else builds[::-1]
                for label, _, port in order:
                    rps, total, errors = wrk(f"http://127.0.0.1:{port}/v1/transit/encrypt/bench", "root", body)
                    runs[label].append(rps * (1 - errors / total) * items if total else 0)
            old, new = (sorted(runs[k])[len(runs[k]) // 2] for k in ("old", "new"))
            detail = ", ".join(f"{k}: " + " / ".join(f"{v:,.0f}" for v in runs[k]) for k in ("old", "new"))
            print(f"| {name} | {old:,.0f} | {new:,.0f} | {new / old:.2f}× |", flush=True)
            print(f"<!-- {name}: {detail} -->", flush=True)
    finally:
        for p in procs.values():
            p.terminate()
            p.wait()


if __name__ == "__main__":
    if len(sys.argv) >= 2 and sys.argv[1] == "--vault-scenarios":
        vault_scenarios()
    elif len(sys.argv) >= 3 and sys.argv[1] == "--compare":
        rest = [a for a in sys.argv[3:] if a != "--new-first"]
        compare(sys.argv[2], int(rest[0]) if rest else 3, "--new-first" in sys.argv[3:])
    else:
        main()
