"""Continuous verification in the daemon (verify.interval_s): every table is
re-verified on an interval in a worker thread and the verdict is exposed on
/metrics; a difference planted on the target turns it red."""

import harness
from test_service import metric, scrape


def test_daemon_reverifies_and_reports_a_planted_difference(env):
    env.both_sql("CREATE TABLE acct (id int PRIMARY KEY, balance numeric NOT NULL)")
    env.src_sql("INSERT INTO acct SELECT g, g * 10 FROM generate_series(1, 2000) g")
    port = harness.free_port()
    d = env.daemon(tables=["public.acct"],
                   extra='service: {listen: "127.0.0.1:%d"}\nverify: {interval_s: 1}\n' % port)
    env.wait_caught_up(d)

    def verdict():
        d.check_alive()
        return metric(scrape(port, d), "tidemark_verify_ok", table="public.acct")

    harness.wait_for(lambda: verdict() == 1, 60, "a clean continuous verification")

    # The target drifts behind tidemark's back: the next pass must see it.
    env.dst_sql("UPDATE acct SET balance = -1 WHERE id = 777")
    harness.wait_for(lambda: verdict() == 0, 60, "the planted difference to be reported")
    samples = scrape(port, d)
    assert metric(samples, "tidemark_verify_differences", table="public.acct", kind="differing") == 1
    d.stop()
