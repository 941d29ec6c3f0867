// What the browser tests (dashboard.mjs, review.mjs) share: the one-JSON-
// line-each-way exchange with the Go test that runs them, and Chromium's
// launch and the report at the end.

import { chromium } from 'playwright-core';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import readline from 'node:readline';

const replies = readline.createInterface({ input: process.stdin })[Symbol.asyncIterator]();

// ask sends the Go test a request (one JSON line on stdout) and returns
// its reply (one JSON line on stdin).
export async function ask(req) {
  process.stdout.write(JSON.stringify(req) + '\n');
  const { value, done } = await replies.next();
  if (done) throw new Error(`no reply to ${req.op}`);
  return JSON.parse(value);
}

export function check(cond, msg) { if (!cond) throw new Error(msg); }

// run launches Chromium (CODITECT_CHROMIUM) with a fresh profile, runs
// body(context) and reports: result (op "done") to the Go test when body
// succeeded and errors, the console errors the script collected, is
// empty; otherwise the failure on stderr and exit status 1. It ends the
// process, whose stdin stays open.
export async function run(name, result, errors, body) {
  const profile = mkdtempSync(join(tmpdir(), 'coditect-chromium-'));
  const context = await chromium.launchPersistentContext(profile, {
    executablePath: process.env.CODITECT_CHROMIUM || '/usr/bin/chromium',
    headless: true,
    args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking',
      '--disable-component-update', '--disable-sync'],
    viewport: { width: 1280, height: 800 },
    colorScheme: 'light',
  });
  try {
    await body(context);
    check(errors.length === 0, `console errors:\n${errors.join('\n')}`);
  } catch (err) {
    console.error(`[${name}]`, err.stack || String(err));
    if (errors.length) console.error(`[${name}]`, 'console errors:\n' + errors.join('\n'));
    process.exitCode = 1;
  } finally {
    await context.close();
    rmSync(profile, { recursive: true, force: true });
  }
  if (!process.exitCode) await ask(result);
  process.exit();
}
