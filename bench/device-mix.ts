// The device mix the load benchmarks poll: 16 devices per bus, the built-in profiles in village-like proportions.

/** profile, how many per 16 devices, role. */
export const DEVICE_MIX = [
  ["eastron-sdm120", 4, "meter"],
  ["eastron-sdm630-v2", 3, "meter"],
  ["chint-dtsu666", 2, "meter"],
  ["chint-dtsu666-4000", 1, "meter"],
  ["chint-ddsu666", 2, "meter"],
  ["hiking-dds238-2-zn", 2, "meter"],
  ["agri-fire-node", 1, "fire-sensor"],
  ["calectro-ug-3-o-mb-r", 1, "fire-sensor"],
] as const;
