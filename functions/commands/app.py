"""Commands from your own systems (Source `voicebus`, DetailType `call.command`), answered on the bus."""

from voicebus.commands.requests import build_command_handler

lambda_handler = build_command_handler()
