"""A columnar batch of simulated transactions before the behaviour columns exist.

Categorical values are indices into the reference tuples; wallets and
transaction ids are hash words turned into strings only when the frame is
built. ``scenario`` is -1 for legitimate activity, otherwise an index into
FRAUD_SCENARIOS, and ``incident`` groups the transactions of one fraud case.
"""

from __future__ import annotations

from dataclasses import dataclass, fields

import numpy as np


@dataclass
class Events:
    user: np.ndarray  # int64 user index
    ts: np.ndarray  # int64 epoch seconds
    cents: np.ndarray  # int64 USD cents
    currency: np.ndarray  # int64 index into CURRENCIES
    kind: np.ndarray  # int64 index into TRANSACTION_TYPES
    country: np.ndarray  # int64 index into geography.COUNTRIES
    device: np.ndarray  # int64 index into DEVICE_TYPES
    wallet: np.ndarray  # (n, 3) uint64 words of the wallet address
    txid: np.ndarray  # (n, 2) uint64 words of the transaction id
    scenario: np.ndarray  # int64, -1 = legitimate
    incident: np.ndarray  # int64, -1 = legitimate
    unusual: np.ndarray  # bool: legitimate but odd-looking (VPN, new device, one-off wallet)
    spike: np.ndarray  # float64: amount = spike × the user's running average (0 = as drawn)

    def __len__(self) -> int:
        return len(self.ts)

    def take(self, index: np.ndarray) -> Events:
        return Events(**{f.name: getattr(self, f.name)[index] for f in fields(self)})

    @staticmethod
    def concat(batches: list[Events]) -> Events:
        batches = [b for b in batches if len(b)] or batches[:1]
        if not batches:
            return Events.empty()
        return Events(
            **{
                f.name: np.concatenate([getattr(b, f.name) for b in batches])
                for f in fields(Events)
            }
        )

    @staticmethod
    def empty() -> Events:
        i = np.zeros(0, dtype=np.int64)
        return Events(
            user=i,
            ts=i,
            cents=i,
            currency=i,
            kind=i,
            country=i,
            device=i,
            wallet=np.zeros((0, 3), dtype=np.uint64),
            txid=np.zeros((0, 2), dtype=np.uint64),
            scenario=i,
            incident=i,
            unusual=np.zeros(0, dtype=bool),
            spike=np.zeros(0, dtype=np.float64),
        )
