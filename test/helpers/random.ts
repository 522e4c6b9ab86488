/** Seeded randomness for tests, so every run sees the same data. */
import { rng } from '../../bundle-build/onnx-build.js';

export { rng as prng };

/** Box–Muller: two uniforms to one standard normal. */
export const normal = (r: () => number) => () => Math.sqrt(-2 * Math.log(1 - r())) * Math.cos(2 * Math.PI * r());
