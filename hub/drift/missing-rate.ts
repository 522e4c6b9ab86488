/**
 * The missing-value rate of a feature against its baseline. A dead sensor is
 * the most common drift in the field, and it leaves no finite values behind:
 * n = 0, so every distribution figure is "insufficient data". Its rate of
 * missing values (null, NaN, or not a finite number) is what moved, so that
 * rate gets its own test: a pooled two-proportion z-test (two-sided), judged
 * like the distribution tests (effect-size floor AND p below the family's
 * per-test α; judge-family.ts).
 */

export interface MissingFigures {
  /** Missing values / values seen, observed and baseline. */
  rate: number;
  referenceRate: number;
  /** Values seen (finite or not). */
  seen: number;
  referenceSeen: number;
  /** Two-sided p-value of the two-proportion test; null when either side saw nothing. */
  pValue: number | null;
}

/**
 * erfc(x) for x ≥ 0 (Numerical Recipes §6.2 Chebyshev fit, fractional error
 * below 1.2·10⁻⁷ everywhere, so tiny p-values keep their magnitude).
 */
function erfc(x: number): number {
  const t = 1 / (1 + 0.5 * x);
  const y = t * Math.exp(-x * x - 1.26551223 + t * (1.00002368 + t * (0.37409196 + t * (0.09678418 + t * (-0.18628806 + t * (0.27886807 + t * (-1.13520398 + t * (1.48851587 + t * (-0.82215223 + t * 0.17087277)))))))));
  return Math.min(Math.max(y, 0), 2);
}

export function missingRates(refMissing: number, refSeen: number, obsMissing: number, obsSeen: number): MissingFigures {
  const rate = obsSeen > 0 ? obsMissing / obsSeen : 0;
  const referenceRate = refSeen > 0 ? refMissing / refSeen : 0;
  const out = { rate, referenceRate, seen: obsSeen, referenceSeen: refSeen };
  if (!(obsSeen > 0) || !(refSeen > 0)) return { ...out, pValue: null };
  const pooled = (refMissing + obsMissing) / (refSeen + obsSeen);
  const se = Math.sqrt(pooled * (1 - pooled) * (1 / refSeen + 1 / obsSeen));
  // Both sides all missing or none missing: nothing moved.
  if (!(se > 0)) return { ...out, pValue: 1 };
  return { ...out, pValue: erfc(Math.abs(rate - referenceRate) / se / Math.SQRT2) };
}
