#!/usr/bin/env python3
"""The local IdP, STS and echo upstream for envoy/docker-compose.yaml, in one container: the
IdP (JWKS, OpenID discovery, introspection, /demo-token) on 8081, the STS on 8082, the echo
upstream on 8080. `curl http://localhost:8081/demo-token` gives a fresh client token."""
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent / "e2e"))

from servers import STS, Echo, IdP  # noqa: E402

ISS = "https://idp.example.com"
AUD = "https://api.example.com"

if __name__ == "__main__":
    idp = IdP(ISS, port=8081).start()
    idp.demo_audience = AUD
    STS("https://sts.example.com", idp, ["https://orders.ecomm.com", "https://inventory.ecomm.com"], port=8082).start()
    echo = Echo()
    echo.port = 8080
    echo.start()
    print("IdP :8081 (GET /demo-token for a client token), STS :8082, echo :8080", flush=True)
    while True:
        time.sleep(3600)
