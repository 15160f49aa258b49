"""The example alerting rules in docs/prometheus-rules.yml are what promtool
accepts: groups of rules, each with alert, a PromQL expr, for, labels
(severity) and annotations (summary, description); unique alert names; and
`promtool check rules` passes when promtool is installed. (That the metrics
they use exist is checked against a live scrape in test_service.py.)"""

import os
import re
import shutil
import subprocess

import pytest

import harness

RULES = os.path.join(harness.REPO_ROOT, "docs", "prometheus-rules.yml")


def test_rules_structure():
    yaml = pytest.importorskip("yaml")
    with open(RULES) as f:
        doc = yaml.safe_load(f)
    assert set(doc) == {"groups"}
    names = []
    for group in doc["groups"]:
        assert set(group) == {"name", "rules"} and group["rules"]
        for rule in group["rules"]:
            assert set(rule) == {"alert", "expr", "for", "labels", "annotations"}, rule
            assert re.fullmatch(r"[A-Z][A-Za-z0-9]+", rule["alert"]), rule["alert"]
            assert re.fullmatch(r"\d+[smh]", rule["for"]), rule
            assert rule["labels"]["severity"] in ("warning", "critical"), rule
            assert {"summary", "description"} <= set(rule["annotations"]), rule
            assert rule["expr"].count("(") == rule["expr"].count(")"), rule["expr"]
            names.append(rule["alert"])
    assert len(names) == len(set(names)), names
    for needed in ("TidemarkDown", "TidemarkNotStreaming", "TidemarkReplicationLagHigh",
                   "TidemarkSlotRetainsTooMuchWAL", "TidemarkErrorsIncreasing"):
        assert needed in names


@pytest.mark.skipif(shutil.which("promtool") is None, reason="promtool is not installed")
def test_promtool_accepts_rules():
    r = subprocess.run(["promtool", "check", "rules", RULES], stdout=subprocess.PIPE,
                       stderr=subprocess.STDOUT, text=True, timeout=60)
    assert r.returncode == 0, r.stdout
