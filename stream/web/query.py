"""What a request may ask for, validated before anything reaches Redis.

Every value is checked against its type and range; a bad one raises `BadInput` naming the parameter,
which the app answers with 422 and that message. Object ids are checked against `OBJECT_ID`, so no
key separator, path or markup ever becomes part of a Redis key.
"""
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass

from models.taxonomy import class_id

# Survey object ids: ZTF "ZTF18abcdefg", Rubin and ELAsTiCC integers (diaObjectId). Letters, digits, _ and -.
OBJECT_ID = re.compile(r"[A-Za-z0-9_-]{1,64}")
MAX_VALUE_CHARS = 64  # a longer query value is refused before it is parsed
MAX_LIMIT = 500
MAX_RECENT_MIN = 24 * 60.0  # the top-candidate buckets live a day (stream.keys.TOP_KEEP_S)


class BadInput(ValueError):
    """A request parameter that is not valid: `field` names it, the message says why."""

    def __init__(self, field: str, message: str):
        super().__init__(f"{field}: {message}")
        self.field = field


def object_id(value: str) -> str:
    """`value` if it is a well-formed object id, else BadInput."""
    if len(value) > 64:
        raise BadInput("object_id", f"at most 64 characters (got {len(value)})")
    if not OBJECT_ID.fullmatch(value):
        raise BadInput("object_id", "letters, digits, '_' and '-' only")
    return value


@dataclass(frozen=True)
class CandidateQuery:
    """Filters of the candidates list; angles in degrees, ages in days since the first detection."""

    score: str = "sn"  # rank by sn_likelihood ("sn") or flare_likelihood ("flare")
    class_id: int | None = None  # the top class (ELAsTiCC2 id)
    min_score: float = 0.0
    min_age_days: float | None = None
    max_age_days: float | None = None
    min_visits: int = 1
    ra_deg: float | None = None  # cone centre and radius: all three or none
    dec_deg: float | None = None
    radius_deg: float | None = None
    recent_min: float = 60.0  # objects updated within this many minutes
    limit: int = 50

    @property
    def cone(self) -> bool:
        return self.radius_deg is not None


def _number(params: Mapping[str, str], name: str, low: float, high: float, integer: bool = False):
    text = params.get(name)
    if text is None or text == "":
        return None
    try:
        value = int(text) if integer else float(text)
    except ValueError:
        raise BadInput(name, f"not {'an integer' if integer else 'a number'}: {text[:20]!r}") from None
    if not math.isfinite(value) or not low <= value <= high:
        raise BadInput(name, f"must be between {low:g} and {high:g}")
    return value


def candidate_query(params: Mapping[str, str]) -> CandidateQuery:
    """The `CandidateQuery` of a request's query parameters; BadInput for an unknown or bad one."""
    known = {"score", "class", "min_score", "min_age_days", "max_age_days", "min_visits", "ra", "dec", "radius",
             "recent_min", "limit"}
    for name, value in params.items():
        if name not in known:
            raise BadInput(name[:MAX_VALUE_CHARS], f"unknown parameter (known: {', '.join(sorted(known))})")
        if len(value) > MAX_VALUE_CHARS:
            raise BadInput(name, f"at most {MAX_VALUE_CHARS} characters")
    score = params.get("score") or "sn"
    if score not in ("sn", "flare"):
        raise BadInput("score", "'sn' or 'flare'")
    cid = None
    if params.get("class"):
        try:
            cid = class_id(params["class"])
        except ValueError:
            raise BadInput("class", "not one of the model's classes (e.g. SNIa, SNII, M-dwarf Flare, KN)") from None
    cone = [_number(params, n, *r) for n, r in (("ra", (0, 360)), ("dec", (-90, 90)), ("radius", (0, 180)))]
    if any(v is not None for v in cone) and any(v is None for v in cone):
        raise BadInput("ra", "a sky region needs ra, dec and radius (degrees) together")
    query = CandidateQuery(
        score=score, class_id=cid, min_score=_number(params, "min_score", 0, 1) or 0.0,
        min_age_days=_number(params, "min_age_days", 0, 1e5), max_age_days=_number(params, "max_age_days", 0, 1e5),
        min_visits=_number(params, "min_visits", 1, 1e6, integer=True) or 1,
        ra_deg=cone[0], dec_deg=cone[1], radius_deg=cone[2],
        recent_min=_number(params, "recent_min", 1, MAX_RECENT_MIN) or 60.0,
        limit=_number(params, "limit", 1, MAX_LIMIT, integer=True) or 50)
    if query.min_age_days is not None and query.max_age_days is not None and query.min_age_days > query.max_age_days:
        raise BadInput("min_age_days", "greater than max_age_days")
    return query
