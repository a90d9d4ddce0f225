"""Dictionary codes for fixed-width keys, stable across batches: a hash table held in numpy arrays.

A reader with fixed-width fields (DBF) turns the bytes of a field into a key of one or two uint64 words per
value; the codes let it hand the Parquet writer dictionary-encoded columns and type each distinct value once.
Looking a batch up is a few whole-array numpy operations (about 1 ns a value each); only keys never seen before
go through Python, once each. Arrow's hash kernel took 18 ns a value here, the Parquet writer's 45 ns.
"""

from __future__ import annotations

import numpy as np

# A key's words, each times its odd multiplier, summed; then mixed (murmur3's finaliser, one round) so that the
# top bits, the slot, depend on every bit: DBF keys are ASCII digits, and the plain product put 6 of 54 such
# keys of a real column on another's slot.
_MULTIPLIERS = [np.uint64(0x9E3779B97F4A7C15), np.uint64(0xC2B2AE3D27D4EB4F)]
_MIX = np.uint64(0xFF51AFD7ED558CCD)
_LOAD = 16  # slots per key, at least: a key lands on another's home slot about once in 32
_EMPTY = -1


def _hashed(keys: np.ndarray) -> np.ndarray:
    """A uint64 for each row of (n, words) keys, every bit depending on every bit of the key."""
    hashed = keys[:, 0] * _MULTIPLIERS[0]
    for word in range(1, keys.shape[1]):
        hashed += keys[:, word] * _MULTIPLIERS[word]
    hashed ^= hashed >> np.uint64(32)
    hashed *= _MIX
    return hashed


def unique_rows(keys: np.ndarray) -> np.ndarray:
    """The distinct rows of (n, words) keys in order of first appearance, found by sorting one word per row: the
    key itself, or for two words their hash (numpy's rows path was 12x slower). Two keys of one hash, about
    2^-64 a pair, would leave one out: Codes.codes() gives it a code when it meets it."""
    words = keys[:, 0] if keys.shape[1] == 1 else _hashed(keys)
    if not len(words):
        return keys
    # In a stable sort the first of each run of equal words is the key's first appearance. numpy 2.4's stable
    # argsort (adaptive: DBF fields hold runs) took 4-10x less than its quicksort on a file's first batch: real
    # STPI2206's 203 fields of 4,068 keys 5.4 ms against 55, ZIKABR21's 39 of 19,090 11 against 46, the SIH-like
    # file's 40 of 32,768 23 against 88, while the Parquet writer waits for its first row group.
    order = np.argsort(words, kind="stable")
    ranked = words[order]
    starts = np.flatnonzero(np.concatenate(([True], ranked[1:] != ranked[:-1])))
    return keys[np.sort(order[starts])]


class Codes:
    """Codes 0, 1, 2… for keys of `words` uint64 words (rows of a (n, words) array), a key keeping its code from
    batch to batch.

    Keys of at most 16 bits (`key_bits`: fields of one or two bytes) index a table of 2^key_bits slots directly:
    a batch costs one gather. Longer keys are hashed: open addressing with linear probing in a table at most
    1/_LOAD full, so nearly every key sits in its home slot and a batch is settled by one gather and a compare;
    the few keys past their home slot are probed in vectorised rounds. 12 bytes a slot (20 for two-word keys):
    6 MB for 32,768 one-word keys.
    """

    def __init__(self, words: int = 1, key_bits: int = 64) -> None:
        if not 1 <= words <= len(_MULTIPLIERS):
            raise ValueError(f"keys of 1 to {len(_MULTIPLIERS)} words, not {words}")
        self.keys = np.zeros((0, words), "<u8")  # the distinct keys, by code
        self._direct = words == 1 and key_bits <= 16
        self._grow(1 << (key_bits if self._direct else 12))

    def __len__(self) -> int:
        return len(self.keys)

    def _slots(self, keys: np.ndarray) -> np.ndarray:
        if self._direct:
            return keys[:, 0].view(np.int64)
        hashed = _hashed(keys)
        hashed >>= np.uint64(64 - self._bits)
        return hashed.view(np.int64)  # below 2^bits: the same value, and an index type

    def _differ(self, slots: np.ndarray, keys: np.ndarray) -> np.ndarray:
        differ = self._slot_keys[0][slots] != keys[:, 0]
        for word in range(1, keys.shape[1]):
            differ |= self._slot_keys[word][slots] != keys[:, word]
        return differ

    def _grow(self, size: int) -> None:
        self._bits = size.bit_length() - 1
        self._slot_keys = [np.zeros(size, "<u8") for _ in range(self.keys.shape[1])]  # by word
        self._slot_codes = np.full(size, _EMPTY, np.int32)
        self._place(0)

    def _place(self, first: int) -> None:
        """Put keys[first:] into the table in vectorised rounds: each key takes its slot if free, the first of
        the keys wanting one slot winning it; the others walk on a slot. A key only passes occupied slots, so a
        lookup walking from its home slot finds it. (A Python loop per key cost 37 ms of a file's 9,000 codes.)"""
        mask = len(self._slot_codes) - 1
        codes = np.arange(first, len(self.keys))
        slots = self._slots(self.keys[first:])
        while len(codes):
            free = np.flatnonzero(self._slot_codes[slots] == _EMPTY)
            taken, winner = np.unique(slots[free], return_index=True)  # the lowest code of each slot
            placed = free[winner]
            self._slot_codes[taken] = codes[placed]
            for word, stored in enumerate(self._slot_keys):
                stored[taken] = self.keys[codes[placed], word]
            waiting = np.ones(len(codes), bool)
            waiting[placed] = False
            codes, slots = codes[waiting], (slots[waiting] + 1) & mask

    def add(self, new: np.ndarray) -> None:
        """Give keys not seen before (distinct rows of `new`) the next codes."""
        first = len(self.keys)
        self.keys = np.concatenate([self.keys, new])
        if not self._direct and _LOAD * len(self.keys) > len(self._slot_codes):
            self._grow(1 << (_LOAD * len(self.keys) - 1).bit_length())
        else:
            self._place(first)

    def codes(self, keys: np.ndarray) -> np.ndarray:
        """The int32 code of each key (row of `keys`); keys not seen before get the next codes."""
        slots = self._slots(keys)
        codes = self._slot_codes[slots]
        if self._direct:  # a key's slot is its own: a key without a code there is new
            missing = np.flatnonzero(codes == _EMPTY)
        else:  # keys past their home slot, or not seen yet (an empty slot holds key 0 and no code)
            missing = self._probe(
                keys, slots, codes, np.flatnonzero(self._differ(slots, keys) | (codes == _EMPTY))
            )
        if len(missing):
            self.add(unique_rows(keys[missing]))
            codes[missing] = self.codes(keys[missing])
        return codes

    def _probe(self, keys: np.ndarray, slots: np.ndarray, codes: np.ndarray, todo: np.ndarray) -> np.ndarray:
        """Fill in the codes of keys[todo] by walking on from their slots; return the positions of new keys."""
        mask = len(self._slot_codes) - 1
        new = [todo[:0]]
        while len(todo):
            at = slots[todo]
            found = self._slot_codes[at]
            empty = found == _EMPTY
            hit = ~self._differ(at, keys[todo]) & ~empty
            codes[todo[hit]] = found[hit]
            new.append(todo[empty])
            todo = todo[~(hit | empty)]
            slots[todo] = (slots[todo] + 1) & mask
        return np.concatenate(new)
