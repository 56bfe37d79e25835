"""Telnyx Call Control commands: validation, deterministic command ids, and a retrying sender.

Import the module you need; importing the package imports nothing else:

- `voicebus.commands.validation`: `parse_command`, checking params against
  `schemas.json` (generated from Telnyx's OpenAPI spec by
  `python -m voicebus_cli command-schemas`).
- `voicebus.commands.limits`: the spec's prose limits that relate fields to each
  other (mutually exclusive, only with, required if), checked by `parse_command`.
- `voicebus.commands.ids`: `command_id`, stable across webhook redeliveries.
- `voicebus.commands.effects`: what an accepted command changes on the call record.
- `voicebus.commands.http`: `CallControlClient`, the Call Control API over urllib3
  (the telnyx SDK's import costs over a second; the SDK is the oracle in tests).
- `voicebus.commands.client`: the API key and base URL (the SDK client for the one
  rare path that needs it, fresh recording links, is `voicebus.archive.recording_links`).
- `voicebus.commands.sender`: `CommandSender`, retrying what is worth retrying.
- `voicebus.commands.requests`: `call.command` requests from your systems, answered on the bus.
"""
