"""Unambiguous ownership: key commitments registered with the server before the model leaves
it, the round each watermark first verified, and claim resolution.

An overwrite attack leaves two keys that both verify on a stolen model: the owner's and the
attacker's (the attacker's reads 1.000, it chose it). Bit accuracy alone cannot settle who
owns the model; time order can (cf. the registration step of DeepIPR passports, Fan et al.
2019, and of FedIPR's verification):

1. **Commit.** At registration every client sends `commit(key, salt)` = SHA-256 over the key's
   bytes (matrix, bits, coordinates) and a private salt; the server stores it with a
   registration number. Registration closes when the first model is distributed
   (`close()`); a key committed later is refused (`RegistrationClosed`).
2. **First verification.** The server checks every upload's slice watermark (it holds the
   true keys for detection) and records the first round each client's mark verified.
3. **Claim.** A claimant reveals its keys and salt. A claim is refused unless the revealed keys
   hash to a registered commitment; among the claims whose keys verify on the disputed
   model (every watermark >= `threshold` bit accuracy), the earliest registration wins.
"""

from __future__ import annotations

import hashlib
import struct
from dataclasses import dataclass, field

import torch

from robwe.watermark import WatermarkKey, payload_accuracy
from shared.errors import UserError

__all__ = ["commit", "OwnershipRegistry", "Claim", "ClaimVerdict", "RegistrationClosed"]


class RegistrationClosed(UserError):
    """A key commitment arrived after the model was distributed."""


def commit(key: WatermarkKey, salt: bytes) -> str:
    """SHA-256 hex digest binding a key (matrix, bits, coordinates, code) to a salt."""
    h = hashlib.sha256()
    h.update(salt)
    h.update(struct.pack("<qqqq", key.offset, key.stride, key.repeat, key.length))
    h.update(key.matrix.detach().to(torch.float32).contiguous().numpy().tobytes())
    h.update(key.bits.detach().to(torch.float32).contiguous().numpy().tobytes())
    if key.index is not None:
        h.update(key.index.to(torch.int64).contiguous().numpy().tobytes())
    return h.hexdigest()


@dataclass
class Claim:
    """A claimant's revealed keys ({"head": key, "slice": key}, either may be absent)."""

    claimant: str
    keys: dict[str, WatermarkKey]
    salt: bytes


@dataclass
class ClaimVerdict:
    owner: str | None  # the earliest registered claimant whose keys verify; None if none
    refused: dict[str, str] = field(default_factory=dict)  # claimant -> why
    bits: dict[str, dict[str, float]] = field(default_factory=dict)  # claimant -> kind -> bits


class OwnershipRegistry:
    """Commitments in registration order, closed once the model is distributed.

    `first_verified[claimant][kind]`: the first round that watermark verified on an upload.
    """

    def __init__(self, threshold: float = 0.9):
        self.threshold = threshold
        self.entries: dict[str, dict] = {}  # claimant -> {"seq", "round", "commitments"}
        self.closed_at: int | None = None  # round at which the model was first distributed
        self.first_verified: dict[str, dict[str, int]] = {}

    def register(self, claimant: str, commitments: dict[str, str], rnd: int = 0) -> int:
        """Store `commitments` ({kind: digest}); returns the registration number. Refused
        (RegistrationClosed) once the model was distributed, or for a known claimant."""
        if self.closed_at is not None:
            raise RegistrationClosed(
                f"ownership: '{claimant}' tried to register in round {rnd}, after the model "
                f"was distributed in round {self.closed_at}")
        if claimant in self.entries:
            raise RegistrationClosed(f"ownership: '{claimant}' is already registered")
        seq = len(self.entries)
        self.entries[claimant] = {"seq": seq, "round": rnd, "commitments": dict(commitments)}
        return seq

    def close(self, rnd: int) -> None:
        """The model leaves the server for the first time (round `rnd`)."""
        if self.closed_at is None:
            self.closed_at = rnd

    def mark_verified(self, claimant: str, kind: str, rnd: int) -> None:
        self.first_verified.setdefault(claimant, {}).setdefault(kind, rnd)

    def resolve(self, claims: list[Claim], vectors: dict[str, torch.Tensor]) -> ClaimVerdict:
        """Settle a dispute over one model. vectors: {"head": theta_head, "slice": y}.

        Refuses a claim whose claimant is unregistered or whose revealed keys do not hash to
        its commitments; the others verify when every revealed watermark reads >= threshold;
        the verifying claim registered first names the owner."""
        verdict = ClaimVerdict(owner=None)
        best = None
        for cl in claims:
            entry = self.entries.get(cl.claimant)
            if entry is None:
                verdict.refused[cl.claimant] = "not registered before the model was distributed"
                continue
            if not cl.keys:
                verdict.refused[cl.claimant] = "no key revealed"
                continue
            bad = [k for k, key in cl.keys.items()
                   if entry["commitments"].get(k) != commit(key, cl.salt)]
            if bad:
                verdict.refused[cl.claimant] = f"revealed {'/'.join(bad)} key does not match " \
                                               f"its commitment"
                continue
            bits = {k: payload_accuracy(key, vectors[k]) for k, key in cl.keys.items()}
            verdict.bits[cl.claimant] = bits
            if min(bits.values()) < self.threshold:
                verdict.refused[cl.claimant] = f"watermark does not verify ({bits})"
                continue
            if best is None or entry["seq"] < self.entries[best]["seq"]:
                best = cl.claimant
        for cl in claims:
            if best is not None and cl.claimant != best and cl.claimant not in verdict.refused:
                verdict.refused[cl.claimant] = f"registered after '{best}'"
        verdict.owner = best
        return verdict

    def state_dict(self) -> dict:
        return {"threshold": self.threshold, "entries": self.entries,
                "closed_at": self.closed_at, "first_verified": self.first_verified}

    def load_state_dict(self, d: dict) -> None:
        self.threshold = d["threshold"]
        self.entries = {k: dict(v) for k, v in d["entries"].items()}
        self.closed_at = d["closed_at"]
        self.first_verified = {k: dict(v) for k, v in d["first_verified"].items()}
