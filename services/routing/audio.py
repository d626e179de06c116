"""How long an uploaded recording is, for billing transcriptions per second.

Only WAV is measured (its header says it exactly, and the stdlib reads it). For other formats the
bytes bound the length: no common speech encoding goes below 8 kbit/s, so size / 1000 B/s is an
upper bound to reserve, and 128 kbit/s (a usual MP3 rate) is the estimate charged when the
upstream does not report the duration.
"""

from __future__ import annotations

import io
import math
import wave

_MIN_BYTES_PER_SECOND = 1_000
_TYPICAL_BYTES_PER_SECOND = 16_000


def wav_seconds(data: bytes) -> float | None:
    """The length of a PCM WAV recording, or None when `data` is not one."""
    if data[:4] != b"RIFF" or data[8:12] != b"WAVE":
        return None
    try:
        with wave.open(io.BytesIO(data)) as recording:
            rate, frame_size, frames = recording.getframerate(), recording.getsampwidth() * recording.getnchannels(), recording.getnframes()
    except (wave.Error, EOFError, ValueError):
        return None
    if rate <= 0 or frame_size <= 0:
        return None
    # A header may claim more frames than the file holds: only the bytes present count.
    return min(frames, len(data) // frame_size) / rate


def seconds_bound(data: bytes) -> int:
    """Whole seconds the recording can at most last (what a request reserves)."""
    measured = wav_seconds(data)
    if measured is not None:
        return max(1, math.ceil(measured))
    return max(1, math.ceil(len(data) / _MIN_BYTES_PER_SECOND))


def estimated_seconds(data: bytes) -> float:
    return len(data) / _TYPICAL_BYTES_PER_SECOND


def billed_seconds(seconds: float) -> int:
    """Started seconds count whole; any audio at all is at least one second."""
    return max(1, math.ceil(seconds))
