"""Telnyx Call Control commands: validated models, deterministic command ids, and a retrying sender.

Import the module you need; importing the package imports nothing else, so a
function that only validates commands never loads the telnyx SDK (over a
second of import time):

- `voicebus.commands.models`: one pydantic model per action, `parse_command`.
- `voicebus.commands.enums`: the spec's enumerations as Literal aliases.
- `voicebus.commands.ids`: `command_id`, stable across webhook redeliveries.
- `voicebus.commands.client`: the SDK client for Lambda (imports telnyx).
- `voicebus.commands.sender`: `CommandSender` (imports telnyx).
"""
