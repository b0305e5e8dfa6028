"""The review page's HTML, script and style, kept in Python so a plain (non-editable) install ships them.

The script renders example text with `textContent` only (never as HTML), and the page's CSP allows no
inline script, so text from a scraped conversation cannot run in the reviewer's browser.
"""

PAGE_HTML = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Review queue - corpus_platform</title>
<link rel="stylesheet" href="/review/static/app.css">
<script src="/review/static/app.js" defer></script>
</head>
<body>
<header>
  <h1>Review queue</h1>
  <span id="progress" aria-live="polite"></span>
  <label>Reviewer <input id="reviewer" autocomplete="username" maxlength="100" required></label>
</header>
<p id="notice" hidden></p>
<main id="main" hidden>
  <section id="card" aria-labelledby="example-title">
    <h2 id="example-title">Example <code id="example-id"></code></h2>
    <p id="example-meta"></p>
    <p id="queue-reason"></p>
    <div id="messages"></div>
    <p id="untrainable" class="warn"></p>
    <div id="actions">
      <button id="btn-keep" type="button" title="k">Keep</button>
      <span class="reject">
        <input id="reject-reason" list="reasons" placeholder="reason (required to reject)" maxlength="500">
        <datalist id="reasons">
          <option value="wrong or misleading answer"><option value="low quality"><option value="unsafe or toxic">
          <option value="contains personal data"><option value="off topic"><option value="duplicate">
          <option value="not in the target language">
        </datalist>
        <button id="btn-reject" type="button">Reject</button>
      </span>
      <button id="btn-edit" type="button" title="e">Edit response</button>
      <button id="btn-skip" type="button" title="s">Skip</button>
    </div>
    <div id="editor" hidden>
      <label for="edit-text">New response (replaces the last assistant turn; the original is kept)</label>
      <textarea id="edit-text" rows="8"></textarea>
      <button id="btn-save-edit" type="button">Save edit</button>
      <button id="btn-cancel-edit" type="button">Cancel</button>
    </div>
    <p id="status" role="status"></p>
  </section>
  <aside>
    <h2>Decision record</h2>
    <table id="decisions"><thead><tr><th>stage</th><th>decision</th><th>rule</th><th>score</th><th>threshold</th><th>duplicate of</th></tr></thead><tbody></tbody></table>
    <h3>Quality score <span id="quality"></span></h3>
    <table id="score-detail"><tbody></tbody></table>
    <h3>Metadata</h3>
    <pre id="metadata"></pre>
  </aside>
</main>
<section id="done" hidden><h2>Nothing left to review</h2><p id="done-text"></p></section>
<section id="agreement-section">
  <h2>Agreement with the automatic decisions, per rule</h2>
  <p class="hint">As of the last import of the verdicts (the next <code>dataset_splits</code> or <code>review_queue</code> run).</p>
  <table id="agreement"><thead><tr><th>stage</th><th>rule</th><th>reviewed</th><th>agreed</th><th>rate</th><th>reviewer rejected kept</th><th>reviewer kept dropped</th></tr></thead><tbody></tbody></table>
</section>
</body>
</html>
"""

APP_JS = r"""
'use strict';
(function () {
  const $ = (id) => document.getElementById(id);
  const params = new URLSearchParams(location.search);
  if (params.get('token')) {
    sessionStorage.setItem('reviewToken', params.get('token'));
    history.replaceState(null, '', location.pathname);
  }
  const token = sessionStorage.getItem('reviewToken') || '';
  const skipped = [];
  let current = null;
  let busy = false;

  function text(el, value) { el.textContent = value === null || value === undefined ? '' : String(value); }
  function cell(row, value) { const td = document.createElement('td'); text(td, value); row.appendChild(td); return td; }
  function fmt(x) { return typeof x === 'number' ? (Number.isInteger(x) ? String(x) : x.toFixed(3)) : (x ?? ''); }
  function notice(message) { const n = $('notice'); text(n, message); n.hidden = !message; }
  function status(message, isError) { const s = $('status'); text(s, message); s.className = isError ? 'error' : 'ok'; }

  async function api(path, body) {
    const opts = { headers: { 'X-Review-Token': token } };
    if (body !== undefined) {
      opts.method = 'POST';
      opts.headers['Content-Type'] = 'application/json';
      opts.body = JSON.stringify(body);
    }
    const r = await fetch(path, opts);
    const data = await r.json().catch(() => ({}));
    if (!r.ok) {
      const detail = typeof data.detail === 'string' ? data.detail : JSON.stringify(data.detail || r.statusText);
      throw new Error(detail);
    }
    return data;
  }

  function renderMessages(item) {
    const box = $('messages');
    box.replaceChildren();
    item.messages.forEach((m, i) => {
      const div = document.createElement('div');
      div.className = 'msg role-' + m.role + (i === item.response_index ? ' response' : '');
      const role = document.createElement('div');
      role.className = 'role';
      text(role, i === item.response_index ? m.role + ' (the response under review)' : m.role);
      const content = document.createElement('div');
      content.className = 'content';
      text(content, m.content);
      div.append(role, content);
      box.appendChild(div);
    });
  }

  function renderItem(item) {
    current = item;
    text($('example-id'), item.example_id);
    text($('example-meta'), item.source + ' / ' + item.date + ' - text from ' + item.found_in +
      (item.pii_masked_here ? ' (PII masked for review)' : ''));
    const q = item.queue;
    text($('queue-reason'), 'Queued ' + q.queued_on + ', priority ' + q.priority + ': ' + q.reason);
    renderMessages(item);
    const body = $('decisions').tBodies[0];
    body.replaceChildren();
    item.decisions.forEach((d) => {
      const row = body.insertRow();
      row.className = 'decision-' + d.decision;
      [d.stage, d.decision, d.rule, fmt(d.score), fmt(d.threshold), d.duplicate_of].forEach((v) => cell(row, v));
    });
    text($('quality'), item.quality_score === null ? '' : fmt(item.quality_score));
    const sd = $('score-detail').tBodies[0];
    sd.replaceChildren();
    Object.entries(item.score_detail || {}).forEach(([k, v]) => { const row = sd.insertRow(); cell(row, k); cell(row, fmt(v)); });
    text($('metadata'), JSON.stringify(item.metadata, null, 1));
    $('btn-keep').disabled = !!item.untrainable;
    text($('untrainable'), item.untrainable ? 'Cannot be kept as it is (' + item.untrainable + '): edit the response or reject it.' : '');
    $('reject-reason').value = '';
    $('edit-text').value = item.response || '';
    $('editor').hidden = true;
    $('main').hidden = false;
    $('done').hidden = true;
  }

  async function loadAgreement() {
    try {
      const data = await api('/review/api/agreement');
      const body = $('agreement').tBodies[0];
      body.replaceChildren();
      data.rows.forEach((r) => {
        const row = body.insertRow();
        [r.stage, r.rule, r.reviewed, r.agreed, fmt(r.agreement_rate), r.reviewer_rejected_kept, r.reviewer_kept_dropped]
          .forEach((v) => cell(row, v));
      });
    } catch (e) { /* the table is informational */ }
  }

  async function next() {
    const q = skipped.map((id) => 'skip=' + encodeURIComponent(id)).join('&');
    const data = await api('/review/api/next' + (q ? '?' + q : ''));
    text($('progress'), data.pending + ' pending of ' + data.queued + ' queued; ' + data.reviewed + ' reviewed' +
      (data.stale ? ' (' + data.stale + ')' : ''));
    if (data.item) {
      renderItem(data.item);
    } else {
      current = null;
      $('main').hidden = true;
      $('done').hidden = false;
      text($('done-text'), data.note || (data.pending ? 'Only skipped examples are left: reload to see them again.' :
        'Every queued example has a verdict. The next dataset_splits run applies them.'));
    }
  }

  async function submit(verdict, extra) {
    if (!current || busy) return;
    const reviewer = $('reviewer').value.trim();
    if (!reviewer) { status('Name the reviewer first.', true); $('reviewer').focus(); return; }
    localStorage.setItem('reviewer', reviewer);
    busy = true;
    try {
      const body = Object.assign({ example_id: current.example_id, source: current.source, date: current.date,
                                   verdict: verdict, reviewer: reviewer }, extra || {});
      const saved = await api('/review/api/verdicts', body);
      status('Saved: ' + saved.verdict + ' ' + saved.example_id + '.', false);
      await next();
    } catch (e) {
      status('Not saved: ' + e.message, true);
    } finally {
      busy = false;
    }
  }

  function typing(ev) { return ['INPUT', 'TEXTAREA'].includes(ev.target.tagName); }

  async function start() {
    if (!token) {
      notice('No access token: open the URL that `make review` printed (it ends in ?token=...).');
      return;
    }
    $('btn-keep').addEventListener('click', () => submit('keep'));
    $('btn-reject').addEventListener('click', () => {
      const reason = $('reject-reason').value.trim();
      if (!reason) { status('A rejection needs a reason.', true); $('reject-reason').focus(); return; }
      submit('reject', { reason: reason });
    });
    $('reject-reason').addEventListener('keydown', (ev) => { if (ev.key === 'Enter') $('btn-reject').click(); });
    $('btn-edit').addEventListener('click', () => { $('editor').hidden = false; $('edit-text').focus(); });
    $('btn-cancel-edit').addEventListener('click', () => { $('editor').hidden = true; });
    $('btn-save-edit').addEventListener('click', () => submit('edit', { edited_response: $('edit-text').value }));
    $('btn-skip').addEventListener('click', () => { if (current) { skipped.push(current.example_id); next(); } });
    document.addEventListener('keydown', (ev) => {
      if (typing(ev) || ev.ctrlKey || ev.metaKey || ev.altKey) return;
      if (ev.key === 'k') $('btn-keep').click();
      else if (ev.key === 'e') { ev.preventDefault(); $('btn-edit').click(); }
      else if (ev.key === 'r') { ev.preventDefault(); $('reject-reason').focus(); }
      else if (ev.key === 's') $('btn-skip').click();
    });
    try {
      const session = await api('/review/api/session');
      $('reviewer').value = localStorage.getItem('reviewer') || session.reviewer || '';
      await next();
      await loadAgreement();
    } catch (e) {
      notice('Cannot load the queue: ' + e.message);
    }
  }

  document.addEventListener('DOMContentLoaded', start);
})();
"""

APP_CSS = """
body { font: 15px/1.45 system-ui, sans-serif; margin: 0 auto; max-width: 1200px; padding: 0 1rem 3rem; color: #1d1d1f; }
header { display: flex; gap: 1.5rem; align-items: baseline; border-bottom: 1px solid #ddd; margin-bottom: 1rem; }
header h1 { font-size: 1.3rem; }
#progress { color: #555; flex: 1; }
#notice { background: #fff3cd; padding: .6rem .8rem; border-radius: 4px; }
main { display: grid; grid-template-columns: minmax(0, 3fr) minmax(0, 2fr); gap: 1.5rem; }
.msg { border: 1px solid #ddd; border-radius: 6px; margin: .5rem 0; padding: .4rem .7rem; }
.msg .role { font-size: .75rem; text-transform: uppercase; color: #666; letter-spacing: .04em; }
.msg .content { white-space: pre-wrap; overflow-wrap: anywhere; }
.role-user { background: #f5f7fb; }
.role-system { background: #f3f3f3; }
.response { border: 2px solid #3b6fd8; }
#actions { display: flex; flex-wrap: wrap; gap: .6rem; align-items: center; margin-top: 1rem; }
#actions input { min-width: 16rem; }
button { font: inherit; padding: .35rem .9rem; border-radius: 4px; border: 1px solid #888; background: #fafafa; cursor: pointer; }
#btn-keep { background: #e3f5e6; border-color: #3a8a48; }
#btn-reject { background: #fbe4e4; border-color: #b03a3a; }
#editor { margin-top: .8rem; }
#editor textarea { width: 100%; font: inherit; box-sizing: border-box; }
#status.error { color: #b03a3a; }
#status.ok { color: #2d6a36; }
table { border-collapse: collapse; width: 100%; font-size: .85rem; }
th, td { text-align: left; padding: .2rem .4rem; border-bottom: 1px solid #eee; vertical-align: top; overflow-wrap: anywhere; }
tr.decision-rejected td, tr.decision-duplicate td { color: #b03a3a; }
pre { background: #f6f6f6; padding: .5rem; white-space: pre-wrap; overflow-wrap: anywhere; font-size: .8rem; max-height: 20rem; overflow: auto; }
.hint { color: #666; font-size: .85rem; }
.warn { color: #8a5a00; }
button:disabled { opacity: .45; cursor: not-allowed; }
#agreement-section { margin-top: 2rem; }
"""
