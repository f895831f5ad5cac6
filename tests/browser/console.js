// The agents' console in headless Chromium, driven by playwright-core.
// Launched by tests/e2e/console.rs, which starts `switchboard serve` and the
// stand-in Telegram API and checks what reached it afterwards.
//
// Environment: SWITCHBOARD_PLAYWRIGHT, SWITCHBOARD_CHROMIUM, CONSOLE_BASE,
// CONSOLE_TOKEN, CONSOLE_WEBHOOKS (a JSON file of signed webhook requests:
// {regular, vip}, each {headers, body}), CONSOLE_SCREENSHOTS (a folder),
// CONSOLE_REPLY (the agent's reply text), CONSOLE_REGULAR / CONSOLE_VIP (the
// two conversations' keys), CONSOLE_EARLIER / CONSOLE_EARLIER_TEXT (another
// conversation of the regular customer, and its first message).
// Prints `RESULT {...}` with the figures; exits non-zero on the first failure.
"use strict";
const fs = require("fs");
const path = require("path");
const { chromium } = require(process.env.SWITCHBOARD_PLAYWRIGHT);

const base = process.env.CONSOLE_BASE;
const token = process.env.CONSOLE_TOKEN;
const webhooks = JSON.parse(fs.readFileSync(process.env.CONSOLE_WEBHOOKS, "utf8"));
const shots = process.env.CONSOLE_SCREENSHOTS;
const replyText = process.env.CONSOLE_REPLY;
const regularKey = process.env.CONSOLE_REGULAR;
const vipKey = process.env.CONSOLE_VIP;
const earlierKey = process.env.CONSOLE_EARLIER;
const earlierText = process.env.CONSOLE_EARLIER_TEXT;

function check(condition, what) {
  if (!condition) throw new Error("failed: " + what);
}

// page.waitForFunction evaluates a string, which our CSP refuses: poll instead.
async function waitFor(page, fn, arg, timeout) {
  const deadline = Date.now() + timeout;
  for (;;) {
    if (await page.evaluate(fn, arg)) return;
    if (Date.now() > deadline) throw new Error("timed out waiting for " + fn.toString().slice(0, 200));
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

async function postWebhook(request) {
  const response = await fetch(base + "/webhooks/telegram", {
    method: "POST",
    headers: request.headers,
    body: request.body,
  });
  check(response.status === 200, "webhook answered " + response.status);
}

async function main() {
  const browser = await chromium.launch({
    executablePath: process.env.SWITCHBOARD_CHROMIUM,
    args: ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
      "--disable-component-update", "--disable-sync", "--no-first-run"],
  });
  const result = {};
  let page = null;
  try {
    const context = await browser.newContext({ locale: "en-US", viewport: { width: 1280, height: 800 } });
    page = await context.newPage();
    const violations = [];
    // Errors and CSP violations; failed loads are checked by URL below.
    page.on("console", (message) => {
      if (message.type() === "error" && !message.text().startsWith("Failed to load resource")) {
        violations.push(message.text());
      }
    });
    const failed = [];
    page.on("response", (response) => {
      if (response.status() >= 400) failed.push(response.status() + " " + response.url());
    });
    page.on("pageerror", (error) => violations.push(String(error)));

    // First load: what crosses the wire before signing in.
    const loaded = [];
    page.on("requestfinished", (request) => loaded.push(request));
    const response = await page.goto(base + "/console", { waitUntil: "networkidle" });
    check(response.status() === 200, "GET /console answered " + response.status());
    const csp = response.headers()["content-security-policy"] || "";
    check(csp.includes("script-src 'self'") && !csp.includes("unsafe-inline"), "CSP without inline script: " + csp);
    let weight = 0;
    for (const request of loaded) {
      const sizes = await request.sizes();
      weight += sizes.responseBodySize + sizes.responseHeadersSize + sizes.requestHeadersSize;
      check(request.url().startsWith(base), "only our own origin is asked: " + request.url());
    }
    result.first_load_requests = loaded.length;
    result.first_load_bytes = weight;

    // Sign in: the token goes in a password field and stays in memory.
    await page.fill("#token", token);
    await page.click("#sign-in button[type=submit]");
    await page.waitForSelector("#queue:not([hidden])", { timeout: 5000 });
    check(!page.url().includes(token), "the token is not in the URL");
    check((await page.textContent("#who")).trim() === "lee", "signed in as lee");
    check(await page.isVisible("#report") && await page.getAttribute("#report", "href") === "/reports/switchboard.html",
      "the Report link from server.report_url");

    // An escalation by signed webhook reaches the open queue within 5 s.
    let started = Date.now();
    await postWebhook(webhooks.regular);
    await page.waitForSelector(`#queue-rows tr[data-key="${regularKey}"]`, { timeout: 5000 });
    result.regular_listed_ms = Date.now() - started;

    // A VIP, newer, goes above the older regular.
    started = Date.now();
    await postWebhook(webhooks.vip);
    await page.waitForSelector(`#queue-rows tr[data-key="${vipKey}"]`, { timeout: 5000 });
    result.vip_listed_ms = Date.now() - started;
    const order = await page.$$eval("#queue-rows tr", (rows) => rows.map((row) => row.dataset.key));
    check(order.indexOf(vipKey) === 0 && order.indexOf(regularKey) === 1, "VIP first, then the regular: " + order);
    const vipRow = await page.$$eval(`#queue-rows tr[data-key="${vipKey}"] td`, (cells) => cells.map((c) => c.textContent));
    check(vipRow[0] === "VIP" && vipRow[1] === "telegram", "tier and channel shown: " + vipRow);
    check(/due in|breached/.test(vipRow[6]), "SLA countdown shown: " + vipRow[6]);
    await page.screenshot({ path: path.join(shots, "queue.png"), fullPage: true });

    // The customer's <script> is text: in the queue preview and the transcript.
    await page.click(`#queue-rows tr[data-key="${vipKey}"]`);
    await page.waitForSelector("#transcript li.customer", { timeout: 5000 });
    const customerText = await page.textContent("#transcript li.customer .text");
    check(customerText.includes("<script>"), "the customer's <script> shows as text: " + customerText);
    check(await page.evaluate(() => window.pwned === undefined), "the customer's script did not run");
    check((await page.$$("#transcript script, #queue-rows script")) .length === 0, "no script element from a message");

    // Claim, then reply; the delivery state goes to delivered.
    await page.click("#claim");
    await waitFor(page, () => document.querySelector("#conv-facts") &&
      document.querySelector("#conv-facts").textContent.includes("lee"), null, 5000);
    const replies = [];
    page.on("request", (request) => {
      if (request.method() === "POST" && request.url().endsWith("/reply")) replies.push(request);
    });
    // The FAQ answers considered at the hand-over: Use puts one in the reply box.
    const candidates = await page.$$eval("#candidates li .text", (items) => items.map((item) => item.textContent));
    check(candidates.length >= 1, "FAQ candidates shown");
    await page.click("#candidates li button");
    check(await page.inputValue("#reply") === candidates[0], "Use starts the reply from the answer");
    await page.fill("#reply", replyText);
    await page.click("#send");
    await waitFor(page, (text) => [...document.querySelectorAll("#transcript li.agent")]
      .some((li) => li.querySelector(".text").textContent.includes(text) &&
        li.querySelector(".delivery-delivered")), replyText, 15000);
    check(replies.length === 1, "one reply request: " + replies.length);
    const sent = replies[0].headers();
    check(/^[0-9a-f-]{36}$/.test(sent["idempotency-key"] || ""), "the reply carries an Idempotency-Key");
    check((sent["x-csrf-token"] || "").length === 64, "the reply carries the CSRF token");

    // The same request again (a retry after a lost answer) sends nothing more.
    const again = await page.evaluate(async ([route, headers, body]) => {
      const response = await fetch(route, { method: "POST", headers, body });
      return response.status;
    }, [replies[0].url(), {
      Authorization: sent["authorization"], "Idempotency-Key": sent["idempotency-key"],
      "X-CSRF-Token": sent["x-csrf-token"], "Content-Type": "application/json",
    }, replies[0].postData()]);
    check(again === 202, "a repeated reply answers 202: " + again);
    await page.screenshot({ path: path.join(shots, "conversation.png"), fullPage: true });

    // Without the CSRF token, a change from the page is refused (and changes nothing).
    const refused = await page.evaluate(async ([route, authorization]) => {
      const response = await fetch(route, {
        method: "POST", headers: { Authorization: authorization, "Content-Type": "application/json" }, body: "{}",
      });
      return { status: response.status, body: await response.json() };
    }, [base + "/api/conversations/" + encodeURIComponent(vipKey) + "/resolve", sent["authorization"]]);
    check(refused.status === 403 && refused.body.error === "csrf", "no CSRF token, refused: " + JSON.stringify(refused));
    const still = await page.evaluate(async ([route, authorization]) =>
      (await (await fetch(route, { headers: { Authorization: authorization } })).json()).status,
    [base + "/api/conversations/" + encodeURIComponent(vipKey), sent["authorization"]]);
    check(still === "escalated", "the refused call changed nothing: " + still);

    // Resolve: back to the queue, without the conversation.
    await page.click("#resolve");
    await page.waitForSelector("#queue:not([hidden])", { timeout: 5000 });
    await waitFor(page, (key) => !document.querySelector(`#queue-rows tr[data-key="${key}"]`) &&
      document.querySelector("#queue-rows tr"), vipKey, 5000);

    // The bot's answer in the regular's transcript, with its FAQ entry and confidence.
    await page.click(`#queue-rows tr[data-key="${regularKey}"]`);
    await waitFor(page, () => [...document.querySelectorAll("#transcript li.bot .meta")]
      .some((meta) => /FAQ \S+ · confidence [01]\.\d\d/.test(meta.textContent)), null, 5000);

    // The customer's earlier conversation (a group chat) is listed; it opens,
    // and lists this one in turn.
    const earlierLink = `#earlier a[data-key="${earlierKey}"]`;
    await page.waitForSelector(earlierLink, { timeout: 5000 });
    check((await page.textContent(earlierLink)) === earlierText, "listed by its first line");
    check((await page.$$("#earlier li")).length === 1, "only the customer's other conversation is listed");
    check((await page.textContent("#earlier li .meta")).includes("resolved"), "shown as resolved");
    await page.screenshot({ path: path.join(shots, "earlier.png"), fullPage: true });
    check(await page.isHidden("#no-earlier"), "no 'no other conversations' note beside the list");
    await page.click(earlierLink);
    await waitFor(page, (text) => [...document.querySelectorAll("#transcript li.customer .text")]
      .some((node) => node.textContent === text), earlierText, 5000);
    await page.waitForSelector(`#earlier a[data-key="${regularKey}"]`, { timeout: 5000 });
    await page.click("#back");
    await page.waitForSelector("#queue:not([hidden])", { timeout: 5000 });

    // Chinese, switched from the page.
    await page.click("#language");
    check((await page.textContent("#queue h1")).includes("等待中的客户"), "the queue in Chinese");
    check(await page.evaluate(() => document.documentElement.lang) === "zh-CN", "lang zh-CN");
    await page.click("#language");

    // 1,000 waiting conversations: the list as the server would send it, timed in the page.
    const now = Date.now();
    const many = Array.from({ length: 1000 }, (_, i) => ({
      key: "telegram:bot:" + (100000 + i), channel: "telegram", customer: "telegram:" + (100000 + i),
      tier: i % 10 === 0 ? "vip" : "regular", reason: "no_confident_match", priority: i % 10 === 0,
      handed_over_at_ms: now - 60000 * (i + 1), waiting_ms: 60000 * (i + 1),
      first_response_due_ms: now - 60000 * (i + 1) + 900000, claimed_by: null,
      preview: "Where is my order number " + i + "? <b>bold</b>", language: "en",
    }));
    const listBody = JSON.stringify({ conversations: many, total: 1000 });
    result.thousand_list_bytes = listBody.length;
    await page.route("**/api/conversations?*", (route) =>
      route.fulfill({ status: 200, contentType: "application/json", body: listBody }));
    await waitFor(page, () => document.querySelectorAll("#queue-rows tr").length === 1000, null, 10000);
    // Renders after the next poll, then again: the second figure is the steady state.
    const renders = [];
    for (let i = 0; i < 3; i++) {
      await page.evaluate(() => { delete document.body.dataset.renderMs; });
      await waitFor(page, () => document.body.dataset.renderMs !== undefined, null, 10000);
      renders.push(Number(await page.evaluate(() => document.body.dataset.renderMs)));
    }
    result.thousand_render_ms = renders;
    const ticks = [];
    for (let i = 0; i < 3; i++) {
      await page.evaluate(() => { delete document.body.dataset.tickMs; });
      await waitFor(page, () => document.body.dataset.tickMs !== undefined, null, 5000);
      ticks.push(Number(await page.evaluate(() => document.body.dataset.tickMs)));
    }
    result.thousand_tick_ms = ticks;
    // Past the first-response deadline: red; before it: not.
    const slaColours = await page.$$eval("#queue-rows td.sla", (cells) => cells.map((cell) =>
      [cell.classList.contains("breached"), getComputedStyle(cell).color, cell.textContent]));
    check(!slaColours[0][0] && slaColours[0][2].startsWith("due in"), "due in 14 min, not breached: " + slaColours[0]);
    check(slaColours[999][0] && slaColours[999][1] === "rgb(204, 0, 0)" && slaColours[999][2].startsWith("breached"),
      "breached in red: " + slaColours[999]);
    result.thousand_rows_bold_tags = await page.$$eval("#queue-rows b", (bold) => bold.length);
    check(result.thousand_rows_bold_tags === 0, "previews are text");

    check(violations.length === 0, "no errors or CSP violations in the page: " + violations.join(" | "));
    // The one refusal is the call made without the CSRF token.
    check(failed.length === 1 && failed[0].startsWith("403 ") && failed[0].endsWith("/resolve"),
      "no other failed request: " + failed.join(" | "));
  } catch (error) {
    if (page) {
      await page.screenshot({ path: path.join(shots, "failure.png"), fullPage: true }).catch(() => {});
      const state = await page.evaluate(() => ({
        status: (document.getElementById("conv-status") || {}).textContent,
        queueStatus: (document.getElementById("queue-status") || {}).textContent,
        transcript: [...document.querySelectorAll("#transcript li")].map((li) => li.className + ": " + li.textContent),
      })).catch(() => null);
      console.error("page state: " + JSON.stringify(state));
    }
    throw error;
  } finally {
    await browser.close();
  }
  console.log("RESULT " + JSON.stringify(result));
}

main().catch((error) => {
  console.error(error && error.stack ? error.stack : String(error));
  process.exit(1);
});
