#!/usr/bin/env node
// agri-cloud: the township/county service. Not built yet (issue #4); this entry point says what it will become.

process.stdout.write(`agri-cloud — the cloud service (not built yet)

It will run an authenticated MQTT broker for the gateways, ingest and deduplicate their readings, keep telemetry,
settle prepaid charges and grain subsidies in an append-only ledger, raise forest-fire incidents for police command
rooms, and serve an HTTP API and web console.
Until then, run the simulated village with: npm start
`);
process.exitCode = 0;
