#!/usr/bin/env bash
# Regenerates the screenshots of report.html's views (docs/report_<view>.png, README.md and
# docs/views.md): runs examples/curve.json (ASHA over tune-example-curve, 40 trials, about half a
# minute) and shoots each view of the report it leaves with headless Chromium (reporters/web's
# playwright-core, Debian's /usr/bin/chromium); then a two-objective variant of it (loss min,
# epochs max, FIFO) for the Pareto front view (docs/report_pareto.png).
#   bash scripts/screenshots.sh [BUILD_DIR]     (default: build; TUNE=path/to/tune overrides)
set -euo pipefail
cd "$(dirname "$0")/.."
build=${1:-build}
tune=${TUNE:-$build/bin/tune}
storage=$(mktemp -d)
trap 'rm -rf "$storage"' EXIT
"$tune" run examples/curve.json --storage "$storage" --name screenshots --cpus 4 \
  trainer.sleep_ms=20 >/dev/null
node -e '
const spec = JSON.parse(require("fs").readFileSync("examples/curve.json", "utf8"));
Object.assign(spec, { name: "pareto", metric: ["loss", "epoch"], mode: ["min", "max"], num_samples: 30,
                      scheduler: { type: "fifo" } });
spec.space.max_epochs = { randint: [1, 28] };
spec.trainer.sleep_ms = 5;
require("fs").writeFileSync(process.argv[1], JSON.stringify(spec));' "$storage/pareto.json"
"$tune" run "$storage/pareto.json" --storage "$storage" --cpus 4 >/dev/null
REPORT="$storage/screenshots/report.html" PARETO="$storage/pareto/report.html" OUT_DIR="$PWD/docs" \
  node --input-type=module <<'JS'
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
await page.goto('file://' + process.env.PARETO);
await page.waitForFunction(() => window.tuneReport && window.tuneReport.renders() > 0);
await page.waitForTimeout(300);
await page.locator('#sec-pareto').screenshot({ path: `${process.env.OUT_DIR}/report_pareto.png` });
console.log('docs/report_pareto.png');
await browser.close();
JS
