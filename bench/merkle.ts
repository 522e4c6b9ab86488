/**
 * Transparency-log proofs at a million leaves: what an auditor or agent pays to
 * check one entry (inclusion) or one log update (consistency, 500,000 → 1,000,000)
 * against the baseline of having every leaf hash and recomputing the root
 * (RFC 9162 2.1.1) once. Proof generation is measured on the hub's MerkleTree.
 */
import { pathToFileURL } from 'node:url';
import { MerkleTree, leafHash, rootFromLeafHashes, verifyConsistency, verifyInclusion } from '@fleetcast/signing/merkle.js';
import { nowMs, printResult, summarize, type BenchResult } from './lib.js';

const N = 1_000_000;
const M = 500_000;
const REPS = 1_000;

/** Median microseconds of `fn` over `reps` runs, each timed on its own (proofs take microseconds, not milliseconds). */
function medianUs(reps: number, fn: (i: number) => void): number {
  const samples: number[] = [];
  for (let i = 0; i < reps; i++) {
    const t = nowMs();
    fn(i);
    samples.push((nowMs() - t) * 1000);
  }
  return summarize(samples).p50;
}

export async function benchMerkle(): Promise<BenchResult> {
  const leaves: Buffer[] = new Array(N);
  const tree = new MerkleTree();
  const entry = Buffer.alloc(8);
  const t0 = nowMs();
  for (let i = 0; i < N; i++) {
    entry.writeUInt32BE(i, 4);
    leaves[i] = leafHash(entry);
    tree.append(leaves[i]);
  }
  const buildMs = nowMs() - t0;

  // Baseline: one naive recomputation of the root over all leaf hashes.
  const t1 = nowMs();
  const naiveRoot = rootFromLeafHashes(leaves);
  const naiveRootUs = (nowMs() - t1) * 1000;
  const root = tree.root();
  if (!root.equals(naiveRoot)) throw new Error('MerkleTree root differs from the naive root');
  const rootUs = medianUs(REPS, () => tree.root());

  // A fixed spread of indices (golden-ratio stride), so runs are comparable.
  const index = (i: number) => Math.floor(((i * 0.6180339887) % 1) * N);
  const inclusion = Array.from({ length: REPS }, (_, i) => tree.inclusionProof(index(i)));
  const inclusionProofUs = medianUs(REPS, (i) => tree.inclusionProof(index(i)));
  const inclusionVerifyUs = medianUs(REPS, (i) => verifyInclusion(index(i), N, leaves[index(i)], inclusion[i], root));
  const inclusionProofBytes = Math.max(...inclusion.map((p) => p.length)) * 32;

  const oldRoot = tree.root(M);
  const consistency = tree.consistencyProof(M, N);
  const consistencyProofUs = medianUs(REPS, () => tree.consistencyProof(M, N));
  const consistencyVerifyUs = medianUs(REPS, () => verifyConsistency(M, N, consistency, oldRoot, root));
  const consistencyProofBytes = consistency.length * 32;

  const allLeafBytes = N * 32;
  const ratios = [
    { name: 'root (tree / naive)', value: rootUs / naiveRootUs, goal: 0.001 },
    { name: 'inclusion proof time', value: inclusionProofUs / naiveRootUs, goal: 0.001 },
    { name: 'inclusion verify time', value: inclusionVerifyUs / naiveRootUs, goal: 0.001 },
    { name: 'inclusion proof bytes', value: inclusionProofBytes / allLeafBytes, goal: 0.001 },
    { name: 'consistency proof time', value: consistencyProofUs / naiveRootUs, goal: 0.001 },
    { name: 'consistency verify time', value: consistencyVerifyUs / naiveRootUs, goal: 0.001 },
    { name: 'consistency proof bytes', value: consistencyProofBytes / allLeafBytes, goal: 0.001 },
  ];
  return {
    name: `merkle: proofs over ${N.toLocaleString('en')} leaves vs recomputing the root`,
    ours: { buildMs, rootUs, inclusionProofUs, inclusionVerifyUs, inclusionProofBytes, consistencyProofUs, consistencyVerifyUs, consistencyProofBytes },
    baseline: {
      rootUs: naiveRootUs,
      inclusionProofUs: naiveRootUs,
      inclusionVerifyUs: naiveRootUs,
      inclusionProofBytes: allLeafBytes,
      consistencyProofUs: naiveRootUs,
      consistencyVerifyUs: naiveRootUs,
      consistencyProofBytes: allLeafBytes,
    },
    ratios,
    notes: [
      `build: ${N.toLocaleString('en')} appends in ${(buildMs / 1000).toFixed(1)} s (${((buildMs * 1000) / N).toFixed(2)} µs per leaf, amortised O(1))`,
      `times are medians over ${REPS} runs in µs; the baseline is one naive root over all leaf hashes (${(naiveRootUs / 1e6).toFixed(2)} s), the work a verifier without proofs must do`,
      `proof sizes: inclusion ≤ ${inclusionProofBytes / 32} hashes, consistency ${M.toLocaleString('en')} → ${N.toLocaleString('en')} ${consistency.length} hashes; baseline sends all ${N.toLocaleString('en')} leaf hashes`,
      // The ratios are far below the 3 decimals the table prints.
      `ratios: ${ratios.map((r) => `${r.name} ${r.value.toExponential(1)}`).join(', ')}`,
    ],
  };
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  printResult(await benchMerkle());
}
