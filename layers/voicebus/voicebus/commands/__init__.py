"""Telnyx Call Control commands: validation, deterministic command ids, and a retrying sender.

Import the module you need; importing the package imports nothing else:

- `voicebus.commands.validation`: `parse_command`, checking params against
  `schemas.json` (generated from Telnyx's OpenAPI spec by
  `python -m voicebus_cli command-schemas`).
- `voicebus.commands.ids`: `command_id`, stable across webhook redeliveries.
- `voicebus.commands.effects`: what an accepted command changes on the call record.
- `voicebus.commands.sender`: `CommandSender`.
"""
