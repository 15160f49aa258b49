"""The Kafka applier's template unit (systemd/tidemark-apply@.service.in):
`systemd-analyze verify` accepts it, its hardening scores like tidemark@'s,
it runs `tidemark apply` with the instance's config, and `meson install`
puts it beside tidemark@.service."""

import os
import re

import pytest

from test_systemd import SYSTEMD_ANALYZE, analyze, build_dir, meson_install, unit_keys


def generated():
    path = os.path.join(build_dir(), "systemd", "tidemark-apply@.service")
    if not os.path.isfile(path):
        pytest.fail("generated unit not found at %s (build with meson first)" % path)
    with open(path) as f:
        return f.read()


def unit_for_test(tmp_path, tidemark_binary):
    text, n = re.subn(r"(?m)^ExecStart=\S+", "ExecStart=" + os.path.abspath(tidemark_binary), generated())
    assert n == 1
    (tmp_path / "tidemark-apply@.service").write_text(text)


@pytest.mark.skipif(SYSTEMD_ANALYZE is None, reason="systemd-analyze is not installed")
def test_apply_unit_verifies(tmp_path, tidemark_binary):
    unit_for_test(tmp_path, tidemark_binary)
    res = analyze("verify", "--man=no", str(tmp_path / "tidemark-apply@orders.service"))
    out = res.stdout + res.stderr
    assert res.returncode == 0, out
    assert not [line for line in out.splitlines() if "tidemark-apply@" in line], out


@pytest.mark.skipif(SYSTEMD_ANALYZE is None, reason="systemd-analyze is not installed")
def test_apply_unit_hardening_exposure(tmp_path, tidemark_binary):
    unit_for_test(tmp_path, tidemark_binary)
    res = analyze("security", "--offline=true", "--no-pager", str(tmp_path / "tidemark-apply@orders.service"))
    out = res.stdout + res.stderr
    m = re.search(r"Overall exposure level for \S+: ([0-9.]+)", out)
    assert m and float(m.group(1)) <= 2.0, out


def test_apply_unit_contents():
    d = {}
    for k, v in unit_keys(generated()):
        d.setdefault(k, []).append(v)
    assert d["Type"] == ["notify"] and d["WatchdogSec"] == ["60"] and d["Restart"] == ["on-failure"]
    assert "StateDirectory" not in d  # the offsets live in the target
    exec_start = d["ExecStart"][0].split()
    assert exec_start[0].startswith("/") and exec_start[0].endswith("/tidemark"), exec_start
    assert exec_start[1:] == ["apply", "--config", "/etc/tidemark/%i.yaml"]


def test_apply_unit_installed(tmp_path):
    dest = meson_install(tmp_path)
    units = [os.path.join(r, f) for r, _, fs in os.walk(dest) for f in fs if f.startswith("tidemark")
             and f.endswith(".service")]
    assert sorted(os.path.basename(u) for u in units) == ["tidemark-apply@.service", "tidemark@.service"]
    assert len({os.path.dirname(u) for u in units}) == 1
