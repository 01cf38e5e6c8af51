"""Local journals: what the database refuses is kept on disk and replayed in order.

:mod:`bridge.journal.store` is the file format (append-only segments, fsynced,
checksummed records); :mod:`bridge.journal.replay` the :class:`Journal` that keeps
refused items and replays them. The bridge keeps two under ``data_dir/journal``:
``whatsapp`` (engine events: messages, receipts, contact updates, engine errors) and
``ops`` (ops alerts whose outbox insert failed).
"""

from bridge.journal.replay import Codec, Journal, JournalListener, Limits
from bridge.journal.store import JournalStore

__all__ = ["Codec", "Journal", "JournalListener", "JournalStore", "Limits"]
