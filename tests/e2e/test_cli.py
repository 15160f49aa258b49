"""End-to-end tests of tidemark's command line: help, version, usage errors and
config validation errors (which must name file:line:column and the key, and
must fail before touching the source)."""

import os
import re
import subprocess

import harness


def run_cli(binary, *args, timeout=30):
    return subprocess.run([binary] + list(args), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                          text=True, timeout=timeout, stdin=subprocess.DEVNULL)


def project_version():
    with open(os.path.join(harness.REPO_ROOT, "meson.build")) as f:
        return re.search(r"version\s*:\s*'([^']+)'", f.read()).group(1)


def test_help(tidemark_binary):
    res = run_cli(tidemark_binary, "--help")
    assert res.returncode == 0, res.stderr
    out = res.stdout + res.stderr
    assert re.search(r"usage", out, re.I), out
    assert "run" in out, "--help should list the run command:\n" + out


def test_version(tidemark_binary):
    res = run_cli(tidemark_binary, "--version")
    assert res.returncode == 0, res.stderr
    assert project_version() in res.stdout + res.stderr, res.stdout + res.stderr


def test_run_help(tidemark_binary):
    res = run_cli(tidemark_binary, "run", "--help")
    assert res.returncode == 0, res.stderr
    out = res.stdout + res.stderr
    assert re.search(r"usage", out, re.I), out
    assert "--config" in out, out


def test_unknown_command(tidemark_binary):
    res = run_cli(tidemark_binary, "frobnicate")
    assert res.returncode != 0
    assert res.stderr.strip(), "expected an error message on stderr"
    assert "frobnicate" in res.stderr, res.stderr


def test_missing_config_file(tidemark_binary, tmp_path):
    path = str(tmp_path / "does-not-exist.yaml")
    res = run_cli(tidemark_binary, "run", "--config", path)
    assert res.returncode != 0
    assert path in res.stderr, res.stderr


def _assert_config_error(env, tidemark_binary, text, line, col, needle):
    path = os.path.join(env.workdir, "bad.yaml")
    with open(path, "w") as f:
        f.write(text)
    res = run_cli(tidemark_binary, "run", "--config", path)
    assert res.returncode != 0, "bad config accepted:\n" + text
    # 1-based line and column, like compilers print them.
    assert "%s:%d:%d" % (path, line, col) in res.stderr, \
        "expected %s:%d:%d in stderr:\n%s" % (path, line, col, res.stderr)
    assert needle in res.stderr, res.stderr
    assert not env.slots(), "a slot was created despite the config error: %s" % env.slots()
    pubs = env.src_sql("SELECT pubname FROM pg_publication")
    assert not pubs, "a publication was created despite the config error: %s" % pubs


def test_unknown_key_nested(env, tidemark_binary):
    text = env.config()
    lines = text.splitlines()
    idx = lines.index("source:") + 1
    lines.insert(idx, "  bogus_setting: 1")
    _assert_config_error(env, tidemark_binary, "\n".join(lines) + "\n", idx + 1, 3, "bogus_setting")


def test_unknown_key_top_level(env, tidemark_binary):
    text = env.config() + "colour_scheme: blue\n"
    line = len(text.splitlines())
    _assert_config_error(env, tidemark_binary, text, line, 1, "colour_scheme")


def test_missing_pipeline(tidemark_binary, tmp_path, env):
    text = "\n".join(l for l in env.config().splitlines() if not l.startswith("pipeline:")) + "\n"
    path = str(tmp_path / "nopipe.yaml")
    with open(path, "w") as f:
        f.write(text)
    res = run_cli(tidemark_binary, "run", "--config", path)
    assert res.returncode != 0
    assert path in res.stderr and "pipeline" in res.stderr, res.stderr
    assert not env.slots()


def test_invalid_pipeline_name(tidemark_binary, tmp_path, env):
    text = env.config().replace("pipeline: %s" % env.pipeline, "pipeline: Bad-Name")
    path = str(tmp_path / "badname.yaml")
    with open(path, "w") as f:
        f.write(text)
    res = run_cli(tidemark_binary, "run", "--config", path)
    assert res.returncode != 0
    assert "%s:1:" % path in res.stderr and "pipeline" in res.stderr, res.stderr
    assert not env.slots()
