/**
 * `npm run bench [-- NAME ...]`: every benchmark prints what it measured and the
 * ratio against a baseline measured in the same run. Names: the keys of BENCHES
 * below (`npm run bench -- rollout predict` runs two).
 */
import { cleanupBenchDirs } from './dirs.js';
import { printResult, type BenchResult } from './lib.js';

const BENCHES: Record<string, () => Promise<BenchResult>> = {
  rollout: async () => (await import('./rollout-fanout.js')).benchRolloutFanout(),
  predict: async () => (await import('./predict-path.js')).benchPredictPath(),
  'predict-v2': async () => (await import('./predict-v2.js')).benchPredictV2(),
  verify: async () => (await import('./bundle-verify.js')).benchBundleVerify(),
  merkle: async () => (await import('./merkle.js')).benchMerkle(),
  'agent-swap': async () => (await import('./agent-swap.js')).benchAgentSwap(),
  'agent-rss': async () => (await import('./agent-rss.js')).benchAgentRss(),
  'telemetry-ingest': async () => (await import('./telemetry-ingest.js')).benchTelemetryIngest(),
  'telemetry-mqtt': async () => (await import('./telemetry-mqtt.js')).benchTelemetryMqtt(),
  'telemetry-cost': async () => (await import('./telemetry-cost.js')).benchTelemetryCost(),
  trust: async () => (await import('./trust.js')).benchTrust(),
  'rollout-scale': async () => (await import('./rollout-scale.js')).benchRolloutScale(),
  'debug-sampling': async () => (await import('./debug-sampling.js')).benchDebugSampling(),
  'drift-calibration': async () => (await import('./drift-calibration.js')).benchDriftCalibration(),
  'metrics-cost': async () => (await import('./metrics-cost.js')).benchMetricsCost(),
  'reconnect-storm': async () => (await import('./reconnect-storm.js')).benchReconnectStorm(),
  'device-page': async () => (await import('./device-page.js')).benchDevicePage(),
  'hub-capacity': async () => (await import('./hub-capacity.js')).benchHubCapacity(),
  'pg-store': async () => (await import('./pg-store.js')).benchPgStore(),
  'sim-scale': async () => (await import('./sim-scale.js')).benchSimScale(),
};

const wanted = process.argv.slice(2);
const names = wanted.length ? wanted : Object.keys(BENCHES);
let failed = 0;
for (const n of names) {
  const b = BENCHES[n];
  if (!b) { process.stderr.write(`unknown benchmark ${n}; choose from ${Object.keys(BENCHES).join(', ')}\n`); process.exitCode = 2; continue; }
  try {
    printResult(await b());
  } catch (e) {
    failed++;
    process.stderr.write(`benchmark ${n} failed: ${(e as Error).stack ?? e}\n`);
  } finally {
    cleanupBenchDirs();
  }
}
if (failed) process.exitCode = 1;
// Sockets and native sessions may hold the loop open a moment; a benchmark run has nothing left to do.
setTimeout(() => process.exit(), 200).unref();
