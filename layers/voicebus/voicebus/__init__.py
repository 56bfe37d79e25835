"""voicebus: the shared layer of the Telnyx Call Control backend.

One module per concern; importing the package imports nothing else, so each
function pays only for the modules it uses (cold starts are a feature).
"""
