"""The check rules for bare runs of digits, applied to many values at once with numpy: the whole cells of id, card
and phone columns are most of what a dataset scan validates, and one vectorised pass over a column's 9-digit
numbers costs less than one Python call per number. Each function here returns exactly what the scalar rule in
detectors.py would for each row (tests compare the two on random digits)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from mlfort.scan.pii import detectors as d

if TYPE_CHECKING:
    import numpy as np

_DAYS = (0, 31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31)


def verdicts(values: list[str], n: int) -> dict[str, np.ndarray]:
    """For same-length strings of ASCII digits: entity -> array of strengths (NONE, WEAK, STRONG), one per value,
    the verdicts detectors.py gives a whole cell of n bare digits."""
    import numpy as np

    m = (np.frombuffer("".join(values).encode("ascii"), dtype=np.uint8).reshape(-1, n) - 48).astype(np.int64)
    weak, strong = np.int8(d.WEAK), np.int8(d.STRONG)
    out: dict[str, np.ndarray] = {}
    if n <= 15:
        out[d.PHONE] = np.full(len(values), weak, dtype=np.int8)
    if n == 9:
        out[d.US_SSN] = _ssn(m) * weak
        out[d.NL_BSN] = _bsn(m) * weak
    elif n == 10:
        out[d.SE_PERSONNUMMER] = _personnummer(m) * weak
    elif n == 11:
        out[d.PL_PESEL] = _pesel(m) * weak
        out[d.DE_TAX_ID] = _steuer(m) * weak
        out[d.BR_CPF] = _cpf(m) * weak
    elif n == 12:
        out[d.IN_AADHAAR] = _aadhaar(m) * weak
        out[d.SE_PERSONNUMMER] = _personnummer(m) * weak
    elif n >= 13:
        out[d.CREDIT_CARD] = _card(m) * strong
        if n == 15:
            out[d.FR_NIR] = _nir(m) * strong
    return {e: a.astype(np.int8) for e, a in out.items()}


def _num(m: np.ndarray, a: int, b: int) -> np.ndarray:
    import numpy as np

    return m[:, a:b] @ (10 ** np.arange(b - a - 1, -1, -1, dtype=np.int64))


def _luhn(m: np.ndarray) -> np.ndarray:
    import numpy as np

    rev = m[:, ::-1]
    doubled = np.array([0, 2, 4, 6, 8, 1, 3, 5, 7, 9], dtype=np.int64)[rev[:, 1::2]]
    return (rev[:, 0::2].sum(1) + doubled.sum(1)) % 10 == 0


def _valid_date(year: np.ndarray, month: np.ndarray, day: np.ndarray) -> np.ndarray:
    import numpy as np

    leap = (year % 4 == 0) & ((year % 100 != 0) | (year % 400 == 0))
    days = np.array(_DAYS, dtype=np.int64)[np.clip(month, 0, 12)] + ((month == 2) & leap)
    return (month >= 1) & (month <= 12) & (day >= 1) & (day <= days)


def _all_same(m: np.ndarray) -> np.ndarray:
    return (m == m[:, :1]).all(1)


def _ssn(m: np.ndarray) -> np.ndarray:
    import numpy as np

    area, group, serial, full = _num(m, 0, 3), _num(m, 3, 5), _num(m, 5, 9), _num(m, 0, 9)
    ok = (area != 0) & (area != 666) & (area < 900) & (group != 0) & (serial != 0)
    return ok & ~np.isin(full, (78051120, 219099999, 123456789)) & ~_all_same(m)


def _bsn(m: np.ndarray) -> np.ndarray:
    import numpy as np

    total = m[:, :8] @ np.arange(9, 1, -1, dtype=np.int64) - m[:, 8]
    return (total % 11 == 0) & (_num(m, 0, 9) != 0)


def _personnummer(m: np.ndarray) -> np.ndarray:
    import numpy as np

    if m.shape[1] == 12:
        prefix_ok = np.isin(_num(m, 0, 2), (18, 19, 20))
        year, m = _num(m, 0, 4), m[:, 2:]
    else:
        prefix_ok = np.ones(len(m), dtype=bool)
        year = 2000 + _num(m, 0, 2)
    month, day = _num(m, 2, 4), _num(m, 4, 6)
    day = np.where(day > 60, day - 60, day)
    return prefix_ok & _valid_date(year, month, day) & _luhn(m)


def _pesel(m: np.ndarray) -> np.ndarray:
    import numpy as np

    total = m[:, :10] @ np.array([1, 3, 7, 9, 1, 3, 7, 9, 1, 3], dtype=np.int64)
    check_ok = (10 - total % 10) % 10 == m[:, 10]
    mm = _num(m, 2, 4)
    century = np.array([1900, 1900, 2000, 2000, 2100, 2100, 2200, 2200, 1800, 1800], dtype=np.int64)[mm // 10]
    return check_ok & (mm % 20 >= 1) & (mm % 20 <= 12) & _valid_date(century + _num(m, 0, 2), mm % 20,
                                                                      _num(m, 4, 6))


def _steuer(m: np.ndarray) -> np.ndarray:
    import numpy as np

    first10 = m[:, :10]
    counts = (first10[:, :, None] == np.arange(10)).sum(1)
    repeated = (counts >= 2).sum(1)
    top = counts.max(1)
    triple_run = np.zeros(len(m), dtype=bool)
    for i in range(8):
        triple_run |= (first10[:, i] == first10[:, i + 1]) & (first10[:, i + 1] == first10[:, i + 2])
    shape_ok = (m[:, 0] != 0) & (repeated == 1) & (top <= 3) & ~((top == 3) & triple_run)
    product = np.full(len(m), 10, dtype=np.int64)
    for i in range(10):
        s = (first10[:, i] + product) % 10
        s[s == 0] = 10
        product = (s * 2) % 11
    check = 11 - product
    check[check == 10] = 0
    return shape_ok & (check == m[:, 10])


def _cpf(m: np.ndarray) -> np.ndarray:
    import numpy as np

    d1 = (m[:, :9] @ np.arange(10, 1, -1, dtype=np.int64)) * 10 % 11 % 10
    d2 = (m[:, :10] @ np.arange(11, 1, -1, dtype=np.int64)) * 10 % 11 % 10
    return ~_all_same(m) & (d1 == m[:, 9]) & (d2 == m[:, 10])


_VERHOEFF: np.ndarray | None = None


def _aadhaar(m: np.ndarray) -> np.ndarray:
    import numpy as np

    global _VERHOEFF
    if _VERHOEFF is None:
        _VERHOEFF = np.array(d._VERHOEFF_DP, dtype=np.int64)
    c = np.zeros(len(m), dtype=np.int64)
    for i in range(12):
        c = _VERHOEFF[i % 8][c, m[:, 11 - i]]
    distinct = ((m[:, :, None] == np.arange(10)).any(1)).sum(1)
    return (m[:, 0] >= 2) & (distinct > 2) & (c == 0)


def _card(m: np.ndarray) -> np.ndarray:
    """card_scheme() and Luhn: the first scheme whose prefix fits decides, and then the length must be its."""
    import numpy as np

    n = m.shape[1]
    first = m[:, 0]
    p2, p3, p4, p6 = _num(m, 0, 2), _num(m, 0, 3), _num(m, 0, 4), _num(m, 0, 6)
    # (prefix that claims the number, whether a claimed number has the scheme's length), in card_scheme()'s order
    schemes = (
        ((first == 1) | (p4 == 2131), ((p4 == 1800) | (p4 == 2131)) & (n == 15)),
        (first == 4, n in (13, 16, 19)),
        (((p2 >= 51) & (p2 <= 55)) | ((p4 >= 2221) & (p4 <= 2720)), n == 16),
        ((p2 == 34) | (p2 == 37), n == 15),
        ((p4 >= 2200) & (p4 <= 2204), 16 <= n <= 19),
        ((p4 >= 3528) & (p4 <= 3589), 16 <= n <= 19),
        (((p3 >= 300) & (p3 <= 305)) | (p4 == 3095) | (p2 == 36) | (p2 == 38) | (p2 == 39), 14 <= n <= 19),
        ((p4 == 6011) | ((p3 >= 644) & (p3 <= 649)) | (p2 == 65) | ((p6 >= 622126) & (p6 <= 622925)), 16 <= n <= 19),
        (p2 == 62, 16 <= n <= 19),
        (np.isin(p4, (5018, 5020, 5038, 5893, 6304, 6759, 6761, 6762, 6763)) | ((p2 >= 56) & (p2 <= 58)),
         13 <= n <= 19),
        ((p2 == 60) | (p3 == 508) | (p4 == 6521) | (p4 == 6522), n == 16),
    )
    taken = np.isin(first, (0, 7, 8, 9))
    ok = np.zeros(len(m), dtype=bool)
    for prefix, length_ok in schemes:
        ok |= prefix & ~taken & length_ok
        taken |= prefix
    return ok & _luhn(m)


def _nir(m: np.ndarray) -> np.ndarray:
    import numpy as np

    month = _num(m, 3, 5)
    month_ok = ((month >= 1) & (month <= 12)) | (month == 20) | ((month >= 30) & (month <= 42)) | (
        (month >= 50) & (month <= 99))
    return np.isin(m[:, 0], (1, 2, 3, 4, 7, 8)) & month_ok & (97 - _num(m, 0, 13) % 97 == _num(m, 13, 15))
