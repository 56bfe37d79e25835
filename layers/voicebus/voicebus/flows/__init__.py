"""IVR flows: YAML state machines that answer Telnyx webhooks with Call Control commands.

Import the module you need; like `voicebus.commands`, the package imports nothing,
so reading a flow never loads the sender:

- `voicebus.flows.models`: what a flow file may say (match, entry, on_error, references between steps).
- `voicebus.flows.steps`: each step type: the command it sends, when it moves on, where it leads
  (its vocabulary in `step_base`, the steps that move on at once in `continuing`).
- `voicebus.flows.loader`: reads `*.yaml` with `${FLOW_*}` placeholders; `FlowCatalog`.
- `voicebus.flows.position`: where a call is in its flow (the `flow` lane, and what client_state carries).
- `voicebus.flows.envelope`: the client_state envelope: the flow's position next to your own value.
- `voicebus.flows.engine`: given a webhook and the call's position, what to send (pure);
  `transitions` says what each step does with its event, `decision` what comes out.
- `voicebus.flows.store`: reads and compare-and-set writes of the call's `flow` lane in DynamoDB.
- `voicebus.flows.timeouts`: step time limits as one-shot EventBridge Scheduler schedules.
- `voicebus.flows.invoke`: `invoke` steps: your Lambda function, synchronously, within a budget.
- `voicebus.flows.outside`: `call.command` requests keep a running flow's position.
- `voicebus.flows.runner`: the call-control function's `act`: read, decide, claim, schedule, send.
"""
