"""scripts/test.sh builds with -Dwerror=true: a build directory that already
exists with other options (scripts/demo.sh used to set build/ up without
werror) is reconfigured, not silently reused (scripts/meson-dir.sh)."""

import json
import os
import shutil
import subprocess
import tempfile

import harness


def werror(builddir):
    out = subprocess.run(["meson", "introspect", builddir, "--buildoptions"], stdout=subprocess.PIPE,
                         text=True, check=True).stdout
    return {o["name"]: o["value"] for o in json.loads(out)}["werror"]


def test_an_existing_build_dir_is_reconfigured_to_werror():
    builddir = tempfile.mkdtemp(prefix="tidemark-mesondir-")
    shutil.rmtree(builddir)
    try:
        subprocess.run(["meson", "setup", builddir], cwd=harness.REPO_ROOT, check=True,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        assert werror(builddir) is False
        res = subprocess.run([os.path.join(harness.REPO_ROOT, "scripts", "meson-dir.sh"), builddir,
                              "-Dwerror=true"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        assert res.returncode == 0, res.stderr
        assert werror(builddir) is True, res.stderr
        assert "werror=true (was false)" in res.stderr, res.stderr
        # Already right: nothing to do.
        res = subprocess.run([os.path.join(harness.REPO_ROOT, "scripts", "meson-dir.sh"), builddir,
                              "-Dwerror=true"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        assert res.returncode == 0 and "meson configure" not in res.stderr, res.stderr
    finally:
        shutil.rmtree(builddir, ignore_errors=True)
