"""Products and orders: the shared facts that web checkouts, cases and reviews refer to."""

from __future__ import annotations

import random
from dataclasses import dataclass, field

from cdp_pipelines.synthetic.randomness import IdMint, between, pick
from cdp_pipelines.synthetic.texts import PRODUCT_ADJECTIVES, PRODUCT_NOUNS


@dataclass(frozen=True, slots=True)
class Product:
    sku: str
    name: str
    price: float


@dataclass(slots=True)
class Order:
    number: str
    ts: int  # epoch seconds
    skus: list[str] = field(default_factory=list)


def build_catalog(r: random.Random, size: int = 600) -> list[Product]:
    """A fixed assortment with prices spread like a general retailer's (mostly under 100)."""
    products, seen = [], set()
    while len(products) < size:
        sku = f"SKU{between(r, 100000, 999999)}"
        if sku in seen:
            continue
        seen.add(sku)
        name = f"{pick(r, PRODUCT_ADJECTIVES)} {pick(r, PRODUCT_NOUNS)}"
        price = round(min(499.0, r.lognormvariate(3.2, 0.8)), 2) or 1.0
        products.append(Product(sku, name, price))
    return products


class OrderBook:
    """Mints order numbers and remembers each person's orders in time order."""

    def __init__(self, seed: int):
        self.mint = IdMint("ORD", 8, seed)

    def place(self, orders: list[Order], ts: int, skus: list[str]) -> Order:
        order = Order(self.mint(), ts, list(skus))
        orders.append(order)
        orders.sort(key=lambda o: o.ts)
        return order
