"""The systemd integration files: the generated template unit passes
`systemd-analyze verify` (unknown keys or a missing ExecStart binary fail the
test) and keeps its hardening (`systemd-analyze security` exposure), `meson
install` puts the unit, sysusers.d and tmpfiles.d files where systemd looks
for them with ExecStart naming the installed binary, and those two files
create the user and directories in a scratch root."""

import os
import re
import shutil
import subprocess

import pytest

import harness

SYSTEMD_ANALYZE = shutil.which("systemd-analyze")


def build_dir():
    return os.path.dirname(os.path.abspath(harness.tidemark_bin()))


def generated_unit():
    path = os.path.join(build_dir(), "systemd", "tidemark@.service")
    if not os.path.isfile(path):
        pytest.fail("generated unit not found at %s (build with meson first)" % path)
    with open(path) as f:
        return f.read()


def unit_keys(text):
    """[(key, value)] of the unit's assignments, in order."""
    out = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith(("#", ";", "[")) and "=" in line:
            k, v = line.split("=", 1)
            out.append((k.strip(), v.strip()))
    return out


def unit_for_test(tmp_path, tidemark_binary):
    """The generated unit with ExecStart pointing at the built binary (verify
    insists that the binary exists), as tmp/tidemark@.service."""
    text = generated_unit()
    text, n = re.subn(r"(?m)^ExecStart=\S+", "ExecStart=" + os.path.abspath(tidemark_binary), text)
    assert n == 1, "unit has no ExecStart line:\n" + text
    path = tmp_path / "tidemark@.service"
    path.write_text(text)
    return path


def analyze(*args):
    return subprocess.run([SYSTEMD_ANALYZE] + list(args), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                          text=True, timeout=120, stdin=subprocess.DEVNULL)


@pytest.mark.skipif(SYSTEMD_ANALYZE is None, reason="systemd-analyze is not installed")
def test_unit_verifies(tmp_path, tidemark_binary):
    unit_for_test(tmp_path, tidemark_binary)
    res = analyze("verify", "--man=no", str(tmp_path / "tidemark@crm.service"))
    out = res.stdout + res.stderr
    assert res.returncode == 0, out
    # verify only warns (exit 0) about unknown keys and bad values: any line
    # about our file is a defect.
    problems = [line for line in out.splitlines() if "tidemark@" in line]
    assert not problems, out


@pytest.mark.skipif(SYSTEMD_ANALYZE is None, reason="systemd-analyze is not installed")
def test_unit_hardening_exposure(tmp_path, tidemark_binary):
    unit_for_test(tmp_path, tidemark_binary)
    res = analyze("security", "--offline=true", "--no-pager", str(tmp_path / "tidemark@crm.service"))
    out = res.stdout + res.stderr
    m = re.search(r"Overall exposure level for \S+: ([0-9.]+)", out)
    assert m, out
    # 10 is unprotected; well-kept network daemons score around 1-2.
    assert float(m.group(1)) <= 2.0, out


def test_unit_contents():
    keys = unit_keys(generated_unit())
    d = {}
    for k, v in keys:
        d.setdefault(k, []).append(v)
    assert d["Type"] == ["notify"]
    assert d["NotifyAccess"] == ["main"]
    assert d["ExecReload"] == ["/bin/kill -HUP $MAINPID"]
    assert d["Restart"] == ["on-failure"]
    assert d["WatchdogSec"] == ["60"]
    assert d["TimeoutStopSec"] == ["90"]
    assert d["User"] == ["tidemark"] and d["Group"] == ["tidemark"]
    assert d["StateDirectory"] == ["tidemark/%i"]
    assert d["CapabilityBoundingSet"] == [""]
    assert d["SystemCallFilter"] == ["@system-service", "~@privileged @resources"]
    exec_start = d["ExecStart"][0].split()
    assert exec_start[0].startswith("/") and exec_start[0].endswith("/tidemark"), exec_start
    assert exec_start[1:] == ["run", "--config", "/etc/tidemark/%i.yaml"]
    assert "@bindir@" not in exec_start[0]


def meson_install(tmp_path):
    """`meson install` of the build under test into tmp_path/root (skips
    when the binary under test was not built by meson); returns that root."""
    bdir = build_dir()
    if not os.path.isfile(os.path.join(bdir, "build.ninja")):
        pytest.skip("%s is not a meson build directory" % bdir)
    dest = tmp_path / "root"
    res = subprocess.run(["meson", "install", "-C", bdir, "--no-rebuild", "--destdir", str(dest)],
                         stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=300)
    assert res.returncode == 0, res.stdout
    return dest


def test_meson_install_layout(tmp_path):
    """meson install (DESTDIR) installs unit, sysusers and tmpfiles where
    systemd searches, and the unit runs the binary installed beside them."""
    dest = meson_install(tmp_path)
    found = {}
    for root, _, files in os.walk(dest):
        for name in files:
            found[os.path.relpath(os.path.join(root, name), dest)] = os.path.join(root, name)
    unit = [p for p in found if p.endswith("lib/systemd/system/tidemark@.service")]
    assert len(unit) == 1, sorted(found)
    prefix = unit[0][:-len("lib/systemd/system/tidemark@.service")]
    assert prefix + "lib/sysusers.d/tidemark.conf" in found, sorted(found)
    assert prefix + "lib/tmpfiles.d/tidemark.conf" in found, sorted(found)
    with open(found[unit[0]]) as f:
        exec_start = dict(unit_keys(f.read()))["ExecStart"].split()[0]
    assert exec_start.lstrip("/") in found, "ExecStart %s is not an installed file: %s" % (
        exec_start, sorted(found))


@pytest.mark.skipif(os.geteuid() != 0, reason="creating users and chowning needs root")
def test_sysusers_and_tmpfiles_apply(tmp_path):
    root = tmp_path / "root"
    for d in ("etc", "usr/lib/sysusers.d", "usr/lib/tmpfiles.d"):
        (root / d).mkdir(parents=True)
    shutil.copy(os.path.join(harness.REPO_ROOT, "systemd", "tidemark.sysusers"),
                root / "usr/lib/sysusers.d/tidemark.conf")
    shutil.copy(os.path.join(harness.REPO_ROOT, "systemd", "tidemark.tmpfiles"),
                root / "usr/lib/tmpfiles.d/tidemark.conf")
    for tool in ("systemd-sysusers", "systemd-tmpfiles"):
        if shutil.which(tool) is None:
            pytest.skip("%s is not installed" % tool)
    res = subprocess.run(["systemd-sysusers", "--root", str(root)], stdout=subprocess.PIPE,
                         stderr=subprocess.STDOUT, text=True, timeout=60)
    assert res.returncode == 0, res.stdout
    passwd = (root / "etc/passwd").read_text()
    m = re.search(r"^tidemark:x:(\d+):(\d+):[^:]*:/var/lib/tidemark:(\S+)$", passwd, re.M)
    assert m, passwd
    assert m.group(3).endswith("nologin"), passwd
    res = subprocess.run(["systemd-tmpfiles", "--root", str(root), "--create"], stdout=subprocess.PIPE,
                         stderr=subprocess.STDOUT, text=True, timeout=60)
    assert res.returncode == 0, res.stdout
    for d, uid in (("etc/tidemark", 0), ("var/lib/tidemark", int(m.group(1)))):
        st = os.stat(root / d)
        assert oct(st.st_mode & 0o777) == oct(0o750), d
        assert st.st_uid == uid, d
        assert st.st_gid == int(m.group(2)), d
