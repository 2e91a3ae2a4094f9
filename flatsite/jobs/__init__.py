"""The job platform: Job rows claimed with leases, progress events, the websocket consumer, the reconciler."""
