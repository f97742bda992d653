#!/usr/bin/env bash
# Regenerates the README's screenshots of report.html's views (docs/report_<view>.png): runs
# examples/curve.json (ASHA over tune-example-curve, 40 trials, about half a minute) and shoots each
# view of the report it leaves with headless Chromium (reporters/web's playwright-core, Debian's
# /usr/bin/chromium).
#   bash scripts/screenshots.sh [BUILD_DIR]     (default: build; TUNE=path/to/tune overrides)
set -euo pipefail
cd "$(dirname "$0")/.."
build=${1:-build}
tune=${TUNE:-$build/bin/tune}
storage=$(mktemp -d)
trap 'rm -rf "$storage"' EXIT
"$tune" run examples/curve.json --storage "$storage" --name screenshots --cpus 4 \
  trainer.sleep_ms=20 >/dev/null
REPORT="$storage/screenshots/report.html" OUT_DIR="$PWD/docs" node --input-type=module <<'JS'
import { createRequire } from 'node:module';
const { chromium } = createRequire(process.cwd() + '/reporters/web/package.json')('playwright-core');
const browser = await chromium.launch({ executablePath: '/usr/bin/chromium', args: ['--no-sandbox'] });
const page = await browser.newPage({ viewport: { width: 1280, height: 900 }, deviceScaleFactor: 1 });
await page.goto('file://' + process.env.REPORT);
await page.waitForFunction(() => window.tuneReport && window.tuneReport.renders() > 0);
await page.waitForTimeout(300);
const views = { curves: '#sec-curves', best: '#sec-best', importance: '#sec-importance',
                parallel: '#sec-parallel', scatter: '#sec-scatter', timeline: '#sec-timeline',
                table: '#sec-table' };
for (const [name, selector] of Object.entries(views)) {
  await page.locator(selector).screenshot({ path: `${process.env.OUT_DIR}/report_${name}.png` });
  console.log(`docs/report_${name}.png`);
}
await browser.close();
JS
