"""`schema: copy` against schemas real databases have, end to end (copy +
stream + `tidemark verify` + md5 comparison):

* extensions the tables depend on (citext, hstore, uuid-ossp, pgcrypto,
  pg_trgm) are created on the target; one the target cannot install is
  named before anything is created on either side;
* an invoice / invoice_line / customer schema with foreign keys, copied
  while a writer inserts invoices with their lines and deletes old ones:
  the tables' copies are taken at different source positions, so the
  foreign keys hold only once the stream has caught up with every table.
  They are created NOT VALID before the stream starts and validated once
  every table has caught up; a validation that fails (a row planted on the
  target) is reported by name, the stream goes on, and a restart after the
  repair validates it.
"""

import os
import random
import threading
import time

import psycopg

import harness
from test_shapes import converge, verify_ok

EXT_DIR = "/usr/share/postgresql/15/extension"


def test_extensions_the_tables_need_are_created(env):
    env.src_sql('CREATE EXTENSION citext; CREATE EXTENSION hstore; CREATE EXTENSION "uuid-ossp";'
                " CREATE EXTENSION pgcrypto; CREATE EXTENSION pg_trgm")
    env.src_sql("""
        CREATE TABLE member (
            id uuid PRIMARY KEY DEFAULT uuid_generate_v4(),
            email citext UNIQUE NOT NULL,
            attrs hstore,
            tags citext[],
            fingerprint text DEFAULT encode(digest('member', 'sha256'), 'hex'),
            name text);
        CREATE INDEX member_name_trgm ON member USING gin (name gin_trgm_ops);
        INSERT INTO member (email, attrs, tags, name)
            SELECT 'User' || g || '@Example.com', hstore('k', g::text), ARRAY['A' || g]::citext[], 'name ' || g
            FROM generate_series(1, 500) g;
    """)
    d = env.daemon(tables=["public.member"], extra="schema: copy\n")
    env.wait_caught_up(d, timeout=120)
    env.src_sql("INSERT INTO member (email, name) VALUES ('late@example.com', 'late')")
    env.src_sql("UPDATE member SET attrs = attrs || hstore('x', 'y'), email = upper(email::text)"
                " WHERE name LIKE 'name 1%'")
    env.src_sql("DELETE FROM member WHERE name = 'name 7'")
    converge(env, d, ["public.member"])
    exts = {r[0] for r in env.dst_sql("SELECT extname FROM pg_extension")}
    assert {"citext", "hstore", "uuid-ossp", "pgcrypto", "pg_trgm"} <= exts, exts
    assert env.dst_sql("SELECT count(*) FROM member WHERE email = 'user3@example.com'") == [(1,)]
    d.stop()


def test_an_extension_the_target_cannot_install_is_named_first(env):
    name = "tm_fake_ext_%d" % os.getpid()
    files = [os.path.join(EXT_DIR, name + ".control"), os.path.join(EXT_DIR, name + "--1.0.sql")]
    with open(files[0], "w") as f:
        f.write("default_version = '1.0'\nrelocatable = true\n")
    with open(files[1], "w") as f:
        f.write("CREATE DOMAIN tm_fake_code AS text CHECK (VALUE ~ '^[A-Z]+$');\n")
    try:
        env.src_sql("CREATE EXTENSION citext; CREATE EXTENSION %s" % name)
    finally:
        for p in files:  # installed on the source only from now on
            os.unlink(p)
    env.src_sql("CREATE TABLE coded (id int PRIMARY KEY, code tm_fake_code, label citext)")
    d = env.daemon(tables=["public.coded"], extra="schema: copy\n")
    assert d.wait_exit() == 1
    log = d.log()
    assert name in log and "cannot install" in log, log
    assert "citext" not in log.split(name)[0].splitlines()[-1], log   # only the missing one is named
    # Nothing was started: no slot, no publication, no table on the target.
    assert not env.slot_exists()
    assert env.src_sql("SELECT count(*) FROM pg_publication") == [(0,)]
    assert env.dst_sql("SELECT count(*) FROM pg_class WHERE relname = 'coded'") == [(0,)]
    assert env.dst_sql("SELECT count(*) FROM pg_extension WHERE extname = 'citext'") == [(0,)]


# --------------------------------------------------------------------------- FKs under writes

INVOICE_DDL = """
    CREATE TABLE customer (id bigserial PRIMARY KEY, name text NOT NULL, email text UNIQUE);
    CREATE TABLE invoice (id bigserial PRIMARY KEY,
                          customer_id bigint NOT NULL REFERENCES customer (id),
                          total numeric(12, 2) NOT NULL DEFAULT 0,
                          issued date NOT NULL DEFAULT current_date);
    CREATE TABLE invoice_line (id bigserial PRIMARY KEY,
                               invoice_id bigint NOT NULL REFERENCES invoice (id) ON DELETE CASCADE,
                               product text NOT NULL,
                               qty int NOT NULL CHECK (qty > 0),
                               price numeric(10, 2) NOT NULL);
    CREATE INDEX ON invoice (customer_id);
    CREATE INDEX ON invoice_line (invoice_id);
"""
INVOICE_TABLES = ["public.customer", "public.invoice", "public.invoice_line"]


def load_invoices(env, customers=2000, invoices=20000):
    env.src_sql(INVOICE_DDL)
    env.src_sql("INSERT INTO customer (name, email) SELECT 'customer ' || g, 'c' || g || '@example.com'"
                " FROM generate_series(1, %d) g" % customers)
    env.src_sql("INSERT INTO invoice (customer_id, total) SELECT g %% %d + 1, 0 FROM generate_series(1, %d) g"
                % (customers, invoices))
    env.src_sql("INSERT INTO invoice_line (invoice_id, product, qty, price)"
                " SELECT i.id, 'product ' || l, l, 9.90 FROM invoice i, generate_series(1, 3) l")
    env.src_sql("UPDATE invoice i SET total = s.t FROM (SELECT invoice_id, sum(qty * price) t FROM invoice_line"
                " GROUP BY 1) s WHERE s.invoice_id = i.id")
    env.src_sql("VACUUM ANALYZE")


class InvoiceWriter(threading.Thread):
    """A billing application: new customers, invoices with their lines, credit
    notes that delete old invoices (their lines go by cascade). Keeps, for
    each transaction that created an invoice, source positions before it
    began and after it committed."""

    def __init__(self, conninfo, seed=12):
        super().__init__(daemon=True)
        self.conninfo, self.rng = conninfo, random.Random(seed)
        self.stop_event = threading.Event()
        self.txns, self.error, self.invoice_spans = 0, None, []

    def run(self):
        try:
            with psycopg.connect(self.conninfo, autocommit=True) as c:
                while not self.stop_event.is_set():
                    lo = c.execute("SELECT pg_current_wal_insert_lsn()::text").fetchone()[0]
                    with c.transaction():
                        made = self.one(c)
                    hi = c.execute("SELECT pg_current_wal_insert_lsn()::text").fetchone()[0]
                    if made:
                        self.invoice_spans.append((lo, hi))
                    self.txns += 1
                    self.stop_event.wait(0.005)
        except Exception as e:  # reported by finish()
            self.error = e

    def one(self, c):
        rng = self.rng
        if rng.random() < 0.2:
            cid = c.execute("INSERT INTO customer (name) VALUES ('new') RETURNING id").fetchone()[0]
        else:
            cid = c.execute("SELECT id FROM customer ORDER BY random() LIMIT 1").fetchone()[0]
        if rng.random() < 0.25:
            c.execute("DELETE FROM invoice WHERE id = (SELECT min(id) FROM invoice)")
            return False
        iid = c.execute("INSERT INTO invoice (customer_id) VALUES (%s) RETURNING id", (cid,)).fetchone()[0]
        for n in range(rng.randint(1, 4)):
            c.execute("INSERT INTO invoice_line (invoice_id, product, qty, price) VALUES (%s, %s, %s, 4.5)",
                      (iid, "p%d" % n, n + 1))
        c.execute("UPDATE invoice SET total = (SELECT sum(qty * price) FROM invoice_line WHERE invoice_id = %s)"
                  " WHERE id = %s", (iid, iid))
        return True

    def finish(self):
        self.stop_event.set()
        self.join(30)
        assert not self.is_alive() and self.error is None, "writer failed: %r" % self.error


def fk_state(env):
    return env.dst_sql("SELECT conname, convalidated FROM pg_constraint WHERE contype = 'f'"
                       " AND connamespace = 'public'::regnamespace ORDER BY 1")


def sync_lsns(env):
    return dict(env.dst_sql("SELECT table_name, max(sync_lsn)::text FROM tidemark.sync_state"
                            " WHERE pipeline = %s GROUP BY 1", (env.pipeline,)))


def test_schema_copy_with_foreign_keys_under_writes(env):
    load_invoices(env)
    w = InvoiceWriter(env.src)
    w.start()
    try:
        harness.wait_for(lambda: w.txns > 20 or w.error, 30, "the writer to run")
        # One copy worker: customer, invoice, invoice_line one after the other,
        # each in a snapshot of its own (snapshot_reuse_s: 0; by default they
        # would share one, and no copy would reference rows another lacks).
        d = env.daemon(tables=INVOICE_TABLES, extra="schema: copy\ncopy: {jobs: 1, snapshot_reuse_s: 0}\n")
        harness.wait_for(lambda: d.check_alive() or (env.watermark() and harness.copies_done(env.dst, env.pipeline)),
                         120, "the initial copies")
        harness.wait_for(lambda: d.check_alive() or w.txns > 300, 60, "writes while streaming")
    finally:
        w.finish()
    # The scenario happened: invoices (with lines) committed after the invoice
    # copy's snapshot and before the invoice_line copy's, so the lines' copy
    # references invoices the invoice copy lacks until the stream brings them.
    lsns = sync_lsns(env)
    between = [s for s in w.invoice_spans
               if env.src_sql("SELECT %s::pg_lsn > %s::pg_lsn AND %s::pg_lsn < %s::pg_lsn",
                              (s[0], lsns["invoice"], s[1], lsns["invoice_line"]))[0][0]]
    assert between, (lsns, w.invoice_spans[:5], len(w.invoice_spans))
    env.wait_caught_up(d, timeout=120)
    env.assert_tables_equal(*INVOICE_TABLES)
    harness.wait_for(lambda: d.check_alive() or all(v for _, v in fk_state(env)), 60,
                     "the foreign keys to be validated")
    assert fk_state(env) == [("invoice_customer_id_fkey", True), ("invoice_line_invoice_id_fkey", True)]
    verify_ok(env, INVOICE_TABLES)
    # Enforced on the target for everyone but tidemark's replica session.
    try:
        env.dst_sql("INSERT INTO invoice_line (invoice_id, product, qty, price) VALUES (-1, 'x', 1, 1)")
        raise AssertionError("orphan line accepted")
    except psycopg.errors.ForeignKeyViolation:
        pass
    d.stop()


def test_a_foreign_key_that_cannot_be_validated_yet_is_recoverable(env):
    """invoice references customer, which the first configuration forgot: the
    key cannot hold on the target, is named, the stream goes on; once the
    table is added, a restart copies it and validates the key."""
    load_invoices(env, customers=200, invoices=1000)
    two = ["public.invoice", "public.invoice_line"]
    d = env.daemon(tables=two, extra="schema: copy\n")
    harness.wait_for(lambda: d.check_alive() or "could not be validated" in d.log(), 120,
                     "the failed validation to be reported")
    assert "invoice_customer_id_fkey" in d.log().split("could not be validated")[1].splitlines()[0], d.log()
    env.src_sql("INSERT INTO invoice (customer_id) VALUES (5)")
    env.src_sql("DELETE FROM invoice WHERE id = 3")
    env.wait_caught_up(d)
    env.assert_tables_equal(*two)   # (verify would rightly report every invoice's customer missing)
    assert fk_state(env) == [("invoice_customer_id_fkey", False), ("invoice_line_invoice_id_fkey", True)]
    d.stop()
    d = env.daemon(tables=INVOICE_TABLES, extra="schema: copy\n")
    harness.wait_for(lambda: d.check_alive() or all(v for _, v in fk_state(env)), 120,
                     "the foreign key to be validated once customer is copied")
    converge(env, d, INVOICE_TABLES)
    d.stop()
