// Browser test of the Bulwark dashboard, in Debian's headless Chromium
// driven by playwright-core. It signs in with the admin token, waits for
// the inventory to fill, opens an endpoint, the findings and a finding,
// the overview with its traffic chart and the config; it checks that the
// pages work without JavaScript, and fails if the page requests anything
// from a host other than the admin listener or violates its CSP.
//
// Target: BULWARK_READY_FILE (JSON {admin, admin_token, gateway}, written
// by `bulwark demo --ready FILE`), or BULWARK_ADMIN_URL and
// BULWARK_ADMIN_TOKEN. Only loopback targets are accepted.
//
// Run: ./run.sh (see README.md). Screenshots go to artifacts/.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';

const here = dirname(fileURLToPath(import.meta.url));
const artifacts = join(here, 'artifacts');
const executablePath = process.env.CHROMIUM_PATH || '/usr/bin/chromium';
const readyTimeoutMs = Number(process.env.BULWARK_READY_TIMEOUT_MS || 60000);
const waitDataMs = Number(process.env.BULWARK_WAIT_DATA_MS || 30000);
const stepTimeout = waitDataMs + 60000;

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

// isLoopback accepts 127.0.0.0/8, ::1 and localhost.
function isLoopback(hostname) {
  const h = hostname.replace(/^\[|\]$/g, '');
  return h === 'localhost' || h === '::1' || /^127(\.\d{1,3}){3}$/.test(h);
}

// target reads the admin URL and token, waiting for the ready file.
async function target() {
  let admin = process.env.BULWARK_ADMIN_URL;
  let token = process.env.BULWARK_ADMIN_TOKEN;
  const file = process.env.BULWARK_READY_FILE;
  if ((!admin || !token) && file) {
    const deadline = Date.now() + readyTimeoutMs;
    while (!existsSync(file)) {
      if (Date.now() > deadline) {
        throw new Error(`ready file ${file} did not appear within ${readyTimeoutMs} ms`);
      }
      await sleep(250);
    }
    let ready;
    for (;;) {
      try {
        ready = JSON.parse(readFileSync(file, 'utf8'));
        break;
      } catch (err) {
        if (Date.now() > deadline) throw new Error(`ready file ${file} is not JSON: ${err.message}`);
        await sleep(250); // being written
      }
    }
    admin = admin || ready.admin;
    token = token || ready.admin_token;
  }
  if (!admin || !token) {
    throw new Error('set BULWARK_READY_FILE, or BULWARK_ADMIN_URL and BULWARK_ADMIN_TOKEN');
  }
  if (!/^https?:\/\//.test(admin)) admin = `http://${admin}`;
  const url = new URL(admin);
  if (!isLoopback(url.hostname)) {
    throw new Error(`refusing to test a non-loopback admin listener: ${admin}`);
  }
  return { origin: url.origin, token };
}

const state = {
  browser: null,
  context: null,
  page: null,
  origin: '',
  token: '',
  foreign: [], // requests to other hosts
  problems: [], // CSP violations, page errors, console errors
  failed: false,
};

// step is a test that is skipped once an earlier one failed: the later
// steps depend on the session and pages of the earlier.
function step(name, fn) {
  test(name, { timeout: stepTimeout }, async (t) => {
    if (state.failed) {
      t.skip('an earlier step failed');
      return;
    }
    try {
      await fn(t);
    } catch (err) {
      state.failed = true;
      if (state.page) {
        await state.page.screenshot({ path: join(artifacts, `failure-${name.replace(/\W+/g, '-')}.png`), fullPage: true }).catch(() => {});
      }
      throw err;
    }
  });
}

// watch records what a page asks for and complains about.
function watch(context, page, label) {
  page.on('request', (req) => {
    const u = req.url();
    if (u.startsWith('data:') || u.startsWith('about:')) return;
    let origin;
    try {
      origin = new URL(u).origin;
    } catch {
      origin = u;
    }
    if (origin !== state.origin) state.foreign.push(`${label}: ${req.method()} ${u}`);
  });
  page.on('console', (msg) => {
    // The wrong-token step's 401 is expected; any other failed load is not.
    if (/Failed to load resource: .*status of 401\b/.test(msg.text())) return;
    if (msg.type() === 'error' || /Content Security Policy/i.test(msg.text())) {
      state.problems.push(`${label} console ${msg.type()}: ${msg.text()}`);
    }
  });
  page.on('pageerror', (err) => state.problems.push(`${label} page error: ${err.message}`));
}

async function newContext(options = {}) {
  const context = await state.browser.newContext({ viewport: { width: 1366, height: 900 }, ...options });
  // Nothing may leave the admin listener: other requests are aborted
  // (and recorded by watch).
  await context.route('**/*', (route) => {
    const u = route.request().url();
    if (u.startsWith('data:') || new URL(u).origin === state.origin) return route.continue();
    return route.abort('blockedbyclient');
  });
  return context;
}

async function shot(page, name) {
  await page.screenshot({ path: join(artifacts, `${name}.png`), fullPage: true });
}

async function goto(page, path) {
  const resp = await page.goto(state.origin + path, { waitUntil: 'load' });
  assert.ok(resp, `no response for ${path}`);
  return resp;
}

// signIn submits the sign-in form of page.
async function signIn(page, token) {
  await goto(page, '/ui/login');
  await page.fill('#login-form input[name=token]', token);
  await Promise.all([page.waitForNavigation({ waitUntil: 'load' }), page.click('#login-form button[type=submit]')]);
}

// rowsWithin reloads path until selector matches at least one element,
// for up to waitDataMs; it returns the count.
async function rowsWithin(page, path, selector) {
  const deadline = Date.now() + waitDataMs;
  for (;;) {
    await goto(page, path);
    const n = await page.locator(selector).count();
    if (n > 0 || Date.now() > deadline) return n;
    await sleep(2000);
  }
}

before(async () => {
  mkdirSync(artifacts, { recursive: true });
  for (const f of readdirSync(artifacts)) {
    if (f.endsWith('.png')) rmSync(join(artifacts, f));
  }
  const t = await target();
  state.origin = t.origin;
  state.token = t.token;
  assert.ok(existsSync(executablePath), `Chromium not found at ${executablePath}: see README.md`);
  state.browser = await chromium.launch({
    executablePath,
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking'],
  });
  state.context = await newContext();
  state.page = await state.context.newPage();
  watch(state.context, state.page, 'main');
});

after(async () => {
  await state.browser?.close();
});

step('sign-in page renders', async () => {
  const page = state.page;
  const resp = await goto(page, '/ui/');
  assert.match(page.url(), /\/ui\/login$/, 'a signed-out visit goes to the sign-in page');
  const csp = resp.headers()['content-security-policy'] || '';
  assert.match(csp, /default-src 'none'/, `CSP header missing: ${csp}`);
  await page.locator('#login-form').waitFor();
  await shot(page, 'login');
});

step('a wrong token is refused', async () => {
  const page = state.page;
  await page.fill('#login-form input[name=token]', 'definitely-not-the-admin-token');
  const [resp] = await Promise.all([
    page.waitForNavigation({ waitUntil: 'load' }),
    page.click('#login-form button[type=submit]'),
  ]);
  assert.equal(resp.status(), 401, 'wrong token answers 401');
  assert.match(await page.locator('.alert').innerText(), /Wrong admin token/);
  await sleep(1100); // the sign-in throttle allows one failure per second
});

step('sign in with the admin token', async () => {
  const page = state.page;
  await signIn(page, state.token);
  if (!/\/ui\/$/.test(page.url())) {
    const why = await page.locator('.alert').innerText().catch(() => '');
    assert.fail(`sign-in failed (${page.url()}): ${why || 'no message'}`);
  }
  await page.locator('nav[aria-label=Main]').waitFor();
});

step('inventory lists endpoints', async () => {
  const page = state.page;
  const n = await rowsWithin(page, '/ui/inventory', '#inventory-table tbody tr');
  assert.ok(n > 0, `the inventory stayed empty for ${waitDataMs} ms`);
  await shot(page, 'inventory');
});

step('filter form applies on change (JavaScript)', async () => {
  const page = state.page;
  await goto(page, '/ui/inventory');
  await Promise.all([
    page.waitForURL(/[?&]exposure=north-south/),
    page.selectOption('#f-exposure', 'north-south'),
  ]);
  await page.locator('#inventory-table').waitFor();
});

step('endpoint page', async () => {
  const page = state.page;
  await goto(page, '/ui/inventory');
  const link = page.locator('#inventory-table tbody tr a').first();
  const href = await link.getAttribute('href');
  assert.match(href, /^\/ui\/endpoint\//);
  await Promise.all([page.waitForNavigation({ waitUntil: 'load' }), link.click()]);
  await page.locator('#endpoint-detail').waitFor();
  assert.ok(await page.locator('#status-chart svg').count() === 1, 'status histogram SVG');
  assert.match(await page.locator('#latency-p50').innerText(), /ms|—/);
  assert.ok(await page.locator('#bodies-title').count() === 1, 'body schemas section');
  await shot(page, 'endpoint');
});

step('an endpoint shows a body schema learned from live traffic', async () => {
  const page = state.page;
  await goto(page, '/ui/inventory');
  const hrefs = await page.locator('#inventory-table tbody tr a[href^="/ui/endpoint/"]').evaluateAll(
    (as) => as.map((a) => a.getAttribute('href')));
  let rows = 0;
  for (const href of hrefs.slice(0, 30)) {
    await goto(page, href);
    rows = await page.locator('#response-schema tbody tr').count();
    if (rows > 0) break;
  }
  assert.ok(rows > 0, `no endpoint of ${hrefs.length} shows a sampled response schema`);
  await shot(page, 'endpoint-schema');
});

step('findings and a finding', async () => {
  const page = state.page;
  const n = await rowsWithin(page, '/ui/findings', '#findings-table tbody tr');
  assert.ok(n > 0, `no findings within ${waitDataMs} ms`);
  await shot(page, 'findings');
  const link = page.locator('#findings-table tbody tr a').first();
  await Promise.all([page.waitForNavigation({ waitUntil: 'load' }), link.click()]);
  await page.locator('#finding-detail').waitFor();
  await shot(page, 'finding');
});

step('overview with the traffic chart', async () => {
  const page = state.page;
  await goto(page, '/ui/');
  assert.equal(await page.locator('#traffic-chart svg').count(), 1, 'traffic chart SVG');
  const bars = await page.locator('#traffic-chart svg rect.bar').count();
  assert.ok(bars > 0, 'the traffic chart has bars');
  // The script turns bar titles into a tooltip that follows the pointer.
  await page.locator('#traffic-chart svg rect.bar').last().hover({ force: true });
  await page.locator('.chart-tip').waitFor({ state: 'visible', timeout: 5000 });
  await shot(page, 'overview');
});

step('config is shown redacted', async () => {
  const page = state.page;
  await goto(page, '/ui/config');
  const yaml = await page.locator('#config-yaml').innerText();
  assert.ok(!yaml.includes(state.token), 'the admin token is not shown');
  assert.match(yaml, /token: '\*\*\*'/);
  await shot(page, 'config');
});

step('pages work without JavaScript', async () => {
  const context = await newContext({ javaScriptEnabled: false });
  try {
    const page = await context.newPage();
    watch(context, page, 'no-js');
    await signIn(page, state.token);
    assert.match(page.url(), /\/ui\/$/);
    assert.equal(await page.locator('#traffic-chart svg').count(), 1);
    await goto(page, '/ui/inventory?status=&exposure=north-south');
    assert.ok((await page.locator('#inventory-table tbody tr').count()) > 0, 'inventory rows without JS');
    await shot(page, 'inventory-nojs');
    await goto(page, '/ui/findings');
    assert.ok((await page.locator('#findings-table tbody tr').count()) > 0, 'findings rows without JS');
  } finally {
    await context.close();
  }
});

step('sign out', async () => {
  const page = state.page;
  await goto(page, '/ui/');
  await Promise.all([page.waitForNavigation({ waitUntil: 'load' }), page.click('form.logout button')]);
  assert.match(page.url(), /\/ui\/login$/);
  await goto(page, '/ui/inventory');
  assert.match(page.url(), /\/ui\/login$/, 'signed out: pages need a new sign-in');
});

test('no request left the admin listener, no CSP violation or page error', () => {
  assert.deepEqual(state.foreign, [], `requests to other hosts:\n${state.foreign.join('\n')}`);
  assert.deepEqual(state.problems, [], `browser problems:\n${state.problems.join('\n')}`);
});
