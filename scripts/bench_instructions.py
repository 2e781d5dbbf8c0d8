"""Instructions per request of one server build, counted by valgrind's callgrind.

`python3 scripts/bench_instructions.py BINARY single|batch N1 N2`

Starts BINARY in dev mode under callgrind twice (a fresh server each time), sends
N1 and then N2 encrypts of 64 bytes (`single`) or batches of 1,000 such items
(`batch`) over one keep-alive connection, and prints the difference in counted
instructions divided by N2 - N1: start-up and shut-down cancel out, and the
machine's load does not change the count, unlike throughput.
"""

import base64
import glob
import http.client
import json
import os
import subprocess
import sys
import tempfile
import time


def count(binary, kind, requests, port=8391):
    out = os.path.join(tempfile.mkdtemp(), "callgrind.out")
    server = subprocess.Popen(
        ["valgrind", "--tool=callgrind", f"--callgrind-out-file={out}", binary, "server", "--dev",
         "--dev-root-token-id=root", f"--listen=127.0.0.1:{port}"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env={**os.environ, "ENCRYPTED_ATTR_LOG": "warn"})
    try:
        for _ in range(600):
            try:
                probe = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
                probe.request("GET", "/v1/sys/health")
                probe.getresponse().read()
                break
            except OSError:
                time.sleep(0.2)
        client = http.client.HTTPConnection("127.0.0.1", port, timeout=300)
        headers = {"X-Vault-Token": "root", "Content-Type": "application/json"}
        client.request("POST", "/v1/transit/keys/bench", "{}", headers)
        client.getresponse().read()
        plaintext = base64.b64encode(b"x" * 64).decode()
        item = {"plaintext": plaintext}
        body = json.dumps(item if kind == "single" else {"batch_input": [item] * 1000})
        for _ in range(requests):
            client.request("POST", "/v1/transit/encrypt/bench", body, headers)
            answer = client.getresponse()
            answer.read()
            if answer.status != 200:
                sys.exit(f"encrypt answered {answer.status}")
    finally:
        server.terminate()
        server.wait()
    total = 0
    for path in glob.glob(out + "*"):
        with open(path) as f:
            for line in f:
                if line.startswith(("summary:", "totals:")):
                    total += int(line.split()[1])
                    break
    return total


if __name__ == "__main__":
    binary, kind, low, high = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
    print(round((count(binary, kind, high) - count(binary, kind, low)) / (high - low)))
