import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

# Envoys started by the test modules, so a failing test prints their logs.
RUNNING = []


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    rep = outcome.get_result()
    if rep.failed and call.when in ("setup", "call"):
        for e in RUNNING:
            log = e.log()
            tail = "\n".join(log.splitlines()[-150:])
            rep.sections.append((f"envoy log ({e.dir}) last 150 lines", tail))


def start_envoy(env):
    RUNNING.append(env)
    try:
        return env.start()
    except Exception:
        RUNNING.remove(env)
        raise


def stop_envoy(env):
    env.stop()
    if env in RUNNING:
        RUNNING.remove(env)


def stop_all(env, *servers):
    """Stops an Envoy and the local servers it used."""
    stop_envoy(env)
    for s in servers:
        s.stop()


def pytest_sessionfinish(session, exitstatus):
    """A passing run leaves no `tef-*` folder behind; a failing one keeps them for their logs."""
    if exitstatus == 0:
        from harness import remove_temp_dirs
        remove_temp_dirs()
