"""The embedded default: every message an .eml file under outbox/<campaign>/.

Nothing leaves the machine. The files open in any mail client, so a campaign can
be checked as recipients will see it, and the sample list can be "sent" safely.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Sequence
from pathlib import Path
from typing import ClassVar

from campaign import mime
from campaign.message import Message
from campaign.providers.base import Options, Provider, Result, Status


class OutboxOptions(Options):
    directory: str = "outbox"
    """Where the campaign folders go; campaign.toml's value is relative to the workspace."""


class OutboxProvider(Provider):
    name = "outbox"
    max_batch = 500
    wants_raw = True
    Options: ClassVar[type[Options]] = OutboxOptions

    @property
    def directory(self) -> Path:
        return self.path(self.options.directory)  # type: ignore[attr-defined]

    async def send(self, batch: Sequence[Message]) -> list[Result]:
        return await asyncio.to_thread(self._write, batch)

    def _write(self, batch: Sequence[Message]) -> list[Result]:
        results = []
        folders: set[Path] = set()
        for message in batch:
            folder = self.directory / message.campaign
            path = folder / f"{message.send_id}.eml"
            try:
                if folder not in folders:
                    folder.mkdir(parents=True, exist_ok=True)
                    folders.add(folder)
                # Write then rename: a file under its final name is always complete.
                partial = path.with_suffix(".part")
                partial.write_bytes(
                    message.raw if message.raw is not None else mime.render(message)
                )
                os.replace(partial, path)
            except OSError as exc:
                results.append(
                    Result(message.send_id, Status.RETRY, reason=f"outbox: {exc.strerror or exc}")
                )
                continue
            results.append(Result(message.send_id, Status.ACCEPTED, provider_id=str(path)))
        return results
