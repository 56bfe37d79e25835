"""voicebus developer tools: sign webhooks, re-sign the sample events, run the local stack."""
