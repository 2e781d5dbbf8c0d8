#!/usr/bin/env python3
"""Column commands at table scale: `encrypted-attr migrate` and `rewrap` on
PostgreSQL, MariaDB and SQLite, with a local keyring and through a dev server.

For each database and each size, a table `bench_people (id BIGINT PRIMARY KEY,
ssn_plain TEXT, ssn TEXT)` is filled with plaintext; then, once with a local
keyring and once through a dev server on loopback:
  migrate (ssn_plain -> ssn), vacuum (PostgreSQL), rotate the key, rewrap (v1 -> v2).
Each command's wall time, rows/s and peak resident memory (from wait4) is
reported, and every row is checked to hold a ciphertext of the latest version.

Usage: python3 scripts/bench_columns.py [ROWS ...]   (default 10000 100000 1000000)
Needs `cargo build --release -p encrypted-attr-server --bin encrypted-attr`, psql and
mariadb clients; databases come from BENCH_POSTGRES_URL (default
postgres://postgres@127.0.0.1:5432/ea_bench) and BENCH_MYSQL_URL (default
mysql://root@127.0.0.1:3306/ea_bench), both created if missing. BENCH_BATCH sets
the batch size (default the commands' 1,000); BENCH_DATABASES picks some of
postgres, mariadb, sqlite; BENCH_BINARY runs another build (an older one, to
compare in the same session).
"""
import base64, os, socket, sqlite3, subprocess, sys, tempfile, time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TARGET = os.environ.get("CARGO_TARGET_DIR", os.path.join(ROOT, "target"))
BINARY = os.environ.get("BENCH_BINARY", os.path.join(TARGET, "release", "encrypted-attr"))
PG_URL = os.environ.get("BENCH_POSTGRES_URL", "postgres://postgres@127.0.0.1:5432/ea_bench")
MY_URL = os.environ.get("BENCH_MYSQL_URL", "mysql://root@127.0.0.1:3306/ea_bench")
BATCH = os.environ.get("BENCH_BATCH")
DATABASES = os.environ.get("BENCH_DATABASES", "postgres,mariadb,sqlite").split(",")


def sh(*args, **kw):
    done = subprocess.run(args, capture_output=True, text=True, **kw)
    if done.returncode != 0:
        raise SystemExit(f"{args[0]} {args[1]} failed: {done.stderr[-2000:]}")
    return done.stdout


def psql(sql, db="ea_bench"):
    return sh("psql", "-h", "127.0.0.1", "-U", "postgres", "-d", db, "-qtAX", "-v", "ON_ERROR_STOP=1", "-c", sql)


def mariadb(sql, db="ea_bench"):
    return sh("mariadb", "-h", "127.0.0.1", "-uroot", "-N", "-B", db, "-e", sql)


class Postgres:
    name, url = "PostgreSQL", PG_URL

    def prepare(self):
        if psql("SELECT 1 FROM pg_database WHERE datname = 'ea_bench'", db="postgres").strip() != "1":
            psql("CREATE DATABASE ea_bench", db="postgres")

    def fill(self, rows):
        psql("DROP TABLE IF EXISTS bench_people; CREATE TABLE bench_people (id BIGINT PRIMARY KEY, ssn_plain TEXT, ssn TEXT);"
             f"INSERT INTO bench_people SELECT i, lpad(i::text, 9, '0'), NULL FROM generate_series(1, {rows}) i")
        psql("VACUUM ANALYZE bench_people")

    def query(self, sql):
        return psql(sql).strip()

    def settle(self):
        psql("VACUUM ANALYZE bench_people")


class MariaDb:
    name, url = "MariaDB", MY_URL

    def prepare(self):
        mariadb("CREATE DATABASE IF NOT EXISTS ea_bench", db="test")

    def fill(self, rows):
        mariadb("DROP TABLE IF EXISTS bench_people; CREATE TABLE bench_people (id BIGINT PRIMARY KEY, ssn_plain TEXT, ssn TEXT);"
                f"INSERT INTO bench_people SELECT seq, LPAD(seq, 9, '0'), NULL FROM seq_1_to_{rows}; ANALYZE TABLE bench_people")

    def query(self, sql):
        return mariadb(sql).strip()

    def settle(self):
        mariadb("ANALYZE TABLE bench_people")


class Sqlite:
    name = "SQLite"

    def __init__(self, directory):
        self.path = os.path.join(directory, "bench.db")
        self.url = f"sqlite://{self.path}"

    def prepare(self):
        pass

    def fill(self, rows):
        for suffix in ("", "-wal", "-shm"):
            if os.path.exists(self.path + suffix):
                os.remove(self.path + suffix)
        db = sqlite3.connect(self.path)
        db.executescript("CREATE TABLE bench_people (id BIGINT PRIMARY KEY, ssn_plain TEXT, ssn TEXT);"
                         f"WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < {rows}) "
                         "INSERT INTO bench_people SELECT i, printf('%09d', i), NULL FROM n;")
        db.commit()
        db.close()

    def settle(self):
        pass

    def query(self, sql):
        db = sqlite3.connect(self.path)
        try:
            return str(db.execute(sql).fetchone()[0])
        finally:
            db.close()


def run_measured(args, env):
    start = time.monotonic()
    pid = os.posix_spawn(BINARY, [BINARY, *args], env, file_actions=[
        (os.POSIX_SPAWN_OPEN, 1, "/tmp/ea-bench-columns.out", os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600),
        (os.POSIX_SPAWN_OPEN, 2, "/tmp/ea-bench-columns.err", os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600),
    ])
    _, status, usage = os.wait4(pid, 0)
    seconds = time.monotonic() - start
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"{args[0]} failed: {open('/tmp/ea-bench-columns.err').read()[-2000:]}")
    return seconds, usage.ru_maxrss / 1024, open("/tmp/ea-bench-columns.out").read()


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def main():
    sizes = [int(a) for a in sys.argv[1:]] or [10_000, 100_000, 1_000_000]
    directory = tempfile.mkdtemp(prefix="ea-bench-columns-")
    databases = {"postgres": Postgres(), "mariadb": MariaDb(), "sqlite": Sqlite(directory)}
    env = dict(os.environ)
    env.pop("VAULT_ADDR", None)
    env.pop("VAULT_TOKEN", None)
    root_file = os.path.join(directory, "root.key")
    with open(root_file, "w") as f:
        f.write(base64.b64encode(os.urandom(32)).decode())
    port = free_port()
    server = subprocess.Popen([BINARY, "server", "--dev", "--dev-root-token-id", "bench", "--listen", f"127.0.0.1:{port}"],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
    time.sleep(1.0)
    batch = ["--batch", BATCH] if BATCH else []
    print(f"| database | rows | engine | command | seconds | rows/s | peak RSS MiB |")
    print("|---|---|---|---|---|---|---|")
    try:
        for key_number, (db_name, rows) in enumerate((d, r) for d in DATABASES for r in sizes):
            db = databases[db_name]
            db.prepare()
            for engine in ("local keyring", "server"):
                db.fill(rows)
                key = f"bench_people_ssn_{key_number}_{engine[0]}"
                if engine == "server":
                    where = ["--address", f"http://127.0.0.1:{port}", "--token", "bench"]
                else:
                    keyring = os.path.join(directory, f"keys-{key_number}.json")
                    where = ["--keyring", keyring, "--root-key-file", root_file]
                sh(BINARY, "keys", *where, "create", key, env=env)
                target = ["--database-url", db.url, "--table", "bench_people", "--column", "ssn", "--key", key, *batch]
                seconds, rss, out = run_measured(["migrate", *where, *target, "--plaintext-column", "ssn_plain"], env)
                print(f"| {db.name} | {rows:,} | {engine} | migrate | {seconds:.2f} | {rows / seconds:,.0f} | {rss:.0f} |", flush=True)
                # A table in service is vacuumed; one just migrated holds a dead
                # version of every row, which autovacuum would clean up during the
                # rewrap and bill to it.
                db.settle()
                sh(BINARY, "keys", *where, "rotate", key, env=env)
                seconds, rss, out = run_measured(["rewrap", *where, *target], env)
                print(f"| {db.name} | {rows:,} | {engine} | rewrap | {seconds:.2f} | {rows / seconds:,.0f} | {rss:.0f} |", flush=True)
                at_latest = int(db.query("SELECT COUNT(*) FROM bench_people WHERE ssn LIKE 'vault:v2:%'"))
                if at_latest != rows:
                    raise SystemExit(f"{db.name}: {at_latest} of {rows} rows at v2 after the rewrap")
    finally:
        server.terminate()
        server.wait()


if __name__ == "__main__":
    main()
