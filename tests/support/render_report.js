// Renders the HTML report in headless Chromium and checks it: no console
// error, no page error, no request leaving the page, every named section
// present and drawn. Prints one JSON line; exit 1 when a check fails.
//
//   node render_report.js PAGE.html SCREENSHOT.png section-id...
//
// SWITCHBOARD_CHROMIUM: the browser; SWITCHBOARD_PLAYWRIGHT: playwright-core.
'use strict';

const path = require('path');
const { chromium } = require(process.env.SWITCHBOARD_PLAYWRIGHT);

async function main() {
  const [page_path, screenshot, ...sections] = process.argv.slice(2);
  const problems = [];
  const browser = await chromium.launch({
    executablePath: process.env.SWITCHBOARD_CHROMIUM,
    args: [
      '--no-sandbox', '--disable-gpu', '--disable-background-networking',
      '--disable-component-update', '--disable-sync', '--no-first-run',
    ],
  });
  try {
    const page = await browser.newPage({ viewport: { width: 1280, height: 900 } });
    page.on('console', (message) => {
      if (message.type() === 'error') problems.push(`console error: ${message.text()}`);
    });
    page.on('pageerror', (error) => problems.push(`page error: ${error.message}`));
    const url = 'file://' + path.resolve(page_path);
    page.on('request', (request) => {
      if (request.url() !== url) problems.push(`request: ${request.url()}`);
    });
    await page.goto(url, { waitUntil: 'load' });
    const found = {};
    for (const id of sections) {
      const section = page.locator(`section#${id}`);
      if ((await section.count()) !== 1) {
        problems.push(`section ${id} missing`);
        continue;
      }
      const box = await section.boundingBox();
      const heading = (await section.locator('h2').textContent()) || '';
      const charts = await section.locator('svg').count();
      if (!box || box.width < 100 || box.height < 40) problems.push(`section ${id} not drawn`);
      if (!heading.trim()) problems.push(`section ${id} has no heading`);
      found[id] = { heading: heading.trim(), charts, height: box ? Math.round(box.height) : 0 };
    }
    const scripts = await page.locator('script').count();
    if (scripts > 0) problems.push(`${scripts} script element(s)`);
    await page.screenshot({ path: screenshot, fullPage: true });
    console.log(JSON.stringify({ ok: problems.length === 0, problems, sections: found }));
  } finally {
    await browser.close();
  }
  process.exit(problems.length === 0 ? 0 : 1);
}

main().catch((error) => {
  console.log(JSON.stringify({ ok: false, problems: [String(error && error.stack || error)] }));
  process.exit(1);
});
