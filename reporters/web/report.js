// Draws the views of report.html and of the live dashboard from the model that
// reporters/report_model.cc writes (a snapshot; live, then deltas over Server-Sent Events).
// window.tuneReport exposes what is drawn, for tests/integration/report_browser_test.mjs.
(function () {
  'use strict';
  const STATUS_COLORS = {
    TERMINATED: '#2e7d32', STOPPED: '#ef6c00', ERROR: '#c62828',
    RUNNING: '#1565c0', PAUSED: '#8e24aa', PENDING: '#90a4ae',
  };
  const STATUSES = Object.keys(STATUS_COLORS);
  // objective: the one best-so-far, importance, parallel coordinates and the scatters show
  // (several objectives); paretoX/paretoY: the Pareto view's axes.
  const state = { header: null, trials: new Map(), order: [], sort: { key: 'last', asc: null },
                  objective: 0, paretoX: 0, paretoY: 1 };
  const charts = {};
  const drawn = { curves: 0, version: 0, renders: 0, curveEnds: {}, pareto: null };

  function chart(id) {
    if (!charts[id]) {
      const el = document.getElementById(id);
      charts[id] = echarts.init(el, null, { renderer: 'canvas' });
    }
    return charts[id];
  }
  function fmt(v, digits) {
    if (v === null || v === undefined || Number.isNaN(v)) return '';
    if (typeof v !== 'number') return String(v);
    if (Number.isInteger(v)) return String(v);
    return Number(v.toPrecision(digits || 5)).toString();
  }
  function esc(s) {
    return String(s).replace(/[&<>"']/g, c => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' }[c]));
  }
  // Several objectives: header.pareto is set, header.objectives[k] holds objective k's metric,
  // mode and series (best so far, importance), trial.o[k] its last value, trial.rank its
  // Pareto rank. With one, objective 0 is the header's metric.
  function multi() { return !!(state.header && state.header.pareto); }
  function objectives() {
    return multi() ? state.header.objectives : [{ metric: state.header.metric, mode: state.header.mode }];
  }
  function seriesOf(k) { return k === 0 || !multi() ? state.header : state.header.objectives[k]; }
  function lastOf(t, k) { return k === 0 ? t.last : (t.o ? t.o[k] : null); }
  function fillSelects() {
    const objs = objectives();
    for (const [id, k] of [['objective', state.objective], ['pareto-x', state.paretoX], ['pareto-y', state.paretoY]]) {
      const el = document.getElementById(id);
      if (el.options.length === objs.length) continue;
      el.innerHTML = objs.map((o, i) => `<option value="${i}">${esc(o.metric)} (${esc(o.mode)})</option>`).join('');
      el.value = String(Math.min(k, objs.length - 1));
    }
  }

  function apply(data) {
    if (!data) return;
    if (!data.delta) { state.trials.clear(); state.order = []; }
    for (const t of data.trials || []) {
      if (!state.trials.has(t.id)) state.order.push(t.id);
      state.trials.set(t.id, t);
    }
    delete data.trials;
    state.header = data;
  }

  function renderHeader() {
    const h = state.header;
    document.title = 'tune: ' + h.name;
    document.getElementById('title').textContent = h.name;
    const counts = {};
    for (const t of state.trials.values()) counts[t.status] = (counts[t.status] || 0) + 1;
    const parts = STATUSES.filter(s => counts[s]).map(s => counts[s] + ' ' + s);
    for (const id of ['nav-pareto', 'objective-pick']) document.getElementById(id).classList.toggle('hidden', !multi());
    if (multi()) fillSelects();
    document.getElementById('facts').textContent =
      `${objectives().map(o => `${o.metric} (${o.mode})`).join(', ')} · ${state.trials.size} trials (${parts.join(', ')}) · ` +
      `${fmt(h.elapsed_s, 4)} s · ${h.scheduler.split('\n')[0]}`;
    const badge = document.getElementById('state');
    if (window.TUNE_LIVE) {
      badge.textContent = h.finished ? 'finished' : (drawn.lost ? 'connection lost' : 'live');
      badge.className = 'badge ' + (h.finished ? '' : drawn.lost ? 'lost' : 'live');
    } else {
      badge.textContent = h.finished ? (h.interrupted ? 'interrupted' : 'finished') : 'running (report refreshed during the run)';
    }
  }

  function renderCurves() {
    const h = state.header;
    const byStatus = {};
    for (const s of STATUSES) byStatus[s] = [];
    const prunedEnds = [];
    let count = 0;
    let xMin = Infinity, xMax = -Infinity, yMin = Infinity, yMax = -Infinity;
    drawn.curveEnds = {};
    for (const id of state.order) {
      const t = state.trials.get(id);
      const coords = [];
      for (let i = 0; i < t.x.length; i++) {
        if (t.x[i] === null || t.y[i] === null) continue;
        coords.push([t.x[i], t.y[i]]);
        xMin = Math.min(xMin, t.x[i]); xMax = Math.max(xMax, t.x[i]);
        yMin = Math.min(yMin, t.y[i]); yMax = Math.max(yMax, t.y[i]);
      }
      if (!coords.length) continue;
      if (coords.length === 1) coords.push(coords[0]);  // a one-report trial still shows
      (byStatus[t.status] || byStatus.PENDING).push({ name: id, coords });
      drawn.curveEnds[id] = coords[coords.length - 1];
      if (t.status === 'STOPPED') prunedEnds.push({ name: id, value: coords[coords.length - 1] });
      count++;
    }
    drawn.curves = count;
    const large = count > 300;
    const series = STATUSES.filter(s => byStatus[s].length).map(s => ({
      id: 'curves-' + s, name: s, type: 'lines', coordinateSystem: 'cartesian2d', polyline: true,
      large, largeThreshold: 300, data: byStatus[s], silent: large,
      lineStyle: { color: STATUS_COLORS[s], width: 1, opacity: large ? 0.35 : 0.7 },
      emphasis: { lineStyle: { width: 3, opacity: 1 } },
    }));
    series.push({
      id: 'pruned-ends', name: 'pruned here', type: 'scatter', data: prunedEnds, symbol: 'rect',
      symbolSize: 5, itemStyle: { color: STATUS_COLORS.STOPPED }, z: 5,
      markLine: h.rungs.length ? {
        silent: true, symbol: 'none', lineStyle: { type: 'dashed', color: '#78909c' },
        label: { formatter: p => 'rung ' + fmt(p.value) },
        data: h.rungs.map(r => ({ xAxis: r })),
      } : undefined,
    });
    document.getElementById('curves-note').textContent =
      `${h.metric} against ${h.time_attr} for each of the ${count} trials with a result, coloured by status` +
      (h.curves && h.num_trials > h.curves.kept ? ` (of ${h.num_trials} trials, curves are kept for the running ones, ` +
        `the best ${h.curves.best} finished and a sample of ${h.curves.sample})` : '') +
      (h.rungs.length ? `; dashed lines: the scheduler's rungs (${h.rungs.map(r => fmt(r)).join(', ')}), ` +
        'where pruned trials (STOPPED, square) end' : '') + '. Scroll to zoom.';
    const pad = (yMax - yMin) || Math.abs(yMax) || 1;
    chart('chart-curves').setOption({
      animation: false,
      legend: { top: 0 },
      tooltip: { trigger: 'item', formatter: p => esc(p.name) + (p.seriesName ? ' · ' + p.seriesName : '') },
      grid: { left: 60, right: 30, top: 36, bottom: 50 },
      // Explicit extents: a 'lines' series does not widen its axes.
      xAxis: { type: 'value', name: h.time_attr, nameLocation: 'middle', nameGap: 28,
               min: count ? Math.min(xMin, ...h.rungs) : 0, max: count ? Math.max(xMax, ...h.rungs.filter(r => r <= xMax)) : 1 },
      yAxis: { type: 'value', name: h.metric, min: count ? yMin - 0.02 * pad : 0,
               max: count ? yMax + 0.02 * pad : 1, axisLabel: { formatter: v => fmt(v, 4), showMinLabel: false, showMaxLabel: false } },
      dataZoom: [{ type: 'inside', xAxisIndex: 0, filterMode: 'none' }, { type: 'inside', yAxisIndex: 0, filterMode: 'none' }],
      series,
    }, { replaceMerge: ['series'] });
  }

  function renderBest() {
    const h = state.header;
    const k = state.objective, s = seriesOf(k), metric = objectives()[k].metric;
    const t = s.best_vs_time.map(p => [p[0], p[1], p[2]]);
    if (t.length) t.push([h.elapsed_s, t[t.length - 1][1], t[t.length - 1][2]]);
    const c = s.best_vs_count.map(p => [p[0], p[1]]);
    document.getElementById('best-note').textContent =
      `The best ${metric} reported so far against the experiment's time, and the best last ${metric} against the number of finished trials.` +
      (multi() ? ' Several objectives: each one on its own (the objective chosen at the top), not the front.' : '');
    const common = { animation: false, tooltip: { trigger: 'axis' }, grid: { left: 60, right: 20, top: 30, bottom: 40 } };
    chart('chart-best-time').setOption(Object.assign({}, common, {
      xAxis: { type: 'value', name: 'seconds', nameLocation: 'middle', nameGap: 26 },
      yAxis: { type: 'value', name: metric, scale: true },
      series: [{ id: 'best-time', type: 'line', step: 'end', showSymbol: false, data: t }],
    }));
    chart('chart-best-count').setOption(Object.assign({}, common, {
      xAxis: { type: 'value', name: 'finished trials', nameLocation: 'middle', nameGap: 26, minInterval: 1 },
      yAxis: { type: 'value', name: metric, scale: true },
      series: [{ id: 'best-count', type: 'line', step: 'end', data: c }],
    }));
  }

  function paramAxisType(p) {
    if (p.kind === 'categorical') return 'category';
    return p.log ? 'log' : 'value';
  }
  function categoryValue(p, v) {
    return p.kind === 'categorical' ? JSON.stringify(v) : v;
  }
  function withResults(k) {
    return state.order.map(id => state.trials.get(id)).filter(t => lastOf(t, k) !== null && lastOf(t, k) !== undefined);
  }

  function metricRange(trials, k) {
    let lo = Infinity, hi = -Infinity;
    for (const t of trials) { lo = Math.min(lo, lastOf(t, k)); hi = Math.max(hi, lastOf(t, k)); }
    return lo <= hi ? [lo, hi] : [0, 1];
  }

  function renderParallel() {
    const h = state.header;
    const k = state.objective, o = objectives()[k];
    const trials = withResults(k);
    document.getElementById('parallel-note').textContent =
      `Parameters of every trial with a result, coloured by its last ${o.metric}. Drag along an axis to filter.`;
    const axes = h.params.map((p, i) => ({
      dim: i, name: p.name, type: paramAxisType(p),
      data: p.kind === 'categorical' ? p.choices.map(v => JSON.stringify(v)) : undefined,
    }));
    axes.push({ dim: h.params.length, name: o.metric, type: 'value', scale: true });
    const data = trials.map(t => ({ name: t.id, value: h.params.map((p, i) => categoryValue(p, t.p[i])).concat([lastOf(t, k)]) }));
    const [lo, hi] = metricRange(trials, k);
    chart('chart-parallel').setOption({
      animation: false,
      parallelAxis: axes,
      parallel: { left: 60, right: 90, top: 40, bottom: 30 },
      visualMap: { type: 'continuous', min: lo, max: hi, dimension: h.params.length, right: 0, top: 'middle',
                   inRange: { color: o.mode === 'max' ? ['#d0d6dc', '#0d47a1'] : ['#0d47a1', '#d0d6dc'] }, calculable: true },
      series: [{ id: 'parallel', type: 'parallel', data, lineStyle: { width: 1, opacity: 0.5 }, progressive: 1000 }],
    }, { replaceMerge: ['series', 'parallelAxis'] });
  }

  function renderScatter() {
    const h = state.header;
    const grid = document.getElementById('scatter-grid');
    const k = state.objective, metric = objectives()[k].metric;
    const trials = withResults(k);
    document.getElementById('scatter-note').textContent =
      `Each trial's last ${metric} against each parameter (log axes for log distributions).`;
    h.params.forEach((p, i) => {
      const id = 'chart-scatter-' + i;
      if (!document.getElementById(id)) {
        const div = document.createElement('div');
        div.className = 'chart';
        div.id = id;
        grid.appendChild(div);
      }
      const series = STATUSES.map(s => ({
        id: 'scatter-' + s, name: s, type: 'scatter', symbolSize: 5, large: true, largeThreshold: 400,
        itemStyle: { color: STATUS_COLORS[s], opacity: 0.7 },
        data: trials.filter(t => t.status === s && t.p[i] !== null).map(t => ({ name: t.id, value: [categoryValue(p, t.p[i]), lastOf(t, k)] })),
      })).filter(s => s.data.length);
      chart(id).setOption({
        animation: false,
        title: { text: p.name + (p.log ? ' (log)' : ''), textStyle: { fontSize: 13 }, left: 'center' },
        tooltip: { trigger: 'item', formatter: q => esc(q.name) + ': ' + esc(fmt(q.value[0])) + ' → ' + fmt(q.value[1]) },
        grid: { left: 55, right: 15, top: 30, bottom: 30 },
        xAxis: { type: paramAxisType(p), scale: true, data: p.kind === 'categorical' ? p.choices.map(v => JSON.stringify(v)) : undefined },
        yAxis: { type: 'value', scale: true, name: metric },
        series,
      }, { replaceMerge: ['series'] });
    });
  }

  function renderImportance() {
    const h = state.header;
    const imp = seriesOf(state.objective).importance;
    const values = imp.values.slice().sort((a, b) => a[1] - b[1]);
    document.getElementById('importance-note').textContent =
      `${imp.method}, over ${imp.trials} trials` + (imp.trials < 10 ? ' (few trials: take it lightly)' : '') + '.';
    chart('chart-importance').setOption({
      animation: false,
      tooltip: { trigger: 'axis' },
      grid: { left: 120, right: 30, top: 10, bottom: 30 },
      xAxis: { type: 'value', max: 1 },
      yAxis: { type: 'category', data: values.map(v => v[0]) },
      series: [{ id: 'importance', type: 'bar', data: values.map(v => v[1]), label: { show: true, position: 'right', formatter: p => fmt(p.value, 3) } }],
    });
    const best = h.best;
    document.getElementById('best-id').textContent = best ? best.id : '(none yet)';
    document.getElementById('best-value').textContent = !best ? '' : multi()
      ? `${h.metric} = ${fmt(best.value, 8)}: the best by the first objective alone (best_trial.json holds the Pareto front: see its view)`
      : `${h.metric} = ${fmt(best.value, 8)} (its last result, as best_trial.json)`;
    document.getElementById('best-config').textContent = best ? JSON.stringify(best.config, null, 2) : '';
  }

  function renderPareto() {
    const h = state.header;
    document.getElementById('sec-pareto').classList.toggle('hidden', !multi());
    if (!multi()) { drawn.pareto = null; return; }
    const objs = objectives();
    const kx = state.paretoX, ky = state.paretoY;
    const front = [], rest = [];
    let complete = 0;
    for (const id of state.order) {
      const t = state.trials.get(id);
      if (!t.o || t.o.some(v => v === null)) continue;
      complete++;
      (t.rank === 0 ? front : rest).push({ name: id, value: [t.o[kx], t.o[ky], t.rank] });
    }
    front.sort((a, b) => a.value[0] - b.value[0] || a.value[1] - b.value[1]);
    drawn.pareto = { points: complete, front: front.map(p => p.name) };
    const constraints = h.pareto.constraints.length ? `, or breaking a constraint (${h.pareto.constraints.join(', ')}): no rank` : '';
    document.getElementById('pareto-note').textContent =
      `Each trial's last ${objs[ky].metric} (${objs[ky].mode}) against its last ${objs[kx].metric} (${objs[kx].mode}), ` +
      `${complete} trials with every objective. The ${front.length} trials of the Pareto front (rank 0 over all ${objs.length} ` +
      `objectives, as pareto_front.json) are highlighted and joined; the others (dominated${constraints}) are grey.` +
      (objs.length > 2 ? ' With more than two objectives a front trial may look dominated in this projection.' : '');
    chart('chart-pareto').setOption({
      animation: false,
      legend: { top: 0 },
      tooltip: { trigger: 'item', formatter: p => esc(p.name) + ': ' + fmt(p.value[0]) + ', ' + fmt(p.value[1]) +
        ' · rank ' + (p.value[2] === null || p.value[2] === undefined ? 'none' : p.value[2]) },
      grid: { left: 70, right: 30, top: 36, bottom: 50 },
      xAxis: { type: 'value', scale: true, name: objs[kx].metric + ' (' + objs[kx].mode + ')', nameLocation: 'middle', nameGap: 28 },
      yAxis: { type: 'value', scale: true, name: objs[ky].metric + ' (' + objs[ky].mode + ')' },
      dataZoom: [{ type: 'inside', xAxisIndex: 0, filterMode: 'none' }, { type: 'inside', yAxisIndex: 0, filterMode: 'none' }],
      series: [
        { id: 'pareto-dominated', name: 'dominated', type: 'scatter', data: rest, symbolSize: 6, large: true, largeThreshold: 2000,
          itemStyle: { color: '#b0bec5', opacity: 0.7 } },
        { id: 'pareto-front', name: 'Pareto front', type: 'line', data: front, symbolSize: 9, showSymbol: true, z: 5,
          lineStyle: { color: '#d81b60', width: 2 }, itemStyle: { color: '#d81b60' } },
      ],
    }, { replaceMerge: ['series'] });
  }

  function renderTimeline() {
    const h = state.header;
    // Rows: the resources trials ran on (report_model.h): "GPU 0", "GPU 0 #2", "n1 slot 0", ...,
    // in natural order (GPU 2 before GPU 10).
    const collator = new Intl.Collator(undefined, { numeric: true });
    const labels = (h.rows || []).slice().sort(collator.compare);
    const rowOf = new Map(labels.map((l, i) => [l, i]));
    const rects = [], marks = [];
    const now = h.elapsed_s;
    for (const id of state.order) {
      const t = state.trials.get(id);
      for (const s of t.spans) {
        if (!rowOf.has(s[0])) continue;
        rects.push({ name: id, value: [rowOf.get(s[0]), s[1], s[2] === null ? now : s[2], t.status], itemStyle: { color: STATUS_COLORS[t.status] } });
      }
      for (const m of t.marks) {
        const span = t.spans.find(s => s[1] <= m[0] + 1e-9 && (s[2] === null || m[0] <= s[2] + 1e-9)) ||
          (m[1] === 'paused' ? t.spans.filter(s => s[2] !== null && s[2] <= m[0] + 1e-9).pop() : t.spans.find(s => s[1] >= m[0] - 1e-9)) ||
          t.spans[t.spans.length - 1];
        if (span && rowOf.has(span[0])) marks.push({ name: id + ': ' + m[2], value: [m[0], rowOf.get(span[0])], kind: m[1] });
      }
    }
    drawn.timeline = { rows: labels, spans: rects.length, marks: marks.length };
    const symbol = { promoted: 'triangle', exploited: 'diamond', paused: 'rect', resumed: 'circle' };
    const markSeries = Object.keys(symbol).map(kind => ({
      id: 'marks-' + kind, name: kind, type: 'scatter', symbol: symbol[kind], symbolSize: 8, z: 5,
      itemStyle: { color: kind === 'exploited' ? '#d81b60' : kind === 'promoted' ? '#263238' : kind === 'resumed' ? '#8e24aa' : '#ffffff', borderColor: '#263238' },
      data: marks.filter(m => m.kind === kind),
    }));
    const gpus = labels.some(l => /GPU /.test(l));
    document.getElementById('timeline-note').textContent =
      `Each trial's runs on the ${labels.length} ${gpus ? 'GPUs (a trial with several runs on each of them; trials sharing one by fractions on its #2, #3 rows)' : 'slots the experiment ran trials on at once'}; ` +
      `busy ${fmt(100 * h.utilisation, 3)} % of the time. ` +
      'Triangles: promoted past a rung; diamonds: PBT exploits; squares: paused; circles: resumed after a pause.';
    const lanes = Math.max(1, labels.length);
    const el = document.getElementById('chart-timeline');
    const height = Math.min(900, Math.max(200, 60 + lanes * 18)) + 'px';
    if (el.style.height !== height) { el.style.height = height; if (charts['chart-timeline']) charts['chart-timeline'].resize(); }
    chart('chart-timeline').setOption({
      animation: false,
      legend: { top: 0 },
      tooltip: { trigger: 'item', formatter: p => esc(p.name) + (p.seriesId === 'spans' ? ` · ${p.value[3]} · ${fmt(p.value[1], 4)}–${fmt(p.value[2], 4)} s` : '') },
      grid: { left: 12, right: 20, top: 30, bottom: 40, containLabel: true },
      dataZoom: [{ type: 'inside', filterMode: 'weakFilter' }],
      xAxis: { type: 'value', name: 'seconds', nameLocation: 'middle', nameGap: 26, min: 0 },
      yAxis: { type: 'category', inverse: true, data: labels.length ? labels : ['slot 0'] },
      series: [{
        id: 'spans', type: 'custom', data: rects, encode: { x: [1, 2], y: 0 },
        renderItem: (params, api) => {
          const start = api.coord([api.value(1), api.value(0)]);
          const end = api.coord([api.value(2), api.value(0)]);
          const hgt = api.size([0, 1])[1] * 0.7;
          return { type: 'rect', shape: { x: start[0], y: start[1] - hgt / 2, width: Math.max(1, end[0] - start[0]), height: hgt },
                   style: Object.assign(api.style(), { stroke: '#ffffff', lineWidth: 1 }) };
        },
      }].concat(markSeries),
    }, { replaceMerge: ['series'] });
  }

  function renderTable() {
    const h = state.header;
    const objs = objectives();
    const cols = [{ key: 'id', label: 'trial' }, { key: 'status', label: 'status' }]
      .concat(h.params.map((p, i) => ({ key: 'p' + i, label: p.name, param: i })))
      .concat([{ key: 'last', label: h.metric + ' (last)' }])
      .concat(objs.slice(1).map((o, i) => ({ key: 'o' + (i + 1), label: o.metric + ' (last)', obj: i + 1 })))
      .concat(multi() ? [{ key: 'rank', label: 'pareto rank' }] : [])
      .concat([{ key: 'best', label: h.metric + ' (best)' },
               { key: 'n', label: 'reports' }, { key: 'time_s', label: 'time (s)' }]);
    const value = (t, c) => c.param !== undefined ? t.p[c.param] : c.obj !== undefined ? lastOf(t, c.obj) : t[c.key];
    const sort = state.sort;
    if (sort.asc === null) sort.asc = h.mode === 'min';
    const col = cols.find(c => c.key === sort.key) || cols[0];
    const rows = state.order.map(id => state.trials.get(id));
    rows.sort((a, b) => {
      const va = value(a, col), vb = value(b, col);
      if (va === null || va === undefined) return 1;
      if (vb === null || vb === undefined) return -1;
      const r = typeof va === 'number' && typeof vb === 'number' ? va - vb : String(JSON.stringify(va)).localeCompare(JSON.stringify(vb));
      return sort.asc ? r : -r;
    });
    const table = document.getElementById('trials');
    table.tHead.innerHTML = '<tr>' + cols.map(c =>
      `<th data-key="${esc(c.key)}" class="${c.key === sort.key ? 'sorted' + (sort.asc ? ' asc' : '') : ''}">${esc(c.label)}</th>`).join('') + '</tr>';
    const bestId = h.best ? h.best.id : null;
    table.tBodies[0].innerHTML = rows.map(t => `<tr data-id="${esc(t.id)}"${t.id === bestId ? ' class="best"' : ''}>` + cols.map(c => {
      const v = value(t, c);
      if (c.key === 'status') return `<td class="status" style="color:${STATUS_COLORS[v] || '#000'}">${esc(v)}</td>`;
      return `<td>${esc(typeof v === 'number' ? fmt(v, 6) : (v === null || v === undefined ? '' : typeof v === 'string' ? v : JSON.stringify(v)))}</td>`;
    }).join('') + '</tr>').join('');
  }

  const STEPS = [renderHeader, renderCurves, renderPareto, renderBest, renderImportance, renderTable, renderTimeline, renderParallel, renderScatter];
  function runStep(step) {
    const begin = performance.now();
    try { step(); } catch (e) { console.error('tune report: ' + step.name + ': ' + e); }
    drawn.stepMs[step.name] = Math.round(performance.now() - begin);
    if (step === renderCurves && drawn.curvesAt === undefined) drawn.curvesAt = performance.now();
  }
  function finishRender() {
    drawn.version = state.header.version;
    drawn.renders++;
    drawn.renderedAt = performance.now();
  }
  drawn.stepMs = {};
  function render() {
    if (!state.header) return;
    for (const step of STEPS) runStep(step);
    finishRender();
  }
  // The first drawing goes view by view, each in its own task, so the page paints the curves
  // while the other views are still being drawn.
  function renderProgressively() {
    if (!state.header) return;
    let i = 0;
    const next = () => {
      runStep(STEPS[i++]);
      if (i < STEPS.length) setTimeout(next, 0); else finishRender();
    };
    next();
  }

  let pending = false, lastRender = 0;
  function scheduleRender() {
    if (pending) return;
    pending = true;
    const wait = Math.max(0, 500 - (performance.now() - lastRender));
    setTimeout(() => requestAnimationFrame(() => { pending = false; lastRender = performance.now(); render(); }), wait);
  }

  document.getElementById('trials').tHead.addEventListener('click', e => {
    const th = e.target.closest('th');
    if (!th) return;
    const key = th.dataset.key;
    if (state.sort.key === key) state.sort.asc = !state.sort.asc;
    else {
      state.sort.key = key;
      const k = key === 'last' || key === 'best' ? 0 : /^o[0-9]+$/.test(key) ? Number(key.slice(1)) : null;
      state.sort.asc = k === null ? true : objectives()[k].mode === 'min';
    }
    renderTable();
  });
  document.getElementById('objective').addEventListener('change', e => {
    state.objective = Number(e.target.value);
    for (const step of [renderBest, renderImportance, renderParallel, renderScatter]) runStep(step);
  });
  for (const [id, key] of [['pareto-x', 'paretoX'], ['pareto-y', 'paretoY']]) {
    document.getElementById(id).addEventListener('change', e => { state[key] = Number(e.target.value); runStep(renderPareto); });
  }
  document.getElementById('copy-config').addEventListener('click', () => {
    const text = document.getElementById('best-config').textContent;
    const done = () => { document.getElementById('copy-config').textContent = 'Copied'; };
    if (navigator.clipboard && window.isSecureContext) navigator.clipboard.writeText(text).then(done, () => {});
    else {
      const range = document.createRange();
      range.selectNodeContents(document.getElementById('best-config'));
      const sel = window.getSelection(); sel.removeAllRanges(); sel.addRange(range);
      try { document.execCommand('copy'); done(); } catch (e) { /* selected: the user copies */ }
    }
  });
  window.addEventListener('resize', () => { for (const c of Object.values(charts)) c.resize(); });

  window.tuneReport = {
    curveCount: () => drawn.curves,
    // The last point drawn of a trial's curve, [x, y].
    curveEnd: id => drawn.curveEnds[id] || null,
    // What the curves chart holds, per series: {id, n}.
    curveSeries: () => (charts['chart-curves'] ? charts['chart-curves'].getOption().series : []).map(s => ({ id: s.id, n: (s.data || []).length })),
    bestId: () => document.getElementById('best-id').textContent,
    version: () => drawn.version,
    renders: () => drawn.renders,
    renderedAt: () => drawn.renderedAt,
    curvesAt: () => drawn.curvesAt,
    // Milliseconds each view took to draw, the last time.
    stepMs: () => drawn.stepMs,
    trialCount: () => state.trials.size,
    // Several objectives: {points: trials drawn (those with every objective), front: their ids}.
    paretoPoints: () => drawn.pareto,
    // The timeline: {rows: its row labels, spans and marks drawn}.
    timeline: () => drawn.timeline,
    // What the Pareto chart holds, per series: {id, n}.
    paretoSeries: () => (charts['chart-pareto'] ? charts['chart-pareto'].getOption().series : []).map(s => ({ id: s.id, n: (s.data || []).length })),
    reports: () => { let n = 0; for (const t of state.trials.values()) n += t.n; return n; },
  };

  const inline = document.getElementById('tune-data').textContent;
  if (inline && inline.trim() !== 'null') { apply(JSON.parse(inline)); renderProgressively(); lastRender = performance.now(); }
  if (window.TUNE_LIVE) {
    const source = new EventSource('events' + location.search);
    source.onmessage = e => { drawn.lost = false; apply(JSON.parse(e.data)); scheduleRender(); };
    source.onerror = () => {
      drawn.lost = true;
      if (state.header) renderHeader();
      if (state.header && state.header.finished) source.close();
    };
  }
})();
