/**
 * What a scenario run records: the JSON of `--report DIR` and what the HTML
 * report and the live view are drawn from. Times are ms since the run began.
 */
export interface Sample {
  t: number;
  /** Devices per served "name@version" ("none"), per group. */
  versions: Record<string, Record<string, number>>;
  /** Devices per install phase, all groups. */
  phases: Record<string, number>;
  connected: number;
  total: number;
  /** Predictions that succeeded / failed since the previous sample, per group. */
  ok: Record<string, number>;
  failed: Record<string, number>;
  /** Seconds since the previous sample (for rates). */
  dt: number;
  faults: string[];
}

export interface InstallRecord { t: number; deviceId: string; group: string; model: string; ms: number }
export interface FaultBand {
  kind: string; group: string | null; from: number; to: number;
  /** power-loss: the install phases its devices were in when the power went (phase → devices). */
  phases?: Record<string, number>;
}
export interface ActionRecord { t: number; what: string; ok: boolean; error?: string }
export interface RolloutRecord {
  id: string;
  hubId: string | null;
  model: string;
  states: { t: number; state: string; ring: string }[];
  decisions: { t: number; kind: string; ring: string | null; reason: string }[];
  final: { state: string; ring: string } | null;
}
export interface DriftRecord {
  model: string;
  /** Rows the hub's report flagged (verdict drift), per ring and feature. */
  flagged: { ring: string; feature: string; psi: number | null; newCategories: string[]; missingRate: number }[];
  events: { t: number; text: string }[];
  error?: string;
}
export interface Verdict { label: string; met: boolean; detail: string }

export interface RunRecord {
  scenario: string;
  startedAt: number;
  durationMs: number;
  timeScale: number;
  interrupted: boolean;
  groups: { name: string; count: number; first: string; last: string; runtime: string; tags: string[] }[];
  samples: Sample[];
  installs: InstallRecord[];
  installFailures: { t: number; deviceId: string; group: string; code: string }[];
  faults: FaultBand[];
  /** Spans where not one device was connected to the broker (planned or not). */
  brokerOutages: { from: number; to: number }[];
  actions: ActionRecord[];
  rollouts: RolloutRecord[];
  drift: DriftRecord[];
  totals: { ok: number; failed: number; failuresByGroup: Record<string, Record<string, number>> };
  /** Per group that connected through a fault relay: connections, refused while down, chunks tampered. */
  links: Record<string, { connections: number; refused: number; tampered: number }>;
  expectations: Verdict[];
}
