"""Schema shapes real databases have, each end to end: initial copy, stream,
`tidemark verify` and an independent md5 comparison of source and target.

* GENERATED ALWAYS identity columns the source updates (non-key columns
  carried by every UPDATE, `SET col = DEFAULT`, an identity primary key
  changed): the target keeps the source's values.
* Tables whose only columns are generated, and tables with no columns.
* Partitioned tables with and without keys (publish_via_partition_root,
  also when the publication existed without it), TRUNCATE of a partitioned
  table on a partitioned target, a partitioned source into a plain target.
* Inheritance: a parent listed after its children is not "not empty"
  because of the children's rows.
"""

import json
import os
import subprocess

import psycopg
import pytest

import harness


def run_verify(env, *args, extra="", tables=None):
    path = os.path.join(env.workdir, "verify.yaml")
    with open(path, "w") as f:
        f.write(env.config(tables, extra=extra))
    res = subprocess.run([harness.tidemark_bin(), "verify", "--config", path, "--format", "json"] + list(args),
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=300, stdin=subprocess.DEVNULL)
    return res.returncode, res.stdout.decode("utf-8", "replace"), res.stderr.decode("utf-8", "replace")


def verify_ok(env, tables, extra=""):
    """`tidemark verify` of the pipeline's tables reports every one equal."""
    args = []
    for t in tables:
        args += ["--table", t]
    rc, out, err = run_verify(env, *args, extra=extra)
    assert rc == 0, "verify exited %d\n%s\n%s" % (rc, err, out)
    rep = json.loads(out)
    assert rep["ok"] and rep["summary"]["tables_ok"] == len(tables), json.dumps(rep, indent=1)
    return rep


def converge(env, d, tables, extra=""):
    env.wait_caught_up(d)
    env.assert_tables_equal(*tables)
    verify_ok(env, tables, extra=extra)


def only_digest(conninfo, table):
    """md5 of the rows of ONLY table (not its inheritance children)."""
    q = ("SELECT md5(string_agg(r::text, E'\\n' ORDER BY r::text)), count(*) FROM ONLY %s r" % table)
    return harness.execute(conninfo, q, options=harness.COMPARE_OPTIONS)[0]


# --------------------------------------------------------------------------- identity

IDENTITY_DDL = """
    CREATE TABLE ident (pk int PRIMARY KEY, id_col bigint GENERATED ALWAYS AS IDENTITY, v text);
    CREATE TABLE ident_key (id bigint GENERATED ALWAYS AS IDENTITY (START 100) PRIMARY KEY, v text);
    CREATE TABLE ident_full (id_col int GENERATED ALWAYS AS IDENTITY, v text);
    ALTER TABLE ident_full REPLICA IDENTITY FULL;
"""
IDENTITY_TABLES = ["public.ident", "public.ident_key", "public.ident_full"]


def test_generated_always_identity_updated_by_the_source(env):
    env.both_sql(IDENTITY_DDL)
    # The target's sequences start elsewhere: only the source's values may land there.
    env.dst_sql("ALTER TABLE ident ALTER id_col RESTART WITH 5000; ALTER TABLE ident_key ALTER id RESTART WITH 7000")
    env.src_sql("INSERT INTO ident (pk, v) SELECT g, 'v' || g FROM generate_series(1, 200) g")
    env.src_sql("INSERT INTO ident_key (v) SELECT 'k' || g FROM generate_series(1, 200) g")
    env.src_sql("INSERT INTO ident_full (v) SELECT 'f' || g FROM generate_series(1, 50) g")
    d = env.daemon(tables=IDENTITY_TABLES)
    env.wait_caught_up(d)
    env.src_sql("INSERT INTO ident (pk, v) VALUES (1000, 'streamed')")
    env.src_sql("INSERT INTO ident_key (v) VALUES ('streamed')")
    env.src_sql("UPDATE ident SET v = 'updated' WHERE pk <= 10")        # id_col carried, unchanged
    env.src_sql("UPDATE ident SET id_col = DEFAULT WHERE pk = 20")       # id_col changes
    env.src_sql("UPDATE ident_key SET v = 'updated' WHERE id < 110")
    env.src_sql("UPDATE ident_key SET id = DEFAULT WHERE id = 150")      # the key changes
    env.src_sql("UPDATE ident_full SET v = 'updated' WHERE id_col < 5")
    env.src_sql("UPDATE ident_full SET id_col = DEFAULT WHERE id_col = 7")
    env.src_sql("DELETE FROM ident WHERE pk = 30")
    converge(env, d, IDENTITY_TABLES)
    assert env.dst_sql("SELECT id_col FROM ident WHERE pk = 20")[0][0] == \
        env.src_sql("SELECT id_col FROM ident WHERE pk = 20")[0][0]
    # While the pipeline owns the target, the columns are BY DEFAULT (recorded).
    recorded = env.dst_sql("SELECT key FROM tidemark.pipeline_state WHERE pipeline = %s"
                           " AND key LIKE 'identity %%' ORDER BY 1", (env.pipeline,))
    assert [r[0] for r in recorded] == ["identity public.ident.id_col", "identity public.ident_full.id_col",
                                        "identity public.ident_key.id"], recorded
    d.stop()
    # Cutover puts them back to ALWAYS (`sync-sequences --restore-identity`).
    res = subprocess.run([d.binary, "sync-sequences", "--config", d.config_path, "--restore-identity"],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert res.returncode == 0, res.stdout + res.stderr
    assert "3 identity column(s) back to GENERATED ALWAYS" in res.stdout, res.stdout
    kinds = env.dst_sql("SELECT table_name, column_name, identity_generation FROM information_schema.columns"
                        " WHERE table_schema = 'public' AND is_identity = 'YES' ORDER BY 1, 2")
    assert kinds == [("ident", "id_col", "ALWAYS"), ("ident_full", "id_col", "ALWAYS"),
                     ("ident_key", "id", "ALWAYS")], kinds
    assert env.dst_sql("SELECT count(*) FROM tidemark.pipeline_state WHERE key LIKE 'identity %%'")[0][0] == 0
    env.assert_tables_equal(*IDENTITY_TABLES)


# --------------------------------------------------------------------------- no columns to copy

def test_generated_only_and_zero_column_tables(env):
    env.both_sql("""
        CREATE TABLE gen_only (g int GENERATED ALWAYS AS (42) STORED);
        ALTER TABLE gen_only REPLICA IDENTITY FULL;
        CREATE TABLE nocols ();
        ALTER TABLE nocols REPLICA IDENTITY FULL;
        CREATE TABLE gen_mixed (id int PRIMARY KEY, a int, b int GENERATED ALWAYS AS (a * 2) STORED);
    """)
    env.src_sql("INSERT INTO gen_only SELECT FROM generate_series(1, 5)")
    env.src_sql("INSERT INTO nocols SELECT FROM generate_series(1, 7)")
    env.src_sql("INSERT INTO gen_mixed (id, a) SELECT g, g FROM generate_series(1, 20) g")
    tables = ["public.gen_only", "public.nocols", "public.gen_mixed"]
    d = env.daemon(tables=tables)
    env.wait_caught_up(d)
    assert env.dst_sql("SELECT count(*) FROM nocols")[0][0] == 7
    env.src_sql("INSERT INTO gen_only DEFAULT VALUES")
    env.src_sql("INSERT INTO nocols DEFAULT VALUES")
    env.src_sql("INSERT INTO nocols DEFAULT VALUES")
    env.src_sql("DELETE FROM nocols WHERE ctid = (SELECT min(ctid) FROM nocols)")
    env.src_sql("DELETE FROM gen_only WHERE ctid = (SELECT min(ctid) FROM gen_only)")
    env.src_sql("UPDATE gen_mixed SET a = a + 100 WHERE id <= 5")
    converge(env, d, tables)
    assert env.dst_sql("SELECT count(*) FROM nocols")[0][0] == 8
    d.stop()


# --------------------------------------------------------------------------- partitions

PART_DDL = """
    CREATE TABLE pk_part (id int, region text, v text, PRIMARY KEY (id, region)) PARTITION BY LIST (region);
    CREATE TABLE pk_part_eu PARTITION OF pk_part FOR VALUES IN ('eu');
    CREATE TABLE pk_part_us PARTITION OF pk_part FOR VALUES IN ('us');
    CREATE TABLE nk_part (k int, v text) PARTITION BY RANGE (k);
    CREATE TABLE nk_part_lo PARTITION OF nk_part FOR VALUES FROM (0) TO (100);
    CREATE TABLE nk_part_hi PARTITION OF nk_part FOR VALUES FROM (100) TO (200);
    ALTER TABLE nk_part REPLICA IDENTITY FULL;
"""
PART_TABLES = ["public.pk_part", "public.nk_part", "public.flat"]


def test_partitioned_tables_with_and_without_keys(env):
    env.both_sql(PART_DDL)
    # A partitioned source table into a plain target table.
    env.src_sql("CREATE TABLE flat (id int PRIMARY KEY, v text) PARTITION BY RANGE (id);"
                "CREATE TABLE flat_1 PARTITION OF flat FOR VALUES FROM (0) TO (1000);"
                "CREATE TABLE flat_2 PARTITION OF flat FOR VALUES FROM (1000) TO (2000)")
    env.dst_sql("CREATE TABLE flat (id int PRIMARY KEY, v text)")
    env.src_sql("INSERT INTO pk_part SELECT g, CASE WHEN g % 2 = 0 THEN 'eu' ELSE 'us' END, 'v' || g"
                " FROM generate_series(1, 100) g")
    env.src_sql("INSERT INTO nk_part SELECT g % 200, 'v' || (g % 7) FROM generate_series(1, 300) g")
    env.src_sql("INSERT INTO flat SELECT g, 'f' || g FROM generate_series(1, 1999, 10) g")
    # An existing publication without publish_via_partition_root: its changes
    # would arrive under the partitions' names.
    env.src_sql("CREATE PUBLICATION tidemark_%s FOR TABLE pk_part, nk_part, flat" % env.pipeline)

    # Without a key, every partition needs REPLICA IDENTITY FULL (the root's
    # setting does not reach them): refused before anything is created.
    d = env.daemon(tables=PART_TABLES)
    assert d.wait_exit() == 1
    log = d.log()
    assert "nk_part_hi" in log and "nk_part_lo" in log and "REPLICA IDENTITY" in log, log
    assert not env.slot_exists()
    env.src_sql("ALTER TABLE nk_part_lo REPLICA IDENTITY FULL; ALTER TABLE nk_part_hi REPLICA IDENTITY FULL")

    d = env.daemon(tables=PART_TABLES)
    env.wait_caught_up(d)
    assert env.src_sql("SELECT pubviaroot FROM pg_publication WHERE pubname = %s",
                       ("tidemark_" + env.pipeline,)) == [(True,)]
    env.src_sql("INSERT INTO pk_part VALUES (500, 'eu', 'new'), (501, 'us', 'new')")
    env.src_sql("UPDATE pk_part SET v = 'moved', region = 'us' WHERE id = 2")   # between partitions
    env.src_sql("UPDATE pk_part SET v = 'same' WHERE id = 3")
    env.src_sql("DELETE FROM pk_part WHERE id = 5")
    env.src_sql("INSERT INTO nk_part VALUES (7, 'dup'), (7, 'dup'), (150, 'x')")
    env.src_sql("UPDATE nk_part SET k = 170 WHERE k = 10")                       # between partitions
    env.src_sql("DELETE FROM nk_part WHERE ctid = (SELECT min(ctid) FROM nk_part_lo WHERE k = 7)")
    env.src_sql("UPDATE flat SET v = 'moved', id = 1500 WHERE id = 11")
    env.src_sql("DELETE FROM flat WHERE id = 21")
    converge(env, d, PART_TABLES)

    # TRUNCATE of a partitioned table, partitioned on the target too.
    env.src_sql("TRUNCATE pk_part")
    env.src_sql("INSERT INTO pk_part VALUES (1, 'eu', 'after truncate')")
    env.src_sql("TRUNCATE nk_part, flat")
    env.src_sql("INSERT INTO nk_part VALUES (1, 'after'); INSERT INTO flat VALUES (1, 'after')")
    converge(env, d, PART_TABLES)
    assert env.dst_sql("SELECT * FROM pk_part_eu") == [(1, "eu", "after truncate")]
    d.stop()


# --------------------------------------------------------------------------- inheritance

def test_inheritance_parent_listed_after_its_children(env):
    env.both_sql("""
        CREATE TABLE animal (id int PRIMARY KEY, name text);
        CREATE TABLE dog (good boolean, PRIMARY KEY (id)) INHERITS (animal);
        CREATE TABLE cat (lives int, PRIMARY KEY (id)) INHERITS (animal);
    """)
    env.src_sql("INSERT INTO animal SELECT g, 'animal ' || g FROM generate_series(1, 50) g")
    env.src_sql("INSERT INTO dog SELECT g, 'dog ' || g, true FROM generate_series(101, 150) g")
    env.src_sql("INSERT INTO cat SELECT g, 'cat ' || g, 9 FROM generate_series(201, 250) g")
    tables = ["public.dog", "public.cat", "public.animal"]
    # One worker: the children are copied (and committed) before the parent is planned.
    d = env.daemon(tables=tables, extra="copy: {jobs: 1}\n")
    env.wait_caught_up(d)
    env.src_sql("INSERT INTO dog VALUES (151, 'new dog', false)")
    env.src_sql("UPDATE animal SET name = name || '!' WHERE id % 10 = 0")   # parent and children
    env.src_sql("DELETE FROM ONLY animal WHERE id = 3")
    converge(env, d, tables)
    for t in ("animal", "dog", "cat"):
        assert only_digest(env.src, t) == only_digest(env.dst, t), t
    d.stop()


# --------------------------------------------------------------------------- sequences

def sync_sequences(d, *args):
    res = subprocess.run([d.binary, "sync-sequences", "--config", d.config_path] + list(args),
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    return res.returncode, res.stdout + res.stderr


def test_sync_sequences_reports_the_sequences_it_cannot_set(env):
    env.both_sql("CREATE TABLE acct (id serial PRIMARY KEY, v text); CREATE SEQUENCE zz_invoice_no")
    env.src_sql("CREATE SEQUENCE aa_unrelated; CREATE SEQUENCE bb_clash")
    env.dst_sql("CREATE TABLE bb_clash (x int)")   # the target has another kind of object of that name
    env.src_sql("INSERT INTO acct (v) SELECT 'a' FROM generate_series(1, 30);"
                "SELECT setval('zz_invoice_no', 777); SELECT setval('aa_unrelated', 5); SELECT setval('bb_clash', 9)")
    d = env.daemon(tables=["public.acct"])
    env.wait_caught_up(d)
    d.stop()
    rc, out = sync_sequences(d)
    # Every sequence the target has is set; the others are named.
    assert env.dst_sql("SELECT last_value FROM acct_id_seq") == [(30,)], out
    assert env.dst_sql("SELECT last_value FROM zz_invoice_no") == [(777,)], out
    assert "public.aa_unrelated" in out and "MISSING" in out, out
    assert "public.bb_clash" in out and "NOT SET: not a sequence on the target" in out, out
    assert "2 sequence(s) set, 1 missing on the target, 1 could not be set" in out, out
    assert rc == 1, out
    env.dst_sql("DROP TABLE bb_clash; CREATE SEQUENCE bb_clash")
    rc, out = sync_sequences(d)
    assert rc == 2 and "3 sequence(s) set, 1 missing on the target, 0 could not be set" in out, out
    assert env.dst_sql("SELECT last_value FROM bb_clash") == [(9,)], out
    env.dst_sql("CREATE SEQUENCE aa_unrelated")
    rc, out = sync_sequences(d)
    assert rc == 0, out


# --------------------------------------------------------------------------- verify after stop

def test_verify_a_stopped_pipeline(env):
    """Right after cutover the daemon is stopped and the source moves on a
    little (here: a table outside the pipeline): the verification snapshot
    is past the watermark, but no change to the verified tables lies in
    between, and the pipeline's own slot proves it. A change that does lie
    in between is named (table, commit position)."""
    env.both_sql("CREATE TABLE acct (id int PRIMARY KEY, v text); CREATE TABLE memo (id int PRIMARY KEY, v text)")
    env.src_sql("CREATE TABLE elsewhere (x int)")
    env.src_sql("INSERT INTO acct SELECT g, 'a' FROM generate_series(1, 500) g")
    env.src_sql("INSERT INTO memo SELECT g, 'm' FROM generate_series(1, 50) g")
    d = env.daemon(tables=["public.acct", "public.memo"])
    env.wait_caught_up(d)
    env.src_sql("UPDATE acct SET v = 'streamed' WHERE id < 10")
    env.wait_caught_up(d)
    d.stop()
    env.wait_slot_inactive()
    env.src_sql("INSERT INTO elsewhere SELECT generate_series(1, 100)")
    extra = "verify: {catchup_timeout_s: 20}\n"
    tables = ["public.acct", "public.memo"]
    rc, out, err = run_verify(env, extra=extra, tables=tables)
    assert rc == 0, "verify of a stopped pipeline failed (%d)\n%s\n%s" % (rc, err, out)
    assert json.loads(out)["ok"]
    assert "no change to the verified tables" in err, err
    env.assert_tables_equal("acct", "memo")

    # A change the stopped pipeline never applied: named, with its position,
    # and said while waiting.
    env.src_sql("UPDATE memo SET v = 'after stop' WHERE id = 3")
    rc, out, err = run_verify(env, extra="verify: {catchup_timeout_s: 7}\n", tables=tables)
    assert rc == 1 and "did not catch up" in err, (rc, err)
    assert "not running" in err and "has not applied public.memo (1 change, the first committed at" in err, err
    assert "verify: waiting for the target to reach the snapshot" in err, err
    # acct alone is still verifiable: memo's change does not concern it.
    rc, out, err = run_verify(env, "--table", "public.acct", extra=extra, tables=tables)
    assert rc == 0, (rc, err, out)


# --------------------------------------------------------------------------- materialized views

def test_profile_reports_the_materialized_views_the_tables_feed(env):
    env.both_sql("""
        CREATE TABLE sale (id int PRIMARY KEY, region text, amount numeric);
        CREATE TABLE region (name text PRIMARY KEY);
        CREATE VIEW sale_eu AS SELECT * FROM sale WHERE region = 'eu';
        CREATE MATERIALIZED VIEW sale_totals AS SELECT region, sum(amount) FROM sale GROUP BY 1;
        CREATE MATERIALIZED VIEW eu_total AS SELECT sum(amount) FROM sale_eu;
        CREATE MATERIALIZED VIEW regions_mv AS SELECT name FROM region WITH NO DATA;
    """)
    env.src_sql("INSERT INTO sale SELECT g, 'eu', g FROM generate_series(1, 10) g; REFRESH MATERIALIZED VIEW"
                " sale_totals; INSERT INTO region VALUES ('eu')")
    path = os.path.join(env.workdir, "profile.yaml")
    with open(path, "w") as f:
        f.write(env.config(["public.sale"]))
    res = subprocess.run([harness.tidemark_bin(), "profile", "--config", path, "--format", "json", "--no-store"],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, timeout=120)
    assert res.returncode in (0, 1), res.stderr
    rep = json.loads(res.stdout)
    mv = {m["name"]: m for m in rep["materialized_views"]}
    # regions_mv reads a table outside the pipeline; eu_total reads sale through a view.
    assert sorted(mv) == ["public.eu_total", "public.sale_totals"], rep["materialized_views"]
    assert mv["public.eu_total"]["fed_by"] == "public.sale" and mv["public.eu_total"]["populated"] is True
    found = [f for f in rep["findings"] if f["code"] == "materialized_view"]
    assert {f["table"] for f in found} == {"public.eu_total", "public.sale_totals"}, found
    assert all("REFRESH MATERIALIZED VIEW" in f["message"] for f in found), found
    text = subprocess.run([harness.tidemark_bin(), "profile", "--config", path, "--no-store"],
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, timeout=120).stdout
    assert "materialized_view" in text and "public.sale_totals" in text, text
