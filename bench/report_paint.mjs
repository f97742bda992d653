// Times a report.html in headless Chromium (Debian's /usr/bin/chromium through reporters/web's
// playwright-core): navigation start to first contentful paint, and to every chart drawn
// (window.tuneReport.renderedAt), and to the learning curves drawn, the first chart. Median of --runs fresh pages (default 5).
//   node bench/report_paint.mjs REPORT.html [--runs 5]
import fs from 'node:fs';
import path from 'node:path';
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';

const file = path.resolve(process.argv[2]);
const runsAt = process.argv.indexOf('--runs');
const runs = runsAt > 0 ? Number(process.argv[runsAt + 1]) : 5;
const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const { chromium } = createRequire(path.join(root, 'reporters/web/package.json'))('playwright-core');
const browser = await chromium.launch({ executablePath: '/usr/bin/chromium', args: ['--no-sandbox'] });
const median = xs => xs.slice().sort((a, b) => a - b)[Math.floor(xs.length / 2)];
const fcp = [], curves = [], drawn = [], errors = [];
for (let i = 0; i < runs; i++) {
  const page = await browser.newPage({ viewport: { width: 1400, height: 900 } });
  page.on('pageerror', e => errors.push(String(e)));
  page.on('console', m => { if (m.type() === 'error') errors.push(m.text()); });
  await page.goto('file://' + file, { waitUntil: 'load', timeout: 60000 });
  await page.waitForFunction(() => window.tuneReport && window.tuneReport.renders() > 0, null, { timeout: 60000 });
  const t = await page.evaluate(() => ({
    fcp: (performance.getEntriesByName('first-contentful-paint')[0] || {}).startTime,
    drawn: window.tuneReport.renderedAt(),
    curvesAt: window.tuneReport.curvesAt(),
    curves: window.tuneReport.curveCount(),
    steps: window.tuneReport.stepMs(),
  }));
  fcp.push(t.fcp);
  drawn.push(t.drawn);
  curves.push(t.curvesAt);
  if (i === 0) console.log(`${path.basename(file)}: ${(fs.statSync(file).size / 1e6).toFixed(2)} MB, ${t.curves} curves drawn`);
  console.log('  ms per view: ' + JSON.stringify(t.steps));
  await page.close();
}
await browser.close();
console.log(`first contentful paint: median ${median(fcp).toFixed(0)} ms (${fcp.map(x => x.toFixed(0)).join(', ')})`);
console.log(`curves drawn:           median ${median(curves).toFixed(0)} ms (${curves.map(x => x.toFixed(0)).join(', ')})`);
console.log(`every chart drawn:      median ${median(drawn).toFixed(0)} ms (${drawn.map(x => x.toFixed(0)).join(', ')})`);
if (errors.length) { console.log('console errors: ' + errors.join(' | ')); process.exit(1); }
