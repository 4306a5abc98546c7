"""Everything the channel and story builders share during one generation run."""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

from cdp_pipelines.synthetic.catalog import OrderBook, Product
from cdp_pipelines.synthetic.corruptions import Quality
from cdp_pipelines.synthetic.pools import Pools
from cdp_pipelines.synthetic.randomness import Weighted, below, between, pick, stream
from cdp_pipelines.synthetic.tables import Table

DAY = 86400
# Relative activity per hour of day (UTC): quiet at night, busy at lunch and in the evening.
HOUR_WEIGHTS = {h: w for h, w in enumerate(
    [1, 0.5, 0.3, 0.2, 0.2, 0.4, 1, 2, 3, 4, 5, 5, 6, 6, 5, 5, 5, 5, 6, 7, 7, 6, 4, 2]
)}


@dataclass
class World:
    seed: int
    cfg: dict
    pools: Pools
    quality: Quality
    catalog: list[Product]
    orders: OrderBook
    tables: dict[str, Table]
    stories: list[dict[str, Any]] = field(default_factory=list)

    def __post_init__(self) -> None:
        reference = datetime.fromisoformat(self.cfg["reference_date"]).replace(tzinfo=timezone.utc)
        self.end_ts = int(reference.timestamp())
        self.start_ts = self.end_ts - self.cfg["history_days"] * DAY
        self.hour = Weighted(HOUR_WEIGHTS)
        self.prices = {p.sku: p.price for p in self.catalog}
        self.product_names = {p.sku: p.name for p in self.catalog}

    def stream(self, part: str) -> random.Random:
        return stream(self.seed, part)

    def moment(self, r: random.Random, start: int | None = None, end: int | None = None) -> int:
        """A timestamp in [start, end) (default: the history window) at a plausible hour of day."""
        start = self.start_ts if start is None else start
        end = self.end_ts if end is None else end
        days = max(1, (end - start) // DAY)
        ts = start + below(r, days) * DAY
        ts = ts - ts % DAY + self.hour(r) * 3600 + below(r, 3600)
        return min(max(ts, start), end - 1)

    def later(self, ts: int, r: random.Random, low: int, high: int) -> int:
        """`ts` plus a random delay in seconds, never past the reference date."""
        return min(ts + between(r, low, max(low + 1, high)), self.end_ts - 1)

    def skus(self, r: random.Random, count: int) -> list[str]:
        return [pick(r, self.catalog).sku for _ in range(count)]

    def story(self, kind: str, person_id: str, **ids: Any) -> None:
        self.stories.append({"story": kind, "person_id": person_id, **ids})
