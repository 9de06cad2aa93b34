"""Metrics as an operator scrapes them: Envoy's `/stats/prometheus` during a run, parsed by a real
Prometheus exposition parser (`prometheus_client`), with the filter's counters in it and moving;
and every counter the filter defines documented in the README (so docs cannot drift)."""
import re
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

import jwt_tool
from conftest import start_envoy, stop_all
from harness import Envoy, bootstrap, static_cluster, wait_for
from servers import Echo, IdP

ROOT = Path(__file__).resolve().parents[2]
ISS, API = "https://idp.metrics.test", "https://api.metrics.test"


@pytest.fixture(scope="module")
def stack():
    idp = IdP(ISS, algs=("ES256",)).start()
    echo = Echo().start()
    plugin = {"providers": [{"name": "idp", "issuer": ISS, "audiences": [API], "jwks": {"cluster": "idp", "path": "/jwks"}}],
              "forward": {"claims_to_headers": {"sub": "x-user-sub"}}}
    envoy = start_envoy(Envoy(bootstrap(plugin, [static_cluster("idp", idp.port), static_cluster("upstream", echo.port)]), name="metrics"))
    yield idp.key("ES256"), envoy
    stop_all(envoy, idp, echo)


def scrape(envoy) -> dict:
    envoy.stats()  # waits for the filter's 100 ms flush
    text = envoy.admin("/stats/prometheus").body.decode()
    out = {}
    for family in text_string_to_metric_families(text):  # raises on a malformed exposition
        for s in family.samples:
            out[s.name] = out.get(s.name, 0) + s.value
    return out


def test_prometheus_exposition_parses_and_counters_move(stack):
    key, envoy = stack
    before = scrape(envoy)
    ok = jwt_tool.encode(key, jwt_tool.claims(ISS, API))
    assert envoy.get("/", [("authorization", f"Bearer {ok}")]).status == 200
    assert envoy.get("/").status == 401
    after = scrape(envoy)
    ours = {k: v for k, v in after.items() if "token_exchange_filter" in k}
    assert ours, sorted(after)[:50]
    allowed = next(k for k in ours if k.endswith("token_exchange_filter_allowed") or k.endswith("token_exchange_filter_allowed_total"))
    missing = next(k for k in ours if "denied_missing" in k)
    assert after[allowed] - before.get(allowed, 0) == 1
    assert after[missing] - before.get(missing, 0) == 1
    assert not any("alice" in k for k in after), "no subject in metric names"
    # The callout-time histogram: the JWKS fetch this Envoy made, with Envoy's buckets (Envoy
    # publishes histograms at its stats flush, every 5 s by default).
    def fetches():
        m = scrape(envoy)
        return next((v for k, v in m.items() if "jwks_fetch_ms" in k and k.endswith("_count")), 0) >= 1 and m
    m = wait_for(fetches, timeout=12, what="a jwks_fetch_ms sample")
    assert any("jwks_fetch_ms" in k and k.endswith("_bucket") for k in m)


def test_every_counter_is_documented(stack):
    _, envoy = stack
    names = set(envoy.stats())
    assert len(names) > 40, names
    names |= {"jwks_fetch_ms", "exchange_call_ms", "introspection_call_ms", "txn_token_call_ms"}  # histograms are not in /stats counters
    metrics = ROOT.joinpath("README.md").read_text().split("### Metrics", 1)[1].split("\n## ", 1)[0]
    documented = set(re.findall(r"`([a-z_.]+)`", metrics))
    # `denied.<reason>` and `exchange_failed.<why>` are listed by their reasons.
    def doc(n):
        for group in ("denied.", "exchange_failed.", "introspection_failed.", "txn_token_failed."):
            if n.startswith(group):
                return n[len(group):] in documented
        return n in documented
    undocumented = sorted(n for n in names if not doc(n))
    assert not undocumented, f"counters missing from the README's Metrics section: {undocumented}"


def test_a_cache_too_small_says_so():
    # Four entries (one bucket) and six live tokens: the fifth and sixth overwrite live entries,
    # each counted in `cache_evicted`, so an operator sees `cache.max_entries` is too small.
    idp = IdP(ISS, algs=("ES256",)).start()
    echo = Echo().start()
    plugin = {"providers": [{"name": "idp", "issuer": ISS, "audiences": [API], "jwks": {"cluster": "idp", "path": "/jwks"}}],
              "cache": {"max_entries": 4}}
    envoy = start_envoy(Envoy(bootstrap(plugin, [static_cluster("idp", idp.port), static_cluster("upstream", echo.port)]), name="metrics-evict"))
    try:
        tokens = [jwt_tool.encode(idp.key("ES256"), jwt_tool.claims(ISS, API, sub=f"user-{i}")) for i in range(6)]
        for t in tokens[:4]:
            assert envoy.get("/", [("authorization", f"Bearer {t}")]).status == 200
        assert envoy.stats().get("cache_evicted", 0) == 0, "room for four"
        for t in tokens[4:]:
            assert envoy.get("/", [("authorization", f"Bearer {t}")]).status == 200
        st = envoy.stats()
        assert st.get("cache_evicted") == 2, st
        assert st.get("replay_evicted", 0) == 0
    finally:
        stop_all(envoy, idp, echo)
