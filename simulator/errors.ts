/**
 * The simulator's stable error codes (`fleetcast sim`). Codes are never
 * reused: retire one by leaving it in place. docs/errors.md lists them.
 */
import { errorFactory, type ErrorTable } from '@fleetcast/protocol/errors.js';

export const SIM_ERRORS = {
  SIM_ERR_SCENARIO_READ: { message: 'The scenario file cannot be read or is not valid YAML or JSON; check the path and the syntax', status: 400 },
  SIM_ERR_SCENARIO_INVALID: { message: 'The scenario file does not match the scenario schema (unknown keys are refused by name); fix the named keys (README, Rehearsing a rollout, lists them)', status: 400 },
  SIM_ERR_BUNDLE_MISSING: { message: 'A publish action names a bundle file that does not exist; build it (fleetcast bundle build) into --bundles DIR or fix the name', status: 400 },
  SIM_ERR_HUB_REFUSED: { message: 'The hub\'s API refused the simulator; check --hub and that FLEETCAST_TOKEN_FILE (or FLEETCAST_TOKEN) holds a token of this hub: admin to enroll the simulated devices (or give --credentials DIR), operator for publish, deploy and rollout actions', status: 502 },
  SIM_ERR_BROKER_REFUSED: { message: 'The broker refused the simulated devices\' MQTT credentials; enroll them through this hub (an admin token, or --credentials DIR from fleetcast device enroll --file) and check --broker', status: 502 },
  SIM_ERR_BROKER_UNREACHABLE: { message: 'No simulated device could connect to the broker; check --broker (host, port, mqtt:// or mqtts://) and that the hub is running', status: 504 },
  SIM_ERR_ACTION_FAILED: { message: 'A scenario action (publish, deploy, rollout) failed; the hub\'s code and message follow, fix the scenario or the hub and run again', status: 502 },
  SIM_ERR_CREDENTIALS: { message: 'The --credentials directory lacks a readable ID.json for a simulated device; write it with fleetcast device enroll --file IDS.txt --out-dir DIR', status: 400 },
} as const satisfies ErrorTable;

export type SimErrorCode = keyof typeof SIM_ERRORS;

export const simError = errorFactory(SIM_ERRORS);
