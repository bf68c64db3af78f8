// The console's plugin over fastify.inject: exact content types, the CSP and other security headers, ETag
// revalidation, refusals as problem+json, and the assets themselves (no inline script, no remote URL).

import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import Fastify, { type FastifyInstance } from "fastify";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { loadStaticAssets, UnservableAssetError } from "./static-assets.js";
import { DEFAULT_STATIC_DIR, webRoutes } from "./web-routes.js";

let app: FastifyInstance;

beforeAll(async () => {
  app = Fastify();
  await app.register(webRoutes, {});
  await app.ready();
});
afterAll(async () => {
  await app.close();
});

describe("web console plugin", () => {
  it("serves the login page at /console/ as UTF-8 HTML with a strict CSP", async () => {
    const res = await app.inject({ method: "GET", url: "/console/" });
    expect(res.statusCode).toBe(200);
    expect(res.headers["content-type"]).toBe("text/html; charset=utf-8");
    const csp = String(res.headers["content-security-policy"]);
    expect(csp).toContain("default-src 'none'");
    expect(csp).toContain("script-src 'self'");
    expect(csp).toContain("frame-ancestors 'none'");
    expect(csp).not.toContain("unsafe-inline");
    expect(csp).not.toContain("unsafe-eval");
    expect(res.headers["x-content-type-options"]).toBe("nosniff");
    expect(res.body).toContain('id="login-form"');
  });

  it("serves modules as text/javascript and the stylesheet as text/css", async () => {
    const js = await app.inject({ method: "GET", url: "/console/command.js" });
    expect(js.statusCode).toBe(200);
    expect(js.headers["content-type"]).toBe("text/javascript; charset=utf-8");
    const css = await app.inject({ method: "GET", url: "/console/console.css" });
    expect(css.headers["content-type"]).toBe("text/css; charset=utf-8");
  });

  it("asks the browser to revalidate, and answers a matching If-None-Match with an empty 304", async () => {
    const first = await app.inject({ method: "GET", url: "/console/money.js" });
    expect(first.headers["cache-control"]).toBe("no-cache");
    const etag = String(first.headers.etag);
    expect(etag).toMatch(/^"[A-Za-z0-9_-]{32}"$/);
    const again = await app.inject({ method: "GET", url: "/console/money.js", headers: { "if-none-match": `"other", ${etag}` } });
    expect(again.statusCode).toBe(304);
    expect(again.body).toBe("");
    const changed = await app.inject({ method: "GET", url: "/console/money.js", headers: { "if-none-match": '"stale"' } });
    expect(changed.statusCode).toBe(200);
  });

  it("answers HEAD with the headers and no body", async () => {
    const res = await app.inject({ method: "HEAD", url: "/console/index.html" });
    expect(res.statusCode).toBe(200);
    expect(res.headers["content-type"]).toBe("text/html; charset=utf-8");
    expect(res.body).toBe("");
  });

  it("refuses an unknown file or a path that climbs out of the console as a 404 problem", async () => {
    for (const url of ["/console/nope.js", "/console/..%2Fweb-routes.ts", "/console/../../package.json", "/console/%2e%2e/static-assets.ts"]) {
      const res = await app.inject({ method: "GET", url });
      expect(res.statusCode, url).toBe(404);
      expect(res.body, url).not.toMatch(/"version"|import |export /);
    }
    const missing = await app.inject({ method: "GET", url: "/console/nope.js" });
    expect(missing.headers["content-type"]).toContain("application/problem+json");
    expect(missing.json()).toMatchObject({ status: 404, code: "WEB_NOT_FOUND" });
  });

  it("redirects / and /console to the console", async () => {
    expect((await app.inject({ method: "GET", url: "/" })).headers.location).toBe("/console/");
    expect((await app.inject({ method: "GET", url: "/console" })).headers.location).toBe("/console/");
  });

  it("ships pages with no inline script, no inline style, no event-handler attribute and no remote URL", async () => {
    const assets = await loadStaticAssets(DEFAULT_STATIC_DIR);
    const pages = [...assets.values()].filter((a) => a.path.endsWith(".html"));
    expect(pages.length).toBeGreaterThanOrEqual(4);
    for (const page of pages) {
      const html = page.body.toString("utf8");
      for (const tag of html.match(/<script\b[^>]*>[\s\S]*?<\/script>/g) ?? []) expect(tag, page.path).toMatch(/^<script type="module" src="[a-z-]+\.js"><\/script>$/);
      expect(html, page.path).not.toMatch(/\sstyle=|<style\b|\son[a-z]+=/i);
      expect(html, page.path).not.toMatch(/(src|href)="(https?:)?\/\//);
    }
    for (const asset of assets.values()) expect(asset.body.toString("utf8"), asset.path).not.toMatch(/https?:\/\/(?!www\.w3\.org\/2000\/svg)/);
  });
});

describe("static asset loading", () => {
  it("refuses to start with a file whose type the console does not serve", async () => {
    const dir = mkdtempSync(join(tmpdir(), "web-assets-"));
    try {
      writeFileSync(join(dir, "index.html"), "<!doctype html>");
      writeFileSync(join(dir, "notes.txt~"), "backup");
      await expect(loadStaticAssets(dir)).rejects.toBeInstanceOf(UnservableAssetError);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
