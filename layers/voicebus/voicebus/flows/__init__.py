"""IVR flows: YAML state machines that answer Telnyx webhooks with Call Control commands.

Import the module you need; like `voicebus.commands`, the package imports nothing,
so reading a flow never loads the sender:

- `voicebus.flows.models`: what a flow file may say (match, entry, references between steps).
- `voicebus.flows.steps`: each step type: the command it sends, when it moves on, where it leads.
- `voicebus.flows.loader`: reads `*.yaml` with `${FLOW_*}` placeholders; `FlowCatalog`.
- `voicebus.flows.position`: where a call is in its flow (client_state and the `flow` lane).
- `voicebus.flows.engine`: given a webhook and the call's position, what to send (pure).
- `voicebus.flows.store`: reads and writes the call's `flow` lane in DynamoDB.
- `voicebus.flows.runner`: the call-control function's `act`: read, decide, write, send.
"""
