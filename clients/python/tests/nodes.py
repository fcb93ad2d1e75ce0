"""Real featurelog nodes for the client's tests.

The tests run against `featurelog serve` processes started here: the
binary named by $FEATURELOG_BIN, or one built once with `go build` from
this repository. Two nodes are shared by every test module (started on
first use, stopped when the test process exits):

- open_node(): --no-auth, with examples/ads/features.yaml;
- auth_node(): with API keys; its owner and viewer keys are created with
  `featurelog service-account create` and `access-control assign-role`
  on the data directory before it serves.

Tests keep apart by using keys of their own (unique_key()).
"""

import atexit
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid

REPO_ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..", ".."))
CLIENT_ROOT = os.path.join(REPO_ROOT, "clients", "python")
ADS_REPO = os.path.join(REPO_ROOT, "examples", "ads", "features.yaml")

if CLIENT_ROOT not in sys.path:
    sys.path.insert(0, CLIENT_ROOT)

_tmp = tempfile.mkdtemp(prefix="featurelog-pyclient-")
atexit.register(shutil.rmtree, _tmp, True)
_binary = None
_nodes = {}


def tmpdir(name):
    """A fresh directory under the test run's temporary directory."""
    return tempfile.mkdtemp(prefix=name + "-", dir=_tmp)


def binary():
    """The featurelog binary: $FEATURELOG_BIN, or built once."""
    global _binary
    if _binary:
        return _binary
    env = os.environ.get("FEATURELOG_BIN")
    if env:
        if not os.access(env, os.X_OK):
            raise RuntimeError("FEATURELOG_BIN=%s is not an executable file" % env)
        _binary = env
        return _binary
    go = shutil.which("go")
    if not go:
        raise RuntimeError("the client tests need a featurelog binary: set FEATURELOG_BIN, or install Go to build one")
    out = os.path.join(_tmp, "featurelog")
    subprocess.run([go, "build", "-o", out, "./cmd/featurelog"], cwd=REPO_ROOT, check=True)
    _binary = out
    return _binary


def cli(*args):
    """Runs a featurelog command; returns its stdout."""
    res = subprocess.run([binary()] + list(args), capture_output=True, text=True)
    if res.returncode != 0:
        raise RuntimeError("featurelog %s failed (%d): %s" % (" ".join(args), res.returncode, res.stderr))
    return res.stdout


def create_account(data, name, role, workspace="ads"):
    """Creates a service account with role on workspace in the data
    directory; returns (api key, account id)."""
    out = cli("service-account", "create", "--name", name, "--data", data)
    key = re.search(r"API Key: (\S+)", out).group(1)
    ident = re.search(r"Service Account ID: (\S+)", out).group(1)
    cli("access-control", "assign-role", "--role", role, "--workspace", workspace, "--service-account", ident, "--data", data)
    return key, ident


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Node:
    """A `featurelog serve` process on a free loopback port."""

    def __init__(self, data, repo=ADS_REPO, no_auth=True):
        self.data = data
        self.addr = "127.0.0.1:%d" % free_port()
        self.url = "http://" + self.addr
        self.log_path = os.path.join(data + ".log")
        args = [binary(), "serve", "--data", data, "--repo", repo, "--addr", self.addr]
        if no_auth:
            args.append("--no-auth")
        self._log = open(self.log_path, "wb")
        self.proc = subprocess.Popen(args, stdout=self._log, stderr=subprocess.STDOUT)
        self._wait_ready(60)

    def _wait_ready(self, timeout):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError("featurelog serve exited with %d:\n%s" % (self.proc.returncode, self.log()))
            try:
                with urllib.request.urlopen(self.url + "/readyz", timeout=2) as r:
                    if json.load(r).get("status") == "ready":
                        return
            except OSError:
                pass
            time.sleep(0.05)
        self.stop()
        raise RuntimeError("featurelog serve was not ready within %ds:\n%s" % (timeout, self.log()))

    def log(self):
        with open(self.log_path, "rb") as f:
            return f.read().decode("utf-8", "replace")

    def stop(self):
        """Stops the node with SIGTERM (a clean shutdown), or kills it."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._log.close()


def _shared(name, start):
    if name not in _nodes:
        _nodes[name] = start()
        atexit.register(_nodes[name].stop)
    return _nodes[name]


def open_node():
    """The shared --no-auth node serving examples/ads/features.yaml."""
    return _shared("open", lambda: Node(tmpdir("open")))


def auth_node():
    """The shared node with API keys; node.keys holds "owner", "viewer"
    and "editor" keys of workspace ads."""
    def start():
        data = tmpdir("auth")
        keys = {role: create_account(data, "py-" + role, role)[0] for role in ("owner", "editor", "viewer")}
        node = Node(data, no_auth=False)
        node.keys = keys
        return node
    return _shared("auth", start)


def unique_key(prefix="u"):
    """A join-key value no other test uses."""
    return "%s-%s" % (prefix, uuid.uuid4().hex[:12])
