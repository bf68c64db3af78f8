// The web console's files as data: which extensions are served with which content type, and the set of assets read
// once from cloud/web/static/ at start (each with a strong ETag over its bytes). Serving from this in-memory table
// means a request path is only ever a key lookup — no path is joined onto the file system, so "../" cannot escape.
//
// Why no long-lived caching: the console has no build step, so file names carry no content hash; an "immutable"
// cache would keep an old module next to a new page after an upgrade. Every asset is "no-cache" (keep it, but ask
// first) and the ETag turns that question into a 304 with no body — cheap on a village's slow link (RFC 9111 §5.2.2.4).

import { createHash } from "node:crypto";
import { readdir, readFile } from "node:fs/promises";
import { extname, join, relative, sep } from "node:path";

/** RFC 9239 (text/javascript for modules), RFC 2318 (text/css), WHATWG HTML (text/html). Anything else is not served. */
export const CONTENT_TYPES = {
  ".html": "text/html; charset=utf-8",
  ".js": "text/javascript; charset=utf-8",
  ".css": "text/css; charset=utf-8",
  ".svg": "image/svg+xml",
  ".png": "image/png",
  ".ico": "image/x-icon",
  ".webmanifest": "application/manifest+json",
} as const satisfies Readonly<Record<string, string>>;

export interface StaticAsset {
  /** URL path below the console's prefix, with "/" separators: "command.js", "img/logo.svg". */
  readonly path: string;
  readonly contentType: string;
  readonly body: Buffer;
  /** A strong validator (RFC 9110 §8.8.3), quoted. */
  readonly etag: string;
}

export class UnservableAssetError extends Error {
  readonly code = "WEB_ASSET_UNSERVABLE";
  readonly retryable = false;
  constructor(message: string) {
    super(message);
    this.name = "UnservableAssetError";
  }
}

export function contentTypeOf(path: string): string | undefined {
  const ext = extname(path).toLowerCase();
  return Object.hasOwn(CONTENT_TYPES, ext) ? CONTENT_TYPES[ext as keyof typeof CONTENT_TYPES] : undefined;
}

export function etagOf(body: Buffer): string {
  return `"${createHash("sha256").update(body).digest("base64url").slice(0, 32)}"`;
}

/** RFC 9110 §13.1.2: If-None-Match is a list of entity tags or "*"; a weak comparison is enough for GET. */
export function matchesIfNoneMatch(header: string | undefined, etag: string): boolean {
  if (header === undefined) return false;
  if (header.trim() === "*") return true;
  const bare = etag.replace(/^W\//, "");
  return header.split(",").some((tag) => tag.trim().replace(/^W\//, "") === bare);
}

async function walk(dir: string): Promise<string[]> {
  const entries = await readdir(dir, { withFileTypes: true });
  const files: string[] = [];
  for (const entry of entries) {
    const full = join(dir, entry.name);
    if (entry.isDirectory()) files.push(...(await walk(full)));
    else if (entry.isFile()) files.push(full);
  }
  return files;
}

/**
 * Every file under `dir`, keyed by its URL path. A file whose type is not in CONTENT_TYPES is refused at start (a
 * stray editor backup or a .map would otherwise be served as octets, or silently not at all).
 */
export async function loadStaticAssets(dir: string): Promise<ReadonlyMap<string, StaticAsset>> {
  const assets = new Map<string, StaticAsset>();
  for (const file of await walk(dir)) {
    const path = relative(dir, file).split(sep).join("/");
    const contentType = contentTypeOf(path);
    if (contentType === undefined) throw new UnservableAssetError(`web console: ${path} has a type the console does not serve (${Object.keys(CONTENT_TYPES).join(", ")})`);
    const body = await readFile(file);
    assets.set(path, { path, contentType, body, etag: etagOf(body) });
  }
  return assets;
}
