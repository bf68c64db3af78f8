// A small seeded PRNG (mulberry32) so that a scenario with a seed replays the same noise, faults and fires.

export type Random = () => number;

export function seededRandom(seed: number): Random {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** Approximately normal noise (sum of uniforms), mean 0, standard deviation `sd`. */
export function gaussian(random: Random, sd: number): number {
  return (random() + random() + random() + random() - 2) * sd * Math.sqrt(3);
}
