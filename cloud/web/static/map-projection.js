// The command room's offline map: WGS-84 lon/lat onto an SVG canvas with no tile server (villages and police posts
// may have no internet). An equirectangular projection with the longitude scaled by cos(mean latitude) keeps a
// few kilometres of forest true to shape (the error over 50 km at 30°N is well under 1 %), which is all a schematic
// needs; it is not a survey map, and coordinates stay WGS-84 (no GCJ-02 shift: nothing here is drawn over a
// Chinese base map). Pure.

const KM_PER_DEGREE_LAT = 111.32;
/** A single sensor still gets a frame about a kilometre across. */
const MIN_SPAN_DEG = 0.01;
const NICE_STEPS_DEG = [0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1, 2, 5];
const NICE_KM = [0.05, 0.1, 0.2, 0.5, 1, 2, 5, 10, 20, 50, 100, 200];

/**
 * @typedef {{ lon: number, lat: number }} LonLat
 * @typedef {{ width: number, height: number, paddingPx: number }} Canvas
 * @typedef {{
 *   project: (p: LonLat) => { x: number, y: number },
 *   bounds: { minLon: number, maxLon: number, minLat: number, maxLat: number },
 *   pxPerKm: number,
 *   gridLon: number[],
 *   gridLat: number[],
 *   scaleKm: number,
 * }} Projection
 */

/**
 * A projection that fits every point (with padding) into the canvas, keeping the aspect ratio; undefined when there
 * is no point with finite coordinates.
 * @param {readonly LonLat[]} points
 * @param {Canvas} canvas
 * @returns {Projection | undefined}
 */
export function fitProjection(points, canvas) {
  const valid = points.filter((p) => Number.isFinite(p.lon) && Number.isFinite(p.lat) && Math.abs(p.lat) <= 90 && Math.abs(p.lon) <= 180);
  if (valid.length === 0) return undefined;
  let minLon = Math.min(...valid.map((p) => p.lon));
  let maxLon = Math.max(...valid.map((p) => p.lon));
  let minLat = Math.min(...valid.map((p) => p.lat));
  let maxLat = Math.max(...valid.map((p) => p.lat));
  const midLat = (minLat + maxLat) / 2;
  const cos = Math.max(0.01, Math.cos((midLat * Math.PI) / 180));
  if (maxLat - minLat < MIN_SPAN_DEG) [minLat, maxLat] = [midLat - MIN_SPAN_DEG / 2, midLat + MIN_SPAN_DEG / 2];
  if ((maxLon - minLon) * cos < MIN_SPAN_DEG) {
    const midLon = (minLon + maxLon) / 2;
    [minLon, maxLon] = [midLon - MIN_SPAN_DEG / 2 / cos, midLon + MIN_SPAN_DEG / 2 / cos];
  }
  const innerW = canvas.width - 2 * canvas.paddingPx;
  const innerH = canvas.height - 2 * canvas.paddingPx;
  const spanX = (maxLon - minLon) * cos;
  const spanY = maxLat - minLat;
  const pxPerDeg = Math.min(innerW / spanX, innerH / spanY);
  const offsetX = canvas.paddingPx + (innerW - spanX * pxPerDeg) / 2;
  const offsetY = canvas.paddingPx + (innerH - spanY * pxPerDeg) / 2;
  const project = (/** @type {LonLat} */ p) => ({ x: offsetX + (p.lon - minLon) * cos * pxPerDeg, y: offsetY + (maxLat - p.lat) * pxPerDeg });
  // The frame actually shown (the canvas may be wider or taller than the points' box).
  const shown = {
    minLon: minLon - offsetX / (cos * pxPerDeg),
    maxLon: minLon + (canvas.width - offsetX) / (cos * pxPerDeg),
    maxLat: maxLat + offsetY / pxPerDeg,
    minLat: maxLat - (canvas.height - offsetY) / pxPerDeg,
  };
  const pxPerKm = pxPerDeg / KM_PER_DEGREE_LAT;
  return {
    project,
    bounds: shown,
    pxPerKm,
    gridLon: gridLines(shown.minLon, shown.maxLon),
    gridLat: gridLines(shown.minLat, shown.maxLat),
    scaleKm: NICE_KM.filter((km) => km * pxPerKm <= canvas.width / 4).at(-1) ?? NICE_KM[0] ?? 0.05,
  };
}

/**
 * Round-numbered graticule lines inside [from, to]: the coarsest step giving at least three lines.
 * @param {number} from
 * @param {number} to
 */
export function gridLines(from, to) {
  const span = to - from;
  const step = [...NICE_STEPS_DEG].reverse().find((s) => span / s >= 3) ?? NICE_STEPS_DEG[0] ?? 0.0005;
  const lines = [];
  for (let k = Math.ceil(from / step); k * step <= to && lines.length < 50; k++) lines.push(Number((k * step).toFixed(6)));
  return lines;
}
