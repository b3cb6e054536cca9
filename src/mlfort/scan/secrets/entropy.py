"""How random a string looks: Shannon entropy per character and the thresholds that separate keys from words.

A random key drawn from an alphabet of `k` symbols approaches log2(k) bits per character (hex 4.0, base64 6.0),
but a short string cannot show more than log2(len) bits, and names, paths and sentences stay far below. The
thresholds grow with the length so a 20-character token is judged fairly next to a 64-character one, the fixed
cap used by detect-secrets (4.5 for base64) misses short tokens entirely.
"""

from __future__ import annotations

import math
import re
from collections import Counter

HEX_CHARS = frozenset("0123456789abcdefABCDEF")
BASE64_CHARS = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/=_-")

MIN_HEX_LENGTH = 32
"""Shorter hex strings are ids and short hashes far more often than keys."""
MIN_BASE64_LENGTH = 20
"""Shorter base64-looking strings are words, identifiers and ids far more often than keys."""
HEX_THRESHOLD = 3.0
"""Bits per character a hex string needs (random hex of length 32 or more averages about 3.7)."""

_WORD_PARTS = re.compile(r"[A-Z]?[a-z]+|[A-Z]+(?![a-z])|\d+|[^A-Za-z0-9]+")
_WORDISH = re.compile(r"[A-Z]?[a-z]{2,}")


def shannon(text: str) -> float:
    """Shannon entropy of `text` in bits per character (0.0 for the empty string)."""
    if not text:
        return 0.0
    n = len(text)
    return -sum(c / n * math.log2(c / n) for c in Counter(text).values())


def base64_threshold(length: int) -> float:
    """Bits per character a base64-alphabet string of this length needs to count as random.

    About 80 % of the most a string of that length can show (log2(length)), capped at 4.5 for long strings; a
    random base62/base64 string sits well above this line, identifiers and prose well below.
    """
    return min(4.5, 0.8 * math.log2(max(length, 2)))


def is_hex(text: str) -> bool:
    """True when every character is a hex digit."""
    return bool(text) and all(c in HEX_CHARS for c in text)


def looks_random(text: str) -> bool:
    """True when `text` looks like a machine-made key rather than a word, a name or a path.

    Hex strings need MIN_HEX_LENGTH characters and HEX_THRESHOLD bits; other strings need MIN_BASE64_LENGTH
    characters from the base64 alphabets (standard or URL-safe), letters *and* digits (or both cases plus a
    symbol), and base64_threshold(len) bits per character. camelCase and snake_case words never count.
    """
    if is_hex(text):
        return len(text) >= MIN_HEX_LENGTH and shannon(text) >= HEX_THRESHOLD and _mixed_hex(text)
    if len(text) < MIN_BASE64_LENGTH or any(c not in BASE64_CHARS for c in text):
        return False
    if looks_like_words(text):
        return False
    has_digit = any(c.isdigit() for c in text)
    has_upper = any(c.isupper() for c in text)
    has_lower = any(c.islower() for c in text)
    if not (has_upper or has_lower):
        return False
    if not has_digit and not (has_upper and has_lower):
        return False
    return shannon(text) >= base64_threshold(len(text))


def looks_like_words(text: str) -> bool:
    """True for camelCase / PascalCase / snake_case names (`getUserAccessTokenFromCache`): long runs of letters
    with few digits. Random keys switch case and class every two or three characters."""
    if not any(c.islower() for c in text):
        return False  # upper case and digits only (AWS key ids, base32): no words to find
    digits = sum(c.isdigit() for c in text)
    parts = _WORD_PARTS.findall(text)
    if digits <= 2 and parts and len(text) / len(parts) >= 3.8:
        return True
    # Mostly capitalised or lower-case runs of three letters or more (`CreateOAuth2TokenWithIAM`,
    # `Terminal256Formatter`): random base62 rarely spends three quarters of its length in such runs.
    in_words = sum(len(m.group(0)) for m in _WORDISH.finditer(text))
    return digits <= 4 and in_words / len(text) >= 0.75


def _mixed_hex(text: str) -> bool:
    """Random hex mixes digits and letters; 32 digits in a row is a number, not a key."""
    return any(c.isdigit() for c in text) and any(c.isalpha() for c in text)


def low_variety(text: str, *, minimum: int = 5) -> bool:
    """True for strings made of very few distinct characters (`xxxxxxxx`, `00000000`, `abababab`): placeholders."""
    return len(set(text)) < minimum
