#!/usr/bin/env node
// Placeholder until the agent daemon lands.
process.stderr.write('fleetcast-agent: not implemented yet\n');
process.exitCode = 2;
