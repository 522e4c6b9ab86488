/**
 * How the hub's broker side is secured (issue #6), decided once from the
 * options: the embedded broker authenticates and authorises every client
 * unless insecureDemo, the hub issues itself a fresh credential at each start
 * (only its hash is stored), and TLS is used when a certificate and key are
 * given. For an external broker the operator passes the hub's credential and
 * CA; that broker enforces the same rules (README "External broker").
 */
import { readFileSync } from 'node:fs';
import type { Aedes } from 'aedes';
import type { Logger } from 'pino';
import { installBrokerAuth } from './broker-auth.js';
import type { BrokerSetup } from './broker.js';
import { hubError } from './errors.js';
import { MqttCredentials } from './mqtt-credentials.js';
import type { HubOptions } from './options.js';
import type { HubStore } from './store.js';

export interface BrokerSecurity {
  brokerOptions: { tls?: { cert: string; key: string }; setup?: (aedes: Aedes) => BrokerSetup | void };
  linkOptions: { username?: string; password?: string; ca?: Buffer };
  credentials: MqttCredentials;
}

export function brokerSecurity(options: HubOptions, store: HubStore, logger: Logger, mayReadBundle?: (deviceId: string, bundleId: string) => boolean): BrokerSecurity {
  const credentials = new MqttCredentials(store.db);
  if ((options.mqttTlsCert === undefined) !== (options.mqttTlsKey === undefined)) {
    throw hubError('HUB_ERR_LISTEN', 'mqttTlsCert and mqttTlsKey go together: give both (PEM files) or neither');
  }
  const tls = options.mqttTlsCert && options.mqttTlsKey ? { cert: options.mqttTlsCert, key: options.mqttTlsKey } : undefined;
  const readCa = (path: string) => { try { return readFileSync(path); } catch (e) { throw hubError('HUB_ERR_BROKER_UNREACHABLE', `cannot read the CA file ${path}: ${(e as NodeJS.ErrnoException).code ?? e}`); } };
  if (options.brokerUrl) {
    return {
      brokerOptions: {},
      linkOptions: {
        ...(options.mqttUsername ? { username: options.mqttUsername, password: options.mqttPassword } : {}),
        ...(options.mqttCa ? { ca: readCa(options.mqttCa) } : {}),
      },
      credentials,
    };
  }
  // The hub's own link trusts the certificate it serves (self-signed or not), and nothing else.
  const ca = tls ? readCa(options.mqttCa ?? tls.cert) : undefined;
  if (options.insecureDemo) {
    logger.warn({ code: 'HUB_ERR_MQTT_AUTH' }, 'insecure demo: the embedded broker accepts anonymous clients and applies no ACL');
    return { brokerOptions: { ...(tls ? { tls } : {}) }, linkOptions: { ...(ca ? { ca } : {}) }, credentials };
  }
  const hub = credentials.issueHub();
  return {
    brokerOptions: { ...(tls ? { tls } : {}), setup: (aedes) => ({ packetLimit: installBrokerAuth(aedes, credentials, logger, mayReadBundle).packetLimit }) },
    linkOptions: { username: hub.username, password: hub.password, ...(ca ? { ca } : {}) },
    credentials,
  };
}
