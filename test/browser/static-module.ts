// Loading the console's browser modules (cloud/web/static/*.js, plain JS served as it is) into a vitest run. The
// import specifier is built at run time, so TypeScript does not look for declarations of the JS file; each caller
// states the shape it relies on, and the test then checks the real module against that.

import { fileURLToPath } from "node:url";

export const STATIC_DIR = fileURLToPath(new URL("../../cloud/web/static/", import.meta.url));

export async function loadStaticModule<T>(name: string): Promise<T> {
  const url = new URL(`../../cloud/web/static/${name}`, import.meta.url);
  return (await import(/* @vite-ignore */ url.href)) as T;
}
