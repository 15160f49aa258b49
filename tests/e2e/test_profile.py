"""End-to-end tests of `tidemark profile`: a planted dataset with every anomaly
the profiler knows (each must be found with the right counts and evidence), a
clean dataset (no anomaly may be reported), a LATIN1 and a SQL_ASCII database
with mixed bytes (encoding findings), the checks against the target's
constraints, the stored baseline, sampling, --table, the output formats and
the CLI's usage errors."""

import contextlib
import json
import os
import subprocess

import psycopg
from psycopg import sql

import harness


def run_profile(env, *args, config_text=None, timeout=120, check=True):
    path = os.path.join(env.workdir, "profile.yaml")
    with open(path, "w") as f:
        f.write(config_text or env.config())
    res = subprocess.run([harness.tidemark_bin(), "profile", "--config", path] + list(args),
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=timeout,
                         stdin=subprocess.DEVNULL)
    err = res.stderr.decode("utf-8", "replace")
    for marker in ("ERROR: AddressSanitizer", "ERROR: LeakSanitizer", "runtime error:"):
        assert marker not in err, "sanitizer report:\n" + err
    if check:
        assert res.returncode == 0, "profile failed (%d):\n%s" % (res.returncode, err)
    return res


def profile_json(env, *args, **kw):
    res = run_profile(env, "--format", "json", *args, **kw)
    return json.loads(res.stdout), res.stderr.decode()


def findings(report, code, table=None, column=None):
    return [f for f in report["findings"] if f["code"] == code
            and (table is None or f["table"] == table)
            and (column is None or f["column"] == column)]


def one(report, code, table=None, column=None):
    hits = findings(report, code, table, column)
    assert len(hits) == 1, "expected one %s on %s.%s, got %s\nall findings: %s" % (
        code, table, column, hits, json.dumps(report["findings"], indent=1))
    return hits[0]


def table_of(report, display):
    return next(t for t in report["tables"] if t["display"] == display)


def column_of(report, display, name):
    return next(c for c in table_of(report, display)["columns"] if c["name"] == name)


# --------------------------------------------------------------------------- planted dataset

STATE_CODES = ["MA", "NY", "CA", "TX", "WA", "OR"]
STATE_NAMES = ["Massachusetts", "New York", "California", "Texas"]
MOJIBAKE = ["caf\u00c3\u00a9", "\u00c3\u00bcber", "na\u00c3\u00afve"]       # UTF-8 read as Latin-1
C1 = ["smart \u0093quotes\u0094", "dash\u0096here"]                       # cp1252 bytes kept as C1


def signup_value(i):
    """100 dates in 4 formats: 40 ISO, 30 US, 20 German, 10 'Mon D, YYYY'."""
    d, m = 1 + i % 28, 1 + i % 12
    if i < 40:
        return "2023-%02d-%02d" % (m, d)
    if i < 70:
        return "%02d/%02d/2023" % (m, d)
    if i < 90:
        return "%02d.%02d.2023" % (d, m)
    return "%s %d, 2023" % (["Jan", "Feb", "Mar", "Apr", "May", "Jun"][i % 6], d)


def plant(env):
    env.both_sql("""
        CREATE TABLE customers (id int PRIMARY KEY, customer_code text, email text UNIQUE, name text,
            state text, city text, signup text, phone text, amount text, created_at timestamptz,
            birth date, notes text);
        CREATE TABLE events (kind text, at date, n int);
        ALTER TABLE events REPLICA IDENTITY FULL;
    """)
    env.src_sql("CREATE TABLE orders (id int PRIMARY KEY, customer_id int, customer_email text,"
                " status text, ref text, kind text, placed_at date)")
    env.dst_sql("""
        CREATE TYPE order_kind AS ENUM ('web', 'store');
        CREATE TABLE orders (id int PRIMARY KEY, customer_id int, customer_email text,
            status text CHECK (status IN ('new', 'paid', 'shipped')), ref varchar(8),
            kind order_kind, placed_at date NOT NULL);
    """)
    rows = []
    for i in range(100):
        code = "C%04d" % (i - 97 if i >= 97 else i)            # 3 duplicates: C0000, C0001, C0002
        state = STATE_CODES[i % 6] if i < 60 else STATE_NAMES[i % 4]   # 60 codes, 40 names
        city = (["Boston"] * 50 + ["BOSTON"] * 5 + ["boston"] * 3 + ["Chicago"] * 40 + ["chicago"] * 2)[i]
        phone = "617-555-%04d" % i if i < 90 else ["N/A"] * 5 + ["-"] * 3 + ["unknown"] * 2
        if i >= 90:
            phone = phone[i - 90]
        name = "Person %03d" % i
        if i < 4:
            name = [" Alice", "Bob ", "  Carol", "Dave\t"][i]     # 4 padded values
        created = "now() + interval '30 days'" if i >= 95 else "now() - interval '%d days'" % (i + 1)
        birth = {97: "0001-01-01", 98: "0001-01-01", 99: "9999-12-31"}.get(i, "1980-01-%02d" % (1 + i % 28))
        notes = MOJIBAKE[i] if i < 3 else C1[i - 3] if i < 5 else ("caf\u00e9 au lait" if i < 10 else None)
        rows.append((i + 1, code, "user%d@example.com" % i, name, state, city, signup_value(i), phone,
                     "%d.%02d" % (i, i % 100), created, birth, notes))
    with psycopg.connect(env.src, autocommit=True) as c:
        for r in rows:
            c.execute("INSERT INTO customers VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, " + r[9] +
                      ", %s, %s)", r[:9] + r[10:])
        for i in range(50):
            c.execute("INSERT INTO orders VALUES (%s, %s, %s, %s, %s, %s, %s)", (
                i + 1,
                1001 + i - 48 if i >= 48 else i + 1,               # 2 orphans: 1001, 1002
                "nobody%d@example.com" % i if i >= 48 else "user%d@example.com" % i,  # 48/50 found
                "refunded" if i < 4 else ["new", "paid", "shipped"][i % 3],   # 4 outside the CHECK
                "REF-%d-LONGER" % i if i < 3 else "R%d" % i,       # 3 longer than varchar(8)
                "phone" if i < 2 else ["web", "store"][i % 2],     # 2 outside the enum
                None if i < 5 else "2024-03-%02d" % (1 + i % 28)))  # 5 NULLs, target NOT NULL
        c.execute("ALTER TABLE orders ADD CONSTRAINT orders_customer_fk FOREIGN KEY (customer_id)"
                  " REFERENCES customers (id) NOT VALID")
        # 10 distinct rows; one present 3 times, one twice: 3 extra rows in 2 groups
        events = [("e%d" % i, "2024-01-%02d" % (i + 1), i) for i in range(10)]
        events += [events[0], events[0], events[1]]
        for e in events:
            c.execute("INSERT INTO events VALUES (%s, %s, %s)", e)


def test_planted_anomalies(env, tidemark_binary):
    plant(env)
    report, stderr = profile_json(env)
    C, O, E = "public.customers", "public.orders", "public.events"

    # progress on stderr: one line per table with i/n and the elapsed time
    assert "[3/3]" in stderr and "elapsed" in stderr, stderr

    # per table: exact counts, key, replica identity, size
    assert table_of(report, C)["row_count"] == 100
    assert table_of(report, O)["row_count"] == 50
    assert table_of(report, E)["row_count"] == 13
    assert table_of(report, C)["primary_key"] == ["id"]
    assert table_of(report, E)["primary_key"] is None
    assert table_of(report, E)["replica_identity"] == "full"
    assert table_of(report, C)["total_size_bytes"] > 0

    f = one(report, "competing_formats", C, "signup")
    formats = {x["format"]: x["count"] for x in f["evidence"]["formats"]}
    assert formats == {"YYYY-MM-DD": 40, "NN/NN/YYYY": 30, "NN.NN.YYYY": 20, "Mon D, YYYY": 10}, f
    assert f["count"] == 60
    assert one(report, "dates_in_text", C, "signup")["count"] == 100

    f = one(report, "abbreviation_mix", C, "state")
    assert f["evidence"] == {"codes": 60, "names": 40}, f

    f = one(report, "whitespace", C, "name")
    assert f["count"] == 4 and f["examples"], f

    f = one(report, "case_variants", C, "city")
    assert f["count"] == 100 and f["evidence"]["groups"] == 2, f
    assert set(f["examples"]) == {"Boston", "BOSTON", "boston"}, f

    f = one(report, "placeholder_values", C, "phone")
    assert f["count"] == 10, f
    phone = column_of(report, C, "phone")["text"]
    assert {p["value"]: p["count"] for p in phone["placeholder_values"]} == {"N/A": 5, "-": 3, "unknown": 2}
    assert not findings(report, "competing_formats", C, "phone")   # placeholders are not a format

    assert one(report, "numbers_in_text", C, "amount")["count"] == 100

    f = one(report, "mojibake", C, "notes")
    assert f["count"] == 3 and f["examples"][0] in MOJIBAKE, f
    assert one(report, "c1_control_chars", C, "notes")["count"] == 2

    f = one(report, "future_dates", C, "created_at")
    assert f["count"] == 5, f
    f = one(report, "implausible_dates", C, "birth")
    assert f["count"] == 3 and set(f["examples"]) == {"0001-01-01", "9999-12-31"}, f

    f = one(report, "duplicate_key_values", C, "customer_code")
    assert f["count"] == 3 and set(f["examples"]) == {"C0000", "C0001", "C0002"}, f
    assert not findings(report, "duplicate_key_values", O, "customer_id")   # a reference repeats

    f = one(report, "duplicate_rows", E)
    assert f["count"] == 3, f
    assert table_of(report, E)["duplicate_rows"]["groups"] == 2
    one(report, "no_primary_key", E)

    # relationships: declared FK with orphans, implicit candidate with containment
    f = one(report, "fk_orphans", O)
    assert f["count"] == 2 and set(f["examples"]) == {"1001", "1002"}, f
    fk = report["relationships"]["foreign_keys"][0]
    assert fk["orphans"] == 2 and fk["checked"] == 50 and fk["validated"] is False
    cand = [c for c in report["relationships"]["candidates"]
            if c["column"] == "customer_email" and c["parent_column"] == "email"]
    assert len(cand) == 1 and cand[0]["containment_pct"] == 96.0 and cand[0]["missing"] == 2, cand
    one(report, "implicit_reference", O, "customer_email")

    # against the target
    f = one(report, "null_in_not_null_target", O, "placed_at")
    assert f["count"] == 5 and "10.0%" in f["message"], f
    f = one(report, "too_long_for_target", O, "ref")
    assert f["count"] == 3, f
    f = one(report, "outside_target_values", O, "status")
    assert f["count"] == 4 and f["examples"] == ["refunded"], f
    f = one(report, "outside_target_values", O, "kind")
    assert f["count"] == 2 and f["examples"] == ["phone"], f

    # findings are ordered by severity
    ranks = [{"error": 0, "warning": 1, "info": 2}[f["severity"]] for f in report["findings"]]
    assert ranks == sorted(ranks)
    assert report["summary"]["findings"]["error"] == sum(1 for r in ranks if r == 0)

    # per-column statistics
    col = column_of(report, C, "phone")
    assert col["nulls"] == 0 and col["distinct"] == 93
    assert col["text"]["masks"][0] == {"mask": "999-999-9999", "count": 90, "example": "617-555-0000"}
    col = column_of(report, O, "placed_at")
    assert col["nulls"] == 5 and col["nulls_pct"] == 10.0
    assert sum(b["count"] for b in col["histogram"]["buckets"]) == 45
    assert col["min"] == "2024-03-01" and col["max"] == "2024-03-28", col
    col = column_of(report, C, "city")
    assert col["top_values"][0] == {"value": "Boston", "count": 50}
    col = column_of(report, C, "id")
    assert col["distinct"] == 100 and col["min"] == "1" and col["max"] == "100"
    assert len(col["histogram"]["buckets"]) == 20


def test_report_and_baseline_stored(env, tidemark_binary):
    plant(env)
    out = os.path.join(env.workdir, "report.html")
    res = run_profile(env, "--output", out, "--jobs", "3")
    assert res.stdout == b""
    html = open(out, encoding="utf-8").read()
    assert html.startswith("<!DOCTYPE html>") and "<svg" in html and "<rect" in html
    report = json.load(open(os.path.join(env.workdir, "report.json")))     # the JSON twin
    assert report["options"]["jobs"] == 3
    rows = env.dst_sql("SELECT schema_name, table_name, row_count, taken_at::text FROM tidemark.baseline_counts"
                       " WHERE pipeline = %s ORDER BY table_name", (env.pipeline,))
    assert [(r[0], r[1], r[2]) for r in rows] == [("public", "customers", 100), ("public", "events", 13),
                                                  ("public", "orders", 50)]
    stored = env.dst_sql("SELECT report, taken_at = %s::timestamptz FROM tidemark.profile_runs"
                         " WHERE pipeline = %s", (report["taken_at"], env.pipeline))
    assert len(stored) == 1 and stored[0][1], stored
    assert stored[0][0]["summary"] == report["summary"]
    assert rows[0][3] and env.dst_sql("SELECT count(DISTINCT taken_at) FROM tidemark.baseline_counts")[0][0] == 1

    md = run_profile(env, "--format", "markdown", "--no-store").stdout.decode()
    assert md.index("## Findings") < md.index("## Tables")
    assert md.index("fk_orphans") < md.index("implicit_reference")   # errors before info
    text = run_profile(env, "--no-store").stdout.decode()
    assert "FINDINGS" in text and "TABLE public.customers: 100 rows" in text
    assert env.dst_sql("SELECT count(*) FROM tidemark.profile_runs")[0][0] == 1   # --no-store


def test_sample_and_table_filter(env, tidemark_binary):
    plant(env)
    env.src_sql("CREATE TABLE big AS SELECT g AS id, md5(g::text) AS h FROM generate_series(1, 20000) g")
    report, _ = profile_json(env, "--table", "big", "--table", "public.orders", "--sample", "10",
                             "--no-store")
    assert sorted(t["display"] for t in report["tables"]) == ["public.big", "public.orders"]
    big = table_of(report, "public.big")
    assert big["row_count"] == 20000                  # the baseline stays exact
    assert big["sampled"] is True and 0 < big["profiled_rows"] < 20000
    assert report["options"]["sample_pct"] == 10


def test_clean_dataset_has_no_findings(env, tidemark_binary):
    ddl = """
        CREATE TABLE products (id int PRIMARY KEY, sku text NOT NULL UNIQUE, name text NOT NULL,
            category text, price numeric(10,2), created_at timestamptz NOT NULL, stock int, phone text);
        CREATE TABLE order_lines (id bigint PRIMARY KEY, product_id int NOT NULL REFERENCES products,
            qty int NOT NULL, note text);
    """
    env.both_sql(ddl)
    words = ["hammer", "rake", "kettle", "saw", "hose", "pan", "drill", "shovel", "spoon", "lamp"]
    with psycopg.connect(env.src, autocommit=True) as c:
        for i in range(200):
            c.execute("INSERT INTO products VALUES (%s, %s, %s, %s, %s, now() - %s * interval '1 hour', %s, %s)",
                      (i + 1, "SKU-%05d" % i, "%s %s model %d" % (words[i % 10].title(), words[(i * 7) % 10], i),
                       ["tools", "garden", "kitchen"][i % 3], 1 + (i * 37) % 500 / 10, i + 1, i % 50,
                       None if i % 4 == 0 else "617-555-%04d" % i))
        for i in range(500):
            c.execute("INSERT INTO order_lines VALUES (%s, %s, %s, %s)",
                      (i + 1, 1 + (i * 13) % 200, 1 + i % 5, None if i % 3 else "gift wrap"))
    report, _ = profile_json(env)
    assert report["findings"] == [], json.dumps(report["findings"], indent=1)
    assert report["relationships"]["foreign_keys"][0]["orphans"] == 0
    assert table_of(report, "public.order_lines")["row_count"] == 500


@contextlib.contextmanager
def encoded_database(env, encoding):
    """A database with the given server encoding on the source cluster (dropped afterwards)."""
    name = "%s_%s" % (env.src_db, encoding.lower())
    admin = env.src_cluster.conninfo()
    harness.execute(admin, sql.SQL("CREATE DATABASE {} ENCODING {} LC_COLLATE 'C' LC_CTYPE 'C'"
                                   " TEMPLATE template0").format(sql.Identifier(name), sql.Literal(encoding)))
    try:
        yield env.src_cluster.conninfo(name)
    finally:
        harness.execute(admin, sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


def insert_bytes(conninfo, encoding, values):
    """Rows (id, word) whose text is exactly these bytes in the database's encoding."""
    harness.execute(conninfo, "CREATE TABLE words (id int PRIMARY KEY, word text)")
    for i, b in enumerate(values):
        harness.execute(conninfo, "INSERT INTO words VALUES (%s, convert_from(decode(%s, 'hex'), %s))",
                        (i + 1, b.hex(), encoding))


def config_for(env, src_conninfo):
    return harness.render_config(env.pipeline, src_conninfo, env.dst, log_level="info")


def test_latin1_database(env, tidemark_binary):
    with encoded_database(env, "LATIN1") as db:
        insert_bytes(db, "LATIN1", [b"caf\xe9"] * 5 +                      # proper Latin-1
                     ["caf\u00e9".encode("utf-8")] * 3 +                   # UTF-8 bytes: 'cafÃ©'
                     [b"smart \x93quotes\x94"] * 2 +                        # cp1252 quotes: C1 controls
                     [b"plain"] * 4)
        report, _ = profile_json(env, "--no-store", config_text=config_for(env, db))
    assert report["source"]["encoding"] == "LATIN1"
    f = one(report, "mojibake", "public.words", "word")
    assert f["count"] == 3 and f["examples"] == ["caf\u00c3\u00a9"], f
    f = one(report, "c1_control_chars", "public.words", "word")
    assert f["count"] == 2 and f["examples"] == ["smart \u0093quotes\u0094"], f
    assert not findings(report, "invalid_encoding")
    enc = column_of(report, "public.words", "word")["text"]["encoding"]
    assert enc["mojibake"] == 3 and enc["c1_controls"] == 2
    assert column_of(report, "public.words", "word")["top_values"][0] == {"value": "caf\u00e9", "count": 5}


def test_sql_ascii_database(env, tidemark_binary):
    with encoded_database(env, "SQL_ASCII") as db:
        insert_bytes(db, "SQL_ASCII", [b"plain"] * 4 +
                     ["caf\u00e9".encode("utf-8")] * 3 +                   # valid UTF-8
                     [b"caf\xe9", b"na\xefve"] +                            # Latin-1 bytes: not UTF-8
                     ["caf\u00c3\u00a9".encode("utf-8")])                  # double-encoded UTF-8
        report, _ = profile_json(env, config_text=config_for(env, db))
    W = "public.words"
    assert report["source"]["encoding"] == "SQL_ASCII"
    enc = column_of(report, W, "word")["text"]["encoding"]
    assert enc["non_ascii"] == 6 and enc["invalid_utf8"] == 2 and enc["mojibake"] == 1, enc
    f = one(report, "invalid_encoding", W, "word")
    assert f["severity"] == "error" and f["count"] == 2, f
    assert f["examples"][0] in ("caf\\xe9", "na\\xefve"), f       # bytes shown escaped
    assert one(report, "non_ascii_bytes", W, "word")["count"] == 4
    f = one(report, "mojibake", W, "word")
    assert f["count"] == 1 and f["examples"] == ["caf\u00c3\u00a9"], f
    values = {v["value"]: v["count"] for v in column_of(report, W, "word")["top_values"]}
    assert values["caf\u00e9"] == 3 and values["caf\\xe9"] == 1 and values["plain"] == 4
    # the report (with its escaped bytes) was stored on the UTF8 target
    assert env.dst_sql("SELECT count(*) FROM tidemark.profile_runs")[0][0] == 1


def test_cli_usage(env, tidemark_binary):
    res = subprocess.run([tidemark_binary, "profile", "--help"], stdout=subprocess.PIPE, text=True)
    assert res.returncode == 0 and "--sample" in res.stdout and "--jobs" in res.stdout
    assert "profile" in subprocess.run([tidemark_binary, "--help"], stdout=subprocess.PIPE, text=True).stdout
    for args, needle in ((["--sample", "0"], "--sample"), (["--jobs", "x"], "--jobs"),
                         (["--format", "pdf"], "pdf"), (["--table", "a.b.c"], "a.b.c")):
        res = run_profile(env, *args, check=False)
        assert res.returncode == 2 and needle in res.stderr.decode(), (args, res.stderr)
    res = run_profile(env, "--table", "nosuch", check=False)
    assert res.returncode == 1 and "nosuch" in res.stderr.decode(), res.stderr
