"""Times in the admin API: epoch seconds inside, UTC datetimes on the wire."""

from __future__ import annotations

import math
from datetime import UTC, datetime

_EPOCH_MIN = datetime(1, 1, 2, tzinfo=UTC).timestamp()
_EPOCH_MAX = datetime(9999, 12, 31, tzinfo=UTC).timestamp()


def moment(epoch: float) -> datetime:
    """Epoch seconds as a UTC datetime, clamped to what datetime can represent.

    Stored times are validated on the way in, but a row written by an older version (or
    by hand) must not make every listing fail: it shows as the nearest representable time.
    """
    if math.isnan(epoch):
        epoch = _EPOCH_MAX
    return datetime.fromtimestamp(min(max(epoch, _EPOCH_MIN), _EPOCH_MAX), UTC)


def to_datetime(epoch: float | None) -> datetime | None:
    return None if epoch is None else moment(epoch)


def to_epoch(moment: datetime | None) -> float | None:
    if moment is None:
        return None
    if moment.tzinfo is None:  # the API speaks UTC: a bare time means UTC, not server-local
        moment = moment.replace(tzinfo=UTC)
    return moment.timestamp()


__all__ = ["moment", "to_datetime", "to_epoch"]
