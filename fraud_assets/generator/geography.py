"""Countries as arrays: codes, coordinates, distances and travel neighbours."""

from __future__ import annotations

import numpy as np

from fraud_assets.reference import COUNTRY_LOCATIONS

COUNTRIES: tuple[str, ...] = tuple(COUNTRY_LOCATIONS)
EARTH_RADIUS_KM = 6371.0

# Where customers live: a rough share of a global exchange's users per country.
HOME_WEIGHTS: dict[str, float] = {
    "US": 14, "CA": 3, "BR": 5, "MX": 2, "AR": 2, "GB": 6, "DE": 6, "FR": 4, "NL": 3, "ES": 3,
    "IT": 3, "CH": 2, "SE": 2, "PL": 2, "TR": 6, "AE": 2, "IR": 3, "IN": 6, "SG": 2, "JP": 4,
    "KR": 5, "HK": 2, "AU": 3, "NG": 4, "ZA": 2, "RU": 4, "UA": 3, "VN": 4, "ID": 3, "PH": 3,
}  # fmt: skip

# Exit countries of commercial VPNs, where a VPN user's traffic appears to come from.
VPN_COUNTRIES: tuple[str, ...] = ("NL", "US", "DE", "SG", "CH", "GB", "SE", "JP")


def haversine_km(lat1, lon1, lat2, lon2):
    """Great-circle distance in km; works elementwise on arrays."""
    lat1, lon1, lat2, lon2 = (
        np.radians(np.asarray(v, dtype=np.float64)) for v in (lat1, lon1, lat2, lon2)
    )
    a = (
        np.sin((lat2 - lat1) / 2) ** 2
        + np.cos(lat1) * np.cos(lat2) * np.sin((lon2 - lon1) / 2) ** 2
    )
    return 2 * EARTH_RADIUS_KM * np.arcsin(np.sqrt(np.clip(a, 0.0, 1.0)))


LATITUDES = np.array([COUNTRY_LOCATIONS[c][0] for c in COUNTRIES])
LONGITUDES = np.array([COUNTRY_LOCATIONS[c][1] for c in COUNTRIES])
DISTANCE_KM = haversine_km(
    LATITUDES[:, None], LONGITUDES[:, None], LATITUDES[None, :], LONGITUDES[None, :]
)
# The three nearest other countries: where a customer goes on a trip.
NEIGHBOURS = np.argsort(DISTANCE_KM + np.eye(len(COUNTRIES)) * 1e9, axis=1)[:, :3]
HOME_PROBABILITIES = np.array([HOME_WEIGHTS[c] for c in COUNTRIES], dtype=np.float64)
HOME_PROBABILITIES /= HOME_PROBABILITIES.sum()
VPN_INDEX = np.array([COUNTRIES.index(c) for c in VPN_COUNTRIES])
