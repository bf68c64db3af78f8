// The web console in real headless Chromium against a real cloud (buildApp with the provisioning, prepaid, alerts
// and web plugins over SQLite files, behind a TCP proxy the test can cut). Each scenario logs in through the login
// page like a person would: a farmer sees their balance to the fen and is refused another household; an officer
// records a cash top-up and sees the balance change; a dispatcher receives a fire incident live, acknowledges it,
// and after the network drops and returns sees the incidents raised meanwhile, replayed by the stream.
//
// Screenshots (one per page) go to $CONSOLE_SCREENSHOT_DIR when set, else to a temporary directory removed after.

import { mkdirSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { Locator, Page } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { householdAccountId } from "../../cloud/prepaid/accounts.js";
import { fenToYuan } from "../../protocols/units.js";
import { launchChromium, type RunningBrowser } from "./chromium.js";
import { PASSWORD, SENSORS, startConsoleCloud, USERS, type ConsoleCloud } from "./console-cloud.js";

let cloud: ConsoleCloud;
let browser: RunningBrowser;
let shots: string;
const keepShots = process.env.CONSOLE_SCREENSHOT_DIR !== undefined;

/** "¥1,234.05" from the protocol's own fenToYuan: an independent path to the digits the page must show. */
function yuan(fen: number): string {
  const [whole = "", cents = ""] = fenToYuan(fen).replace("-", "").split(".");
  return `${fen < 0 ? "-" : ""}¥${whole.replace(/\B(?=(\d{3})+$)/g, ",")}.${cents}`;
}

/** One attribute of every element a locator matches, in document order. */
async function attributes(locator: Locator, name: string): Promise<(string | null)[]> {
  return Promise.all((await locator.all()).map((element) => element.getAttribute(name)));
}

const balanceOf = (householdId: string): Promise<number> => cloud.ledger.balance(householdAccountId(householdId));

/** Script errors and CSP violations seen by each page: the console must run clean under its own policy. */
const pageProblems = new WeakMap<Page, string[]>();

async function freshPage(): Promise<Page> {
  await browser.context.clearCookies();
  const page = await browser.context.newPage();
  page.setDefaultTimeout(15_000);
  const problems: string[] = [];
  pageProblems.set(page, problems);
  page.on("pageerror", (error) => problems.push(`page error: ${error.message}`));
  page.on("console", (message) => {
    if (/Content Security Policy|Refused to/i.test(message.text())) problems.push(`CSP: ${message.text()}`);
  });
  return page;
}

async function closeClean(page: Page): Promise<void> {
  const problems = pageProblems.get(page) ?? [];
  await page.close();
  expect(problems).toEqual([]);
}

async function logIn(page: Page, userId: string, landsOn: string): Promise<void> {
  await page.goto(cloud.consoleUrl);
  await page.locator("#user-id").fill(userId);
  await page.locator("#password").fill(PASSWORD);
  await page.locator("#login-button").click();
  await page.waitForURL(`**/console/${landsOn}`);
}

async function screenshot(page: Page, name: string): Promise<void> {
  await page.screenshot({ path: join(shots, `${name}.png`), fullPage: true });
}

beforeAll(async () => {
  shots = process.env.CONSOLE_SCREENSHOT_DIR ?? mkdtempSync(join(tmpdir(), "console-shots-"));
  mkdirSync(shots, { recursive: true });
  cloud = await startConsoleCloud();
  browser = await launchChromium();
}, 60_000);

afterAll(async () => {
  await browser?.close();
  await cloud?.close();
  if (!keepShots && shots !== undefined) rmSync(shots, { recursive: true, force: true });
});

describe("web console in Chromium", () => {
  it("shows a farmer who logs in their own balance to the fen, with top-ups, charges and kWh per day", async () => {
    const page = await freshPage();
    await page.goto(cloud.consoleUrl);
    await screenshot(page, "login");
    await logIn(page, USERS.farmerLi.userId, "account.html");
    const expected = await balanceOf("hh-li");
    // ¥123.45 topped up, 2 kWh at ¥0.5283 = 105.66 fen charged as 106.
    expect(expected).toBe(12_345 - 106);
    await expect.poll(() => page.locator("#balance").textContent()).toBe(yuan(expected));
    expect(await page.locator("#balance").textContent()).toBe("¥122.39");
    expect(await page.locator("#who-name").textContent()).toBe(USERS.farmerLi.name);
    expect(await page.locator("section:has(h2:has-text('最近充值')) td.num").first().textContent()).toBe("+¥123.45");
    const charge = page.locator("section:has(h2:has-text('最近扣费')) td.num");
    expect(await charge.nth(0).textContent()).toBe("-¥1.06");
    expect(await charge.nth(1).textContent()).toBe("¥122.39");
    expect(await page.locator("#energy td.num").first().textContent()).toBe("2 kWh");
    await screenshot(page, "account");
    await closeClean(page);
  });

  it("shows the API's refusal when a farmer opens another household", async () => {
    const page = await freshPage();
    await logIn(page, USERS.farmerLi.userId, "account.html");
    await page.goto(`${cloud.consoleUrl}account.html?household=hh-wang`);
    const problem = page.locator("#account .problem");
    await problem.waitFor();
    const text = await problem.textContent();
    expect(text).toContain("403 API_FORBIDDEN");
    expect(text).toContain("household hh-wang is not yours");
    expect(await page.locator("#balance").count()).toBe(0);
    expect(text).not.toContain(yuan(await balanceOf("hh-wang")));
    await screenshot(page, "account-refused");
    await closeClean(page);
  });

  it("logs a farmer out, after which the account page sends the browser back to the login page", async () => {
    const page = await freshPage();
    await logIn(page, USERS.farmerLi.userId, "account.html");
    await page.locator("#balance").waitFor();
    await page.locator("#logout").click();
    await page.waitForURL("**/console/index.html");
    await page.goto(`${cloud.consoleUrl}account.html`);
    await page.waitForURL("**/console/index.html");
    expect(await page.locator("#login-form").isVisible()).toBe(true);
    await closeClean(page);
  });

  it("lets an officer record a cash top-up, confirm it, and see the household's balance change", async () => {
    const page = await freshPage();
    await logIn(page, USERS.officer.userId, "village.html");
    const rows = page.locator("#households-table tbody tr");
    await rows.first().waitFor();
    // Low credit first: hh-chen (¥3.00, stage 2), hh-wang (¥15.00, stage 1), hh-li.
    expect(await attributes(rows, "data-household")).toEqual(["hh-chen", "hh-wang", "hh-li"]);
    await screenshot(page, "village");

    const before = await balanceOf("hh-wang");
    await page.locator("tr[data-household='hh-wang'] button").click();
    await page.locator("#top-up-amount").fill("50.05");
    await page.locator("#top-up-receipt").fill("R-2026-0042");
    await page.locator("#top-up-review").click();
    expect(await page.locator("#top-up-amount-check").textContent()).toBe("¥50.05");
    expect(await balanceOf("hh-wang")).toBe(before);
    await screenshot(page, "village-confirm");
    await page.locator("#top-up-confirm-button").click();
    await page.locator("#top-up-done").waitFor();

    const after = await balanceOf("hh-wang");
    expect(after).toBe(before + 5_005);
    expect(await page.locator("#top-up-new-balance").textContent()).toBe(yuan(after));
    await expect.poll(() => page.locator("tr[data-household='hh-wang'] td.balance").textContent()).toBe(yuan(after));
    // ¥65.05 is above the warnings: hh-wang is no longer listed before hh-li, whose balance is higher.
    expect(await attributes(rows, "data-household")).toEqual(["hh-chen", "hh-wang", "hh-li"]);
    await closeClean(page);
  });

  it("shows the refusal when an officer enters a paper receipt already recorded, and posts nothing", async () => {
    const page = await freshPage();
    await logIn(page, USERS.officer.userId, "village.html");
    await page.locator("#households-table").waitFor();
    const topUp = async (receiptId: string): Promise<void> => {
      await page.locator("#top-up-household").selectOption("hh-chen");
      await page.locator("#top-up-amount").fill("20");
      await page.locator("#top-up-receipt").fill(receiptId);
      await page.locator("#top-up-review").click();
      await page.locator("#top-up-confirm-button").click();
    };
    await topUp("R-2026-0050");
    await page.locator("#top-up-done").waitFor();
    const before = await balanceOf("hh-chen");
    await topUp("R-2026-0050");
    const problem = page.locator("#top-up-result .problem");
    await problem.waitFor();
    expect(await problem.textContent()).toContain("409");
    expect(await balanceOf("hh-chen")).toBe(before);
    await closeClean(page);
  });

  it("refuses a typed amount with three decimals before anything is posted", async () => {
    const page = await freshPage();
    await logIn(page, USERS.officer.userId, "village.html");
    await page.locator("#households-table").waitFor();
    const before = await balanceOf("hh-chen");
    await page.locator("#top-up-household").selectOption("hh-chen");
    await page.locator("#top-up-amount").fill("10.005");
    await page.locator("#top-up-receipt").fill("R-2026-0043");
    await page.locator("#top-up-review").click();
    expect(await page.locator("#top-up-result .problem").textContent()).toContain("WEB_AMOUNT_INVALID");
    expect(await page.locator("#top-up-confirm").isHidden()).toBe(true);
    expect(await balanceOf("hh-chen")).toBe(before);
    await closeClean(page);
  });

  describe("command room", () => {
    let page: Page;
    const listRequests: string[] = [];

    beforeAll(async () => {
      page = await freshPage();
      page.on("request", (request) => {
        if (new URL(request.url()).pathname === "/alerts/incidents") listRequests.push(request.url());
      });
      await logIn(page, USERS.dispatcher.userId, "command.html");
      await page.locator("body[data-stream='live']").waitFor();
      await page.locator("#incidents[aria-busy='false']").waitFor();
      await page.evaluate(() => {
        (globalThis as unknown as { notReloaded: boolean }).notReloaded = true;
      });
    });
    afterAll(async () => {
      if (page !== undefined) await closeClean(page);
    });

    it("receives a new fire incident live, without a reload, with a visual alert", async () => {
      const sensor = SENSORS[0];
      const incidentId = cloud.raiseAlarm(sensor.sensorId);
      const row = page.locator(`#incident-list li[data-incident='${incidentId}']`);
      await row.waitFor();
      expect(await row.getAttribute("data-state")).toBe("new");
      expect(await row.locator(".class").textContent()).toBe("火情");
      expect(await row.locator(".certainty").textContent()).toBe("可能");
      await page.locator("#fire-alert").waitFor();
      expect(await page.locator("#fire-alert").textContent()).toContain(sensor.name);
      expect(await page.locator(`#map-svg .incident-mark[data-incident='${incidentId}']`).count()).toBe(1);
      expect(await page.locator("#map-svg .sensor").count()).toBe(SENSORS.length);
      expect(await page.evaluate(() => (globalThis as unknown as { notReloaded?: boolean }).notReloaded)).toBe(true);
      await screenshot(page, "command");
      await page.setViewportSize({ width: 1280, height: 800 });
      await screenshot(page, "command-desktop");
      await page.setViewportSize({ width: 420, height: 860 });
    });

    it("lets the dispatcher acknowledge the incident, and the state changes on the page and in the cloud", async () => {
      const [incident] = cloud.alerts.listIncidents({ sinceMs: 0, limit: 10, openOnly: true });
      if (incident === undefined) throw new Error("no open incident");
      await page.locator(`#incident-list li[data-incident='${incident.incidentId}'] button`).click();
      const buttons = page.locator("#actions button");
      expect(await attributes(buttons, "data-action")).toEqual(["acknowledge", "verify", "confirm", "false_alarm", "resolve"]);
      await page.locator("#actions button[data-action='acknowledge']").click();
      await page.locator("#detail-state[data-state='acknowledged']").waitFor();
      expect(await page.locator("#detail-state").textContent()).toBe("已接警");
      expect(cloud.alerts.getIncident(incident.incidentId).state).toBe("acknowledged");
      expect(await page.locator("#fire-alert").isHidden()).toBe(true);
      // The next steps only: no acknowledge twice, no dispatch before a confirmation.
      expect(await attributes(buttons, "data-action")).toEqual(["verify", "confirm", "false_alarm", "resolve"]);
    });

    it("asks for the grid worker's name before assigning one, and records who verifies", async () => {
      await page.locator("#actions button[data-action='verify']").click();
      expect(await page.locator("#action-message").textContent()).toContain("name the person first");
      await page.locator("#assignee").fill("网格员 沈建华");
      await page.locator("#actions button[data-action='verify']").click();
      await page.locator("#detail-state[data-state='verifying']").waitFor();
      const [incident] = cloud.alerts.listIncidents({ sinceMs: 0, limit: 10, openOnly: true });
      expect(incident?.gridWorker).toBe("网格员 沈建华");
    });

    it("takes a fire from confirmation through dispatch and on scene to its resolution, one allowed step at a time", async () => {
      const incidentId = cloud.raiseAlarm(SENSORS[4].sensorId);
      await page.locator(`#incident-list li[data-incident='${incidentId}'] button`).click();
      await page.locator(`#incident-detail[data-incident='${incidentId}']`).waitFor();
      const step = async (action: string, state: string, assignee?: string): Promise<void> => {
        if (assignee !== undefined) await page.locator("#assignee").fill(assignee);
        await page.locator(`#actions button[data-action='${action}']`).click();
        await page.locator(`#detail-state[data-state='${state}']`).waitFor();
      };
      await step("confirm", "confirmed");
      expect(await attributes(page.locator("#actions button"), "data-action")).toEqual(["dispatch", "resolve"]);
      await step("dispatch", "dispatched", "民警 王立");
      expect(await attributes(page.locator("#actions button"), "data-action")).toEqual(["arrive", "resolve"]);
      await step("arrive", "on_scene");
      await page.locator("#disposition").selectOption("fire");
      await step("resolve", "resolved");
      expect(await page.locator("#actions button").count()).toBe(0);
      expect(cloud.alerts.getIncident(incidentId)).toMatchObject({ state: "resolved", disposition: "fire", officer: "民警 王立", certainty: "Observed" });
    });

    it("shows a connection-lost banner while the stream is cut, and replays the incidents missed meanwhile", async () => {
      // An event received before the cut: the id the browser resumes from.
      const seen = cloud.raiseAlarm(SENSORS[3].sensorId);
      await page.locator(`#incident-list li[data-incident='${seen}']`).waitFor();
      const listsBefore = listRequests.length;
      cloud.proxy.cut();
      await page.locator("#connection-lost").waitFor();
      expect(await page.locator("body").getAttribute("data-stream")).toBe("lost");
      await screenshot(page, "command-lost");

      const missed = [cloud.raiseAlarm(SENSORS[1].sensorId), cloud.raiseAlarm(SENSORS[2].sensorId)];
      for (const id of missed) expect(await page.locator(`#incident-list li[data-incident='${id}']`).count()).toBe(0);

      cloud.proxy.restore();
      await page.locator("#connection-lost").waitFor({ state: "hidden", timeout: 20_000 });
      for (const id of missed) await page.locator(`#incident-list li[data-incident='${id}']`).waitFor();
      // A replayed fire is as new to the room as a live one.
      expect(await page.locator("#fire-alert").isVisible()).toBe(true);
      expect(await page.locator("#fire-alert").textContent()).toContain(SENSORS[2].name);
      // Replayed by the stream after Last-Event-ID, not re-read from the list: no GET /alerts/incidents since the cut.
      expect(listRequests.length).toBe(listsBefore);
      const order = await attributes(page.locator("#incident-list li"), "data-incident");
      // Newest first: the two missed incidents above the ones seen before the cut.
      expect(new Set(order.slice(0, 2))).toEqual(new Set(missed));
      expect(await page.evaluate(() => (globalThis as unknown as { notReloaded?: boolean }).notReloaded)).toBe(true);
    });
  });
});
