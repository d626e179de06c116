"""After a priced target's cells: did every answer the benchmark timed pay for itself?

A figure is only the paying path's if the work was done. So once the load generator is through,
this reads back what a user would: the ledger (every charge), the usage log's daily summary and the
wallet, over the gateway's own REST API, and checks that they agree with what the load generator
was answered:
- one ledger charge per answered request (a request that failed may or may not have been charged:
  an abandoned stream pays for what it got);
- the charges add up to the wallet's debit (top-up minus balance), and the usage log's cost to the same;
- nothing is still held once the load has stopped.
"""

from __future__ import annotations

import http.client
import time
from dataclasses import dataclass
from urllib.parse import urlencode, urlsplit

import orjson

# The usage log is written in batches off the request path; give its last batch this long to land.
USAGE_LOG_GRACE_S = 15.0


@dataclass
class Audit:
    answered: int
    failed: int
    charges: int = 0
    charged_nano_usd: int = 0
    debit_nano_usd: int = 0
    held_nano_usd: int = 0
    usage_requests: int = 0
    usage_cost_nano_usd: int = 0
    error: str = ""

    def problems(self) -> list[str]:
        if self.error:
            return [self.error]
        found = []
        if not self.answered <= self.charges <= self.answered + self.failed:
            found.append(f"{self.charges} ledger charges for {self.answered} answered requests")
        if self.charged_nano_usd != self.debit_nano_usd:
            found.append(f"charges sum to {self.charged_nano_usd} nano-USD, the wallet's debit is {self.debit_nano_usd}")
        if self.usage_cost_nano_usd != self.charged_nano_usd:
            found.append(f"the usage log's cost is {self.usage_cost_nano_usd} nano-USD, the ledger's {self.charged_nano_usd}")
        if not self.answered <= self.usage_requests <= self.answered + self.failed:
            found.append(f"{self.usage_requests} usage rows for {self.answered} answered requests")
        if self.held_nano_usd:
            found.append(f"{self.held_nano_usd} nano-USD still held after the load stopped")
        if self.answered and self.charged_nano_usd <= 0:
            found.append("nothing was charged")
        return found

    def summary(self) -> str:
        return (f"{self.answered} answered, {self.charges} ledger charges, {self.usage_requests} usage rows; "
                f"charged {self.charged_nano_usd / 1e9:.6f} USD = the wallet's debit; {self.held_nano_usd} held")


class _Api:
    def __init__(self, url: str, key: str) -> None:
        parts = urlsplit(url)
        self._conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=30)
        self._headers = {"Authorization": f"Bearer {key}"}

    def get(self, path: str, **query) -> dict:
        self._conn.request("GET", f"{path}?{urlencode(query)}" if query else path, headers=self._headers)
        response = self._conn.getresponse()
        body = response.read()
        if response.status != 200:
            raise RuntimeError(f"GET {path}: HTTP {response.status} {body[:200]!r}")
        return orjson.loads(body)

    def close(self) -> None:
        self._conn.close()


def audit(url: str, key: str, topped_up_nano_usd: int, answered: int, failed: int) -> Audit:
    result = Audit(answered, failed)
    api = _Api(url, key)
    try:
        token = ""
        while True:
            page = api.get("/v1/ledger", page_size=100, **({"page_token": token} if token else {}))
            for entry in page.get("entries", []):
                if entry.get("kind") == "charge":
                    result.charges += 1
                    result.charged_nano_usd -= int(entry.get("amountNanoUsd", 0))
            token = page.get("nextPageToken", "")
            if not token:
                break
        deadline = time.monotonic() + USAGE_LOG_GRACE_S
        while True:
            buckets = api.get("/v1/usage:summary").get("buckets", [])
            result.usage_requests = sum(int(b.get("requests", 0)) for b in buckets)
            result.usage_cost_nano_usd = sum(int(b.get("costNanoUsd", 0)) for b in buckets)
            if result.usage_requests >= answered or time.monotonic() > deadline:
                break
            time.sleep(0.5)
        wallet = api.get("/v1/wallet")
        result.debit_nano_usd = topped_up_nano_usd - int(wallet.get("balanceNanoUsd", 0))
        result.held_nano_usd = int(wallet.get("reservedNanoUsd", 0))
    except (OSError, RuntimeError, ValueError) as exc:
        result.error = f"could not read the ledger, usage or wallet back: {exc}"
    finally:
        api.close()
    return result
