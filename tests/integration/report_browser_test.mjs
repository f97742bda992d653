// Browser test of the live dashboard and report.html (issue 13, part 6): headless Chromium
// (Debian's /usr/bin/chromium, driven by playwright-core from reporters/web; no browser download)
// against a live `tune run --dashboard` and against the report.html it leaves.
//
//   node tests/integration/report_browser_test.mjs --tune build/bin/tune --source .
// Checks: the live page loads without console errors and updates when a report arrives; the
// finished report.html loads without console errors (and without network requests), draws one
// curve per trial with results, a pruned (STOPPED) trial's curve ends at one of the rungs, at its
// last reported epoch, and shows best_trial.json's trial as the best; its timeline has a row per
// concurrent slot. A two-objective run's report.html draws the Pareto view: one point per trial
// with every objective, the front's points exactly pareto_front.json's trials.
// Exit status 0 passed, 1 failed, 77 skipped (no Chromium or playwright-core, and CI != "true").
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { createRequire } from 'node:module';

const args = Object.fromEntries(process.argv.slice(2).reduce((pairs, arg, i, all) =>
  (arg.startsWith('--') ? pairs.concat([[arg.slice(2), all[i + 1]]]) : pairs), []));
const source = path.resolve(args.source || '.');
const tune = path.resolve(args.tune || path.join(source, 'build/bin/tune'));
const chromiumPath = args.chromium || '/usr/bin/chromium';

function skip(reason) {
  if (process.env.CI === 'true') { console.error('FAILED: ' + reason); process.exit(1); }
  console.log('skipped: ' + reason);
  process.exit(77);
}
let chromium;
try {
  const require = createRequire(path.join(source, 'reporters/web/package.json'));
  ({ chromium } = require('playwright-core'));
} catch (e) { skip('playwright-core is not installed (scripts/setup.sh runs npm ci in reporters/web)'); }
if (!fs.existsSync(chromiumPath)) skip(chromiumPath + ' is missing (scripts/setup.sh installs chromium)');

let failures = 0;
function check(ok, what) {
  console.log((ok ? 'ok   ' : 'FAIL ') + what);
  if (!ok) failures++;
}
async function waitFor(page, fn, arg, timeoutMs, what) {
  try {
    await page.waitForFunction(fn, arg, { timeout: timeoutMs, polling: 100 });
    return true;
  } catch (e) { check(false, what + ' (timed out)'); return false; }
}
function watchConsole(page, errors) {
  page.on('console', m => { if (m.type() === 'error') errors.push(m.text()); });
  page.on('pageerror', e => errors.push(String(e)));
}

const storage = fs.mkdtempSync(path.join(os.tmpdir(), 'tune-browser-'));
const browser = await chromium.launch({ executablePath: chromiumPath, args: ['--no-sandbox'] });
try {
  // 1. Live: 8 ASHA trials of 9 epochs, 2 at a time, 400 ms per epoch (about 8 s). Each trial
  // waits for the file `go` before it starts (sh, then exec), and the test makes it only once the
  // live page is connected: the page must see reports arrive, however long it took to load (under
  // load the whole run once ended before the page had loaded, and the check raced the run).
  const go = path.join(storage, 'go');
  const heldSpec = JSON.parse(fs.readFileSync(path.join(source, 'examples/curve.json'), 'utf8'));
  heldSpec.trainer.command = ['sh', '-c', 'while [ ! -e "$1" ]; do sleep 0.05; done; exec "$0"',
    heldSpec.trainer.command[0], go];
  const heldPath = path.join(storage, 'curve_held.json');
  fs.writeFileSync(heldPath, JSON.stringify(heldSpec));
  const run = spawn(tune, [
    'run', heldPath, '--storage', storage, '--name', 'live', '--cpus', '1',
    '--dashboard', '127.0.0.1:0', 'num_samples=8', 'max_concurrent=2', 'scheduler.max_t=9',
    'trainer.max_epochs=9', 'trainer.sleep_ms=400'], { env: { ...process.env, PATH: path.dirname(tune) + ':' + process.env.PATH } });
  let output = '';
  const exited = new Promise(resolve => run.on('exit', code => resolve(code)));
  const url = await new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error('no "Dashboard:" line in 30 s:\n' + output)), 30000);
    const onData = d => {
      output += d;
      const m = output.match(/Dashboard: (http:\/\/\S+)/);
      if (m) { clearTimeout(timer); resolve(m[1]); }
    };
    run.stdout.on('data', onData);
    run.stderr.on('data', d => { output += d; });
  });
  check(url.startsWith('http://127.0.0.1:'), 'tune run --dashboard prints a loopback URL: ' + url);
  const live = await browser.newPage();
  const liveErrors = [];
  watchConsole(live, liveErrors);
  await live.goto(url);
  // Connected: the event stream's first message (the whole experiment so far) has been drawn.
  if (await waitFor(live, () => window.tuneReport && window.tuneReport.renders() > 0, null, 60000, 'the live page connects')) {
    const before = await live.evaluate(() => window.tuneReport.reports());
    check(before === 0, `the trials were held back until the page connected: ${before} reports shown`);
    fs.writeFileSync(go, '');
    await waitFor(live, n => window.tuneReport.reports() > n, before, 60000, 'the live page updates when a report arrives');
    const after = await live.evaluate(() => window.tuneReport.reports());
    check(after > before, `the live page updated by itself: ${before} -> ${after} reports shown`);
  }
  fs.writeFileSync(go, '');  // whatever happened above: let the run finish
  const code = await exited;
  check(code === 0, 'tune run exited 0 (got ' + code + ')');
  check(liveErrors.length === 0, 'the live page logged no console errors ' + JSON.stringify(liveErrors));
  await live.close();

  // 2. The report it left.
  const dir = path.join(storage, 'live');
  const reportPath = path.join(dir, 'report.html');
  check(fs.existsSync(reportPath), 'report.html written');
  const withResults = [];
  const lastEpoch = {};
  for (const entry of fs.readdirSync(dir)) {
    const file = path.join(dir, entry, 'result.json');
    if (!fs.existsSync(file)) continue;
    const lines = fs.readFileSync(file, 'utf8').split('\n').filter(Boolean);
    if (lines.length) { withResults.push(entry); lastEpoch[entry] = JSON.parse(lines[lines.length - 1]).epoch; }
  }
  const stopped = fs.readFileSync(path.join(dir, 'journal.jsonl'), 'utf8').split('\n').filter(Boolean)
    .map(l => JSON.parse(l)).filter(e => e.event === 'trial_ended' && e.status === 'STOPPED').map(e => e.trial_id);
  const best = JSON.parse(fs.readFileSync(path.join(dir, 'best_trial.json'), 'utf8'));

  const page = await browser.newPage();
  const errors = [];
  const requests = [];
  watchConsole(page, errors);
  page.on('request', r => { if (!r.url().startsWith('file:')) requests.push(r.url()); });
  await page.goto('file://' + reportPath);
  await waitFor(page, () => window.tuneReport && window.tuneReport.renders() > 0, null, 10000, 'report.html draws');
  check(errors.length === 0, 'report.html logged no console errors ' + JSON.stringify(errors));
  check(requests.length === 0, 'report.html made no network requests ' + JSON.stringify(requests));
  const curves = await page.evaluate(() => window.tuneReport.curveCount());
  const series = await page.evaluate(() => window.tuneReport.curveSeries());
  const drawnLines = series.filter(s => s.id.startsWith('curves-')).reduce((n, s) => n + s.n, 0);
  check(curves === withResults.length && drawnLines === withResults.length,
    `one curve per trial with results: ${curves} counted, ${drawnLines} in the chart, ${withResults.length} trials with result.json`);
  const rungs = await page.evaluate(() => {
    const option = echarts.getInstanceByDom(document.getElementById('chart-curves')).getOption();
    const ends = option.series.find(s => s.id === 'pruned-ends');
    return ends && ends.markLine ? ends.markLine.data.map(d => d.xAxis) : [];
  });
  check(rungs.join(',') === '1,3,9', 'the ASHA rungs are marked: ' + JSON.stringify(rungs));
  check(stopped.length > 0, 'the run pruned some trials: ' + stopped.join(' '));
  for (const id of stopped) {
    const end = await page.evaluate(t => window.tuneReport.curveEnd(t), id);
    check(end && rungs.includes(end[0]) && end[0] === lastEpoch[id],
      `pruned ${id}'s curve ends at a rung, at its last epoch: ${JSON.stringify(end)} (last epoch ${lastEpoch[id]})`);
  }
  const shownBest = await page.evaluate(() => window.tuneReport.bestId());
  check(shownBest === best.trial_id, `the best trial shown (${shownBest}) is best_trial.json's (${best.trial_id})`);
  const config = JSON.parse(await page.textContent('#best-config'));
  check(JSON.stringify(config) === JSON.stringify(best.config), 'its config, ready to copy, is best_trial.json\'s');
  // Sorting the table by the metric puts the best trial first (mode min: ascending).
  await page.click('#trials th[data-key="last"]');
  await page.click('#trials th[data-key="last"]');
  const first = await page.evaluate(() => document.querySelector('#trials tbody tr').dataset.id);
  check(first === best.trial_id, `sorted by the metric (twice: back to ascending), the table starts with the best trial (${first})`);
  await page.click('#trials th[data-key="last"]');
  const firstDesc = await page.evaluate(() => document.querySelector('#trials tbody tr').dataset.id);
  check(firstDesc !== best.trial_id, 'sorted the other way, it does not');
  const timeline = await page.evaluate(() => window.tuneReport.timeline());
  check(timeline && JSON.stringify(timeline.rows) === JSON.stringify(['slot 0', 'slot 1']) && timeline.spans >= withResults.length,
    'the timeline has one row per concurrent slot and every run on it: ' + JSON.stringify(timeline));
  check(await page.evaluate(() => window.tuneReport.paretoPoints()) === null &&
        await page.isHidden('#sec-pareto'), 'one objective: no Pareto view');
  await page.close();

  // 3. Two objectives (loss min, epochs max: short trials can have the lowest loss), FIFO.
  const spec = JSON.parse(fs.readFileSync(path.join(source, 'examples/curve.json'), 'utf8'));
  Object.assign(spec, { name: 'mo', metric: ['loss', 'epoch'], mode: ['min', 'max'], num_samples: 10,
                        max_concurrent: 2, scheduler: { type: 'fifo' } });
  spec.space.max_epochs = { randint: [1, 6] };
  spec.trainer.sleep_ms = 5;
  spec.trainer.noise = 0;
  const specPath = path.join(storage, 'mo.json');
  fs.writeFileSync(specPath, JSON.stringify(spec));
  const mo = spawn(tune, ['run', specPath, '--storage', storage, '--cpus', '1'],
    { env: { ...process.env, PATH: path.dirname(tune) + ':' + process.env.PATH }, stdio: 'ignore' });
  const moCode = await new Promise(resolve => mo.on('exit', code => resolve(code)));
  check(moCode === 0, 'the two-objective run exited 0 (got ' + moCode + ')');
  const moDir = path.join(storage, 'mo');
  let complete = 0;
  for (const entry of fs.readdirSync(moDir)) {
    const file = path.join(moDir, entry, 'result.json');
    if (!fs.existsSync(file)) continue;
    const lines = fs.readFileSync(file, 'utf8').split('\n').filter(Boolean);
    if (!lines.length) continue;
    const last = JSON.parse(lines[lines.length - 1]);
    if (typeof last.loss === 'number' && typeof last.epoch === 'number') complete++;
  }
  const front = JSON.parse(fs.readFileSync(path.join(moDir, 'pareto_front.json'), 'utf8')).pareto_front.map(t => t.trial_id).sort();
  const moPage = await browser.newPage();
  const moErrors = [];
  watchConsole(moPage, moErrors);
  await moPage.goto('file://' + path.join(moDir, 'report.html'));
  await waitFor(moPage, () => window.tuneReport && window.tuneReport.renders() > 0, null, 10000, 'the two-objective report.html draws');
  check(moErrors.length === 0, 'the two-objective report.html logged no console errors ' + JSON.stringify(moErrors));
  check(await moPage.isVisible('#sec-pareto'), 'two objectives: the Pareto view is shown');
  const pareto = await moPage.evaluate(() => window.tuneReport.paretoPoints());
  const paretoSeries = await moPage.evaluate(() => window.tuneReport.paretoSeries());
  const n = id => (paretoSeries.find(s => s.id === id) || { n: -1 }).n;
  check(pareto && pareto.points === complete && n('pareto-front') + n('pareto-dominated') === complete,
    `one point per trial with both objectives: ${pareto && pareto.points} counted, ${n('pareto-front')} + ${n('pareto-dominated')} in the chart, ${complete} trials`);
  check(front.length >= 2 && pareto && JSON.stringify(pareto.front.slice().sort()) === JSON.stringify(front) && n('pareto-front') === front.length,
    `the front's points are pareto_front.json's trials: ${JSON.stringify(pareto && pareto.front)} vs ${JSON.stringify(front)}`);
  const rankCells = await moPage.evaluate(() => {
    const head = [...document.querySelectorAll('#trials thead th')].map(th => th.dataset.key);
    const at = head.indexOf('rank');
    return at < 0 ? null : [...document.querySelectorAll('#trials tbody tr')].filter(tr => tr.children[at].textContent === '0').map(tr => tr.dataset.id).sort();
  });
  check(JSON.stringify(rankCells) === JSON.stringify(front), 'the table\'s pareto rank is 0 exactly for the front: ' + JSON.stringify(rankCells));
} catch (e) {
  check(false, 'exception: ' + (e && e.stack || e));
} finally {
  await browser.close();
  fs.rmSync(storage, { recursive: true, force: true });
}
console.log(failures ? `${failures} check(s) failed` : 'all checks passed');
process.exit(failures ? 1 : 0);
