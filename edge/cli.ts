#!/usr/bin/env node
// agri-edge: the gateway agent. Not built yet (issue #3); this entry point says what it will become.

process.stdout.write(`agri-edge — the gateway agent (not built yet)

It will poll meters and fire/smoke sensors over Modbus RTU (RS-485) and TCP, enforce prepaid credit at the field
even with no network (open the relay when the import register reaches the granted limit), send fire alarms ahead
of every backlog, and keep a durable SQLite outbox that MQTT drains to the cloud.
Until then, run the simulated village with: npm start
`);
process.exitCode = 0;
