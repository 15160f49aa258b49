"""The fault campaign's short version (tests/torture/campaign.py --short):
one trial per fault kind (kill -9 in the copy and in the stream, source and
target restarts, network cuts and black holes through the TCP proxies) with
a writer running; no row may be lost, duplicated or differ.

Reproduce or vary: tests/torture/campaign.py --short --seed <seed>.
"""

import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "torture"))

import campaign  # noqa: E402

SEED = 20261205


def test_fault_campaign_short(tidemark_binary):
    summary, report, _ = campaign.run(["--short", "--seed", str(SEED), "--binary", tidemark_binary])
    print(report)
    assert summary["trials"] == len(campaign.plan_trials(None, 0, True))
    assert summary["lost"] == 0 and summary["duplicated"] == 0 and summary["differing"] == 0, report
    assert summary["not_caught_up"] == 0, report
    assert summary["exits_diverged"] == 0, report
    assert summary["watermark_backwards"] == 0, report
    assert summary["writer_errors"] == 0, report
    assert summary["data_ok"], report
