/**
 * The mosquitto.conf lines that give an external mosquitto (2.0) the embedded
 * broker's rules, as far as mosquitto can express them. README "External
 * broker (mosquitto)" shows exactly this text (a test checks it), and the
 * test suites start mosquitto with it, so what the README says is what is tested.
 *
 * - Credentials and the ACL (broker-acl.ts mosquittoAcl()).
 * - `use_username_as_clientid`: mosquitto takes the client id from the user
 *   name, so a device connecting under another device's client id (or the
 *   hub's) lands on its own session instead of kicking the other off.
 * - `max_packet_size`: the hub's largest message (protocol/channel-limits.ts);
 *   mosquitto cuts a client as soon as a packet announces more. It is one
 *   limit for every client: mosquitto has no per-topic size or retain rule, so
 *   the hub refuses a device message over its channel's limit on receipt.
 * - Queues per client: bounded in messages and bytes.
 */
import { HUB_MAX_PACKET_BYTES } from '@fleetcast/protocol/channel-limits.js';

export interface MosquittoPaths { passwordFile: string; aclFile: string }

export const MOSQUITTO_DEFAULT_PATHS: MosquittoPaths = { passwordFile: '/etc/mosquitto/passwd', aclFile: '/etc/mosquitto/acl' };

/** Messages and bytes mosquitto queues for one client (the hub's persistent session while it restarts, a slow device). */
export const MOSQUITTO_MAX_QUEUED_MESSAGES = 10_000;
export const MOSQUITTO_MAX_QUEUED_BYTES = 256 * 1024 * 1024;

export function mosquittoConf(paths: MosquittoPaths = MOSQUITTO_DEFAULT_PATHS): string {
  return [
    'allow_anonymous false',
    `password_file ${paths.passwordFile}`,
    `acl_file ${paths.aclFile}`,
    'use_username_as_clientid true',
    `max_packet_size ${HUB_MAX_PACKET_BYTES}`,
    `max_queued_messages ${MOSQUITTO_MAX_QUEUED_MESSAGES}`,
    `max_queued_bytes ${MOSQUITTO_MAX_QUEUED_BYTES}`,
  ].join('\n') + '\n';
}
